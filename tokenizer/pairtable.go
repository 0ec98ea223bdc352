package tokenizer

// pairTable is an open-addressing hash table from a token pair
// (left<<32 | right) to (rank<<32 | merged id). It is built once at load
// time and only read afterwards; it is faster to build and to query than a
// Go map for the hundreds of thousands of merges of large vocabularies.
type pairTable struct {
	slots []pairSlot
	mask  uint64
	n     int
}

type pairSlot struct {
	key, val uint64
}

const emptyPairKey = ^uint64(0)

func newPairTable(capacity int) *pairTable {
	size := 16
	for size < capacity*2 {
		size <<= 1
	}
	t := &pairTable{slots: make([]pairSlot, size), mask: uint64(size - 1)}
	for i := range t.slots {
		t.slots[i].key = emptyPairKey
	}
	return t
}

func pairHash(key uint64) uint64 {
	key ^= key >> 33
	key *= 0xff51afd7ed558ccd
	key ^= key >> 33
	return key
}

// put inserts or overwrites key.
func (t *pairTable) put(key, val uint64) {
	if (t.n+1)*2 > len(t.slots) {
		t.grow()
	}
	i := pairHash(key) & t.mask
	for {
		s := &t.slots[i]
		if s.key == emptyPairKey {
			s.key, s.val = key, val
			t.n++
			return
		}
		if s.key == key {
			s.val = val
			return
		}
		i = (i + 1) & t.mask
	}
}

func (t *pairTable) grow() {
	old := t.slots
	nt := newPairTable(len(old))
	for _, s := range old {
		if s.key != emptyPairKey {
			nt.put(s.key, s.val)
		}
	}
	*t = *nt
}

// get returns the value stored for key.
func (t *pairTable) get(key uint64) (uint64, bool) {
	i := pairHash(key) & t.mask
	for {
		s := &t.slots[i]
		if s.key == key {
			return s.val, true
		}
		if s.key == emptyPairKey {
			return 0, false
		}
		i = (i + 1) & t.mask
	}
}
