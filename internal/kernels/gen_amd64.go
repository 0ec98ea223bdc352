//go:build ignore

// gen_amd64 writes kernels_amd64.s: the AVX2 and AVX-512 kernels, one text per (ISA, weight
// dtype, tile shape). Run with `go generate ./internal/kernels`.
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"strings"
)

// isa describes one instruction set: vector width in float32 lanes, register prefix, the number
// of x rows in the large tile, and how accumulators are zeroed and reduced.
type isa struct {
	name  string // suffix of the Go function names
	vw    int    // float32 lanes per vector
	log2  int    // log2(vw)
	reg   string // "Y" or "Z"
	bigR  int    // x rows of the large tile (4 weight rows wide)
	tmp   int    // scratch register for the reduction
	zero  string // instruction that zeroes a register (op reg, reg, reg)
	xorOp string // integer xor on full vectors
}

var isas = []isa{
	{name: "AVX2", vw: 8, log2: 3, reg: "Y", bigR: 3, tmp: 15, zero: "VXORPS", xorOp: "VPXOR"},
	{name: "AVX512", vw: 16, log2: 4, reg: "Z", bigR: 4, tmp: 31, zero: "VPXORD", xorOp: "VPXORD"},
}

// dtype describes how a vector of weights is loaded and widened to float32.
type dtype struct {
	name  string // F32, BF16, F16
	shift int    // log2 of the element size in bytes
}

var dtypes = []dtype{{"F32", 2}, {"BF16", 1}, {"F16", 1}}

type writer struct{ strings.Builder }

func (w *writer) p(format string, args ...any) { fmt.Fprintf(&w.Builder, format+"\n", args...) }

func r(is isa, i int) string { return fmt.Sprintf("%s%d", is.reg, i) }

// loadW loads one vector of weights at addr into register dst, widened to float32.
func loadW(w *writer, is isa, dt dtype, addr, dst string) {
	switch dt.name {
	case "F32":
		w.p("\tVMOVUPS %s, %s", addr, dst)
	case "BF16":
		w.p("\tVPMOVZXWD %s, %s", addr, dst)
		w.p("\tVPSLLD $16, %s, %s", dst, dst)
	case "F16":
		w.p("\tVCVTPH2PS %s, %s", addr, dst)
	}
}

// reduce sums the lanes of accumulator register acc into its lowest float32 lane.
func reduce(w *writer, is isa, acc int) {
	x := fmt.Sprintf("X%d", acc)
	if is.reg == "Z" {
		w.p("\tVEXTRACTF64X4 $1, Z%d, Y%d", acc, is.tmp)
		w.p("\tVADDPS Y%d, Y%d, Y%d", is.tmp, acc, acc)
		w.p("\tVEXTRACTF32X4 $1, Y%d, X%d", acc, is.tmp)
	} else {
		w.p("\tVEXTRACTF128 $1, Y%d, X%d", acc, is.tmp)
	}
	w.p("\tVADDPS X%d, %s, %s", is.tmp, x, x)
	w.p("\tVHADDPS %s, %s, %s", x, x, x)
	w.p("\tVHADDPS %s, %s, %s", x, x, x)
}

var xRow = []string{"(SI)", "(SI)(R8*1)", "(SI)(R9*1)", "(SI)(R10*1)"}
var wRow = []string{"(DI)", "(DI)(R11*1)", "(DI)(R12*1)", "(DI)(R13*1)"}

// tile writes func tile<dt>_<R>x<C><isa>(x *float32, ldx int, w *W, ldw, k int, out *float32, ldo int):
// out[i*ldo+j] = sum over t < k rounded down to the vector width of x[i*ldx+t]*w[j*ldw+t].
func tile(w *writer, is isa, dt dtype, R, C int) {
	name := fmt.Sprintf("tile%s_%dx%d%s", dt.name, R, C, is.name)
	w.p("// func %s(x *float32, ldx int, w *%s, ldw int, k int, out *float32, ldo int)", name, map[bool]string{true: "float32", false: "uint16"}[dt.name == "F32"])
	w.p("TEXT ·%s(SB), NOSPLIT, $0-56", name)
	w.p("\tMOVQ x+0(FP), SI")
	w.p("\tMOVQ ldx+8(FP), R8")
	w.p("\tSHLQ $2, R8")
	w.p("\tLEAQ (R8)(R8*1), R9")
	w.p("\tLEAQ (R8)(R8*2), R10")
	w.p("\tMOVQ w+16(FP), DI")
	w.p("\tMOVQ ldw+24(FP), R11")
	w.p("\tSHLQ $%d, R11", dt.shift)
	w.p("\tLEAQ (R11)(R11*1), R12")
	w.p("\tLEAQ (R11)(R11*2), R13")
	w.p("\tMOVQ k+32(FP), CX")
	w.p("\tSHRQ $%d, CX", is.log2)
	w.p("\tMOVQ out+40(FP), DX")
	w.p("\tMOVQ ldo+48(FP), BX")
	w.p("\tSHLQ $2, BX")
	// Register plan: accumulators 0..R*C-1 (R*C >= 4: the 1x1 kernel uses 4 for unrolling),
	// then R x registers, then the widened weight register.
	nacc := max(R*C, 4)
	xr := nacc
	wr := nacc + R
	for i := 0; i < nacc; i++ {
		w.p("\t%s %s, %s, %s", is.zero, r(is, i), r(is, i), r(is, i))
	}
	wb := is.vw << dt.shift // weight bytes per vector
	xb := is.vw * 4
	if R == 1 && C == 1 {
		// Dot: four independent accumulator chains over 4 vectors, then single vectors.
		w.p("\tMOVQ CX, AX")
		w.p("\tSHRQ $2, AX")
		w.p("\tANDQ $3, CX")
		w.p("\tTESTQ AX, AX")
		w.p("\tJZ %s_one", name)
		w.p("%s_four:", name)
		for u := 0; u < 4; u++ {
			loadW(w, is, dt, fmt.Sprintf("%d(DI)", u*wb), r(is, wr))
			w.p("\tVFMADD231PS %d(SI), %s, %s", u*xb, r(is, wr), r(is, u))
		}
		w.p("\tADDQ $%d, SI", 4*xb)
		w.p("\tADDQ $%d, DI", 4*wb)
		w.p("\tDECQ AX")
		w.p("\tJNZ %s_four", name)
		w.p("%s_one:", name)
		w.p("\tTESTQ CX, CX")
		w.p("\tJZ %s_sum", name)
		w.p("%s_oneloop:", name)
		loadW(w, is, dt, "(DI)", r(is, wr))
		w.p("\tVFMADD231PS (SI), %s, %s", r(is, wr), r(is, 0))
		w.p("\tADDQ $%d, SI", xb)
		w.p("\tADDQ $%d, DI", wb)
		w.p("\tDECQ CX")
		w.p("\tJNZ %s_oneloop", name)
		w.p("%s_sum:", name)
		w.p("\tVADDPS %s, %s, %s", r(is, 1), r(is, 0), r(is, 0))
		w.p("\tVADDPS %s, %s, %s", r(is, 3), r(is, 2), r(is, 2))
		w.p("\tVADDPS %s, %s, %s", r(is, 2), r(is, 0), r(is, 0))
		reduce(w, is, 0)
		w.p("\tVMOVSS X0, (DX)")
		w.p("\tVZEROUPPER")
		w.p("\tRET")
		w.p("")
		return
	}
	w.p("\tTESTQ CX, CX")
	w.p("\tJZ %s_reduce", name)
	w.p("%s_loop:", name)
	for i := 0; i < R; i++ {
		w.p("\tVMOVUPS %s, %s", xRow[i], r(is, xr+i))
	}
	for c := 0; c < C; c++ {
		loadW(w, is, dt, wRow[c], r(is, wr))
		for i := 0; i < R; i++ {
			w.p("\tVFMADD231PS %s, %s, %s", r(is, xr+i), r(is, wr), r(is, i*C+c))
		}
	}
	w.p("\tADDQ $%d, SI", xb)
	w.p("\tADDQ $%d, DI", wb)
	w.p("\tDECQ CX")
	w.p("\tJNZ %s_loop", name)
	w.p("%s_reduce:", name)
	w.p("\tMOVQ DX, AX")
	for i := 0; i < R; i++ {
		for c := 0; c < C; c++ {
			acc := i*C + c
			reduce(w, is, acc)
			w.p("\tVMOVSS X%d, %d(AX)", acc, 4*c)
		}
		if i+1 < R {
			w.p("\tADDQ BX, AX")
		}
	}
	w.p("\tVZEROUPPER")
	w.p("\tRET")
	w.p("")
}

// gemv writes func gemv<dt><isa>(x *float32, w *W, ldw, k int, out *float32, rows int): for
// r < rows, out[r] = sum over t < k (a multiple of the vector width) of x[t]*w[r*ldw+t], rows
// one after the other, so that the weights are read strictly in order (one x row: decode). Each
// row has one accumulator taking its vectors in order, reduced as the tiles reduce theirs: a row
// gets the same bits as from the tiles.
func gemv(w *writer, is isa, dt dtype) {
	name := fmt.Sprintf("gemv%s%s", dt.name, is.name)
	w.p("// func %s(x *float32, w *%s, ldw, k int, out *float32, rows int)", name, map[bool]string{true: "float32", false: "uint16"}[dt.name == "F32"])
	w.p("TEXT ·%s(SB), NOSPLIT, $0-48", name)
	w.p("\tMOVQ x+0(FP), SI")
	w.p("\tMOVQ w+8(FP), DI")
	w.p("\tMOVQ ldw+16(FP), R11")
	w.p("\tSHLQ $%d, R11", dt.shift)
	w.p("\tMOVQ k+24(FP), R8")
	w.p("\tSHRQ $%d, R8", is.log2)
	w.p("\tMOVQ out+32(FP), DX")
	w.p("\tMOVQ rows+40(FP), BX")
	w.p("\tTESTQ BX, BX")
	w.p("\tJZ %s_done", name)
	wb := is.vw << dt.shift
	xb := is.vw * 4
	w.p("%s_row:", name)
	w.p("\t%s %s, %s, %s", is.zero, r(is, 0), r(is, 0), r(is, 0))
	w.p("\tMOVQ SI, AX")
	w.p("\tMOVQ DI, R9")
	w.p("\tMOVQ R8, CX")
	w.p("\tTESTQ CX, CX")
	w.p("\tJZ %s_reduce", name)
	w.p("%s_loop:", name)
	loadW(w, is, dt, "(R9)", r(is, 1))
	w.p("\tVFMADD231PS (AX), %s, %s", r(is, 1), r(is, 0))
	w.p("\tADDQ $%d, AX", xb)
	w.p("\tADDQ $%d, R9", wb)
	w.p("\tDECQ CX")
	w.p("\tJNZ %s_loop", name)
	w.p("%s_reduce:", name)
	reduce(w, is, 0)
	w.p("\tVMOVSS X0, (DX)")
	w.p("\tADDQ $4, DX")
	w.p("\tADDQ R11, DI")
	w.p("\tDECQ BX")
	w.p("\tJNZ %s_row", name)
	w.p("%s_done:", name)
	w.p("\tVZEROUPPER")
	w.p("\tRET")
	w.p("")
}

// cols writes func cols<V><dt><isa>(out, a *float32, b *W, ldb, k int) (dt empty for float32 b):
// out[j] = sum over t < k of a[t]*b[t*ldb+j] for j < V vectors' worth of lanes (overwrites out),
// 16-bit b widened in registers (the same products, so the same bits as on widened float32 b).
func cols(w *writer, is isa, V int, dt dtype) {
	suffix := dt.name
	if dt.name == "F32" {
		suffix = ""
	}
	name := fmt.Sprintf("cols%d%s%s", V, suffix, is.name)
	w.p("// func %s(out *float32, a *float32, b *%s, ldb int, k int)", name, map[bool]string{true: "float32", false: "uint16"}[dt.name == "F32"])
	w.p("TEXT ·%s(SB), NOSPLIT, $0-40", name)
	w.p("\tMOVQ out+0(FP), DX")
	w.p("\tMOVQ a+8(FP), SI")
	w.p("\tMOVQ b+16(FP), DI")
	w.p("\tMOVQ ldb+24(FP), R8")
	w.p("\tSHLQ $%d, R8", dt.shift)
	w.p("\tMOVQ k+32(FP), CX")
	// Two sets of V accumulators (even and odd t) double the independent FMA chains.
	for i := 0; i < 2*V; i++ {
		w.p("\t%s %s, %s, %s", is.zero, r(is, i), r(is, i), r(is, i))
	}
	wb := is.vw << dt.shift // bytes of b per vector
	b0, b1 := r(is, 2*V), r(is, 2*V+1)
	tmp := r(is, 2*V+2)
	// fma adds the vector at off(base) of b, times bcast, to accumulator acc.
	fma := func(off int, base, bcast string, acc int) {
		if dt.name == "F32" {
			w.p("\tVFMADD231PS %d(%s), %s, %s", off, base, bcast, r(is, acc))
			return
		}
		loadW(w, is, dt, fmt.Sprintf("%d(%s)", off, base), tmp)
		w.p("\tVFMADD231PS %s, %s, %s", tmp, bcast, r(is, acc))
	}
	w.p("\tMOVQ CX, AX")
	w.p("\tSHRQ $1, AX")
	w.p("\tANDQ $1, CX")
	w.p("\tTESTQ AX, AX")
	w.p("\tJZ %s_odd", name)
	w.p("%s_pair:", name)
	w.p("\tVBROADCASTSS (SI), %s", b0)
	w.p("\tVBROADCASTSS 4(SI), %s", b1)
	w.p("\tLEAQ (DI)(R8*1), R9")
	for v := 0; v < V; v++ {
		fma(v*wb, "DI", b0, v)
		fma(v*wb, "R9", b1, V+v)
	}
	w.p("\tADDQ $8, SI")
	w.p("\tLEAQ (DI)(R8*2), DI")
	w.p("\tDECQ AX")
	w.p("\tJNZ %s_pair", name)
	w.p("%s_odd:", name)
	w.p("\tTESTQ CX, CX")
	w.p("\tJZ %s_store", name)
	w.p("\tVBROADCASTSS (SI), %s", b0)
	for v := 0; v < V; v++ {
		fma(v*wb, "DI", b0, v)
	}
	w.p("%s_store:", name)
	xb := is.vw * 4
	for v := 0; v < V; v++ {
		w.p("\tVADDPS %s, %s, %s", r(is, V+v), r(is, v), r(is, v))
		w.p("\tVMOVUPS %s, %d(DX)", r(is, v), v*xb)
	}
	w.p("\tVZEROUPPER")
	w.p("\tRET")
	w.p("")
}

// read writes func read<isa>(p *byte, n int) uint64: the xor of the 64-bit words of the first n
// bytes rounded down to 256, read with four independent vector streams.
func read(w *writer, is isa) {
	name := "read" + is.name
	const step = 256
	loads := step / (is.vw * 4)
	w.p("// func %s(p *byte, n int) uint64", name)
	w.p("TEXT ·%s(SB), NOSPLIT, $0-24", name)
	w.p("\tMOVQ p+0(FP), SI")
	w.p("\tMOVQ n+8(FP), CX")
	w.p("\tSHRQ $8, CX")
	for i := 0; i < 4; i++ {
		w.p("\t%s %s, %s, %s", is.xorOp, r(is, i), r(is, i), r(is, i))
	}
	w.p("\tTESTQ CX, CX")
	w.p("\tJZ %s_fold", name)
	w.p("%s_loop:", name)
	for i := 0; i < loads; i++ {
		w.p("\t%s %d(SI), %s, %s", is.xorOp, i*is.vw*4, r(is, i%4), r(is, i%4))
	}
	w.p("\tADDQ $%d, SI", step)
	w.p("\tDECQ CX")
	w.p("\tJNZ %s_loop", name)
	w.p("%s_fold:", name)
	w.p("\t%s %s, %s, %s", is.xorOp, r(is, 1), r(is, 0), r(is, 0))
	w.p("\t%s %s, %s, %s", is.xorOp, r(is, 3), r(is, 2), r(is, 2))
	w.p("\t%s %s, %s, %s", is.xorOp, r(is, 2), r(is, 0), r(is, 0))
	if is.reg == "Z" {
		w.p("\tVEXTRACTI64X4 $1, Z0, Y1")
		w.p("\tVPXOR Y1, Y0, Y0")
	}
	w.p("\tVEXTRACTI128 $1, Y0, X1")
	w.p("\tVPXOR X1, X0, X0")
	w.p("\tVPSHUFD $0x4e, X0, X1")
	w.p("\tVPXOR X1, X0, X0")
	w.p("\tVMOVQ X0, ret+16(FP)")
	w.p("\tVZEROUPPER")
	w.p("\tRET")
	w.p("")
}

// expConsts are the constants of the exponential kernels, each stored as 8 float32 (or int32)
// lanes; the portable exp32 (elementwise.go) uses the same values.
var expConsts = []struct {
	name  string
	value float64
	int   bool
}{
	{"lo", -104, false}, {"hi", 88.8, false}, {"log2e", 1.44269504088896341, false},
	{"c1", 0.693359375, false}, {"c2", -2.12194440e-4, false}, {"one", 1, false}, {"bias", 127, true},
	{"p0", 1.9875691500e-4, false}, {"p1", 1.3981999507e-3, false}, {"p2", 8.3334519073e-3, false},
	{"p3", 4.1665795894e-2, false}, {"p4", 1.6666665459e-1, false}, {"p5", 5.0000001201e-1, false},
}

// expConst returns the memory operand of constant name.
func expConst(name string) string {
	for i, c := range expConsts {
		if c.name == name {
			return fmt.Sprintf("expconst<>+%d(SB)", 32*i)
		}
	}
	panic("no constant " + name)
}

// expData writes the constant table.
func expData(w *writer) {
	for i, c := range expConsts {
		bits := math.Float32bits(float32(c.value))
		if c.int {
			bits = uint32(int32(c.value))
		}
		for lane := 0; lane < 8; lane++ {
			w.p("DATA expconst<>+%d(SB)/4, $0x%08x", 32*i+4*lane, bits)
		}
	}
	w.p("GLOBL expconst<>(SB), RODATA|NOPTR, $%d", 32*len(expConsts))
	w.p("")
}

// exp writes func <name>(dst, src *float32, n int) with AVX2 (both sets use it; n is a multiple
// of 8): dst[i] = e^src[i], or with logistic 1/(1+e^-src[i]). The steps (and their float32
// rounding) are exp32's: x clamped to [lo, hi] (NaN kept), n = round(x*log2e), r = x - n*c1 -
// n*c2, Cephes' expf polynomial in r, times 2^(n>>1) and 2^(n-n>>1) (two normal factors, so
// that overflow gives +Inf and underflow rounds gradually to 0). No FMA: every product and sum
// rounds as in Go.
func exp(w *writer, name string, logistic bool) {
	w.p("// func %s(dst, src *float32, n int)", name)
	w.p("TEXT ·%s(SB), NOSPLIT, $0-24", name)
	w.p("\tMOVQ dst+0(FP), DI")
	w.p("\tMOVQ src+8(FP), SI")
	w.p("\tMOVQ n+16(FP), CX")
	w.p("\tSHRQ $3, CX")
	w.p("\tJZ %s_done", name)
	for i, c := range []string{"lo", "hi", "log2e", "c1", "c2", "one", "bias"} {
		w.p("\tVMOVUPS %s, Y%d", expConst(c), 8+i)
	}
	w.p("%s_loop:", name)
	w.p("\tVMOVUPS (SI), Y0")
	if logistic {
		w.p("\tVXORPS Y1, Y1, Y1")
		w.p("\tVSUBPS Y0, Y1, Y0")
	}
	// With a NaN operand MAXPS and MINPS return their second source: x.
	w.p("\tVMAXPS Y0, Y8, Y0")
	w.p("\tVMINPS Y0, Y9, Y0")
	w.p("\tVMULPS Y10, Y0, Y1")
	w.p("\tVROUNDPS $0, Y1, Y1")
	w.p("\tVMULPS Y11, Y1, Y2")
	w.p("\tVSUBPS Y2, Y0, Y0")
	w.p("\tVMULPS Y12, Y1, Y2")
	w.p("\tVSUBPS Y2, Y0, Y0")
	w.p("\tVMULPS Y0, Y0, Y3")
	w.p("\tVMOVUPS %s, Y2", expConst("p0"))
	for _, c := range []string{"p1", "p2", "p3", "p4", "p5"} {
		w.p("\tVMULPS Y0, Y2, Y2")
		w.p("\tVADDPS %s, Y2, Y2", expConst(c))
	}
	w.p("\tVMULPS Y3, Y2, Y2")
	w.p("\tVADDPS Y0, Y2, Y2")
	w.p("\tVADDPS Y13, Y2, Y2")
	w.p("\tVCVTTPS2DQ Y1, Y1")
	w.p("\tVPSRAD $1, Y1, Y4")
	w.p("\tVPSUBD Y4, Y1, Y1")
	w.p("\tVPADDD Y14, Y4, Y4")
	w.p("\tVPADDD Y14, Y1, Y1")
	w.p("\tVPSLLD $23, Y4, Y4")
	w.p("\tVPSLLD $23, Y1, Y1")
	w.p("\tVMULPS Y4, Y2, Y2")
	w.p("\tVMULPS Y1, Y2, Y2")
	if logistic {
		w.p("\tVADDPS Y13, Y2, Y2")
		w.p("\tVDIVPS Y2, Y13, Y2")
	}
	w.p("\tVMOVUPS Y2, (DI)")
	w.p("\tADDQ $32, SI")
	w.p("\tADDQ $32, DI")
	w.p("\tDECQ CX")
	w.p("\tJNZ %s_loop", name)
	w.p("%s_done:", name)
	w.p("\tVZEROUPPER")
	w.p("\tRET")
	w.p("")
}

func main() {
	out := flag.String("o", "kernels_amd64.s", "file to write")
	flag.Parse()
	var w writer
	w.p("// Code generated by gen_amd64.go; DO NOT EDIT.")
	w.p("")
	w.p("//go:build amd64")
	w.p("")
	w.p("#include \"textflag.h\"")
	w.p("")
	for _, is := range isas {
		for _, dt := range dtypes {
			tile(&w, is, dt, 1, 1)
			tile(&w, is, dt, 1, 4)
			tile(&w, is, dt, is.bigR, 4)
			gemv(&w, is, dt)
		}
		for _, dt := range dtypes {
			cols(&w, is, 4, dt)
			cols(&w, is, 1, dt)
		}
		read(&w, is)
	}
	expData(&w)
	exp(&w, "expAVX2", false)
	exp(&w, "logisticAVX2", true)
	if err := os.WriteFile(*out, []byte(w.String()), 0o644); err != nil {
		log.Fatal(err)
	}
}
