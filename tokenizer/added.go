package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of the added vocabulary.
type addedToken struct {
	id         int
	content    string
	singleWord bool
	lstrip     bool
	rstrip     bool
	normalized bool
	special    bool
}

// tokenTrie finds, at a position, the longest added token starting there.
type tokenTrie struct {
	nodes []trieNode
}

type trieNode struct {
	children map[byte]int32
	token    int32 // index into the token list, -1 if none ends here
}

func newTokenTrie() *tokenTrie {
	return &tokenTrie{nodes: []trieNode{{token: -1}}}
}

func (t *tokenTrie) insert(s string, token int) {
	n := int32(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		next, ok := t.nodes[n].children[c]
		if !ok {
			if t.nodes[n].children == nil {
				t.nodes[n].children = map[byte]int32{}
			}
			next = int32(len(t.nodes))
			t.nodes = append(t.nodes, trieNode{token: -1})
			t.nodes[n].children[c] = next
		}
		n = next
	}
	// The first token inserted with a given content wins.
	if t.nodes[n].token < 0 {
		t.nodes[n].token = int32(token)
	}
}

// longest returns the token index and end of the longest token at s[i:].
func (t *tokenTrie) longest(s string, i int) (token, end int) {
	token, end = -1, -1
	n := int32(0)
	for j := i; j < len(s); j++ {
		next, ok := t.nodes[n].children[s[j]]
		if !ok {
			break
		}
		n = next
		if tok := t.nodes[n].token; tok >= 0 {
			token, end = int(tok), j+1
		}
	}
	return token, end
}

// addedMatcher splits text around the added tokens of one kind (normalized
// or not), following AddedVocabulary::find_matches in added_vocabulary.rs.
type addedMatcher struct {
	trie   *tokenTrie
	tokens []*addedToken
	first  [256]bool // bytes that can start a token
	empty  bool
}

func newAddedMatcher() *addedMatcher {
	return &addedMatcher{trie: newTokenTrie(), empty: true}
}

func (m *addedMatcher) add(content string, tok *addedToken) {
	if content == "" {
		return
	}
	m.trie.insert(content, len(m.tokens))
	m.tokens = append(m.tokens, tok)
	m.first[content[0]] = true
	m.empty = false
}

// isWordChar is Rust regex's Unicode \w (Alphabetic, M, Nd, Pc,
// Join_Control), with letters and letter numbers standing in for Alphabetic.
func isWordChar(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r) ||
		unicode.Is(unicode.Pc, r) || unicode.Is(unicode.Nl, r) || r == '\u200c' || r == '\u200d'
}

// split calls emit for every stretch of s: text (id -1) or an added token.
// Empty text stretches are not reported. start is the byte offset in s.
func (m *addedMatcher) split(s string, emit func(text string, id int, start int)) {
	if m.empty {
		if s != "" {
			emit(s, -1, 0)
		}
		return
	}
	startOffset := 0
	i := 0
	for i < len(s) {
		if !m.first[s[i]] {
			i++
			continue
		}
		ti, end := m.trie.longest(s, i)
		if ti < 0 {
			i++
			continue
		}
		tok := m.tokens[ti]
		start, stop := i, end
		if tok.singleWord {
			before, _ := utf8.DecodeLastRuneInString(s[:start])
			after, _ := utf8.DecodeRuneInString(s[stop:])
			startOK := start == 0 || !isWordChar(before)
			stopOK := stop == len(s) || !isWordChar(after)
			if !startOK || !stopOK {
				// The matcher resumes after the rejected match.
				i = end
				continue
			}
		}
		if tok.lstrip {
			newStart := start
			for newStart > 0 {
				r, w := utf8.DecodeLastRuneInString(s[:newStart])
				if !unicode.IsSpace(r) {
					break
				}
				newStart -= w
			}
			start = max(newStart, startOffset)
		}
		if tok.rstrip {
			for stop < len(s) {
				r, w := utf8.DecodeRuneInString(s[stop:])
				if !unicode.IsSpace(r) {
					break
				}
				stop += w
			}
		}
		if startOffset < start {
			emit(s[startOffset:start], -1, startOffset)
		}
		emit("", tok.id, start)
		startOffset = stop
		i = stop
	}
	if startOffset < len(s) {
		emit(s[startOffset:], -1, startOffset)
	}
}
