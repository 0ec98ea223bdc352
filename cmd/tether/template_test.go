package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tether/tokenizer"
)

// TestTemplateMessages renders conversation files with the test tokenizer's
// ChatML template: each form of the file gives the ChatML text written out
// here by hand, a role the template accepts but chat does not (tool) is kept,
// and a broken file is refused with its name, message and field.
func TestTemplateMessages(t *testing.T) {
	dir := t.TempDir()
	if err := tokenizer.WriteTestTokenizer(dir, 300); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>tool\n42<|im_end|>\n<|im_start|>assistant\n"
	msgs := `[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "tool", "content": "42"}]`
	for name, body := range map[string]string{
		"list.json":      msgs,
		"messages.json":  `{"id": "x", "messages": ` + msgs + `}`,
		"reference.json": `{"persona": "p", "conversation": ` + msgs + `}`,
	} {
		out, err := captureStdout(t, func() error {
			return runTemplate([]string{"--model", dir, "--messages", write(name, body), "--add-generation-prompt"})
		})
		if err != nil || out != want {
			t.Errorf("%s: got %q, %v; want %q", name, out, err, want)
		}
	}
	bad := write("bad.json", `{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant"}]}`)
	err := runTemplate([]string{"--model", dir, "--messages", bad})
	for _, w := range []string{bad, "message 1", `"messages[1].content"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not mention %q", err, w)
		}
	}
}
