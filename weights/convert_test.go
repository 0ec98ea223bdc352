package weights

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"unsafe"
)

func TestBF16FromFloat32RoundsToNearestEven(t *testing.T) {
	// Expected bits follow from the bfloat16 definition (top 16 bits of the
	// float32, rounded to nearest, ties to even), as torch computes them.
	tests := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3F80},
		{-2, 0xC000},
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{math.Float32frombits(0x3F808000), 0x3F80}, // exactly halfway, 0x3F80 is even
		{math.Float32frombits(0x3F818000), 0x3F82}, // exactly halfway, 0x3F82 is even
		{math.Float32frombits(0x3F808001), 0x3F81}, // just above halfway
		{math.Float32frombits(0x3F807FFF), 0x3F80}, // just below halfway
		{3.14159265, 0x4049},                       // torch: 3.140625
		{float32(math.Inf(1)), 0x7F80},
		{math.MaxFloat32, 0x7F80},                  // rounds up to infinity, as in torch
		{math.Float32frombits(0x00000001), 0x0000}, // tiny subnormal
	}
	for _, tc := range tests {
		if got := BF16FromFloat32(tc.in); got != tc.want {
			t.Errorf("BF16FromFloat32(%v = %#08x) = %#04x, want %#04x", tc.in, math.Float32bits(tc.in), got, tc.want)
		}
	}
	if got := BF16FromFloat32(float32(math.NaN())); got&0x7F80 != 0x7F80 || got&0x007F == 0 {
		t.Errorf("NaN -> %#04x, not a NaN", got)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	// Values exactly representable in every format survive a round trip.
	vals := []float32{0, 1, -1, 0.5, -0.375, 2048, 1.0 / 1024}
	for _, dt := range []DType{F32, BF16, F16} {
		b, err := EncodeFloat32(dt, vals)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != len(vals)*dt.Size() {
			t.Fatalf("%s: %d bytes", dt, len(b))
		}
		got, err := ToFloat32(dt, b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, vals) {
			t.Errorf("%s round trip: %v, want %v", dt, got, vals)
		}
	}
	// F16 bit patterns from the IEEE 754 binary16 definition.
	f16 := map[uint16]float32{0x3C00: 1, 0xC000: -2, 0x7BFF: 65504, 0x0001: 5.960464477539063e-08, 0x3555: 0.333251953125}
	for bits, want := range f16 {
		got, _ := ToFloat32(F16, []byte{byte(bits), byte(bits >> 8)})
		if got[0] != want {
			t.Errorf("F16 %#04x = %v, want %v", bits, got[0], want)
		}
	}
}

func TestToFloat32AlignmentAndErrors(t *testing.T) {
	buf := make([]byte, 4*5)
	binary.LittleEndian.PutUint32(buf[4:], math.Float32bits(1.5))
	binary.LittleEndian.PutUint32(buf[8:], math.Float32bits(-3))
	aligned, err := ToFloat32(F32, buf[4:12])
	if err != nil || !slices.Equal(aligned, []float32{1.5, -3}) {
		t.Fatalf("aligned: %v %v", aligned, err)
	}
	if unsafe.Pointer(&aligned[0]) != unsafe.Pointer(&buf[4]) {
		t.Error("aligned F32 data was copied, want a zero-copy view")
	}
	// Unaligned: shift by one byte.
	shifted := make([]byte, 9)
	copy(shifted[1:], buf[4:12])
	un, err := ToFloat32(F32, shifted[1:])
	if err != nil || !slices.Equal(un, []float32{1.5, -3}) {
		t.Errorf("unaligned: %v %v", un, err)
	}
	dst := make([]float32, 2)
	if err := ToFloat32Into(dst, F32, buf[4:12]); err != nil || !slices.Equal(dst, []float32{1.5, -3}) {
		t.Errorf("ToFloat32Into: %v %v", dst, err)
	}
	if err := ToFloat32Into(dst, BF16, buf[4:12]); err == nil {
		t.Error("ToFloat32Into accepted 8 bytes of BF16 for 2 elements")
	}
	if _, err := ToFloat32(F32, buf[:3]); err == nil {
		t.Error("3 bytes of F32 accepted")
	}
	if _, err := ToFloat32(I32, buf[:4]); err == nil {
		t.Error("I32 converted to float32")
	}
	if _, err := EncodeFloat32(U8, []float32{1}); err == nil {
		t.Error("encoding as U8 accepted")
	}
}
