package main

import (
	"fmt"
	"os"

	"tether/conversation"
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
	file := fs.String("messages", "", `conversation file: [{"role": ..., "content": ...}, ...] or {"messages": [...]} (docs/conversations.md)`)
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

// readMessages reads a --messages file (package conversation). Any role is
// kept: the chat template decides what it accepts.
func readMessages(path string) ([]tokenizer.Message, error) {
	c, err := conversation.ReadOne(path)
	if err != nil {
		return nil, fmt.Errorf("template: --messages: %w", err)
	}
	return c.Messages, nil
}
