package weights

import (
	"encoding/binary"
	"fmt"
	"math"
)

// FirstNonFinite returns the index of the first NaN or infinite value of x,
// or -1 when every value is finite.
func FirstNonFinite(x []float32) int {
	for i, v := range x {
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			return i
		}
	}
	return -1
}

// NonFiniteValue locates a NaN or infinite value in a checkpoint.
type NonFiniteValue struct {
	Tensor string // stored tensor name
	Index  int64  // flat (row-major) index of the first non-finite value
	Shape  []int
	Value  float64 // the value (NaN, +Inf or -Inf)
}

// String names the tensor, the index and the value.
func (v *NonFiniteValue) String() string {
	return fmt.Sprintf("tensor %q %v: value %v at flat index %d", v.Tensor, v.Shape, v.Value, v.Index)
}

// FirstNonFinite scans every F32, BF16 and F16 tensor in stored-name order
// and returns the first non-finite value, or nil when all are finite. It
// reads every byte of the weights once, in their stored dtype (no copies).
func (c *Checkpoint) FirstNonFinite() (*NonFiniteValue, error) {
	for _, name := range c.Names() {
		f := c.where[name]
		b, info, err := f.Bytes(name)
		if err != nil {
			return nil, err
		}
		if i, v := FirstNonFiniteRaw(info.DType, b); i >= 0 {
			return &NonFiniteValue{Tensor: name, Index: i, Shape: info.Shape, Value: v}, nil
		}
	}
	return nil, nil
}

// FirstNonFiniteRaw returns the flat index and value of the first non-finite
// element of little-endian data of dtype d (-1 when none, or d is not a
// floating-point type this package converts).
func FirstNonFiniteRaw(d DType, b []byte) (int64, float64) {
	switch d {
	case F32:
		for i := 0; i+4 <= len(b); i += 4 {
			if bits := binary.LittleEndian.Uint32(b[i:]); bits&0x7f800000 == 0x7f800000 {
				return int64(i / 4), float64(math.Float32frombits(bits))
			}
		}
	case BF16:
		for i := 0; i+2 <= len(b); i += 2 {
			if bits := binary.LittleEndian.Uint16(b[i:]); bits&0x7f80 == 0x7f80 {
				return int64(i / 2), float64(math.Float32frombits(uint32(bits) << 16))
			}
		}
	case F16:
		for i := 0; i+2 <= len(b); i += 2 {
			if bits := binary.LittleEndian.Uint16(b[i:]); bits&0x7c00 == 0x7c00 {
				v := math.Inf(1)
				if bits&0x3ff != 0 {
					v = math.NaN()
				} else if bits&0x8000 != 0 {
					v = math.Inf(-1)
				}
				return int64(i / 2), v
			}
		}
	}
	return -1, 0
}
