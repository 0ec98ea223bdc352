package testmodels

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"tether/model"
	"tether/tokenizer"
	"tether/weights"
)

// ChatFixtures is model/testdata/chat/fixtures.json: conversations rendered
// by the Python reference (jinja2 and the reference pipeline's rendering
// policy, see model/testdata/chat/gen.py) for a few chat templates and for
// the plain format, which every command path that renders chats must
// reproduce byte for byte.
type ChatFixtures struct {
	Models map[string]ChatFixtureModel `json:"models"`
	Cases  []ChatFixtureCase           `json:"cases"`
}

// ChatFixtureModel says where a fixture model's template and tokenizer come
// from ("shared:NAME" is ../shared/tokenizers/NAME, other template paths are
// relative to the repository root, "stories260K" the bundled model) and the
// variables the template was rendered with.
type ChatFixtureModel struct {
	Template  string            `json:"template"`
	Tokenizer string            `json:"tokenizer"`
	Variables map[string]string `json:"variables"`
}

// ChatFixtureCase is one rendered conversation.
type ChatFixtureCase struct {
	Model               string              `json:"model"`
	Name                string              `json:"name"`
	Messages            []tokenizer.Message `json:"messages"`
	AddGenerationPrompt bool                `json:"add_generation_prompt"`
	// EnableThinking is the enable_thinking value the case was rendered
	// with; nil for templates that do not read it.
	EnableThinking *bool `json:"enable_thinking"`
	// Text is the reference rendering.
	Text string `json:"text"`
}

// repoRoot is the repository's root directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// LoadChatFixtures reads model/testdata/chat/fixtures.json.
func LoadChatFixtures(t testing.TB) *ChatFixtures {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(), "model", "testdata", "chat", "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f ChatFixtures
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("chat fixtures: %v", err)
	}
	return &f
}

// Case returns the case of a model, name and enable_thinking setting (nil
// for templates without one).
func (f *ChatFixtures) Case(t testing.TB, modelName, name string, thinking *bool) ChatFixtureCase {
	t.Helper()
	for _, c := range f.Cases {
		if c.Model == modelName && c.Name == name && (c.EnableThinking == nil) == (thinking == nil) &&
			(thinking == nil || *c.EnableThinking == *thinking) {
			return c
		}
	}
	t.Fatalf("chat fixtures: no case %s/%s (enable_thinking %v)", modelName, name, thinking)
	return ChatFixtureCase{}
}

// ThinkingSettings lists the enable_thinking settings the fixtures cover for
// a model: false and true for a template that reads it, else only nil.
func (f *ChatFixtures) ThinkingSettings(modelName string) []*bool {
	var out []*bool
	seen := map[string]bool{}
	for _, c := range f.Cases {
		if c.Model != modelName {
			continue
		}
		key := "nil"
		if c.EnableThinking != nil {
			key = fmt.Sprint(*c.EnableThinking)
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, c.EnableThinking)
		}
	}
	return out
}

// EachModel runs fn in a subtest for every model and enable_thinking setting of the fixtures,
// with the model opened for rendering (Model).
func (f *ChatFixtures) EachModel(t *testing.T, fn func(t *testing.T, name string, thinking *bool, m *model.Model)) {
	for name := range f.Models {
		for _, thinking := range f.ThinkingSettings(name) {
			label := name
			if thinking != nil {
				label += fmt.Sprintf("/enable_thinking=%t", *thinking)
			}
			t.Run(label, func(t *testing.T) {
				fn(t, name, thinking, f.Model(t, name, thinking))
			})
		}
	}
}

// Model opens a fixture model for rendering: a weightless model with the
// fixture's tokenizer, template and variables, or the bundled stories260K
// (no chat template) without weights. It skips the test when a tokenizer in
// ../shared is absent. thinking sets Model.EnableThinking (nil: false).
func (f *ChatFixtures) Model(t testing.TB, name string, thinking *bool) *model.Model {
	t.Helper()
	info, ok := f.Models[name]
	if !ok {
		t.Fatalf("chat fixtures: no model %q", name)
	}
	var m *model.Model
	if info.Tokenizer == "stories260K" {
		m = OpenWith(t, Stories260K(t), model.Options{NoWeights: true})
	} else {
		dir := filepath.Join(repoRoot(), "..", "shared", "tokenizers", strings.TrimPrefix(info.Tokenizer, "shared:"))
		if _, err := os.Stat(dir); err != nil {
			t.Skipf("%s absent (%v): the chat fixtures of %s need it", dir, err, name)
		}
		tok, err := loadTokenizer(dir)
		if err != nil {
			t.Fatal(err)
		}
		tc := &tokenizer.TokenizerConfig{BOSToken: info.Variables["bos_token"], EOSToken: info.Variables["eos_token"],
			PadToken: info.Variables["pad_token"], UnkToken: info.Variables["unk_token"]}
		file, src := templateSource(t, info.Template)
		m = &model.Model{Name: name, Config: &weights.Config{BOSTokenID: -1}, Tokenizer: tok, TokenizerConfig: tc,
			ChatTemplateSource: src, ChatTemplateFile: file}
	}
	m.EnableThinking = thinking != nil && *thinking
	return m
}

var (
	tokenizersMu sync.Mutex
	tokenizers   = map[string]tokenizer.Tokenizer{}
)

// loadTokenizer loads a tokenizer directory once per test binary (tokenizers are safe for
// concurrent use).
func loadTokenizer(dir string) (tokenizer.Tokenizer, error) {
	tokenizersMu.Lock()
	defer tokenizersMu.Unlock()
	if tok, ok := tokenizers[dir]; ok {
		return tok, nil
	}
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	tokenizers[dir] = tok
	return tok, nil
}

// templateSource reads a fixture template: "shared:NAME/tokenizer_config.json"
// (its chat_template) or a file under the repository root.
func templateSource(t testing.TB, where string) (string, string) {
	t.Helper()
	if rest, ok := strings.CutPrefix(where, "shared:"); ok {
		path := filepath.Join(repoRoot(), "..", "shared", "tokenizers", rest)
		tc, err := tokenizer.LoadTokenizerConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		return path, tc.ChatTemplates[tokenizer.DefaultChatTemplateName]
	}
	path := filepath.Join(repoRoot(), where)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, string(data)
}

// ReferenceIDs are the token ids of a reference rendering, encoded as the
// reference pipeline does: without added special tokens when a chat template
// wrote them (apply_chat_template(tokenize=True)), with BOS in the plain
// format.
func ReferenceIDs(t testing.TB, m *model.Model, c ChatFixtureCase) []int {
	t.Helper()
	withSpecial := m.ChatTemplateSource == ""
	ids, err := m.Tokenizer.Encode(c.Text, withSpecial)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
