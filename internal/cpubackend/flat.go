package cpubackend

import (
	"fmt"
	"reflect"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/x448/float16"
)

// makeFlat returns a zeroed flat slice of n values of dtype.
func makeFlat(dtype dtypes.DType, n int) any {
	switch dtype {
	case dtypes.Float32:
		return make([]float32, n)
	case dtypes.Int32:
		return make([]int32, n)
	case dtypes.Bool:
		return make([]bool, n)
	case dtypes.BFloat16:
		return make([]bfloat16.BFloat16, n)
	case dtypes.Float16:
		return make([]float16.Float16, n)
	}
	panic(fmt.Sprintf("cpubackend: makeFlat of unsupported dtype %s (checked at build time)", dtype))
}

// flatLen returns the length of a flat slice.
func flatLen(flat any) int {
	return reflect.ValueOf(flat).Len()
}

// copyFlat copies src into dst, slices of the same element type and length.
func copyFlat(dst, src any) error {
	dv, sv := reflect.ValueOf(dst), reflect.ValueOf(src)
	if dv.Kind() != reflect.Slice || sv.Kind() != reflect.Slice || dv.Type() != sv.Type() {
		return fmt.Errorf("cpubackend: flat data is %T, expected %T", src, dst)
	}
	if dv.Len() != sv.Len() {
		return fmt.Errorf("cpubackend: flat data has %d values, expected %d", sv.Len(), dv.Len())
	}
	reflect.Copy(dv, sv)
	return nil
}

// toFloat32 widens a float flat slice into dst (len(dst) values).
func toFloat32(dst []float32, src any) {
	switch s := src.(type) {
	case []float32:
		copy(dst, s)
	case []bfloat16.BFloat16:
		for i := range dst {
			dst[i] = s[i].Float32()
		}
	case []float16.Float16:
		for i := range dst {
			dst[i] = s[i].Float32()
		}
	case []int32:
		for i := range dst {
			dst[i] = float32(s[i])
		}
	}
}

// convertFlat converts src into dst (same length, any supported dtypes),
// with the conversions of Go and GoMLX's simplego: floats to ints truncate,
// to bool is "not zero", float32 to bfloat16 truncates the mantissa.
func convertFlat(dst, src any) {
	switch d := dst.(type) {
	case []float32:
		toFloat32(d, src)
		if s, ok := src.([]bool); ok {
			for i, v := range s {
				d[i] = b2f(v)
			}
		}
	case []int32:
		switch s := src.(type) {
		case []int32:
			copy(d, s)
		case []bool:
			for i, v := range s {
				d[i] = 0
				if v {
					d[i] = 1
				}
			}
		default:
			tmp := make([]float32, len(d))
			toFloat32(tmp, src)
			for i, v := range tmp {
				d[i] = int32(v)
			}
		}
	case []bool:
		switch s := src.(type) {
		case []bool:
			copy(d, s)
		case []int32:
			for i, v := range s {
				d[i] = v != 0
			}
		default:
			tmp := make([]float32, len(d))
			toFloat32(tmp, src)
			for i, v := range tmp {
				d[i] = v != 0
			}
		}
	case []bfloat16.BFloat16:
		if s, ok := src.([]bfloat16.BFloat16); ok {
			copy(d, s)
			return
		}
		tmp := asFloat32(src, len(d))
		for i, v := range tmp {
			d[i] = bfloat16.FromFloat32(v)
		}
	case []float16.Float16:
		if s, ok := src.([]float16.Float16); ok {
			copy(d, s)
			return
		}
		tmp := asFloat32(src, len(d))
		for i, v := range tmp {
			d[i] = float16.Fromfloat32(v)
		}
	}
}

// asFloat32 returns src as float32 values (src itself when it is float32).
func asFloat32(src any, n int) []float32 {
	if s, ok := src.([]float32); ok {
		return s
	}
	tmp := make([]float32, n)
	if s, ok := src.([]bool); ok {
		for i, v := range s {
			tmp[i] = b2f(v)
		}
		return tmp
	}
	toFloat32(tmp, src)
	return tmp
}

func b2f(v bool) float32 {
	if v {
		return 1
	}
	return 0
}

// sliceInfo is the element type and length of a slice.
type sliceInfo struct {
	elem reflect.Type
	n    int
}

// reflectSlice describes flat, or returns nil when it is not a slice.
func reflectSlice(flat any) *sliceInfo {
	v := reflect.ValueOf(flat)
	if v.Kind() != reflect.Slice {
		return nil
	}
	return &sliceInfo{v.Type().Elem(), v.Len()}
}

// sameStorage reports whether two non-empty flat slices start at the same
// address.
func sameStorage(a, b any) bool {
	return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
}

// subFlat returns values [off, off+n) of flat, sharing its storage.
func subFlat(flat any, off, n int) any {
	switch f := flat.(type) {
	case []float32:
		return f[off : off+n : off+n]
	case []int32:
		return f[off : off+n : off+n]
	case []bool:
		return f[off : off+n : off+n]
	case []bfloat16.BFloat16:
		return f[off : off+n : off+n]
	case []float16.Float16:
		return f[off : off+n : off+n]
	}
	panic(fmt.Sprintf("cpubackend: subFlat of %T (dtypes are checked at build time)", flat))
}
