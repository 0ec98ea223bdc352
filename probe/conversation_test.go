package probe

import (
	"strings"
	"testing"

	"tether/tokenizer"
)

// TestSpanChatTemplate: with the ChatML template, the span's tokens decode to exactly the
// response, start right after the assistant header (the add_generation_prompt rendering) and
// leave out the end-of-turn token and newline the template adds.
func TestSpanChatTemplate(t *testing.T) {
	m := openTiny(t, 1, "")
	p := NewPrompter(m)
	for _, tc := range []struct{ name, system, response string }{
		{"with system", "You are a pirate.", "Arr, the sea is wet."},
		{"empty system", "", "The moon is a rock."},
		{"padded response", "Be brief.", "  spaced out \n"},
		{"empty response", "Be brief.", ""},
		{"white space response", "Be brief.", " \n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Conversation{System: tc.system, Question: "What is the sea?", Response: tc.response}
			s, err := p.Span(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Tokenizer.Decode(s.Tokens[s.Start:s.End], false)
			if err != nil {
				t.Fatal(err)
			}
			// A token that straddles the content's edge (a space joined to a word) counts as
			// response, so compare without the white space around it.
			if strings.TrimSpace(got) != strings.TrimSpace(tc.response) || len(got) > len(tc.response) ||
				(tc.response != "" && s.Len() == 0) {
				t.Fatalf("span decodes to %q, want %q", got, strings.TrimSpace(tc.response))
			}
			prompt, err := p.Prompt(tc.system, c.Question)
			if err != nil {
				t.Fatal(err)
			}
			// The generation prompt is the start of the conversation and ends at the span start
			// (the response here has no leading space).
			if tc.response == strings.TrimLeft(tc.response, " ") && tc.response != "" {
				if s.Start != len(prompt) || !equalInts(s.Tokens[:s.Start], prompt) {
					t.Fatalf("span starts at %d, generation prompt has %d tokens", s.Start, len(prompt))
				}
			}
			tail, err := m.Tokenizer.Decode(s.Tokens[s.End:], false)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(strings.TrimLeft(tail, " \n"), "<|im_end|>") {
				t.Fatalf("after the span comes %q, want the end-of-turn token", tail)
			}
			whole, _ := m.RenderChat(append(messages(tc.system, c.Question, false),
				tokenizer.Message{Role: "assistant", Content: tc.response}), false)
			if all, _ := m.Tokenizer.Decode(s.Tokens, false); all != whole {
				t.Fatalf("span tokens decode to %q, want the rendered conversation %q", all, whole)
			}
		})
	}
}

// TestSpanFoldsSystemWhenTemplateRejectsIt: a template that raises on a system message makes the
// prompter prepend the system prompt to the user turn, detected from the template's error.
func TestSpanFoldsSystemWhenTemplateRejectsIt(t *testing.T) {
	m := openTiny(t, 1, noSystemTemplate)
	p := NewPrompter(m)
	if _, err := m.RenderChat([]tokenizer.Message{{Role: "system", Content: "x"}, {Role: "user", Content: "y"}}, true); err == nil {
		t.Fatal("the test template should reject a system message")
	}
	ids, err := p.Prompt("You are a pirate.", "What is the sea?")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := m.Tokenizer.Decode(ids, false)
	want := "<|im_start|>user\nYou are a pirate.\n\nWhat is the sea?<|im_end|>\n<|im_start|>model\n"
	if text != want {
		t.Fatalf("prompt %q, want %q", text, want)
	}
	if !p.FoldsSystem() {
		t.Fatal("FoldsSystem = false after the template rejected the system role")
	}
	s, err := p.Span(Conversation{System: "You are a pirate.", Question: "What is the sea?", Response: "Arr."})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Tokenizer.Decode(s.Tokens[s.Start:s.End], false); got != "Arr." {
		t.Fatalf("span %q, want %q", got, "Arr.")
	}
}

// TestSpanPlainModel: without a chat template the prompt is "<system>\n\n<question>\n\n" with BOS
// and the span is the response's tokens after it.
func TestSpanPlainModel(t *testing.T) {
	m := openStories(t)
	p := NewPrompter(m)
	if p.HasTemplate() {
		t.Fatal("stories260K should have no chat template")
	}
	ids, err := p.Prompt("Tell a story.", "Who is Lily?")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.PlainPrompt("Tell a story.\n\nWho is Lily?\n\n")
	if !equalInts(ids, want) || ids[0] != m.Config.BOSTokenID {
		t.Fatalf("prompt %v, want %v starting with BOS", ids, want)
	}
	s, err := p.Span(Conversation{System: "Tell a story.", Question: "Who is Lily?", Response: "Lily was a girl."})
	if err != nil {
		t.Fatal(err)
	}
	if s.Start != len(ids) || s.End != len(s.Tokens) || s.Len() == 0 {
		t.Fatalf("span [%d,%d) of %d tokens, prompt %d tokens", s.Start, s.End, len(s.Tokens), len(ids))
	}
	if got, _ := m.Continuation(s.Tokens[:s.Start], s.Tokens[s.Start:]); got != "Lily was a girl." {
		t.Fatalf("span continues the prompt with %q", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
