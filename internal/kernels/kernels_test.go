package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/x448/float16"
)

var (
	testKs = []int{1, 3, 7, 15, 17, 63, 65, 257, 1000}
	// testMN covers one row (decode), row counts around the tile heights, more rows than one
	// cache block (mBlock) and weight-row counts with 1..3 rows left over from strips of four.
	testMN = [][2]int{{1, 1}, {1, 5}, {3, 7}, {5, 9}, {67, 13}}
)

// forEachLevel runs f once per kernel set this machine can run, restoring the start-up set.
func forEachLevel(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, ks := range levels() {
		t.Run(ks.name, func(t *testing.T) {
			if ks == genericSet {
				SetGeneric(true) // the public switch
			} else {
				active.Store(ks)
			}
			defer SetGeneric(false)
			f(t)
		})
	}
}

func randF32(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = r.Float32()*2 - 1
	}
	return s
}

// f16Value decodes IEEE 754 binary16 bits from the definition (independent of the float16
// package the generic kernels use).
func f16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	f := float64(h & 0x3ff)
	switch e {
	case 0:
		return sign * f / 1024 * math.Pow(2, -14)
	case 31:
		panic("test weights are finite")
	default:
		return sign * (1 + f/1024) * math.Pow(2, float64(e-15))
	}
}

// bf16Value decodes bfloat16 bits: the top 16 bits of a float32.
func bf16Value(h uint16) float64 { return float64(math.Float32frombits(uint32(h) << 16)) }

// weights returns n*k random weights in the dtype, with their exact values as float64. The
// half-precision sets include subnormals and signed zeros.
func weights(r *rand.Rand, dtype string, n, k int) (f32 []float32, bits []uint16, exact []float64) {
	exact = make([]float64, n*k)
	switch dtype {
	case "f32":
		f32 = randF32(r, n*k)
		for i, v := range f32 {
			exact[i] = float64(v)
		}
		return f32, nil, exact
	case "bf16":
		bits = make([]uint16, n*k)
		for i := range bits {
			bits[i] = uint16(math.Float32bits(r.Float32()*2-1) >> 16)
		}
		special(bits, []uint16{0x0001, 0x8000, 0x807f})
		for i, h := range bits {
			exact[i] = bf16Value(h)
		}
	case "f16":
		bits = make([]uint16, n*k)
		for i := range bits {
			bits[i] = float16.Fromfloat32(r.Float32()*2 - 1).Bits()
		}
		special(bits, []uint16{0x0001, 0x8000, 0x83ff})
		for i, h := range bits {
			exact[i] = f16Value(h)
		}
	}
	return nil, bits, exact
}

// special plants the given bit patterns at the start of bits (as far as it is long).
func special(bits, vals []uint16) {
	copy(bits, vals)
}

// checkClose fails unless got is within 1e-5 of want relative to scale, the sum of the absolute
// products (the magnitude float32 rounding errors are proportional to).
func checkClose(t *testing.T, what string, got float32, want, scale float64) {
	t.Helper()
	if math.IsNaN(float64(got)) || math.Abs(float64(got)-want) > 1e-5*scale+1e-30 {
		t.Fatalf("%s = %v, want %v (scale %v)", what, got, want, scale)
	}
}

// refNT is the float64 reference of out[i][j] = sum_t x[i*k+t]*w[j*k+t], with the scale.
func refNT(x []float32, w []float64, i, j, k int) (sum, scale float64) {
	for t := range k {
		p := float64(x[i*k+t]) * w[j*k+t]
		sum += p
		scale += math.Abs(p)
	}
	return sum, scale
}

func TestLinear(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	forEachLevel(t, func(t *testing.T) {
		for _, dtype := range []string{"f32", "bf16", "f16"} {
			for _, k := range testKs {
				for _, mn := range testMN {
					m, n := mn[0], mn[1]
					r := rand.New(rand.NewPCG(uint64(k), uint64(m*100+n)))
					x := randF32(r, m*k)
					wf, wb, exact := weights(r, dtype, n, k)
					out := make([]float32, m*n+1)
					out[m*n] = 42 // past the end: must stay untouched
					switch dtype {
					case "f32":
						LinearF32(p, out[:m*n], x, m, k, wf, n)
					case "bf16":
						LinearBF16(p, out[:m*n], x, m, k, wb, n)
					case "f16":
						LinearF16(p, out[:m*n], x, m, k, wb, n)
					}
					for i := range m {
						for j := range n {
							want, scale := refNT(x, exact, i, j, k)
							checkClose(t, fmt.Sprintf("%s k=%d m=%d n=%d out[%d][%d]", dtype, k, m, n, i, j), out[i*n+j], want, scale)
						}
					}
					if out[m*n] != 42 {
						t.Fatalf("%s k=%d m=%d n=%d wrote past the output", dtype, k, m, n)
					}
				}
			}
		}
	})
}

// TestLinearOneRowSameBits checks that a product of one x row (decode, which reads each weight
// row in turn) gives every output the same bits as the same row inside a product of five rows
// (the tiles): a sequence's numbers do not depend on the batch it is decoded in.
func TestLinearOneRowSameBits(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	const m = 5
	forEachLevel(t, func(t *testing.T) {
		for _, dtype := range []string{"f32", "bf16", "f16"} {
			for _, k := range testKs {
				for _, n := range []int{1, 4, 13, 67} {
					r := rand.New(rand.NewPCG(uint64(k), uint64(n)))
					x := randF32(r, m*k)
					wf, wb, _ := weights(r, dtype, n, k)
					linear := func(out, x []float32, m int) {
						switch dtype {
						case "f32":
							LinearF32(p, out, x, m, k, wf, n)
						case "bf16":
							LinearBF16(p, out, x, m, k, wb, n)
						case "f16":
							LinearF16(p, out, x, m, k, wb, n)
						}
					}
					all := make([]float32, m*n)
					linear(all, x, m)
					one := make([]float32, n)
					for i := range m {
						linear(one, x[i*k:(i+1)*k], 1)
						for j := range n {
							if math.Float32bits(one[j]) != math.Float32bits(all[i*n+j]) {
								t.Fatalf("%s k=%d n=%d: row %d alone gives out[%d] = %v, among %d rows %v", dtype, k, n, i, j, one[j], m, all[i*n+j])
							}
						}
					}
				}
			}
		}
	})
}

// TestLinearConcurrentCallers runs products from several goroutines on one pool at once.
func TestLinearConcurrentCallers(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	const callers, m, k, n = 4, 5, 257, 67
	var wg sync.WaitGroup
	errs := make(chan string, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 3))
			x := randF32(r, m*k)
			wf, _, exact := weights(r, "f32", n, k)
			out := make([]float32, m*n)
			for range 20 {
				LinearF32(p, out, x, m, k, wf, n)
				for i := range m {
					for j := range n {
						want, scale := refNT(x, exact, i, j, k)
						if math.Abs(float64(out[i*n+j])-want) > 1e-5*scale {
							errs <- fmt.Sprintf("caller %d: out[%d][%d] = %v, want %v", c, i, j, out[i*n+j], want)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestBatchMatMulTransB(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	const batch = 3
	forEachLevel(t, func(t *testing.T) {
		for _, k := range testKs {
			for _, mn := range testMN {
				m, n := mn[0], mn[1]
				r := rand.New(rand.NewPCG(uint64(k), uint64(m*100+n)))
				a := randF32(r, batch*m*k)
				bT := randF32(r, batch*n*k)
				out := make([]float32, batch*m*n)
				BatchMatMulTransB(p, out, a, bT, batch, m, n, k)
				for b := range batch {
					bw := make([]float64, n*k)
					for i, v := range bT[b*n*k : (b+1)*n*k] {
						bw[i] = float64(v)
					}
					for i := range m {
						for j := range n {
							want, scale := refNT(a[b*m*k:], bw, i, j, k)
							checkClose(t, fmt.Sprintf("k=%d m=%d n=%d out[%d][%d][%d]", k, m, n, b, i, j), out[(b*m+i)*n+j], want, scale)
						}
					}
				}
			}
		}
	})
}

func TestBatchMatMul(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	const batch = 3
	forEachLevel(t, func(t *testing.T) {
		for _, k := range testKs {
			// n covers a single column, widths around the vector widths (8, 16) and their
			// multiples by four, and more than one column block (colsPerTask).
			for _, n := range []int{1, 7, 17, 33, 63, 65, 300} {
				for _, m := range []int{1, 5} {
					r := rand.New(rand.NewPCG(uint64(k), uint64(m*1000+n)))
					a := randF32(r, batch*m*k)
					bm := randF32(r, batch*k*n)
					out := make([]float32, batch*m*n)
					for i := range out {
						out[i] = float32(math.NaN()) // must be overwritten, not accumulated into
					}
					BatchMatMul(p, out, a, bm, batch, m, n, k)
					for b := range batch {
						for i := range m {
							for j := range n {
								var want, scale float64
								for tt := range k {
									v := float64(a[(b*m+i)*k+tt]) * float64(bm[(b*k+tt)*n+j])
									want += v
									scale += math.Abs(v)
								}
								checkClose(t, fmt.Sprintf("k=%d m=%d n=%d out[%d][%d][%d]", k, m, n, b, i, j), out[(b*m+i)*n+j], want, scale)
							}
						}
					}
				}
			}
		}
	})
}

func TestDot(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		for _, k := range append([]int{0}, testKs...) {
			r := rand.New(rand.NewPCG(uint64(k), 7))
			a, b := randF32(r, k), randF32(r, k)
			var want, scale float64
			for i := range k {
				want += float64(a[i]) * float64(b[i])
				scale += math.Abs(float64(a[i]) * float64(b[i]))
			}
			checkClose(t, fmt.Sprintf("Dot k=%d", k), Dot(a, b), want, scale)
		}
	})
}

func TestZeroK(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	out := []float32{1, 2, 3, 4, 5, 6}
	LinearF32(p, out, nil, 2, 0, nil, 3)
	for i, v := range out {
		if v != 0 {
			t.Fatalf("k=0: out[%d] = %v, want 0 (an empty sum)", i, v)
		}
	}
}

func TestShortSlicePanicsWithName(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "LinearBF16: w has 5 elements, shape needs 6") {
			t.Fatalf("recovered %v, want a message naming the kernel, the slice and the sizes", r)
		}
	}()
	LinearBF16(p, make([]float32, 2), make([]float32, 3), 1, 3, make([]uint16, 5), 2)
}

func TestSetGeneric(t *testing.T) {
	defer SetGeneric(false)
	SetGeneric(true)
	if got := Features(); got != "generic" {
		t.Fatalf("after SetGeneric(true): Features() = %q, want generic", got)
	}
	SetGeneric(false)
	if got, want := Features(), levels()[0].name; got != want {
		t.Fatalf("after SetGeneric(false): Features() = %q, want the widest level %q", got, want)
	}
}

func TestReadBandwidth(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	buf := make([]byte, 1<<20+77)
	forEachLevel(t, func(t *testing.T) {
		if bw := ReadBandwidth(p, buf); !(bw > 0) || math.IsInf(bw, 0) {
			t.Fatalf("ReadBandwidth = %v bytes/s, want a positive finite rate", bw)
		}
	})
	if ReadBandwidth(p, nil) != 0 {
		t.Fatal("ReadBandwidth of an empty buffer is not 0")
	}
}

// TestReadKernels checks the bandwidth readers' xor against a plain loop (the value is what
// keeps the reads observable, and a wrong stride would change it).
func TestReadKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096+255)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for _, n := range []int{0, 255, 256, 1000, 4096 + 255} {
		var want uint64
		for i := 0; i+8 <= n&^255; i += 8 {
			var v uint64
			for b := range 8 {
				v |= uint64(buf[i+b]) << (8 * b)
			}
			want ^= v
		}
		for _, ks := range levels() {
			if got := ks.read(&buf[0], n); got != want {
				t.Fatalf("%s read(n=%d) = %#x, want %#x", ks.name, n, got, want)
			}
		}
	}
}

// TestBatchedSixteenBitSameBits checks the batched products over a 16-bit operand
// (BatchMatMulTransBBF16/F16, BatchMatMulBF16/F16: a bfloat16 or float16 KV cache) against
// the float32 products on the widened values: the same bits, on every kernel level, for odd
// sizes, several column blocks, and sizes below and above the inline threshold. (The portable
// 16-bit kernels widen chunk16 weights at a time and add the chunks' sums, so past chunk16 their
// products round differently from the float32 ones; an attention head is at most 256 wide.)
func TestBatchedSixteenBitSameBits(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	const batch = 3
	forEachLevel(t, func(t *testing.T) {
		for _, dtype := range []string{"bf16", "f16"} {
			for _, k := range []int{1, 17, 64, 300} {
				for _, mn := range [][2]int{{1, 1}, {3, 33}, {5, 300}, {3, 2048}} {
					m, n := mn[0], mn[1]
					if Features() == "generic" && k > chunk16 {
						continue
					}
					r := rand.New(rand.NewPCG(uint64(k), uint64(m*10000+n)))
					a := randF32(r, batch*m*k)
					_, bits, exact := weights(r, dtype, batch, n*k)
					wide := make([]float32, len(exact))
					for i, v := range exact {
						wide[i] = float32(v)
					}
					for _, pr := range []struct {
						name string
						f32  func(p *Pool, out, a, b []float32, batch, m, n, k int)
						w16  func(p *Pool, out, a []float32, b []uint16, batch, m, n, k int)
					}{
						{"TransB", BatchMatMulTransB, map[string]func(*Pool, []float32, []float32, []uint16, int, int, int, int){"bf16": BatchMatMulTransBBF16, "f16": BatchMatMulTransBF16}[dtype]},
						{"NN", BatchMatMul, map[string]func(*Pool, []float32, []float32, []uint16, int, int, int, int){"bf16": BatchMatMulBF16, "f16": BatchMatMulF16}[dtype]},
					} {
						want, got := make([]float32, batch*m*n), make([]float32, batch*m*n)
						pr.f32(p, want, a, wide, batch, m, n, k)
						pr.w16(p, got, a, bits, batch, m, n, k)
						if i := firstBitDiff(got, want); i >= 0 {
							t.Fatalf("%s %s k=%d m=%d n=%d: out[%d] = %v, float32 product %v", dtype, pr.name, k, m, n, i, got[i], want[i])
						}
					}
				}
			}
		}
	})
}

// firstBitDiff returns the first index where a and b hold different float32 bits, or -1.
func firstBitDiff(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}
