package serve

import (
	"fmt"
	"io"
	"sort"
	"sync"

	"tether/engine"
)

// metrics are the server's own counters; the generator's (queue, batch, steps, time to first
// token, cap activations) are read from its stats when written.
type metrics struct {
	mu               sync.Mutex
	requests         map[[2]string]int64 // (endpoint, status code) -> count
	promptTokens     int64
	completionTokens int64
}

func newMetrics() *metrics {
	return &metrics{requests: map[[2]string]int64{}}
}

func (m *metrics) request(endpoint string, status int) {
	m.mu.Lock()
	m.requests[[2]string{endpoint, fmt.Sprint(status)}]++
	m.mu.Unlock()
}

func (m *metrics) tokens(prompt, completion int) {
	m.mu.Lock()
	m.promptTokens += int64(prompt)
	m.completionTokens += int64(completion)
	m.mu.Unlock()
}

// write writes every metric in Prometheus' text format.
func (m *metrics) write(w io.Writer, st engine.BatcherStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP tether_requests_total HTTP requests answered, by endpoint and status code.")
	fmt.Fprintln(w, "# TYPE tether_requests_total counter")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+" "+keys[i][1] < keys[j][0]+" "+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(w, "tether_requests_total{endpoint=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	metric := func(kind, name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", name, help, name, kind, name, v)
	}
	metric("counter", "tether_prompt_tokens_total", "Prompt tokens of answered generations.", m.promptTokens)
	metric("counter", "tether_completion_tokens_total", "Generated tokens of answered generations.", m.completionTokens)
	metric("counter", "tether_generated_tokens_total", "Tokens the engine generated (cancelled sequences included).", st.Tokens)
	metric("counter", "tether_decode_steps_total", "Batched decode steps run.", st.Steps)
	metric("counter", "tether_cap_activations_total", "Recorded caps that acted, over all generated tokens and layers.", st.CapActivations)
	metric("gauge", "tether_queue_depth", "Sequences waiting for a batch row.", int64(st.Queued))
	metric("gauge", "tether_batch_size", "Sequences being decoded together.", int64(st.Active))
	metric("gauge", "tether_batch_cache_rows", "Rows of the batch's KV cache (0: none held).", int64(st.CacheRows))
	metric("gauge", "tether_batch_cache_slots", "Slots per row of the batch's KV cache (0: none held).", int64(st.CacheSlots))
	fmt.Fprintln(w, "# HELP tether_time_to_first_token_seconds Time from a sequence's submission to its first token.")
	fmt.Fprintln(w, "# TYPE tether_time_to_first_token_seconds histogram")
	for i, b := range st.TTFTBounds {
		if i < len(st.TTFTBuckets) {
			fmt.Fprintf(w, "tether_time_to_first_token_seconds_bucket{le=\"%g\"} %d\n", b.Seconds(), st.TTFTBuckets[i])
		}
	}
	fmt.Fprintf(w, "tether_time_to_first_token_seconds_bucket{le=\"+Inf\"} %d\n", st.TTFTCount)
	fmt.Fprintf(w, "tether_time_to_first_token_seconds_sum %g\n", st.TTFTSum.Seconds())
	fmt.Fprintf(w, "tether_time_to_first_token_seconds_count %d\n", st.TTFTCount)
}
