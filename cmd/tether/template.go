package main

import (
	"encoding/json"
	"fmt"
	"os"

	"tether/model"
	"tether/tokenizer"
)

func init() {
	register("template", "print the exact chat prompt tether renders for a conversation (chat template and chat options)", runTemplate)
}

func runTemplate(args []string) error {
	fs := newFlags("template", "--model M --messages FILE.json [--add-generation-prompt] [--enable-thinking]",
		`tether template --model DIR --messages chat.json --add-generation-prompt   # chat.json: [{"role":"user","content":"Hi"}]`)
	ref := fs.String("model", "", "model directory or Hugging Face id")
	file := fs.String("messages", "", `JSON file: [{"role": ..., "content": ...}, ...] or {"messages": [...]}`)
	addGen := fs.Bool("add-generation-prompt", false, "end with the assistant turn's opening")
	thinking := addThinkingFlag(fs)
	if err := parseFlags(fs, args, "model", "messages"); err != nil {
		return err
	}
	msgs, err := readMessages(*file)
	if err != nil {
		return err
	}
	m, err := model.Open(*ref, model.Options{TokenizerOnly: true, EnableThinking: *thinking})
	if err != nil {
		return err
	}
	defer m.Close()
	text, err := m.RenderChat(msgs, *addGen)
	if err != nil {
		return err
	}
	_, err = os.Stdout.WriteString(text)
	return err
}

// readMessages reads a conversation: a JSON array of {role, content} or an
// object with a "messages" (or "conversation") array.
func readMessages(path string) ([]tokenizer.Message, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var msgs []tokenizer.Message
	if err := json.Unmarshal(data, &msgs); err != nil {
		var wrapped struct {
			Messages     []tokenizer.Message `json:"messages"`
			Conversation []tokenizer.Message `json:"conversation"`
		}
		if err2 := json.Unmarshal(data, &wrapped); err2 != nil {
			return nil, fmt.Errorf("%s: expected a JSON array of {\"role\", \"content\"} or {\"messages\": [...]}: %v", path, err)
		}
		msgs = append(wrapped.Messages, wrapped.Conversation...)
	}
	for i, m := range msgs {
		if m.Role == "" {
			return nil, fmt.Errorf("%s: message %d: field \"role\" is missing or empty", path, i)
		}
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%s: no messages", path)
	}
	return msgs, nil
}
