package engine

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// SamplingParams selects how the next token is chosen from a row of logits.
// The zero value is greedy decoding without a repetition penalty.
type SamplingParams struct {
	// Temperature divides the logits before softmax; 0 means greedy (argmax, ties go to the lowest id).
	Temperature float64 `json:"temperature"`
	// TopK keeps only the K highest logits (tokens tied with the K-th are kept too); 0 = off.
	TopK int `json:"top_k"`
	// TopP keeps the smallest set of most likely tokens whose cumulative probability reaches TopP;
	// 0 or 1 = off.
	TopP float64 `json:"top_p"`
	// MinP keeps tokens whose probability is at least MinP times the highest probability; 0 = off.
	MinP float64 `json:"min_p"`
	// RepetitionPenalty penalises every token id present in the history, Hugging Face style:
	// a logit > 0 is divided by it, a logit <= 0 is multiplied by it; 0 or 1 = off.
	RepetitionPenalty float64 `json:"repetition_penalty"`
	// Seed seeds the PCG random generator: the same seed gives the same sequence of choices.
	Seed uint64 `json:"seed"`
}

// Validate reports every out-of-range field: a negative or non-finite temperature, a negative
// top-k, a top-p outside (0,1] (0 means off), a min-p outside [0,1], or a negative or non-finite
// repetition penalty.
func (p SamplingParams) Validate() error {
	var errs []error
	if math.IsNaN(p.Temperature) || math.IsInf(p.Temperature, 0) || p.Temperature < 0 {
		errs = append(errs, fmt.Errorf("sampling: temperature %v: want a finite value >= 0 (0 = greedy)", p.Temperature))
	}
	if p.TopK < 0 {
		errs = append(errs, fmt.Errorf("sampling: top-k %d: want >= 0 (0 = off)", p.TopK))
	}
	if math.IsNaN(p.TopP) || p.TopP < 0 || p.TopP > 1 {
		errs = append(errs, fmt.Errorf("sampling: top-p %v: want a value in (0,1], or 0 for off", p.TopP))
	}
	if math.IsNaN(p.MinP) || p.MinP < 0 || p.MinP > 1 {
		errs = append(errs, fmt.Errorf("sampling: min-p %v: want a value in [0,1] (0 = off)", p.MinP))
	}
	if math.IsNaN(p.RepetitionPenalty) || math.IsInf(p.RepetitionPenalty, 0) || p.RepetitionPenalty < 0 {
		errs = append(errs, fmt.Errorf("sampling: repetition penalty %v: want a finite value > 0, or 0 for off", p.RepetitionPenalty))
	}
	return errors.Join(errs...)
}

// normalized returns p with every field that is off, or out of range, in its canonical "off"
// form, so that the sampler never has to re-check ranges. Call Validate to reject bad values.
func (p SamplingParams) normalized() SamplingParams {
	if !(p.Temperature > 0) || math.IsInf(p.Temperature, 1) {
		p.Temperature = 0
	}
	if p.TopK < 0 {
		p.TopK = 0
	}
	if !(p.TopP > 0 && p.TopP < 1) {
		p.TopP = 0
	}
	if !(p.MinP > 0) {
		p.MinP = 0
	}
	if p.MinP > 1 {
		p.MinP = 1
	}
	if !(p.RepetitionPenalty > 0) || math.IsInf(p.RepetitionPenalty, 1) || p.RepetitionPenalty == 1 {
		p.RepetitionPenalty = 0
	}
	return p
}

// Sampler chooses next tokens from logits with fixed SamplingParams and its own seeded random
// generator. It keeps scratch buffers between calls, so it is not safe for concurrent use: give
// each sequence of a batch its own Sampler.
//
// The steps follow the order of Hugging Face transformers' generate() (the logits processors,
// then the warpers as built by _get_logits_processor in recent versions):
//  1. repetition penalty on the ids in history (also in greedy mode, as in transformers);
//  2. greedy: if Temperature is 0 the result is the argmax, ties going to the lowest id;
//  3. temperature: logits / Temperature;
//  4. top-k: tokens below the K-th highest logit are removed (ties with it are kept, as
//     transformers compares against the K-th value);
//  5. top-p: on the softmax of what is left, in descending order, a token is kept while the
//     probability mass strictly before it is below TopP (equivalently transformers removes tokens
//     whose ascending cumulative probability is <= 1-TopP); the most likely token is always kept;
//  6. min-p, applied after top-p as transformers does: on the renormalised distribution, tokens
//     with probability < MinP * (highest probability) are removed;
//  7. one token is drawn from the softmax of the survivors with a PCG generator seeded from Seed.
//
// Probabilities are computed in float64; a token whose probability is below e^-708 (about 3e-308)
// times that of the most likely token counts as probability 0. NaN logits are treated as -Inf and
// never chosen. If some logits are +Inf (after the penalty), the choice is among those tokens
// only: the lowest such id when greedy, uniformly at random otherwise (the limit of softmax). If
// every logit is NaN or -Inf, Sample returns 0; for empty logits it returns -1. Large vocabularies
// are weighed on several goroutines; results do not depend on GOMAXPROCS. Samplers share nothing,
// so the rows of a batch can be sampled concurrently, one Sampler per row.
type Sampler struct {
	params SamplingParams
	rng    *rand.Rand

	work   []float32 // penalised copy of the logits
	cand   []int32   // surviving token ids
	weight []float64 // exp((logit - max) / T), parallel to cand
	heap   []float32 // min-heap of the K best logits
	byProb []weightedID
}

// weightedID is a token id with its unnormalised probability, for selecting the top-p set.
type weightedID struct {
	id     int32
	weight float64
}

// NewSampler returns a Sampler for p. Fields out of range are treated as off (temperature as
// greedy); call p.Validate first to report them instead.
func NewSampler(p SamplingParams) *Sampler {
	return &Sampler{
		params: p.normalized(),
		rng:    rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15)),
	}
}

// Sample returns the id of the next token given the logits of the last position and the token
// ids seen so far (used only by the repetition penalty; ids outside the vocabulary are ignored).
// The logits slice is not modified.
func (s *Sampler) Sample(logits []float32, history []int) int {
	if len(logits) == 0 {
		return -1
	}
	w := s.penalized(logits, history)
	if s.params.Temperature == 0 {
		return argmax(w)
	}
	maxLogit := w[argmax(w)]
	switch {
	case math.IsInf(float64(maxLogit), 1):
		return s.pickAmongPositiveInf(w)
	case math.IsInf(float64(maxLogit), -1):
		return 0
	}
	s.filter(w, maxLogit)
	return s.draw()
}

// penalized copies logits into the scratch buffer, turning NaN into -Inf and applying the
// repetition penalty to every id in history. Each penalised value is computed from the original
// logit, so an id repeated in history is penalised once, as in transformers.
func (s *Sampler) penalized(logits []float32, history []int) []float32 {
	s.work = slices.Grow(s.work[:0], len(logits))[:len(logits)]
	w := s.work
	negInf := float32(math.Inf(-1))
	for i, v := range logits {
		if v != v {
			v = negInf
		}
		w[i] = v
	}
	if s.params.RepetitionPenalty == 0 {
		return w
	}
	penalty := float32(s.params.RepetitionPenalty)
	for _, id := range history {
		if id < 0 || id >= len(w) {
			continue
		}
		v := logits[id]
		if v != v {
			continue
		}
		if v > 0 {
			w[id] = v / penalty
		} else {
			w[id] = v * penalty
		}
	}
	return w
}

// argmax returns the index of the largest value, the lowest index among ties, and 0 when every
// value is -Inf. NaN must already have been replaced.
func argmax(w []float32) int {
	best, bestValue := 0, w[0]
	for i, v := range w {
		if v > bestValue {
			best, bestValue = i, v
		}
	}
	return best
}

// pickAmongPositiveInf draws uniformly among the tokens whose logit is +Inf.
func (s *Sampler) pickAmongPositiveInf(w []float32) int {
	s.cand = s.cand[:0]
	for i, v := range w {
		if math.IsInf(float64(v), 1) {
			s.cand = append(s.cand, int32(i))
		}
	}
	return int(s.cand[s.rng.IntN(len(s.cand))])
}

// filter applies temperature, top-k, top-p and min-p, leaving the surviving ids in s.cand and
// their unnormalised probabilities in s.weight. maxLogit must be finite.
func (s *Sampler) filter(w []float32, maxLogit float32) {
	lowest := float32(math.Inf(-1))
	if s.params.TopK > 0 {
		lowest = s.kthLargest(w, s.params.TopK)
	}
	floor := minLogWeight
	if s.params.MinP > 0 && s.params.TopP == 0 {
		// Without top-p no total is needed, so tokens that min-p will remove are not weighed at
		// all. The margin keeps borderline tokens for the exact test below.
		floor = max(floor, math.Log(s.params.MinP)-1e-9)
	}
	s.weigh(w, lowest, maxLogit, floor)
	if s.params.TopP > 0 {
		s.keepTopP(s.params.TopP)
	}
	if s.params.MinP > 0 {
		// The most likely token survives every earlier step and has weight exp(0) = 1, so
		// p_i >= MinP * p_max reads weight_i >= MinP.
		s.keepIf(func(weight float64) bool { return weight >= s.params.MinP })
	}
}

// minLogWeight is the smallest log of a probability relative to the most likely token that is
// kept: exp(-708) is about 3e-308, the bottom of float64's normal range. Tokens below it have
// probability 0 here.
const minLogWeight = -708.0

// parallelChunk is the smallest slice of the vocabulary worth weighing on its own goroutine.
const parallelChunk = 32768

// weigh fills s.cand and s.weight, in id order, with every token whose logit is at least lowest
// and whose log weight (logit - maxLogit) / T is at least floor, together with its weight
// exp((logit - maxLogit) / T). Large vocabularies are split across GOMAXPROCS goroutines; each
// weight depends only on its own logit, so the result does not depend on the split.
func (s *Sampler) weigh(w []float32, lowest, maxLogit float32, floor float64) {
	n := len(w)
	s.cand = slices.Grow(s.cand[:0], n)[:n]
	s.weight = slices.Grow(s.weight[:0], n)[:n]
	invT := 1 / s.params.Temperature
	chunks := min(runtime.GOMAXPROCS(0), n/parallelChunk)
	if chunks <= 1 {
		kept := weighRange(w, 0, n, lowest, maxLogit, invT, floor, s.cand, s.weight)
		s.cand, s.weight = s.cand[:kept], s.weight[:kept]
		return
	}
	kept := make([]int, chunks)
	var wg sync.WaitGroup
	for c := range chunks {
		lo, hi := c*n/chunks, (c+1)*n/chunks
		wg.Go(func() { kept[c] = weighRange(w, lo, hi, lowest, maxLogit, invT, floor, s.cand, s.weight) })
	}
	wg.Wait()
	total := 0
	for c := range chunks {
		lo := c * n / chunks
		copy(s.cand[total:], s.cand[lo:lo+kept[c]])
		copy(s.weight[total:], s.weight[lo:lo+kept[c]])
		total += kept[c]
	}
	s.cand, s.weight = s.cand[:total], s.weight[:total]
}

// weighRange does weigh's work for ids lo..hi-1, writing the survivors from index lo of cand and
// weight, and returns how many it wrote.
func weighRange(w []float32, lo, hi int, lowest, maxLogit float32, invT, floor float64, cand []int32, weight []float64) int {
	k := lo
	top := float64(maxLogit)
	for i := lo; i < hi; i++ {
		v := w[i]
		if v < lowest {
			continue
		}
		d := (float64(v) - top) * invT
		if !(d >= floor) { // also drops -Inf
			continue
		}
		cand[k], weight[k] = int32(i), math.Exp(d)
		k++
	}
	return k - lo
}

// kthLargest returns the k-th largest finite value of w, or -Inf when w has at most k finite
// values. It keeps a min-heap of the k best, so it costs O(len(w)) when k is small.
func (s *Sampler) kthLargest(w []float32, k int) float32 {
	negInf := float32(math.Inf(-1))
	if k >= len(w) {
		return negInf
	}
	h := s.heap[:0]
	for _, v := range w {
		if v == negInf {
			continue
		}
		if len(h) < k {
			h = append(h, v)
			siftUp(h, len(h)-1)
		} else if v > h[0] {
			h[0] = v
			siftDown(h, 0)
		}
	}
	s.heap = h
	if len(h) < k {
		return negInf
	}
	return h[0]
}

// siftUp restores the min-heap property of h after h[i] was appended.
func siftUp(h []float32, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent] <= h[i] {
			return
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

// siftDown restores the min-heap property of h after h[i] was replaced.
func siftDown(h []float32, i int) {
	for {
		smallest, left, right := i, 2*i+1, 2*i+2
		if left < len(h) && h[left] < h[smallest] {
			smallest = left
		}
		if right < len(h) && h[right] < h[smallest] {
			smallest = right
		}
		if smallest == i {
			return
		}
		h[i], h[smallest] = h[smallest], h[i]
		i = smallest
	}
}

// topPPrefilterMin is the candidate count from which keepTopP first narrows the candidates down
// by a weight threshold.
const topPPrefilterMin = 4096

// keepTopP keeps, in descending order of probability (ties by ascending id), each candidate whose
// preceding probability mass is below p of the total. On large vocabularies it first gathers the
// candidates at or above a weight threshold, lowering the threshold until they hold at least p of
// the mass: the kept set then lies entirely among them, because every other candidate is strictly
// less likely. It then finds the set by selection rather than by sorting (expected time linear in
// the number of gathered candidates), so even a flat distribution costs only a few passes.
func (s *Sampler) keepTopP(p float64) {
	total := 0.0
	for _, e := range s.weight {
		total += e
	}
	target := p * total
	threshold := 0.0
	if len(s.cand) >= topPPrefilterMin {
		threshold = 1e-4 // relative to the most likely token, whose weight is 1
	}
	for {
		s.byProb = s.byProb[:0]
		mass := 0.0
		for i, e := range s.weight {
			if e >= threshold {
				s.byProb = append(s.byProb, weightedID{id: s.cand[i], weight: e})
				mass += e
			}
		}
		if mass >= target || len(s.byProb) == len(s.cand) || threshold == 0 {
			break
		}
		threshold /= 256
		if threshold < 1e-300 {
			threshold = 0
		}
	}
	kept := selectTopMass(s.byProb, target)
	s.cand, s.weight = s.cand[:kept], s.weight[:kept]
	for i, c := range s.byProb[:kept] {
		s.cand[i], s.weight[i] = c.id, c.weight
	}
}

// selectTopMass reorders items so that its first n items are those that, in descending order of
// weight with ties by ascending id, have less than target weight before them, and returns n. With
// target > 0 at least one item is kept. It is quickselect on mass: items[:lo] are known to be kept
// (with total weight before), items[hi:] known to be dropped, and each round partitions
// items[lo:hi] around a pivot weight.
func selectTopMass(items []weightedID, target float64) int {
	lo, hi := 0, len(items)
	before := 0.0
	for lo < hi {
		pivot := medianOfThree(items[lo].weight, items[lo+(hi-lo)/2].weight, items[hi-1].weight)
		heavier, equal := partitionByWeight(items[lo:hi], pivot)
		heavierMass := 0.0
		for _, c := range items[lo : lo+heavier] {
			heavierMass += c.weight
		}
		if before+heavierMass >= target {
			// Even the first item equal to the pivot has target weight before it.
			hi = lo + heavier
			continue
		}
		before += heavierMass
		lo += heavier
		ties := items[lo : lo+equal]
		slices.SortFunc(ties, func(a, b weightedID) int { return cmp.Compare(a.id, b.id) })
		for range ties {
			if before >= target {
				return lo
			}
			before += items[lo].weight
			lo++
		}
	}
	return lo
}

// medianOfThree returns the middle value of a, b and c.
func medianOfThree(a, b, c float64) float64 {
	return max(min(a, b), min(max(a, b), c))
}

// partitionByWeight reorders items into those heavier than pivot, then those equal to it, then
// the lighter ones, and returns how many are heavier and how many equal.
func partitionByWeight(items []weightedID, pivot float64) (heavier, equal int) {
	// Dutch national flag: items[:lt] heavier, items[lt:i] equal, items[gt:] lighter.
	lt, i, gt := 0, 0, len(items)
	for i < gt {
		switch w := items[i].weight; {
		case w > pivot:
			items[lt], items[i] = items[i], items[lt]
			lt++
			i++
		case w < pivot:
			gt--
			items[i], items[gt] = items[gt], items[i]
		default:
			i++
		}
	}
	return lt, gt - lt
}

// keepIf removes the candidates whose weight fails keep, preserving order.
func (s *Sampler) keepIf(keep func(weight float64) bool) {
	n := 0
	for i, e := range s.weight {
		if keep(e) {
			s.cand[n], s.weight[n] = s.cand[i], e
			n++
		}
	}
	s.cand, s.weight = s.cand[:n], s.weight[:n]
}

// draw picks one candidate with probability proportional to its weight.
func (s *Sampler) draw() int {
	total := 0.0
	for _, e := range s.weight {
		total += e
	}
	u := s.rng.Float64() * total
	acc := 0.0
	for i, e := range s.weight {
		acc += e
		if u < acc {
			return int(s.cand[i])
		}
	}
	return int(s.cand[len(s.cand)-1])
}
