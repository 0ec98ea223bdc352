package probe

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tether/internal/testmodels"
	"tether/model"
	"tether/tokenizer"
	"tether/tokenizer/chattemplate"
	"tether/weights"
)

// spanText returns the response span of c and the text its tokens decode to.
func spanText(t *testing.T, m *model.Model, p *Prompter, c Conversation) (Span, string) {
	t.Helper()
	s, err := p.Span(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Tokenizer.Decode(s.Tokens[s.Start:s.End], false)
	if err != nil {
		t.Fatal(err)
	}
	return s, got
}

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
			s, got := spanText(t, m, p, c)
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
				if s.Start != len(prompt) || !slices.Equal(s.Tokens[:s.Start], prompt) {
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
			whole, _ := m.RenderChat(append(messages(tc.system, c.Question),
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
	tmpl, err := m.ChatTemplate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmpl.Render([]tokenizer.Message{{Role: "system", Content: "x"}, {Role: "user", Content: "y"}}, chattemplate.Options{}); err == nil {
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
	if fold, err := m.SystemFold(); fold != model.FoldRaises || err != nil {
		t.Fatalf("SystemFold = %q, %v after the template rejected the system role, want %q", fold, err, model.FoldRaises)
	}
	s, err := p.Span(Conversation{System: "You are a pirate.", Question: "What is the sea?", Response: "Arr."})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Tokenizer.Decode(s.Tokens[s.Start:s.End], false); got != "Arr." {
		t.Fatalf("span %q, want %q", got, "Arr.")
	}
}

// TestSpanPlainModel: without a chat template the prompt is the plain format
// "User: <system>\n\n<question>\nAssistant:" with BOS, and the span is the response's tokens
// after it, without the newline that ends the turn.
func TestSpanPlainModel(t *testing.T) {
	m := testmodels.Open(t, testmodels.Stories260K(t))
	p := NewPrompter(m)
	if m.HasChatTemplate() {
		t.Fatal("stories260K should have no chat template")
	}
	ids, err := p.Prompt("Tell a story.", "Who is Lily?")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.PlainPrompt("User: Tell a story.\n\nWho is Lily?\nAssistant:")
	if !slices.Equal(ids, want) || ids[0] != m.Config.BOSTokenID {
		t.Fatalf("prompt %v, want %v starting with BOS", ids, want)
	}
	s, err := p.Span(Conversation{System: "Tell a story.", Question: "Who is Lily?", Response: "Lily was a girl."})
	if err != nil {
		t.Fatal(err)
	}
	if s.Start != len(ids) || !slices.Equal(s.Tokens[:s.Start], ids) || s.Len() == 0 {
		t.Fatalf("span [%d,%d) of %d tokens, prompt %d tokens", s.Start, s.End, len(s.Tokens), len(ids))
	}
	if got, _ := m.Continuation(s.Tokens[:s.Start], s.Tokens[s.Start:s.End]); strings.TrimSpace(got) != "Lily was a girl." {
		t.Fatalf("span continues the prompt with %q", got)
	}
	if rest, _ := m.Continuation(s.Tokens[:s.End], s.Tokens[s.End:]); rest != "\n" {
		t.Fatalf("after the span comes %q, want the newline that ends the turn", rest)
	}
}

// sharedChatModel builds a weightless model.Model from a tokenizer directory in ../shared (the
// Prompter needs only the tokenizer, its config and the template).
func sharedChatModel(t *testing.T, name string) *model.Model {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "tokenizers", name)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("../shared/tokenizers/%s not present (%v)", name, err)
	}
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tokenizer.LoadTokenizerConfig(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	src, ok := tc.ChatTemplates[tokenizer.DefaultChatTemplateName]
	if !ok {
		t.Fatalf("%s: no chat template", dir)
	}
	return &model.Model{Name: name, Config: &weights.Config{BOSTokenID: -1}, Tokenizer: tok, TokenizerConfig: tc,
		ChatTemplateSource: src, ChatTemplateFile: filepath.Join(dir, "tokenizer_config.json")}
}

// TestSpanRealTemplates: with the chat templates of Qwen 3, Llama 3 and Gemma 3, the response
// span decodes to the response and is followed by the template's end-of-turn token.
func TestSpanRealTemplates(t *testing.T) {
	for _, tc := range []struct{ dir, endOfTurn string }{
		{"qwen3", "<|im_end|>"},
		{"llama3", "<|eot_id|>"},
		{"gemma3", "<end_of_turn>"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			m := sharedChatModel(t, tc.dir)
			p := NewPrompter(m)
			for _, c := range []Conversation{
				{System: "You are a lighthouse keeper on a remote island.", Question: "What do you see tonight?", Response: "Fog, mostly. And the beam sweeping over black water."},
				{Question: "Who are you?", Response: "I am an assistant."},
			} {
				if tc.dir == "qwen3" && c.Question == "Who are you?" {
					// A reasoning block the model wrote anyway: the span is the answer after it.
					s, err := p.Span(Conversation{Question: c.Question, Response: "<think>\nhmm\n</think>\n\n" + c.Response})
					if err != nil {
						t.Fatal(err)
					}
					if got, _ := m.Tokenizer.Decode(s.Tokens[s.Start:s.End], false); strings.TrimSpace(got) != c.Response {
						t.Fatalf("span after a think block: %q", got)
					}
				}
				s, got := spanText(t, m, p, c)
				if strings.TrimSpace(got) != c.Response {
					t.Fatalf("span decodes to %q, want %q", got, c.Response)
				}
				tail, _ := m.Tokenizer.Decode(s.Tokens[s.End:], false)
				if !strings.HasPrefix(tail, tc.endOfTurn) {
					t.Fatalf("after the span: %q, want %s first", tail, tc.endOfTurn)
				}
				prompt, err := p.Prompt(c.System, c.Question)
				if err != nil {
					t.Fatal(err)
				}
				if tc.dir == "qwen3" {
					text, _ := m.Tokenizer.Decode(prompt, false)
					if !strings.HasSuffix(text, "<|im_start|>assistant\n<think>\n\n</think>\n\n") {
						t.Fatalf("qwen3 prompt %q: want thinking off (an empty think block)", text)
					}
				}
				head, _ := m.Tokenizer.Decode(s.Tokens[:s.Start], false)
				promptText, _ := m.Tokenizer.Decode(prompt, false)
				if !strings.HasPrefix(head, strings.TrimRight(promptText, "\n")) {
					t.Fatalf("conversation before the span %q does not start with the generation prompt %q", head, promptText)
				}
			}
		})
	}
}
