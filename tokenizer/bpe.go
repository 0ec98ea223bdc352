package tokenizer

import (
	"fmt"
	"sync"
	"unicode/utf8"
)

// bpeModel is the "BPE" model of tokenizers (models/bpe): a vocabulary, a
// ranked list of merges, and the unknown-token and byte-fallback rules.
type bpeModel struct {
	vocab  map[string]int
	tokens []string // id -> token; "" where the vocabulary has no such id

	// merges maps a pair (left<<32 | right) to (rank<<32 | merged id).
	merges *pairTable

	unkID        int // -1 when there is no unk_token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix

	// byteFallbackID[b] is the id of "<0xHH>" (-1 if absent).
	byteFallbackID [256]int32
	// byteLevelID[b] is the id of the byte-level character of b (-1 if absent).
	byteLevelID [256]int32

	cache *bpeCache
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// init derives the lookup tables once vocab, tokens and merges are set.
func (m *bpeModel) init() {
	for b := 0; b < 256; b++ {
		m.byteFallbackID[b] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteFallbackID[b] = int32(id)
		}
		m.byteLevelID[b] = -1
		if id, ok := m.vocab[byteToString[b]]; ok {
			m.byteLevelID[b] = int32(id)
		}
	}
	m.cache = &bpeCache{entries: make(map[string][]int32)}
}

// bpeCache remembers the ids of recently seen pre-tokens.
type bpeCache struct {
	mu      sync.RWMutex
	entries map[string][]int32
}

const (
	bpeCacheMaxEntries = 50000
	bpeCacheMaxKey     = 128
)

func (c *bpeCache) get(key string) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.entries[key]
	c.mu.RUnlock()
	return ids, ok
}

func (c *bpeCache) put(key string, ids []int32) {
	c.mu.Lock()
	if len(c.entries) >= bpeCacheMaxEntries {
		clear(c.entries)
	}
	c.entries[key] = ids
	c.mu.Unlock()
}

// bpeScratch holds per-call buffers.
type bpeScratch struct {
	mapped []byte
	syms   []int32
	ranks  []uint32
	heap   []uint64
	links  []bpeSymbol
}

var scratchPool = sync.Pool{New: func() any { return new(bpeScratch) }}

// tokenize appends the ids of one pre-token. With byteLevel the text is
// first mapped through the byte-level alphabet.
func (m *bpeModel) tokenize(text string, byteLevel bool, out []int) []int {
	if text == "" {
		return out
	}
	cacheable := len(text) <= bpeCacheMaxKey
	if cacheable {
		if ids, ok := m.cache.get(text); ok {
			for _, id := range ids {
				out = append(out, int(id))
			}
			return out
		}
	}
	sc := scratchPool.Get().(*bpeScratch)
	defer scratchPool.Put(sc)

	word := text
	if byteLevel {
		sc.mapped = byteLevelEncode(sc.mapped[:0], text)
	}
	if m.ignoreMerges {
		var id int
		var ok bool
		if byteLevel {
			id, ok = m.vocab[string(sc.mapped)]
		} else {
			id, ok = m.vocab[word]
		}
		if ok {
			if cacheable {
				m.cache.put(text, []int32{int32(id)})
			}
			return append(out, id)
		}
	}
	sc.syms = m.initialSymbols(sc, text, byteLevel)
	syms := m.mergeAll(sc, sc.syms)
	start := len(out)
	for _, id := range syms {
		out = append(out, int(id))
	}
	if cacheable {
		ids := make([]int32, len(out)-start)
		for i, id := range out[start:] {
			ids[i] = int32(id)
		}
		m.cache.put(text, ids)
	}
	return out
}

// initialSymbols splits a word into characters and looks each up, applying
// the affixes, byte fallback and unknown-token rules (merge_word in
// models/bpe/model.rs).
func (m *bpeModel) initialSymbols(sc *bpeScratch, text string, byteLevel bool) []int32 {
	syms := sc.syms[:0]
	if byteLevel && m.prefix == "" && m.suffix == "" {
		fast := true
		for i := 0; i < len(text); i++ {
			id := m.byteLevelID[text[i]]
			if id < 0 {
				fast = false
				break
			}
			syms = append(syms, id)
		}
		if fast {
			return syms
		}
		syms = syms[:0]
	}
	unkID, unkPending := int32(-1), false
	flushUnk := func() {
		if unkPending {
			syms = append(syms, unkID)
			unkPending = false
		}
	}
	n := len(text)
	if !byteLevel {
		n = utf8.RuneCountInString(text)
	}
	pos := 0
	for k := 0; k < n; k++ {
		var ch string
		if byteLevel {
			ch = byteToString[text[pos]]
			pos++
		} else {
			_, w := utf8.DecodeRuneInString(text[pos:])
			ch = text[pos : pos+w]
			pos += w
		}
		s := ch
		if k > 0 && m.prefix != "" {
			s = m.prefix + s
		}
		if k == n-1 && m.suffix != "" {
			s = s + m.suffix
		}
		if id, ok := m.vocab[s]; ok {
			flushUnk()
			syms = append(syms, int32(id))
			continue
		}
		if m.byteFallback {
			all := true
			for i := 0; i < len(s); i++ {
				if m.byteFallbackID[s[i]] < 0 {
					all = false
					break
				}
			}
			if all {
				for i := 0; i < len(s); i++ {
					syms = append(syms, m.byteFallbackID[s[i]])
				}
				continue
			}
		}
		if m.unkID >= 0 {
			if unkPending && !m.fuseUnk {
				syms = append(syms, unkID)
			}
			unkID, unkPending = int32(m.unkID), true
		}
	}
	flushUnk()
	return syms
}

// mergeAll applies merges, lowest rank first and leftmost among equal
// ranks, until none applies (Word::merge_all).
func (m *bpeModel) mergeAll(sc *bpeScratch, syms []int32) []int32 {
	if len(syms) < 2 {
		return syms
	}
	if len(syms) > 64 {
		return m.mergeAllHeap(sc, syms)
	}
	const none = ^uint32(0)
	ranks := sc.ranks[:0]
	rankOf := func(a, b int32) uint32 {
		if v, ok := m.merges.get(pairKey(a, b)); ok {
			return uint32(v >> 32)
		}
		return none
	}
	for i := 0; i+1 < len(syms); i++ {
		ranks = append(ranks, rankOf(syms[i], syms[i+1]))
	}
	for {
		best, bi := none, -1
		for i, r := range ranks {
			if r < best {
				best, bi = r, i
			}
		}
		if bi < 0 {
			break
		}
		v, _ := m.merges.get(pairKey(syms[bi], syms[bi+1]))
		syms[bi] = int32(uint32(v))
		syms = append(syms[:bi+1], syms[bi+2:]...)
		ranks = append(ranks[:bi], ranks[bi+1:]...)
		if bi > 0 {
			ranks[bi-1] = rankOf(syms[bi-1], syms[bi])
		}
		if bi < len(ranks) {
			ranks[bi] = rankOf(syms[bi], syms[bi+1])
		}
	}
	sc.ranks = ranks
	return syms
}

type bpeSymbol struct {
	id         int32
	prev, next int32
	alive      bool
}

// mergeAllHeap is mergeAll for long words: a priority queue keyed by
// (rank, position) over a linked list of symbols.
func (m *bpeModel) mergeAllHeap(sc *bpeScratch, syms []int32) []int32 {
	links := sc.links[:0]
	for i, id := range syms {
		links = append(links, bpeSymbol{id: id, prev: int32(i - 1), next: int32(i + 1), alive: true})
	}
	links[len(links)-1].next = -1
	h := sc.heap[:0]
	for i := 0; i+1 < len(links); i++ {
		if v, ok := m.merges.get(pairKey(links[i].id, links[i+1].id)); ok {
			h = heapPush(h, v>>32<<32|uint64(i))
		}
	}
	for len(h) > 0 {
		var top uint64
		top, h = heapPop(h)
		pos := int32(uint32(top))
		rank := top >> 32
		s := &links[pos]
		if !s.alive || s.next < 0 {
			continue
		}
		right := &links[s.next]
		v, ok := m.merges.get(pairKey(s.id, right.id))
		if !ok || v>>32 != rank {
			continue
		}
		s.id = int32(uint32(v))
		right.alive = false
		s.next = right.next
		if s.next >= 0 {
			links[s.next].prev = pos
		}
		if s.prev >= 0 {
			if v2, ok := m.merges.get(pairKey(links[s.prev].id, s.id)); ok {
				h = heapPush(h, v2>>32<<32|uint64(s.prev))
			}
		}
		if s.next >= 0 {
			if v2, ok := m.merges.get(pairKey(s.id, links[s.next].id)); ok {
				h = heapPush(h, v2>>32<<32|uint64(pos))
			}
		}
	}
	out := syms[:0]
	for i := int32(0); i >= 0; i = links[i].next {
		out = append(out, links[i].id)
	}
	sc.links, sc.heap = links, h
	return out
}

func heapPush(h []uint64, v uint64) []uint64 {
	h = append(h, v)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	return h
}

func heapPop(h []uint64) (uint64, []uint64) {
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && h[r] < h[l] {
			c = r
		}
		if h[i] <= h[c] {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return top, h
}
