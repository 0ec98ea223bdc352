package weights

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/x448/float16"
)

// hostLittleEndian reports whether float32 slices can alias little-endian bytes.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// ToFloat32 converts raw little-endian tensor bytes of type dt to float32.
// Aligned F32 data is returned as a view of b (no copy); BF16, F16 and
// unaligned F32 data are converted into a new slice.
func ToFloat32(dt DType, b []byte) ([]float32, error) {
	size := dt.Size()
	if !dt.IsFloat() {
		return nil, fmt.Errorf("dtype %s cannot be converted to float32 (expected F32, BF16 or F16)", dt)
	}
	if len(b)%size != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of %s elements", len(b), dt)
	}
	n := len(b) / size
	if n == 0 {
		return []float32{}, nil
	}
	if dt == F32 && hostLittleEndian && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n), nil
	}
	out := make([]float32, n)
	if err := ToFloat32Into(out, dt, b); err != nil {
		return nil, err
	}
	return out, nil
}

// ToFloat32Into converts raw little-endian tensor bytes of type dt (F32,
// BF16 or F16) into dst, which must hold exactly the number of elements in b.
func ToFloat32Into(dst []float32, dt DType, b []byte) error {
	if !dt.IsFloat() {
		return fmt.Errorf("dtype %s cannot be converted to float32 (expected F32, BF16 or F16)", dt)
	}
	if len(b) != len(dst)*dt.Size() {
		return fmt.Errorf("%d bytes of %s for %d destination elements, expected %d bytes", len(b), dt, len(dst), len(dst)*dt.Size())
	}
	switch dt {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	default:
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(b[2*i:])).Float32()
		}
	}
	return nil
}

// BF16FromFloat32 rounds f to bfloat16 bits with round-to-nearest-even, as
// torch does; NaN stays a (quiet) NaN.
func BF16FromFloat32(f float32) uint16 {
	bits := math.Float32bits(f)
	if f != f {
		return uint16(bits>>16) | 0x0040
	}
	rounding := uint32(0x7fff) + (bits>>16)&1
	return uint16((bits + rounding) >> 16)
}

// EncodeFloat32 encodes values as little-endian bytes of type dt (F32, BF16
// with round-to-nearest-even, or F16 with round-to-nearest-even).
func EncodeFloat32(dt DType, values []float32) ([]byte, error) {
	if !dt.IsFloat() {
		return nil, fmt.Errorf("weights: cannot encode float32 values as %s (expected F32, BF16 or F16)", dt)
	}
	out := make([]byte, len(values)*dt.Size())
	encodeInto(dt, values, out)
	return out, nil
}

// encodeInto writes values into out, which has exactly len(values)*dt.Size() bytes.
func encodeInto(dt DType, values []float32, out []byte) {
	switch dt {
	case F32:
		for i, v := range values {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case BF16:
		for i, v := range values {
			binary.LittleEndian.PutUint16(out[2*i:], BF16FromFloat32(v))
		}
	case F16:
		for i, v := range values {
			binary.LittleEndian.PutUint16(out[2*i:], float16.Fromfloat32(v).Bits())
		}
	}
}
