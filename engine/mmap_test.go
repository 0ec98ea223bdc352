package engine

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"tether/weights"
)

// writeCheckpoint stores src, the weights of cfg, as a one-file checkpoint
// of dtype dt (tensors sorted by name, as Hugging Face writes them) and
// opens it; the checkpoint is closed at cleanup.
func writeCheckpoint(t *testing.T, cfg *weights.Config, src *memSource, dt weights.DType) (*weights.Checkpoint, string) {
	t.Helper()
	var ts []weights.Tensor
	for _, spec := range cfg.ExpectedTensors() {
		tt, err := weights.NewFloatTensor(spec.Name, dt, spec.Shape, src.data[spec.Name])
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tt)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, weights.SingleFileName)
	if err := weights.WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := weights.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ck.Close() })
	return ck, path
}

// loadCPU loads cfg from src on a new "cpu" backend with opts.
func loadCPU(t *testing.T, cfg *weights.Config, src weights.TensorSource, opts LoadOptions) *Model {
	t.Helper()
	be, err := NewBackend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadWithOptions(be, cfg, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// sameBits reports whether a and b hold the same float32 bit patterns.
func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// runAll runs m through a forward pass (all logits, every block captured,
// a hook recording) and a batched greedy generation through the KV cache
// (a cap on one layer, every decoded position captured), returning every
// number produced, in order.
func runAll(t *testing.T, m *Model, seed uint64) []float32 {
	t.Helper()
	cfg := m.Config()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 9))
	seqs := [][]int{randomTokens(rng, 11, cfg.VocabSize), randomTokens(rng, 4, cfg.VocabSize)}
	u := make([]float32, cfg.HiddenSize)
	u[1], u[3] = 0.6, 0.8
	layers := make([]int, cfg.NumLayers)
	for i := range layers {
		layers[i] = i
	}
	hooks := Hooks{1: {Clamps: []Clamp{{Dir: u, Lo: 0.5, Hi: float32(math.Inf(1))}}, Record: true}}
	fw, err := m.Forward(ctx, seqs, ForwardOptions{AllLogits: true, CaptureLayers: layers, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	var out []float32
	for b := range seqs {
		out = append(out, flatten(fw.AllLogits[b])...)
		for _, l := range layers {
			out = append(out, flatten(fw.Captured[l][b])...)
		}
	}
	reqs := []Request{{Prompt: seqs[0], MaxNewTokens: 7, IgnoreEOS: true}, {Prompt: seqs[1], MaxNewTokens: 3, IgnoreEOS: true}}
	last := cfg.NumLayers - 1
	res, err := m.Generate(ctx, reqs, GenerateOptions{Hooks: hooks, CaptureLayers: []int{last}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		for _, tok := range r.Tokens {
			out = append(out, float32(tok))
		}
		out = append(out, flatten(r.Captured[last])...)
	}
	return out
}

// TestMappedWeightsMatchCopied loads every family's random weights, stored
// as float32 and as bfloat16 checkpoints, on "cpu" twice: reading the
// weights used as stored where they lie in the mapped file, and copying
// all of them (LoadOptions.CopyWeights). Both hold the same values in the
// same dtype, so logits, every block's output, telemetry and generated
// tokens must be bit-identical; and the default really maps something.
func TestMappedWeightsMatchCopied(t *testing.T) {
	for _, fam := range allFamilies {
		for _, dt := range []weights.DType{weights.F32, weights.BF16} {
			t.Run(string(fam)+"/"+string(dt), func(t *testing.T) {
				cfg := tinyConfig(fam)
				ck, _ := writeCheckpoint(t, cfg, randomSource(cfg, 42), dt)
				mapped := loadCPU(t, cfg, ck, LoadOptions{})
				copied := loadCPU(t, cfg, ck, LoadOptions{CopyWeights: true})
				if s := mapped.WeightStorage(); s.MappedBytes == 0 {
					t.Fatalf("nothing mapped: %+v", s)
				}
				if s := copied.WeightStorage(); s.MappedBytes != 0 || len(s.Mapped) != 0 {
					t.Fatalf("CopyWeights mapped %v", s.Mapped)
				}
				if mapped.WeightDType() != copied.WeightDType() {
					t.Fatalf("held as %s and %s", mapped.WeightDType(), copied.WeightDType())
				}
				got, want := runAll(t, mapped, 1), runAll(t, copied, 1)
				if !sameBits(got, want) {
					t.Errorf("mapped weights differ from copied ones (max rel diff %g)", maxRelDiff(got, want))
				}
			})
		}
	}
}

// expectMapped applies the mapping rule to the checkpoint's own header:
// a weight is mapped when it is held in its stored dtype (matrices in the
// model's weight dtype, norms and biases in float32), is not transformed
// (Gemma's norms are) and its parts' byte ranges follow each other in the
// file. It returns the stored names of the mapped tensors, sorted.
func expectMapped(t *testing.T, cfg *weights.Config, ck *weights.Checkpoint, matrixDType weights.DType) []string {
	t.Helper()
	var out []string
	weight := func(w weights.Weight, held weights.DType, transformed bool) {
		if !w.Present() || transformed {
			return
		}
		var end int64
		for i, p := range w.Parts {
			info, err := ck.Info(p.Name)
			if err != nil {
				t.Fatal(err)
			}
			if info.DType != held || (i > 0 && info.Offset != end) {
				return
			}
			end = info.Offset + info.Length
		}
		for _, p := range w.Parts {
			out = append(out, p.Name)
		}
	}
	lay := cfg.Layout()
	plus := cfg.NormPlusOne
	weight(lay.Embed, matrixDType, false)
	weight(lay.LMHead, matrixDType, false)
	weight(lay.Norm, weights.F32, plus)
	for _, l := range lay.Layers {
		for _, w := range []weights.Weight{l.QKV, l.O, l.GateUp, l.Down} {
			weight(w, matrixDType, false)
		}
		for _, w := range []weights.Weight{l.AttnNorm, l.PostAttnNorm, l.PreFFNorm, l.PostFFNorm, l.QNorm, l.KNorm} {
			weight(w, weights.F32, plus)
		}
		for _, w := range []weights.Weight{l.QKVBias, l.OBias, l.GateUpBias, l.DownBias} {
			weight(w, weights.F32, false)
		}
	}
	slices.Sort(out)
	return out
}

// paramRanges returns the address ranges of the storage of m's weights on
// its backend.
func paramRanges(t *testing.T, m *Model) [][2]uintptr {
	t.Helper()
	var out [][2]uintptr
	for _, p := range m.params {
		buf, err := p.Buffer(m.backend, 0)
		if err != nil {
			t.Fatal(err)
		}
		flat, err := m.backend.BufferData(buf)
		if err != nil {
			t.Fatal(err)
		}
		v := reflect.ValueOf(flat)
		start := v.Pointer()
		out = append(out, [2]uintptr{start, start + uintptr(v.Len())*v.Type().Elem().Size()})
	}
	return out
}

// TestWeightStorageFollowsLayout checks which weights are mapped against
// the rule applied to the checkpoint's header (see expectMapped), with the
// cases that matter spelled out: gate and up lie back to back (sorted
// names) and are mapped, q, k and v do not (o_proj sorts between k and q)
// and are copied, unless stored fused (Phi-3); Gemma's 1 + norm weights and
// a bfloat16 checkpoint's norms (held float32) are copied. Every mapped
// tensor's bytes lie inside a weight buffer of the backend (a view, not a
// copy) and no copied one's do; the estimate of EstimateMemory maps the
// same bytes; "go" and CopyWeights map nothing.
func TestWeightStorageFollowsLayout(t *testing.T) {
	for _, fam := range allFamilies {
		for _, dt := range []weights.DType{weights.F32, weights.BF16} {
			t.Run(string(fam)+"/"+string(dt), func(t *testing.T) {
				cfg := tinyConfig(fam)
				ck, _ := writeCheckpoint(t, cfg, randomSource(cfg, 42), dt)
				m := loadCPU(t, cfg, ck, LoadOptions{})
				s := m.WeightStorage()
				got := slices.Sorted(slices.Values(s.Mapped))
				if want := expectMapped(t, cfg, ck, dt); !slices.Equal(got, want) {
					t.Errorf("mapped %v\nwant %v", got, want)
				}
				in := func(list []string, name string) bool { return slices.Contains(list, name) }
				p := "model.layers.0."
				if fam == weights.FamilyPhi3 {
					if !in(s.Mapped, p+"self_attn.qkv_proj.weight") || !in(s.Mapped, p+"mlp.gate_up_proj.weight") {
						t.Errorf("Phi-3's fused qkv_proj and gate_up_proj are not mapped: %v", s.Mapped)
					}
				} else {
					if !in(s.Mapped, p+"mlp.gate_proj.weight") || !in(s.Mapped, p+"mlp.up_proj.weight") {
						t.Errorf("adjacent gate_proj and up_proj are not mapped: %v", s.Mapped)
					}
					if !in(s.Copied, p+"self_attn.q_proj.weight") || !in(s.Copied, p+"self_attn.v_proj.weight") {
						t.Errorf("q, k and v (not adjacent) are not copied: %v", s.Copied)
					}
				}
				if (cfg.NormPlusOne || dt == weights.BF16) && !in(s.Copied, "model.norm.weight") {
					t.Errorf("the final norm (transformed or in another dtype) is not copied")
				}
				if !cfg.NormPlusOne && dt == weights.F32 && !in(s.Mapped, "model.norm.weight") {
					t.Errorf("the float32 final norm is not mapped")
				}
				if s.MappedBytes+s.CopiedBytes != m.HeldWeightBytes() {
					t.Errorf("mapped %d + copied %d bytes, want the %d held", s.MappedBytes, s.CopiedBytes, m.HeldWeightBytes())
				}
				ranges := paramRanges(t, m)
				inBuffer := func(name string) bool {
					b, ok := ck.Span(name)
					if !ok {
						t.Fatalf("no span for %s", name)
					}
					addr := reflect.ValueOf(b).Pointer()
					for _, r := range ranges {
						if addr >= r[0] && addr < r[1] {
							return true
						}
					}
					return false
				}
				for _, name := range s.Mapped {
					if !inBuffer(name) {
						t.Errorf("%s is reported mapped but no weight buffer holds its bytes", name)
					}
				}
				for _, name := range s.Copied {
					if inBuffer(name) {
						t.Errorf("%s is reported copied but a weight buffer is its mapped bytes", name)
					}
				}
				stored, elem := int64(dt.Size()), int64(m.WeightDType().Size())
				if _, est := mappedWeights(cfg, stored, elem); est != s.MappedBytes {
					t.Errorf("EstimateMemory's rule maps %d bytes, the loader %d", est, s.MappedBytes)
				}
				goBE, err := NewBackend("go")
				if err != nil {
					t.Fatal(err)
				}
				onGo, err := Load(goBE, cfg, ck)
				if err != nil {
					t.Fatal(err)
				}
				defer onGo.Close()
				if g := onGo.WeightStorage(); len(g.Mapped) != 0 {
					t.Errorf("go backend mapped %v", g.Mapped)
				}
			})
		}
	}
}

// mappingsOf counts the lines of /proc/self/maps that map path.
func mappingsOf(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	return strings.Count(string(data), path+"\n")
}

// TestMappedWeightsNeverWritten runs every path that reuses buffers (the
// KV cache donated and updated in place, element-wise results written over
// dying operands, hooks, batch compaction) on a model whose weights are
// views of a PROT_READ mapping, with faults turned into panics: a write
// would fail the run. The file's bytes stay those written, the model keeps
// working after the caller closes the checkpoint, and closing the model
// then unmaps the file.
func TestMappedWeightsNeverWritten(t *testing.T) {
	for _, dt := range []weights.DType{weights.F32, weights.BF16} {
		t.Run(string(dt), func(t *testing.T) {
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // per goroutine
			cfg := tinyConfig(weights.FamilyLlama)
			ck, path := writeCheckpoint(t, cfg, randomSource(cfg, 42), dt)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			be, err := NewBackend("cpu")
			if err != nil {
				t.Fatal(err)
			}
			m, err := Load(be, cfg, ck)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if len(m.WeightStorage().Mapped) == 0 {
				t.Fatal("nothing mapped")
			}
			first := runAll(t, m, 2)
			for _, err := range runPaths(m, [][]int{{1, 5, 9, 13, 2}, {7, 3}}, nil) {
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := ck.Close(); err != nil {
				t.Fatal(err)
			}
			if mappingsOf(t, path) == 0 {
				t.Fatal("closing the checkpoint unmapped the model's weights")
			}
			if again := runAll(t, m, 2); !sameBits(again, first) {
				t.Error("the model's results changed after the checkpoint was closed")
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(before, after) {
				t.Error("the checkpoint file changed")
			}
			m.Close()
			if n := mappingsOf(t, path); n != 0 {
				t.Errorf("closing the model left %d mappings of the checkpoint", n)
			}
		})
	}
}

// TestMappedWeightsRejectNonFinite plants NaN and Inf in tensors that are
// read where they lie (up_proj, the second part of a mapped gate|up, and
// the embedding) and expects Load to name the tensor and the value's flat
// index within it, as for a copied weight.
func TestMappedWeightsRejectNonFinite(t *testing.T) {
	for _, c := range []struct {
		tensor string
		index  int
		value  float32
	}{
		{"model.layers.1.mlp.up_proj.weight", 37, float32(math.NaN())},
		{"model.embed_tokens.weight", 96*32 - 1, float32(math.Inf(-1))},
	} {
		for _, dt := range []weights.DType{weights.F32, weights.BF16} {
			t.Run(c.tensor+"/"+string(dt), func(t *testing.T) {
				cfg := tinyConfig(weights.FamilyLlama)
				src := randomSource(cfg, 42)
				clean, _ := writeCheckpoint(t, cfg, src, dt)
				if !slices.Contains(loadCPU(t, cfg, clean, LoadOptions{}).WeightStorage().Mapped, c.tensor) {
					t.Fatalf("%s is not mapped in the clean checkpoint", c.tensor)
				}
				src.data[c.tensor][c.index] = c.value
				ck, path := writeCheckpoint(t, cfg, src, dt)
				be, err := NewBackend("cpu")
				if err != nil {
					t.Fatal(err)
				}
				m, err := Load(be, cfg, ck)
				requireNonFiniteError(t, m, err, c.tensor, c.index, c.value)
				// The failed load holds no mapping: closing the checkpoint unmaps it.
				_ = ck.Close()
				if n := mappingsOf(t, path); n != 0 {
					t.Errorf("a failed load left %d mappings of the checkpoint", n)
				}
			})
		}
	}
}
