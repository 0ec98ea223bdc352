package engine

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"tether/weights"
)

// TestCacheDType16 checks LoadOptions.CacheDType on the cpu backend, for bfloat16 and float16:
// the cache tensors hold that dtype in half the bytes of float32; the logits stay within the
// dtype's tolerance of the float32 cache's (and differ: the keys and values were rounded);
// decoding through the cache gives the logits of one full forward pass of the same sequence with
// the same cache dtype (1e-4), so the cache is written and read consistently, prefill and
// decode; and a Batcher's rows, joining and growing the cache, generate the tokens each
// request generates alone.
func TestCacheDType16(t *testing.T) {
	cfg, ck := writeRandomCheckpoint(t, tinyLlamaJSON, 7, weights.F32)
	m32 := loadCPU(t, cfg, ck, LoadOptions{})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	V := cfg.VocabSize
	seq := randomTokens(rng, 24, V)
	want32, err := m32.Forward(ctx, [][]int{seq}, ForwardOptions{AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		opt string
		dt  dtypes.DType
		tol float64
	}{
		{"bf16", dtypes.BFloat16, 5e-2},
		{"float16", dtypes.Float16, 1e-2},
	} {
		t.Run(c.opt, func(t *testing.T) {
			m := loadCPU(t, cfg, ck, LoadOptions{CacheDType: c.opt})
			if m.CacheDType() != c.dt {
				t.Fatalf("CacheDType() = %s, want %s", m.CacheDType(), c.dt)
			}
			m.mu.Lock()
			cache, cache32 := m.newKVCache(2, 64), m32.newKVCache(2, 64)
			m.mu.Unlock()
			if got := cache.kv[0].DType(); got != c.dt {
				t.Errorf("cache tensor dtype %s, want %s", got, c.dt)
			}
			if got, full := cache.kv[0].Memory(), cache32.kv[0].Memory(); 2*got != full {
				t.Errorf("cache tensor of %d bytes, want half of float32's %d", got, full)
			}
			cache.free()
			cache32.free()

			got, err := m.Forward(ctx, [][]int{seq}, ForwardOptions{AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			if d := maxRelDiff(flatten(got.AllLogits[0]), flatten(want32.AllLogits[0])); d > c.tol || d == 0 {
				t.Errorf("%s cache against float32 cache: logits differ by %g, want within (0, %g]", c.opt, d, c.tol)
			}

			// Prefill 5 positions, then one at a time: each step's logits against the full pass.
			m.mu.Lock()
			defer m.mu.Unlock()
			dec := m.newKVCache(1, 64)
			defer dec.free()
			feed := func(from, to int) [][]int32 {
				row := make([]int32, to-from)
				for i := range row {
					row[i] = int32(seq[from+i])
				}
				return [][]int32{row}
			}
			plan := stepPlan{allLogits: true}
			out, err := m.runStep(stepRequest{tokens: feed(0, 5), pad: []int32{0}, cache: dec, plan: plan})
			if err != nil {
				t.Fatal(err)
			}
			for p := range 5 {
				if d := maxRelDiff(out.logits[p*V:(p+1)*V], got.AllLogits[0][p]); d > 1e-4 {
					t.Errorf("prefill position %d: logits differ from the full pass by %g", p, d)
				}
			}
			for p := 5; p < len(seq); p++ {
				out, err := m.runStep(stepRequest{tokens: feed(p, p+1), pad: []int32{0}, slot: int32(p), cache: dec, plan: plan})
				if err != nil {
					t.Fatal(err)
				}
				if d := maxRelDiff(out.logits[:V], got.AllLogits[0][p]); d > 1e-4 {
					t.Errorf("decoded position %d: logits differ from the full pass by %g", p, d)
				}
			}
		})
	}
	t.Run("batcher", func(t *testing.T) {
		m := loadCPU(t, cfg, ck, LoadOptions{CacheDType: "bf16"})
		reqs := []BatchRequest{
			// 8 + 55 + 1 slots: 64; the next needs 16 + 70 + 1: the cache grows to 128 slots
			// while the first row is live (resizeSlots copies its keys and values).
			{Request: Request{Prompt: randomTokens(rng, 3, V), MaxNewTokens: 55, IgnoreEOS: true}, Logprob: true},
			{Request: Request{Prompt: randomTokens(rng, 9, V), MaxNewTokens: 70, IgnoreEOS: true}, Logprob: true},
			{Request: Request{Prompt: randomTokens(rng, 5, V), MaxNewTokens: 30, IgnoreEOS: true}, Logprob: true},
		}
		bt, err := m.NewBatcher(BatcherOptions{MaxBatch: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer bt.Close(ctx)
		// Slow steps, so that the first request is still running when the others join.
		bt.afterStep = func() { time.Sleep(2 * time.Millisecond) }
		tokens := make([][]int, len(reqs))
		logprobs := make([][]float64, len(reqs))
		var wg sync.WaitGroup
		for i, r := range reqs {
			ch, err := bt.Submit(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ev := range ch {
					if ev.Done {
						if ev.Err != nil {
							t.Errorf("request %d: %v", i, ev.Err)
						}
						continue
					}
					tokens[i] = append(tokens[i], ev.Token)
					logprobs[i] = append(logprobs[i], ev.Logprob)
				}
			}()
			if i == 0 {
				waitFor(t, func() bool { return bt.Stats().Steps >= 3 })
			}
		}
		wg.Wait()
		// Each token's log-probability from the batch against one full pass over the sequence
		// (the same cache dtype): the cache, grown and shared, held every row's keys and values.
		for i, r := range reqs {
			full := append(slices.Clone(r.Prompt), tokens[i]...)
			want, err := m.Forward(ctx, [][]int{full}, ForwardOptions{AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(tokens[i]) != r.MaxNewTokens {
				t.Fatalf("request %d: %d tokens, want %d", i, len(tokens[i]), r.MaxNewTokens)
			}
			for k, tok := range tokens[i] {
				lp := logSoftmaxAt(want.AllLogits[0][len(r.Prompt)+k-1], tok)
				if d := math.Abs(lp - logprobs[i][k]); d > 1e-3 {
					t.Errorf("request %d token %d: batched log-probability %.5f, full pass %.5f", i, k, logprobs[i][k], lp)
					break
				}
			}
		}
	})
}

// logSoftmaxAt returns log softmax(logits)[i], in float64.
func logSoftmaxAt(logits []float32, i int) float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	return float64(logits[i]) - mx - math.Log(sum)
}

// TestCacheDTypeErrors checks that a cache dtype the backend cannot hold, or an unknown one, is
// an error naming it, and that the memory estimate counts a 16-bit cache at half the bytes.
func TestCacheDTypeErrors(t *testing.T) {
	cfg, ck := writeRandomCheckpoint(t, tinyLlamaJSON, 7, weights.F32)
	for _, c := range []struct {
		backend, opt, want string
	}{
		{"cpu", "f8", `CacheDType "f8", expected "float32", "bfloat16" or "float16"`},
		{"go", "bf16", `does not write the cache in place`},
	} {
		be, err := NewBackend(c.backend)
		if err != nil {
			t.Fatal(err)
		}
		_, err = LoadWithOptions(be, cfg, ck, LoadOptions{CacheDType: c.opt})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s, CacheDType %q: error %v, want one containing %q", c.backend, c.opt, err, c.want)
		}
	}
	w := MemoryWorkload{Batch: 4, Prompt: 100, NewTokens: 300}
	e32, err := EstimateMemory(cfg, 4*cfg.ParamCount(), 0, "cpu", LoadOptions{}, w)
	if err != nil {
		t.Fatal(err)
	}
	e16, err := EstimateMemory(cfg, 4*cfg.ParamCount(), 0, "cpu", LoadOptions{CacheDType: "bf16"}, w)
	if err != nil {
		t.Fatal(err)
	}
	if 2*e16.KVCache != e32.KVCache || e32.KVCache == 0 {
		t.Errorf("estimated cache: %d bytes with bf16, %d with float32: want half", e16.KVCache, e32.KVCache)
	}
}
