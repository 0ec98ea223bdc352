package bench

import (
	"slices"
	"testing"

	"tether/internal/testmodels"
	"tether/model"
)

// TestBenchPathsMatchReference: bench drift's conversation prompt and the capability check's
// question prompt turn the fixture conversations (model/testdata/chat, rendered by the Python
// reference) into exactly the reference's token ids, for every fixture template and the plain
// format.
func TestBenchPathsMatchReference(t *testing.T) {
	f := testmodels.LoadChatFixtures(t)
	f.EachModel(t, func(t *testing.T, name string, thinking *bool, m *model.Model) {
		drift := f.Case(t, name, "multi_prompt_no_system", thinking)
		ids, err := chatPromptIDs(m, drift.Messages, 16)
		if err != nil {
			t.Fatal(err)
		}
		if want := testmodels.ReferenceIDs(t, m, drift); !slices.Equal(ids, want) {
			t.Errorf("drift prompt %v\nwant %v", ids, want)
		}
		user := f.Case(t, name, "user_prompt", thinking)
		ids, err = questionPrompt(m, user.Messages[0].Content)
		if err != nil {
			t.Fatal(err)
		}
		if want := testmodels.ReferenceIDs(t, m, user); !slices.Equal(ids, want) {
			t.Errorf("capability prompt %v\nwant %v", ids, want)
		}
	})
}
