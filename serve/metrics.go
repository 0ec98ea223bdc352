package serve

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// ttftBuckets are the upper bounds (seconds) of the time-to-first-token histogram.
var ttftBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// metrics are the server's counters, written in Prometheus' text format.
type metrics struct {
	mu               sync.Mutex
	requests         map[[2]string]int64 // (endpoint, status code) -> count
	promptTokens     int64
	completionTokens int64
	capActivations   int64
	ttftCounts       []int64 // per bucket, cumulative when written
	ttftSum          float64
	ttftN            int64
}

func newMetrics() *metrics {
	return &metrics{requests: map[[2]string]int64{}, ttftCounts: make([]int64, len(ttftBuckets))}
}

func (m *metrics) request(endpoint string, status int) {
	m.mu.Lock()
	m.requests[[2]string{endpoint, fmt.Sprint(status)}]++
	m.mu.Unlock()
}

func (m *metrics) tokens(prompt, completion, capped int) {
	m.mu.Lock()
	m.promptTokens += int64(prompt)
	m.completionTokens += int64(completion)
	m.capActivations += int64(capped)
	m.mu.Unlock()
}

func (m *metrics) firstToken(d time.Duration) {
	s := d.Seconds()
	m.mu.Lock()
	for i, b := range ttftBuckets {
		if s <= b {
			m.ttftCounts[i]++
			break
		}
	}
	m.ttftSum += s
	m.ttftN++
	m.mu.Unlock()
}

// write writes every metric with the generator's current load.
func (m *metrics) write(w io.Writer, st GeneratorStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP tether_requests_total HTTP requests answered, by endpoint and status code.")
	fmt.Fprintln(w, "# TYPE tether_requests_total counter")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(w, "tether_requests_total{endpoint=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	counter := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v int) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter("tether_prompt_tokens_total", "Prompt tokens of answered generations.", m.promptTokens)
	counter("tether_completion_tokens_total", "Generated tokens.", m.completionTokens)
	counter("tether_cap_activations_total", "Generated tokens times capped layers where a cap acted.", m.capActivations)
	gauge("tether_queue_depth", "Sequences waiting for a slot.", st.Queued)
	gauge("tether_batch_size", "Sequences being generated.", st.Running)
	fmt.Fprintln(w, "# HELP tether_time_to_first_token_seconds Time from a request's arrival to its first generated token.")
	fmt.Fprintln(w, "# TYPE tether_time_to_first_token_seconds histogram")
	var cum int64
	for i, b := range ttftBuckets {
		cum += m.ttftCounts[i]
		fmt.Fprintf(w, "tether_time_to_first_token_seconds_bucket{le=\"%g\"} %d\n", b, cum)
	}
	fmt.Fprintf(w, "tether_time_to_first_token_seconds_bucket{le=\"+Inf\"} %d\n", m.ttftN)
	fmt.Fprintf(w, "tether_time_to_first_token_seconds_sum %g\n", m.ttftSum)
	fmt.Fprintf(w, "tether_time_to_first_token_seconds_count %d\n", m.ttftN)
}
