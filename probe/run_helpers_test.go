package probe

import (
	"testing"

	"tether/engine"
	"tether/internal/testmodels"
	"tether/model"
)

// noSystemTemplate is a Gemma 2 style chat template that raises on a system message.
const noSystemTemplate = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" +
	"{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
	"{% if add_generation_prompt %}{{ '<|im_start|>model\\n' }}{% endif %}"

// writeTinyModel writes a random tiny chat model (ChatML test tokenizer) with the given seed;
// a non-empty template replaces the tokenizer config's chat template.
func writeTinyModel(t testing.TB, dir string, seed uint64, template string) string {
	t.Helper()
	testmodels.Write(t, dir, testmodels.TinyChat, seed)
	if template != "" {
		testmodels.SetChatTemplate(t, dir, template)
	}
	return dir
}

// openTiny writes and opens a tiny chat model.
func openTiny(t testing.TB, seed uint64, template string) *model.Model {
	t.Helper()
	return testmodels.Open(t, writeTinyModel(t, t.TempDir(), seed, template))
}

// tinyDataset is a data set of 2 roles x 2 prompts, 2 default prompts and 2 questions.
func tinyDataset() *Dataset {
	return &Dataset{
		Default: Role{Name: DefaultRoleName, Prompts: []string{"", "You are {model_name}, an AI assistant."}},
		Roles: []Role{
			{Name: "pirate", Prompts: []string{"You are a pirate.", "Speak as a pirate captain."}},
			{Name: "poet", Prompts: []string{"You are a poet.", "Answer in verse."},
				EvalPrompt: "Does this answer sound like a poet? {question} => {answer}. Score 0-3."},
		},
		Questions: []Question{{ID: 0, Text: "What is the sea?"}, {ID: 7, Text: "Tell me about the moon."}},
	}
}

// forwardMean computes, independently of Capture, the mean of the residual stream after layer
// over tokens[start:end], running the engine on the one sequence alone.
func forwardMean(t testing.TB, m *model.Model, tokens []int, start, end, layer int) []float64 {
	t.Helper()
	res, err := m.Engine.Forward(t.Context(), [][]int{tokens}, engine.ForwardOptions{CaptureLayers: []int{layer}})
	if err != nil {
		t.Fatal(err)
	}
	states := res.Captured[layer][0]
	out := make([]float64, m.Config.HiddenSize)
	for p := start; p < end; p++ {
		for j, v := range states[p] {
			out[j] += float64(v)
		}
	}
	for j := range out {
		if end > start {
			out[j] /= float64(end - start)
		}
	}
	return out
}
