package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"tether/bench"
	"tether/engine"
	"tether/internal/testmodels"
	"tether/model"
	"tether/weights"
)

// memoryChildEnv carries a workload to the child process of
// TestMemoryEstimate: "dir backend batch prompt new".
const memoryChildEnv = "TETHER_MEMORY_CHILD"

// TestMemoryEstimateChild is not a test on its own: TestMemoryEstimate runs
// it in a fresh process, where it opens a model, generates one workload and
// prints its resident memory before opening the model and its peak.
func TestMemoryEstimateChild(t *testing.T) {
	spec := strings.Fields(os.Getenv(memoryChildEnv))
	if len(spec) != 5 {
		t.Skip("runs only as the child process of TestMemoryEstimate")
	}
	baseline, err := engine.ProcessRSS()
	if err != nil {
		t.Fatal(err)
	}
	var w [3]int
	for i := range w {
		if w[i], err = strconv.Atoi(spec[i+2]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := model.Open(spec[0], model.Options{Backend: spec[1], NoTokenizer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	reqs := make([]engine.Request, w[0])
	for b := range reqs {
		prompt := make([]int, w[1])
		for i := range prompt {
			prompt[i] = 3 + (7*i+b)%200
		}
		reqs[b] = engine.Request{Prompt: prompt, MaxNewTokens: w[2], IgnoreEOS: true}
	}
	if _, err := m.Engine.Generate(context.Background(), reqs, engine.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	peak, err := bench.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("memory-child baseline %d peak %d\n", baseline, peak)
}

// TestMemoryEstimate runs real workloads in child processes and checks the
// peak resident memory they reach (the kernel's VmHWM) against
// engine.EstimateMemory, given the child's resident memory before it opened
// the model: within 20%, on the default "cpu" backend (pooled buffers,
// weights in the checkpoint's dtype: the bf16 checkpoint is held in 16 bits)
// and on "go" (every step's buffers become garbage). SmolLM2-135M-shaped workloads take tens of seconds
// on 2 cores and are left to `tether info` against `bench perf`.
func TestMemoryEstimate(t *testing.T) {
	if _, err := engine.ProcessRSS(); err != nil {
		t.Skipf("no resident memory reading on this system: %v", err)
	}
	stories := testmodels.Stories260K(t)
	smallCfg := testmodels.Llama{Hidden: 256, Intermediate: 768, Layers: 4, Heads: 8, KVHeads: 4, Vocab: 4096, MaxPositions: 1024, BOS: 1, EOS: 2}
	small := testmodels.Write(t, filepath.Join(t.TempDir(), "small"), smallCfg, 1)
	smallBF16 := filepath.Join(t.TempDir(), "small-bf16")
	if err := weights.WriteRandomModel(smallBF16, smallCfg.JSON(), 1, weights.BF16); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, dir              string
		batch, prompt, newToks int
	}{
		{"stories260K generate", stories, 1, 16, 64},
		{"stories260K batch 8", stories, 8, 16, 32},
		{"stories260K long prompt", stories, 1, 200, 100},
		{"small model generate", small, 1, 128, 64},
		{"small model batch 8", small, 8, 32, 32},
		{"small bf16 model generate", smallBF16, 1, 128, 64},
	} {
		for _, backend := range []string{"cpu", "go"} {
			t.Run(c.name+" on "+backend, func(t *testing.T) {
				cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryEstimateChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d %d", memoryChildEnv, c.dir, backend, c.batch, c.prompt, c.newToks))
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("child: %v\n%s", err, out)
				}
				var baseline, peak int64
				for _, line := range strings.Split(string(out), "\n") {
					if strings.HasPrefix(line, "memory-child ") {
						fmt.Sscanf(line, "memory-child baseline %d peak %d", &baseline, &peak)
					}
				}
				if peak == 0 {
					t.Fatalf("child printed no measurement:\n%s", out)
				}
				m := testmodels.OpenWith(t, c.dir, model.Options{NoWeights: true, NoTokenizer: true})
				est, err := engine.EstimateMemory(m.Config, m.WeightBytes, baseline, backend, engine.LoadOptions{},
					engine.MemoryWorkload{Batch: c.batch, Prompt: c.prompt, NewTokens: c.newToks})
				if err != nil {
					t.Fatal(err)
				}
				ratio := float64(est.Total) / float64(peak)
				t.Logf("measured peak %.1f MiB, estimate %.1f MiB (%+.0f%%): %+v", mib(peak), mib(est.Total), 100*(ratio-1), est)
				if ratio < 0.8 || ratio > 1.2 {
					t.Errorf("estimate %.1f MiB is not within 20%% of the measured peak %.1f MiB", mib(est.Total), mib(peak))
				}
			})
		}
	}
}

// mib converts bytes to MiB.
func mib(n int64) float64 { return float64(n) / (1 << 20) }
