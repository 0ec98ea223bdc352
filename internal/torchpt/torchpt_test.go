package torchpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// described is a tensor as make_fixtures.py reports it from torch.
type described struct {
	DType  string    `json:"dtype"`
	Shape  []int     `json:"shape"`
	Offset int       `json:"storage_offset"`
	Stride []int     `json:"stride"`
	Contig bool      `json:"contiguous"`
	Values []float64 `json:"values"`
}

type expectedFile struct {
	Tensors struct {
		Tensors map[string]described `json:"tensors"`
		Meta    map[string]any       `json:"meta"`
	} `json:"tensors.pt"`
	Raw described `json:"raw_tensor.pt"`
}

func readExpected(t *testing.T) expectedFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expectedFile
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// checkTensor compares a tensor with torch's report, bit for bit (every
// dtype converts to float32 and float64 exactly).
func checkTensor(t *testing.T, name string, v any, want described) {
	t.Helper()
	got, ok := v.(*Tensor)
	if !ok {
		t.Fatalf("%s: got %T, want a tensor", name, v)
	}
	if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) {
		t.Fatalf("%s: dtype %s shape %v, torch says %s %v", name, got.DType, got.Shape, want.DType, want.Shape)
	}
	if len(got.Data) != len(want.Values) {
		t.Fatalf("%s: %d values, torch says %d", name, len(got.Data), len(want.Values))
	}
	for i, x := range want.Values {
		if float64(got.Data[i]) != x {
			t.Fatalf("%s: value %d is %v, torch says %v", name, i, got.Data[i], x)
		}
	}
}

func TestFixturesMatchTorch(t *testing.T) {
	want := readExpected(t)
	v, err := Load(filepath.Join("testdata", "tensors.pt"))
	if err != nil {
		t.Fatal(err)
	}
	top, ok := v.(*Dict)
	if !ok {
		t.Fatalf("top level is %T, want a dict", v)
	}
	tv, _ := top.Get("tensors")
	tensors, ok := tv.(*Dict)
	if !ok {
		t.Fatalf("tensors is %T, want an OrderedDict", tv)
	}
	if got := tensors.Keys(); !slices.Equal(got, []string{"f32", "bf16", "f16", "view", "shared", "base", "scalar"}) {
		t.Errorf("OrderedDict keys %v, not in the saved order", got)
	}
	var sawView bool
	for name, d := range want.Tensors.Tensors {
		x, ok := tensors.Get(name)
		if !ok {
			t.Fatalf("tensor %q missing", name)
		}
		checkTensor(t, name, x, d)
		sawView = sawView || (!d.Contig && d.Offset > 0)
	}
	if !sawView {
		t.Error("the fixtures hold no non-contiguous view with a storage offset: regenerate them")
	}
	mv, _ := top.Get("meta")
	meta := mv.(*Dict)
	for k, w := range want.Tensors.Meta {
		g, _ := meta.Get(k)
		switch w := w.(type) {
		case string:
			if g != w {
				t.Errorf("meta %s = %v, want %q", k, g, w)
			}
		case float64:
			var f float64
			switch g := g.(type) {
			case int64:
				f = float64(g)
			case float64:
				f = g
			}
			if f != w {
				t.Errorf("meta %s = %v (%T), want %v", k, g, g, w)
			}
		}
	}
	if b, _ := meta.Get("big"); b.(*big.Int).Cmp(new(big.Int).Lsh(big.NewInt(1), 70)) != 0 {
		t.Errorf("meta big = %v, want 2**70", b)
	}
	if fl, _ := meta.Get("flags"); !slices.Equal(fl.(List), List{true, false, nil}) {
		t.Errorf("meta flags = %v, want [true false nil]", fl)
	}
	if p, _ := meta.Get("pair"); fmt.Sprint(p) != "[1 two]" {
		t.Errorf("meta pair = %v, want (1, 'two')", p)
	}

	raw, err := Load(filepath.Join("testdata", "raw_tensor.pt"))
	if err != nil {
		t.Fatal(err)
	}
	checkTensor(t, "raw_tensor.pt", raw, want.Raw)
}

// torchZip writes a zip laid out as torch.save does.
func torchZip(t testing.TB, pkl []byte, records map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	add := func(name string, b []byte) {
		w, err := z.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	add("archive/data.pkl", pkl)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range records {
			if !yield(k) {
				return
			}
		}
	}) {
		add("archive/"+k, records[k])
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// binUnicode is the pickle of a string.
func binUnicode(s string) string {
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
	return "X" + string(n[:]) + s
}

// tensorPickle is the protocol-2 pickle torch.save writes for one tensor of
// storage "0" (class cls, numel elements) viewed at offset with size and
// stride (each < 256).
func tensorPickle(cls string, numel, offset int, size, stride []int) []byte {
	tuple := func(xs []int) string {
		s := "("
		for _, x := range xs {
			s += string([]byte{'K', byte(x)})
		}
		return s + "t"
	}
	return []byte("\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" +
		"(" + binUnicode("storage") + "ctorch\n" + cls + "\n" + binUnicode("0") + binUnicode("cpu") + string([]byte{'K', byte(numel)}) + "tQ" +
		string([]byte{'K', byte(offset)}) + tuple(size) + tuple(stride) +
		"\x89ccollections\nOrderedDict\n)RtR.")
}

func f32s(xs ...float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func parseBytes(name string, b []byte) (any, error) {
	return Parse(name, bytes.NewReader(b), int64(len(b)))
}

// TestStridedViews checks views against the elements picked by hand from
// a storage of 0, 1, 2, ...
func TestStridedViews(t *testing.T) {
	storage := f32s(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
	for _, tc := range []struct {
		offset       int
		size, stride []int
		want         []float32
	}{
		{0, []int{3, 4}, []int{4, 1}, []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{0, []int{4, 3}, []int{1, 4}, []float32{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}}, // transpose
		{5, []int{2, 3}, []int{1, 2}, []float32{5, 7, 9, 6, 8, 10}},
		{3, []int{}, []int{}, []float32{3}},                  // scalar
		{2, []int{2, 2}, []int{0, 1}, []float32{2, 3, 2, 3}}, // expanded (stride 0)
		{11, []int{0, 5}, []int{5, 1}, []float32{}},          // empty
	} {
		v, err := parseBytes("view.pt", torchZip(t, tensorPickle("FloatStorage", 12, tc.offset, tc.size, tc.stride), map[string][]byte{"data/0": storage}))
		if err != nil {
			t.Fatalf("offset %d size %v stride %v: %v", tc.offset, tc.size, tc.stride, err)
		}
		got := v.(*Tensor)
		if !slices.Equal(got.Data, tc.want) || !slices.Equal(got.Shape, tc.size) {
			t.Errorf("offset %d size %v stride %v: got %v %v, want %v", tc.offset, tc.size, tc.stride, got.Shape, got.Data, tc.want)
		}
	}
}

func TestBadInput(t *testing.T) {
	fixture := func(name string) func() (string, []byte) {
		return func() (string, []byte) {
			b, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			return name, b
		}
	}
	crafted := func(pkl string, records map[string][]byte) func() (string, []byte) {
		return func() (string, []byte) { return "crafted.pt", torchZip(t, []byte(pkl), records) }
	}
	storage12 := map[string][]byte{"data/0": f32s(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)}
	deep := "\x80\x02" + strings.Repeat("]", 2000) + strings.Repeat("a", 1999) + "."
	for _, tc := range []struct {
		name string
		file func() (string, []byte)
		want []string
	}{
		{"not a zip", fixture("not_zip.pt"), []string{"not_zip.pt", "not a torch.save zip archive"}},
		{"no data.pkl", fixture("no_data_pkl.pt"), []string{"no_data_pkl.pt", "data.pkl"}},
		{"os.system via GLOBAL", fixture("forbidden_global.pt"), []string{"forbidden_global.pt", "forbidden global os.system"}},
		{"builtins.eval via STACK_GLOBAL", fixture("forbidden_stack_global.pt"), []string{"forbidden_stack_global.pt", "forbidden global builtins.eval"}},
		{"truncated storage", fixture("truncated_storage.pt"), []string{"truncated_storage.pt", "tensors/data/0", "holds 24 bytes, expected 48"}},
		{"big-endian", fixture("big_endian.pt"), []string{"big_endian.pt", "byteorder", "little"}},
		{"copy_reg._reconstructor", crafted("\x80\x02ccopy_reg\n_reconstructor\n.", nil), []string{"forbidden global copy_reg._reconstructor"}},
		{"INST opcode", crafted("(ios\nsystem\n.", nil), []string{"INST", "only data opcodes"}},
		{"BUILD opcode", crafted("\x80\x02}}b.", nil), []string{"BUILD"}},
		{"no STOP", crafted("\x80\x02}", nil), []string{"without STOP"}},
		{"length past the end", crafted("\x80\x02X\xff\xff\xff\x7fabc.", nil), []string{"BINUNICODE", "only 4 follow"}},
		{"huge frame", crafted("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f.", nil), []string{"FRAME"}},
		{"huge long", crafted("\x80\x02\x8b\x00\x00\x01\x00"+strings.Repeat("\x01", 65536)+".", nil), []string{"LONG4", "at most"}},
		{"too deep", crafted(deep, nil), []string{"nested deeper"}},
		{"cycle", crafted("\x80\x02]q\x00h\x00a.", nil), []string{"nested deeper"}},
		{"view past the storage", crafted(string(tensorPickle("FloatStorage", 12, 10, []int{3}, []int{1})), storage12), []string{"reaches element 12", "has 12"}},
		{"missing storage record", crafted(string(tensorPickle("FloatStorage", 12, 0, []int{3}, []int{1})), nil), []string{"no record archive/data/0"}},
		{"storage size mismatch", crafted(string(tensorPickle("HalfStorage", 12, 0, []int{3}, []int{1})), storage12), []string{"holds 48 bytes, expected 24"}},
		{"rank mismatch", crafted(string(tensorPickle("FloatStorage", 12, 0, []int{3, 1}, []int{1})), storage12), []string{"different ranks"}},
		{"bare storage", crafted("\x80\x02("+binUnicode("storage")+"ctorch\nFloatStorage\n"+binUnicode("0")+binUnicode("cpu")+"K\x0ctQ.", storage12), []string{"bare storage"}},
		{"unsupported storage", crafted("\x80\x02ctorch\nDoubleStorage\n.", nil), []string{"forbidden global torch.DoubleStorage"}},
		{"malformed", crafted("\x80\x02R.", nil), []string{"data.pkl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, b := tc.file()
			_, err := parseBytes(name, b)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, name) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// fuzzSeeds are the fixture archives.
func fuzzSeeds(f *testing.F) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.pt"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// checkWellFormed walks a parsed value: every tensor holds as many values as
// its shape says.
func checkWellFormed(t *testing.T, v any) {
	switch x := v.(type) {
	case *Tensor:
		n := 1
		for _, d := range x.Shape {
			n *= d
		}
		if n != len(x.Data) {
			t.Fatalf("tensor of shape %v holds %d values", x.Shape, len(x.Data))
		}
	case List:
		for _, e := range x {
			checkWellFormed(t, e)
		}
	case Tuple:
		for _, e := range x {
			checkWellFormed(t, e)
		}
	case *Dict:
		for _, it := range x.Items {
			checkWellFormed(t, it.Key)
			checkWellFormed(t, it.Value)
		}
	}
}

// FuzzParse feeds whole archives: no input may panic, hang or return a
// malformed tensor.
func FuzzParse(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseBytes("fuzz.pt", b)
		if err == nil {
			checkWellFormed(t, v)
		}
	})
}

// FuzzPickle feeds data.pkl streams, with the storages of tensors.pt
// available, so that mutations reach the unpickler rather than the zip
// checksums.
func FuzzPickle(f *testing.F) {
	base, err := os.ReadFile(filepath.Join("testdata", "tensors.pt"))
	if err != nil {
		f.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		f.Fatal(err)
	}
	records := map[string][]byte{}
	for _, z := range zr.File {
		b, err := readRecord(z, 1<<20)
		if err != nil {
			f.Fatal(err)
		}
		if name := strings.TrimPrefix(z.Name, "tensors/"); name != "data.pkl" {
			records[name] = b
		} else {
			f.Add(b)
		}
	}
	f.Add(tensorPickle("FloatStorage", 12, 1, []int{2, 2}, []int{3, 1}))
	f.Add([]byte("\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."))
	f.Fuzz(func(t *testing.T, pkl []byte) {
		v, err := parseBytes("fuzz.pt", torchZip(t, pkl, records))
		if err == nil {
			checkWellFormed(t, v)
		}
	})
}
