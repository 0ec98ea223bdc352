package probe

import (
	"fmt"
	"os"
	"path/filepath"

	"tether/axis"
	"tether/model"
	"tether/runstore"
)

// The files of a run directory (format RunFormat).
const (
	RunFormat        = "tether-run/1"
	ManifestFileName = "run.json"
	RolloutsFileName = "rollouts.jsonl"
	ActivationsDir   = "activations"
)

// Manifest is a run's run.json: the model, the data set and the settings the run was started
// with. A run is resumed only with the same model, data set and settings.
type Manifest struct {
	Format       string `json:"format"`
	Model        string `json:"model"`
	ModelDir     string `json:"model_dir"`
	Architecture string `json:"architecture"`
	Layers       int    `json:"layers"`
	HiddenSize   int    `json:"hidden_size"`
	// ConfigSHA256 is the hex sha256 of the model's config.json bytes.
	ConfigSHA256 string      `json:"config_sha256"`
	Dataset      DatasetInfo `json:"dataset"`
	Settings     RunSettings `json:"settings"`
	// Rendering is how the run rendered its conversations; nil in a run.json written before
	// tether recorded it.
	Rendering *RunRendering `json:"rendering,omitempty"`
	Created   string        `json:"created"`
}

// RunRendering is how a run turned its conversations into tokens: the model's chat rendering
// (format, template sha256, enable_thinking, fold mode; see model.Rendering), whether that folded
// the run's system prompts into the user turn, and the name that replaced {model_name}.
type RunRendering struct {
	model.Rendering
	// SystemFolded reports whether system prompts were folded into the first user turn: the
	// fold mode folds and the data set has a non-empty system prompt.
	SystemFolded bool `json:"system_folded"`
	// ModelName replaced {model_name} in the prompts.
	ModelName string `json:"model_name"`
}

// EnableThinking is the enable_thinking setting the run rendered its chats with (false when its
// template does not read it or run.json predates the record): the run's model is opened with it
// (model.Options.EnableThinking) to render the run's conversations again the same way.
func (m Manifest) EnableThinking() bool {
	return m.Rendering != nil && m.Rendering.EnableThinking != nil && *m.Rendering.EnableThinking
}

// runRendering describes how a run of data set d with m renders, {model_name} being modelName.
func runRendering(m *model.Model, d *Dataset, modelName string) (*RunRendering, error) {
	r, err := m.ChatRendering()
	if err != nil {
		return nil, fmt.Errorf("probe: run: %w", err)
	}
	system := false
	for _, role := range append([]Role{d.Default}, d.Roles...) {
		for _, p := range role.Prompts {
			system = system || p != ""
		}
	}
	return &RunRendering{Rendering: r, SystemFolded: system && r.Folds(), ModelName: modelName}, nil
}

// String describes the rendering in one line.
func (r *RunRendering) String() string {
	if r == nil {
		return "not recorded (a run started before tether recorded how it renders chats)"
	}
	return fmt.Sprintf("%s, {model_name}=%q", r.Rendering, r.ModelName)
}

// DatasetInfo describes the data set of a run.
type DatasetInfo struct {
	// Roles is the number of roles (the default excluded).
	Roles int `json:"roles"`
	// PromptsPerRole is the largest number of prompts of a role (the default included).
	PromptsPerRole int `json:"prompts_per_role"`
	Questions      int `json:"questions"`
	// Source is "builtin", or "roles=<dir|builtin> questions=<file|builtin>".
	Source string `json:"source"`
}

// RunSettings are the generation settings of a run.
type RunSettings struct {
	Samples     int     `json:"samples"`
	MaxTokens   int     `json:"max_tokens"`
	Temperature float64 `json:"temperature"`
	TopP        float64 `json:"top_p"`
	Seed        uint64  `json:"seed"`
	// Judge is JudgeNone, JudgeSelf or the judge model's reference.
	Judge string `json:"judge"`
	Batch int    `json:"batch"`
}

// Judged reports whether the run's rollouts were scored by a judge.
func (s RunSettings) Judged() bool { return s.Judge != "" && s.Judge != JudgeNone }

// Run is a run directory opened for reading.
type Run struct {
	dir      string
	manifest Manifest
	rollouts []Rollout
}

// OpenRun reads a run directory's run.json and rollouts.jsonl. A truncated last line (a crash
// while appending) is ignored; any other malformed line is an error naming its line number.
// A sharded run's shared directory (runstore.IsSharded) is read as the one run its shards make
// (see openSharded).
func OpenRun(dir string) (*Run, error) {
	if _, err := os.Stat(filepath.Join(dir, ManifestFileName)); err != nil && runstore.IsSharded(dir) {
		return openSharded(dir)
	}
	man, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	rs, _, err := readRollouts(filepath.Join(dir, RolloutsFileName))
	if err != nil {
		return nil, err
	}
	return &Run{dir: dir, manifest: man, rollouts: rs}, nil
}

// Dir is the run's directory.
func (r *Run) Dir() string { return r.dir }

// Manifest returns the run's run.json.
func (r *Run) Manifest() Manifest { return r.manifest }

// Rollouts returns the completed rollouts in file order. The slice is the run's own; do not
// modify it.
func (r *Run) Rollouts() []Rollout { return r.rollouts }

// readManifest reads and checks dir/run.json.
func readManifest(dir string) (Manifest, error) {
	m, err := runstore.ReadSettings[Manifest](dir, ManifestFileName)
	if err != nil {
		return Manifest{}, fmt.Errorf("probe: run: %w", err)
	}
	return m, m.validate(filepath.Join(dir, ManifestFileName))
}

// validate checks a run.json read from path.
func (m Manifest) validate(path string) error {
	if m.Format != RunFormat {
		return fmt.Errorf("probe: run manifest %s: format %q (expected %q)", path, m.Format, RunFormat)
	}
	if m.Layers <= 0 || m.HiddenSize <= 0 {
		return fmt.Errorf("probe: run manifest %s: layers %d, hidden_size %d (expected both > 0)", path, m.Layers, m.HiddenSize)
	}
	return nil
}

// readRollouts parses rollouts.jsonl. It returns the rollouts and the byte length of the
// complete lines (where a torn last line begins). A missing file is an empty run.
func readRollouts(path string) ([]Rollout, int64, error) {
	var out []Rollout
	good, err := scanRollouts(path, func(r Rollout, _ runstore.Ref) error {
		out = append(out, r)
		return nil
	})
	return out, good, err
}

// scanRollouts reads rollouts.jsonl line by line without holding it in memory
// (runstore.ScanRecords), checking that every rollout has an id and a shard and that no id
// repeats, and calls fn with each rollout and where its line is. It returns the byte length of
// the complete lines: a torn last line is skipped (and rewritten by a resumed run). A missing
// file has no lines.
func scanRollouts(path string, fn func(r Rollout, ref runstore.Ref) error) (int64, error) {
	seen := map[string]int{}
	return runstore.ScanRecords(path, func(r Rollout, lineNo int, ref runstore.Ref) error {
		if r.ID == "" || r.Shard == "" {
			return fmt.Errorf("probe: rollouts file %s: line %d: missing \"id\" or \"shard\"", path, lineNo)
		}
		if prev, dup := seen[r.ID]; dup {
			return fmt.Errorf("probe: rollouts file %s: line %d: rollout %q already on line %d", path, lineNo, r.ID, prev)
		}
		seen[r.ID] = lineNo
		return fn(r, ref)
	})
}

// modelManifest fills the model fields of a manifest.
func modelManifest(m *model.Model) (Manifest, error) {
	sum, err := axis.ConfigSHA256(m.Dir)
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Format: RunFormat, Model: m.Name, ModelDir: m.Dir, Architecture: m.Config.Architecture,
		Layers: m.Config.NumLayers, HiddenSize: m.Config.HiddenSize, ConfigSHA256: sum}, nil
}

// checkResume compares the manifest of an existing run with the one this invocation would write.
func checkResume(dir string, have, want Manifest) error {
	if have.ConfigSHA256 != want.ConfigSHA256 || have.Layers != want.Layers || have.HiddenSize != want.HiddenSize {
		return fmt.Errorf("probe: run %s belongs to another model: it was made with %s (%s, %d layers, hidden %d, config sha256 %.12s), this is %s (%s, %d layers, hidden %d, config sha256 %.12s); use another --out",
			dir, have.Model, have.ModelDir, have.Layers, have.HiddenSize, have.ConfigSHA256,
			want.Model, want.ModelDir, want.Layers, want.HiddenSize, want.ConfigSHA256)
	}
	if err := runstore.Diff(have.Dataset, want.Dataset); err != nil {
		return fmt.Errorf("probe: run %s was started with another data set (%s dataset.%w); resume with the same --roles, --questions and limits, or use another --out",
			dir, ManifestFileName, err)
	}
	if err := runstore.Diff(have.Settings, want.Settings); err != nil {
		return fmt.Errorf("probe: run %s was started with other settings (%s settings.%w); resume with the same --samples, --max-tokens, --seed, --judge and --batch, or use another --out",
			dir, ManifestFileName, err)
	}
	if have.Rendering == nil || want.Rendering == nil || !have.Rendering.Equal(want.Rendering.Rendering) ||
		have.Rendering.ModelName != want.Rendering.ModelName || have.Rendering.SystemFolded != want.Rendering.SystemFolded {
		return fmt.Errorf("probe: run %s renders its chats as %s; now they would be rendered as %s; resume with the same model files, --enable-thinking and --model-name, or use another --out",
			dir, have.Rendering, want.Rendering)
	}
	return nil
}
