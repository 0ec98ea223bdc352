package kernels

import (
	"math"
	"testing"
)

// sweep returns float32 values from lo to hi: every 9973rd bit pattern of each sign (a dense,
// irregular sample of every binade), the ends and the special values.
func sweep(lo, hi float32) []float32 {
	var xs []float32
	for _, sign := range []uint32{0, 1 << 31} {
		for b := uint32(0); b < 0x7f800000; b += 9973 {
			if x := math.Float32frombits(sign | b); x >= lo && x <= hi {
				xs = append(xs, x)
			}
		}
	}
	inf := float32(math.Inf(1))
	return append(xs, lo, hi, 0, inf, -inf, float32(math.NaN()))
}

// checkAgainst compares f over xs with the float64 function want: NaN for NaN, +Inf where the
// exact value overflows float32, and otherwise within ulps units in the last place of the exact
// value rounded to float32 (denormal results: of the smallest denormal).
func checkAgainst(t *testing.T, name string, f func(dst, src []float32), want func(float64) float64, xs []float32, ulps float64) {
	t.Helper()
	got := make([]float32, len(xs))
	f(got, xs)
	bad := 0
	for i, x := range xs {
		w := want(float64(x))
		g := got[i]
		switch {
		case math.IsNaN(w):
			if !math.IsNaN(float64(g)) {
				t.Errorf("%s(%g) = %g, want NaN", name, x, g)
				bad++
			}
		case w > math.MaxFloat32*(1+1e-7):
			if !math.IsInf(float64(g), 1) {
				t.Errorf("%s(%g) = %g, want +Inf (exact %g)", name, x, g, w)
				bad++
			}
		default:
			ulp := math.Max(float64(math.Nextafter32(float32(w), float32(math.Inf(1)))-float32(w)), math.SmallestNonzeroFloat32)
			if d := math.Abs(float64(g) - w); !(d <= ulps*ulp) {
				t.Errorf("%s(%g) = %g, exact %g: off by %.2f ulp", name, x, g, w, d/ulp)
				bad++
			}
		}
		if bad > 10 {
			t.Fatal("too many errors")
		}
	}
}

// TestExpAccuracy checks Exp and Logistic against float64 math on every kernel level over a dense
// sweep of float32 inputs, including the overflow and underflow ends, infinities and NaN.
func TestExpAccuracy(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		// Cephes' expf polynomial is within about 2 ulp; the logistic adds the rounding of
		// 1+e and of the division.
		checkAgainst(t, "Exp", Exp, math.Exp, sweep(-110, 100), 3)
		// Where e^-x overflows float32 (the logistic is below 1/MaxFloat32 = 2.9e-39) it is 0.
		logistic := func(x float64) float64 {
			if e := math.Exp(-x); e <= math.MaxFloat32 || math.IsNaN(e) {
				return 1 / (1 + e)
			}
			return 0
		}
		checkAgainst(t, "Logistic", Logistic, logistic, sweep(-110, 100), 4)
	})
}

// TestExpSameBitsEveryLevel checks that the vector kernels and the portable path give the same
// bits for every length (whole vectors and tails), so a value does not depend on its position.
func TestExpSameBitsEveryLevel(t *testing.T) {
	xs := sweep(-120, 120)
	want := map[string][]float32{"exp": make([]float32, len(xs)), "logistic": make([]float32, len(xs))}
	genericExp(want["exp"], xs)
	genericLogistic(want["logistic"], xs)
	forEachLevel(t, func(t *testing.T) {
		for _, n := range []int{0, 1, 7, 8, 9, 31, len(xs)} {
			for name, f := range map[string]func(dst, src []float32){"exp": Exp, "logistic": Logistic} {
				got := make([]float32, n)
				f(got, xs[:n])
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[name][i]) && !(got[i] != got[i] && want[name][i] != want[name][i]) {
						t.Fatalf("%s of %d values: [%d] (%g) = %g, portable %g", name, n, i, xs[i], got[i], want[name][i])
					}
				}
			}
		}
		// In place.
		in := append([]float32(nil), xs...)
		Exp(in, in)
		for i := range in {
			if math.Float32bits(in[i]) != math.Float32bits(want["exp"][i]) && !(in[i] != in[i]) {
				t.Fatalf("in place: [%d] (%g) = %g, want %g", i, xs[i], in[i], want["exp"][i])
			}
		}
	})
}
