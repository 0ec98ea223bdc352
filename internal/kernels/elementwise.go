package kernels

import "math"

// The constants of exp32, as in the assembly (gen_amd64.go's expConsts): Cephes' expf.
const (
	expLo    float32 = -104 // e^x rounds to 0 below (clamping keeps 2^n's factors normal)
	expHi    float32 = 88.8 // and to +Inf above
	expLog2e float32 = 1.44269504088896341
	expC1    float32 = 0.693359375 // ln 2 = c1 - c2, c1 exact in 9 bits
	expC2    float32 = -2.12194440e-4
	expP0    float32 = 1.9875691500e-4
	expP1    float32 = 1.3981999507e-3
	expP2    float32 = 8.3334519073e-3
	expP3    float32 = 4.1665795894e-2
	expP4    float32 = 1.6666665459e-1
	expP5    float32 = 5.0000001201e-1
)

// Exp sets dst[i] = e^src[i] for i < len(dst) (src must be as long; dst may be src), within 3
// ulp of the exact value: +Inf above 88.72, gradually to 0 below -87.34, NaN for NaN. The vector
// kernels and the portable path give the same bits.
func Exp(dst, src []float32) {
	src = src[:len(dst)]
	active.Load().exp(dst, src)
}

// Logistic sets dst[i] = 1/(1+e^-src[i]) for i < len(dst) (src must be as long; dst may be
// src), with Exp's exponential (so 0 below -88.72), NaN for NaN.
func Logistic(dst, src []float32) {
	src = src[:len(dst)]
	active.Load().logistic(dst, src)
}

// exp32 is the exponential of the kernels (see gen_amd64.go's exp): every step rounds to float32
// exactly as the vector code does, so that both give the same bits.
func exp32(x float32) float32 {
	if x < expLo {
		x = expLo
	}
	if x > expHi {
		x = expHi
	}
	fx := float32(math.RoundToEven(float64(float32(x * expLog2e))))
	r := x - float32(fx*expC1)
	r = r - float32(fx*expC2)
	z := float32(r * r)
	y := expP0
	y = float32(y*r) + expP1
	y = float32(y*r) + expP2
	y = float32(y*r) + expP3
	y = float32(y*r) + expP4
	y = float32(y*r) + expP5
	y = float32(y*z) + r
	y = y + 1
	n := int32(fx)
	a := n >> 1
	y = float32(y * math.Float32frombits(uint32(a+127)<<23))
	return float32(y * math.Float32frombits(uint32(n-a+127)<<23))
}

// logistic32 is 1/(1+exp32(-x)).
func logistic32(x float32) float32 {
	return 1 / (1 + exp32(0-x))
}

// genericExp and genericLogistic are the portable element-wise kernels.
func genericExp(dst, src []float32) {
	for i, v := range src {
		dst[i] = exp32(v)
	}
}

func genericLogistic(dst, src []float32) {
	for i, v := range src {
		dst[i] = logistic32(v)
	}
}
