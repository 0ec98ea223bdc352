package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"tether/model"
	"tether/tokenizer"
)

func init() {
	register("tokenize", "token ids of each input line, or text of id arrays with --decode", runTokenize)
}

func runTokenize(args []string) error {
	fs := newFlags("tokenize", "(--model M | --tokenizer FILE) [--text T] [--special] [--decode] [--json]",
		"echo 'Hello world' | tether tokenize --tokenizer ../shared/tokenizers/qwen3/tokenizer.json")
	ref := fs.String("model", "", "model directory or Hugging Face id")
	tokFile := fs.String("tokenizer", "", "a tokenizer.json file (instead of --model)")
	text := fs.String("text", "", "encode this text instead of reading lines from stdin")
	special := fs.Bool("special", false, "add the tokenizer's special tokens (e.g. BOS) like add_special_tokens=True")
	decode := fs.Bool("decode", false, "read JSON arrays of ids (one per line) and print the decoded text")
	skipSpecial := fs.Bool("skip-special", false, "with --decode: drop special tokens")
	asJSON := fs.Bool("json", false, "print each result as a JSON object with the input, ids and tokens")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tok, err := openTokenizer(*ref, *tokFile)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	handle := func(lineNo int, line string) error {
		if *decode {
			var ids []int
			if err := json.Unmarshal([]byte(line), &ids); err != nil {
				return fmt.Errorf("tokenize --decode: line %d: expected a JSON array of ids: %v", lineNo, err)
			}
			s, err := tok.Decode(ids, *skipSpecial)
			if err != nil {
				return fmt.Errorf("tokenize --decode: line %d: %w", lineNo, err)
			}
			if *asJSON {
				return writeJSONLine(out, map[string]any{"ids": ids, "text": s})
			}
			_, err = fmt.Fprintln(out, s)
			return err
		}
		ids, err := tok.Encode(line, *special)
		if err != nil {
			return fmt.Errorf("tokenize: line %d: %w", lineNo, err)
		}
		if ids == nil {
			ids = []int{}
		}
		if *asJSON {
			tokens := make([]string, len(ids))
			for i, id := range ids {
				tokens[i], _ = tok.Token(id)
			}
			return writeJSONLine(out, map[string]any{"text": line, "ids": ids, "tokens": tokens})
		}
		return writeJSONLine(out, ids)
	}
	if fs.Changed("text") {
		return handle(1, *text)
	}
	return eachLine(os.Stdin, handle)
}

// openTokenizer loads a tokenizer from a tokenizer.json file or a model reference.
func openTokenizer(ref, file string) (tokenizer.Tokenizer, error) {
	switch {
	case file != "" && ref != "":
		return nil, usageErrorf("give --model or --tokenizer, not both")
	case file != "":
		return tokenizer.LoadFile(file)
	case ref != "":
		m, err := model.Open(ref, model.Options{TokenizerOnly: true})
		if err != nil {
			return nil, err
		}
		defer m.Close()
		return m.Tokenizer, nil
	}
	return nil, usageErrorf("--model or --tokenizer is required (see --help)")
}

// eachLine calls fn for every line of r (without its newline; a final line
// without newline counts), numbering from 1.
func eachLine(r io.Reader, fn func(lineNo int, line string) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if len(line) > 0 || err == nil {
			if e := fn(n, strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")); e != nil {
				return e
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
	}
}

// writeJSONLine writes v as compact JSON on one line, without HTML escaping.
func writeJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
