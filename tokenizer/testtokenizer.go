package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Special tokens of the test tokenizer, the last three ids below vocabSize.
var testSpecialTokens = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// chatMLTemplate is the usual ChatML chat template.
const chatMLTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

// WriteTestTokenizer writes a small byte-level BPE tokenizer.json and a
// tokenizer_config.json (ChatML chat template, bos/eos) into dir, for random
// test models: ids 0..255 are the bytes, then merges learned from a short
// embedded English text (as many as fit), then unused filler tokens if the
// text runs out of merges, and <|endoftext|>, <|im_start|>, <|im_end|> as
// the last three ids. Every id is below vocabSize, which must be >= 260.
// The output depends only on vocabSize.
func WriteTestTokenizer(dir string, vocabSize int) error {
	if vocabSize < 260 {
		return fmt.Errorf("tokenizer: WriteTestTokenizer: vocabSize %d: expected at least 260 (256 bytes, 3 special tokens and one merge)", vocabSize)
	}
	if vocabSize > maxVocabID {
		return fmt.Errorf("tokenizer: WriteTestTokenizer: vocabSize %d: expected at most %d", vocabSize, maxVocabID)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	nSpecial := len(testSpecialTokens)
	vocab, merges := trainByteLevelBPE(testTrainingText, vocabSize-nSpecial)
	for i := 0; len(vocab) < vocabSize-nSpecial; i++ {
		vocab = append(vocab, fmt.Sprintf("<|unused_%d|>", i))
	}
	var added []addedTokenSpec
	for _, s := range testSpecialTokens {
		added = append(added, addedTokenSpec{ID: len(vocab), Content: s, Special: true})
		vocab = append(vocab, s)
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	spec := &tokenizerFileSpec{
		addedTokens:   added,
		preTokenizer:  byteLevel,
		postProcessor: map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
		decoder:       byteLevel,
		model: map[string]any{"dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false},
		vocab:  vocab,
		merges: merges,
	}
	if err := writeTokenizerJSON(filepath.Join(dir, "tokenizer.json"), spec); err != nil {
		return err
	}
	addedDecoder := map[string]any{}
	for _, a := range added {
		addedDecoder[fmt.Sprint(a.ID)] = map[string]any{"content": a.Content, "lstrip": false, "normalized": false,
			"rstrip": false, "single_word": false, "special": true}
	}
	return writeJSONFile(filepath.Join(dir, "tokenizer_config.json"), map[string]any{
		"add_bos_token":                false,
		"add_prefix_space":             false,
		"added_tokens_decoder":         addedDecoder,
		"bos_token":                    "<|im_start|>",
		"eos_token":                    "<|im_end|>",
		"pad_token":                    "<|endoftext|>",
		"unk_token":                    "<|endoftext|>",
		"chat_template":                chatMLTemplate,
		"clean_up_tokenization_spaces": false,
		"model_max_length":             8192,
		"tokenizer_class":              "GPT2Tokenizer",
	})
}

// trainByteLevelBPE learns merges on text split by the GPT-2 regex, most
// frequent pair first (ties broken by the pair's strings, so the result is
// deterministic), until the vocabulary has maxVocab tokens or no pair occurs
// twice. The vocabulary starts with the 256 byte-level characters.
func trainByteLevelBPE(text string, maxVocab int) (vocab []string, merges [][2]string) {
	for b := 0; b < 256; b++ {
		vocab = append(vocab, byteToString[b])
	}
	known := map[string]bool{}
	for _, v := range vocab {
		known[v] = true
	}
	type word struct {
		syms  []string
		count int
	}
	counts := map[string]int{}
	gpt2Matcher{}.findAll(text, func(start, end int) { counts[text[start:end]]++ })
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([]word, 0, len(keys))
	for _, k := range keys {
		w := word{count: counts[k]}
		for i := 0; i < len(k); i++ {
			w.syms = append(w.syms, byteToString[k[i]])
		}
		words = append(words, w)
	}
	for len(vocab) < maxVocab {
		pairCounts := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairCounts[[2]string{w.syms[i], w.syms[i+1]}] += w.count
			}
		}
		var best [2]string
		bestN := 1
		for p, n := range pairCounts {
			if n > bestN || (n == bestN && n > 1 && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
				best, bestN = p, n
			}
		}
		if bestN < 2 {
			break
		}
		merged := best[0] + best[1]
		merges = append(merges, best)
		if !known[merged] {
			known[merged] = true
			vocab = append(vocab, merged)
		}
		for wi := range words {
			syms := words[wi].syms
			out := syms[:0]
			for i := 0; i < len(syms); i++ {
				if i+1 < len(syms) && syms[i] == best[0] && syms[i+1] == best[1] {
					out = append(out, merged)
					i++
				} else {
					out = append(out, syms[i])
				}
			}
			words[wi].syms = out
		}
	}
	return vocab, merges
}

// testTrainingText is original English prose used to learn the merges of
// WriteTestTokenizer.
var testTrainingText = strings.Join([]string{
	"Once there was a small town by the sea where the wind always smelled of salt and bread.",
	"Every morning the baker opened her shop before the sun came up, and the fishermen stopped by",
	"for warm rolls on their way to the boats. The children of the town liked to sit on the wall by",
	"the harbor and count the boats as they went out, one by one, until the last sail was gone.",
	"One day a girl named Mira found a bottle on the beach. Inside the bottle there was a letter",
	"written in blue ink. The letter said: \"Whoever finds this, please write back. I am alone on an",
	"island and I would like a friend.\" Mira showed the letter to her brother, who laughed at first,",
	"but then he helped her write an answer. They told the stranger about the town, the baker, the",
	"boats and the wall by the harbor. They put the answer in the same bottle and threw it into the",
	"waves as far as they could. Weeks went by and nothing happened. Then, on a grey afternoon, a",
	"small boat with a red sail came into the harbor. An old man stepped onto the pier, holding the",
	"bottle in his hand. \"I think you wrote to me,\" he said, and smiled. He stayed in the town for",
	"the rest of the summer. He taught the children how to tie knots, how to read the clouds and how",
	"to tell the time by the tide. When autumn came he sailed away again, but every year, on the",
	"first warm day of spring, a bottle with a letter in blue ink would wash up on the beach.",
	"The model reads the question, thinks about it, and then answers as clearly as it can.",
	"If the answer is not known, it says so. It does not make up facts, and it is polite and kind.",
	"Numbers like 1, 2, 3, 10, 42, 100 and 2024 appear in text, as do dates such as 12/05/1999.",
	"The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with one step.",
	"def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(i, add(i, i))\n",
	"She said that they would meet at the station at noon, but the train was late and it was raining.",
	"What is the capital of France? The capital of France is Paris. What is two plus two? It is four.",
	"Thank you for your help! You are welcome. Could you please explain how this works?",
	"In the beginning the system was simple, and only later did it grow into something complicated.",
}, "\n")
