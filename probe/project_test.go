package probe

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tether/axis"
	"tether/internal/testmodels"
	"tether/model"
	"tether/tokenizer"
)

func sampleConversation(system bool) []tokenizer.Message {
	var msgs []tokenizer.Message
	if system {
		msgs = append(msgs, tokenizer.Message{Role: "system", Content: "You are a helpful assistant."})
	}
	return append(msgs,
		tokenizer.Message{Role: "user", Content: "What is the sea?"},
		tokenizer.Message{Role: "assistant", Content: "The sea is salt water."},
		tokenizer.Message{Role: "user", Content: "And the moon?"},
		tokenizer.Message{Role: "assistant", Content: "  A rock in the sky. "},
	)
}

// checkTurnSpans decodes each span and compares it with the turn's text.
func checkTurnSpans(t *testing.T, m *model.Model, msgs []tokenizer.Message, ids []int, spans []TurnSpan) {
	t.Helper()
	var want []int
	for i, msg := range msgs {
		if msg.Role == "assistant" {
			want = append(want, i)
		}
	}
	if len(spans) != len(want) {
		t.Fatalf("%d spans, want %d assistant turns", len(spans), len(want))
	}
	for k, s := range spans {
		if s.Turn != want[k] {
			t.Errorf("span %d is turn %d, want %d", k, s.Turn, want[k])
		}
		got, err := m.Tokenizer.Decode(ids[s.Start:s.End], false)
		if err != nil {
			t.Fatal(err)
		}
		if content := strings.TrimSpace(msgs[s.Turn].Content); strings.TrimSpace(got) != content {
			t.Errorf("turn %d decodes to %q, want %q", s.Turn, got, content)
		}
	}
}

func TestConversationSpansChatTemplate(t *testing.T) {
	m := openTiny(t, 3, "")
	for _, system := range []bool{false, true} {
		msgs := sampleConversation(system)
		ids, spans, err := ConversationSpans(m, msgs)
		if err != nil {
			t.Fatal(err)
		}
		checkTurnSpans(t, m, msgs, ids, spans)
		// The whole token list is the rendered conversation.
		whole, _ := m.RenderChat(msgs, false)
		if all, _ := m.Tokenizer.Decode(ids, false); all != whole {
			t.Errorf("tokens decode to %q, want %q", all, whole)
		}
	}
	// A single turn gives the same span as the rollout capture code (Prompter.Span).
	c := Conversation{System: "You are a pirate.", Question: "What is the sea?", Response: "Arr, wet."}
	ref, err := NewPrompter(m).Span(c)
	if err != nil {
		t.Fatal(err)
	}
	ids, spans, err := ConversationSpans(m, []tokenizer.Message{{Role: "system", Content: c.System}, {Role: "user", Content: c.Question}, {Role: "assistant", Content: c.Response}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, ref.Tokens) || spans[0].Start != ref.Start || spans[0].End != ref.End {
		t.Errorf("span [%d,%d) of %d tokens, Prompter.Span [%d,%d) of %d", spans[0].Start, spans[0].End, len(ids), ref.Start, ref.End, len(ref.Tokens))
	}
}

func TestConversationSpansFoldsSystem(t *testing.T) {
	m := openTiny(t, 3, noSystemTemplate)
	msgs := sampleConversation(true)
	ids, spans, err := ConversationSpans(m, msgs)
	if err != nil {
		t.Fatal(err)
	}
	checkTurnSpans(t, m, msgs, ids, spans)
	all, _ := m.Tokenizer.Decode(ids, false)
	if !strings.Contains(all, "You are a helpful assistant.\n\nWhat is the sea?") {
		t.Errorf("system prompt not folded into the first user turn: %q", all)
	}
}

func TestConversationSpansPlainModel(t *testing.T) {
	if _, err := os.Stat("../../shared/models/stories260K/stories260K.bin"); err != nil {
		t.Skip("../shared/models/stories260K is absent: the plain-model span test needs it")
	}
	m := testmodels.Open(t, testmodels.Stories260K(t))
	msgs := []tokenizer.Message{
		{Role: "user", Content: "Once upon a time"},
		{Role: "assistant", Content: "there was a cat."},
		{Role: "user", Content: "What did the cat do?"},
		{Role: "assistant", Content: "It played in the park."},
	}
	ids, spans, err := ConversationSpans(m, msgs)
	if err != nil {
		t.Fatal(err)
	}
	checkTurnSpans(t, m, msgs, ids, spans)
}

// tinyAxisFor writes an axis for the model with a random direction at every layer.
func tinyAxisFor(m *model.Model, hidden, layers int) *axis.Axis {
	a := &axis.Axis{Model: m.Name, Layers: layers, Hidden: hidden, Percentiles: []float64{25},
		Extra: map[string]string{axis.LayerKey: "1"}}
	for l := 0; l < layers; l++ {
		v, d := make([]float32, hidden), make([]float32, hidden)
		for j := range v {
			v[j] = float32(math.Sin(float64(7*l + 3*j + 1)))
		}
		a.Axis, a.DefaultMean = append(a.Axis, v), append(a.DefaultMean, d)
	}
	a.Tau = [][]float32{make([]float32, layers)}
	return a
}

func TestProjectConversationMatchesForward(t *testing.T) {
	m := openTiny(t, 4, "")
	a := tinyAxisFor(m, m.Config.HiddenSize, m.Config.NumLayers)
	if err := a.CheckModel(axis.ModelInfo{Name: m.Name, Layers: m.Config.NumLayers, Hidden: m.Config.HiddenSize, Dir: m.Dir}, false); err != nil {
		t.Fatal(err)
	}
	msgs := sampleConversation(true)
	layer, _ := axis.DefaultLayer(a)
	if layer != 1 {
		t.Fatalf("projection layer %d, want the metadata's 1", layer)
	}
	res, err := ProjectConversation(t.Context(), m, a, msgs, layer)
	if err != nil {
		t.Fatal(err)
	}
	ids, spans, err := ConversationSpans(m, msgs)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := a.Unit(layer)
	if len(res.Turns) != 2 {
		t.Fatalf("%d turns, want 2", len(res.Turns))
	}
	for k, s := range spans {
		mean := forwardMean(t, m, ids, s.Start, s.End, layer)
		var want float64
		for j, v := range mean {
			want += v * float64(u[j])
		}
		if got := res.Turns[k].Projection; math.Abs(got-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("turn %d: projection %v, independent forward %v", k, got, want)
		}
		if res.Turns[k].Tokens != s.End-s.Start || res.Turns[k].Turn != s.Turn {
			t.Errorf("turn %d: %+v, span %+v", k, res.Turns[k], s)
		}
	}
	if _, err := ProjectConversation(t.Context(), m, a, msgs, a.Layers); err == nil {
		t.Error("layer out of range: no error")
	}
}

func TestReadConversation(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body, want string // want: "" for success, else a piece of the error
		turns            int
	}{
		{"list", `[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]`, "", 2},
		{"wrapped", `{"conversation":[{"role":"system","content":"s"},{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`, "", 3},
		{"no assistant", `[{"role":"user","content":"hi"}]`, "no assistant message to project", 0},
		{"bad role", `[{"role":"robot","content":"hi"}]`, `role "robot"`, 0},
		{"late system", `[{"role":"user","content":"hi"},{"role":"system","content":"s"}]`, "only come first", 0},
		{"missing content", `[{"role":"user"}]`, `needs both`, 0},
		{"messages object", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`, "", 2},
		{"object without list", `{"turns":[]}`, `"conversation"`, 0},
		{"empty list", `{"messages":[]}`, `"messages": empty`, 0},
		{"not JSON", `hello`, "expected a JSON list", 0},
		{"broken JSON", `[{"role":`, "conversation", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			msgs, err := ReadConversation(path)
			if tc.want == "" {
				if err != nil || len(msgs) != tc.turns {
					t.Errorf("got %d turns, err %v; want %d turns", len(msgs), err, tc.turns)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v, want one naming %s and containing %q", err, path, tc.want)
			}
		})
	}
}
