package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tether/axis"
	"tether/consistency"
	"tether/engine"
	"tether/model"
	"tether/personas"
	"tether/probe"
	"tether/runstore"
	"tether/tokenizer"
)

// Persona variance benchmark defaults.
const (
	DefaultVarianceSeeds       = 5
	DefaultVarianceTemperature = 0.7
	DefaultVarianceTopP        = 0.9
	DefaultVarianceMaxTokens   = 32
	DefaultVarianceBootstrap   = 1000
)

// Files of a persona variance run directory.
const (
	VarianceManifestFile = "run.json"
	VarianceAnswersFile  = "answers.jsonl"
	VarianceReportFormat = "tether-variance-report/1"
)

// PersonaVarianceOptions configure RunPersonaVariance.
type PersonaVarianceOptions struct {
	// Out is the run directory (answers.jsonl, run.json, the report files); an existing run
	// with the same settings is resumed.
	Out string
	// Personas and their source (a file, or personas.BuiltinFile) are the personas asked.
	Personas       []personas.Persona
	PersonasSource string
	// Questionnaire holds the items every persona answers.
	Questionnaire *personas.Questionnaire
	// Forms are the anchor forms used (default personas.Forms); a persona without a form is
	// skipped for that form.
	Forms []string
	// Seeds are the sampling seeds (default 1..DefaultVarianceSeeds).
	Seeds []uint64
	// Temperature and TopP of generation (Temperature 0 is greedy); MaxTokens bounds each answer.
	Temperature, TopP float64
	MaxTokens         int
	// Layer is the layer of the activation and text representations (-1: the middle layer, or
	// the axis file's axis layer when Axis is given).
	Layer int
	// Axis, when set, adds the projection of the mean activation on its unit axis at Layer.
	Axis     *axis.Axis
	AxisPath string
	// Bootstrap resamples per interval (default DefaultVarianceBootstrap).
	Bootstrap int
	// Backend is recorded in the settings.
	Backend string
	// Judge, when set, scores the answers' consistency (prompt-to-line, line-to-line, Q&A; see
	// VarianceConsistencyMethod) after every answer is generated; JudgeName is recorded.
	Judge     consistency.Judge
	JudgeName string
	// Warn, when set, is called once per skipped (persona, form).
	Warn func(msg string)
	// Progress, when set, is called after each finished unit with the units done and the total.
	Progress func(done, total int)
	// Now stamps the report (default time.Now).
	Now func() time.Time
	// Shard, when set, runs only the shard's share of the units (the (persona, form, item)
	// units whose index in run order is Shard.Index modulo Shard.Count) in the sub-directory
	// Shard.DirName of Out, and seals the shard when it is complete instead of writing a
	// report. RunPersonaVariance without Shard on an Out holding shards writes the report of
	// them all (see mergeVarianceShards). A judge cannot be used with shards.
	Shard *runstore.Shard
}

// VarianceSettings are the knobs of a run, stored in run.json and the report.
type VarianceSettings struct {
	Seeds          []uint64 `json:"seeds"`
	Temperature    float64  `json:"temperature"`
	TopP           float64  `json:"top_p"`
	MaxTokens      int      `json:"max_tokens"`
	Layer          int      `json:"layer"`
	Forms          []string `json:"forms"`
	Personas       []string `json:"personas"`
	PersonasSource string   `json:"personas_source"`
	PersonasSHA256 string   `json:"personas_sha256"`
	Items          []string `json:"items"`
	Axis           string   `json:"axis,omitempty"`
	AxisSHA256     string   `json:"axis_sha256,omitempty"`
	Bootstrap      int      `json:"bootstrap"`
	Backend        string   `json:"backend,omitempty"`
	Judge          string   `json:"judge,omitempty"`
}

// VarianceAnswer is one answer (a line of answers.jsonl).
type VarianceAnswer struct {
	Persona string `json:"persona"`
	Anchor  string `json:"anchor"`
	Item    string `json:"item"`
	Seed    uint64 `json:"seed"`
	// Answer is the generated text; Tokens its length.
	Answer string `json:"answer"`
	Tokens int    `json:"tokens"`
	// Rating is the parsed questionnaire answer (absent when ParseError says why not).
	Rating     *int   `json:"rating,omitempty"`
	ParseError string `json:"parse_error,omitempty"`
	// Activation is the mean residual stream at the layer over the answer's positions;
	// Projection its dot product with the unit axis (with an axis).
	Activation []float32 `json:"activation"`
	Projection *float64  `json:"projection,omitempty"`
	// Text is the answer text embedded by the model: the mean residual stream at the layer over
	// the answer's tokens, run alone.
	Text []float32 `json:"text"`
}

// varianceUnit is one (persona, form, item): every seed of it is generated in one batch.
type varianceUnit struct {
	persona personas.Persona
	form    string
	item    personas.Item
}

func (u varianceUnit) key() string { return u.persona.ID + "/" + u.form + "/" + u.item.ID }

// VarianceAnswerSeed is the sampling seed of one answer: a pure function of the run seed and
// the unit (persona, form, item), so a resumed run regenerates exactly what it would have.
func VarianceAnswerSeed(seed uint64, persona, form, item string) uint64 {
	return hashSeed(fmt.Sprintf("variance:%d:%s:%s:%s", seed, persona, form, item))
}

// varianceRunner holds a run in progress.
type varianceRunner struct {
	m       *model.Model
	o       PersonaVarianceOptions
	unit    []float32
	units   []varianceUnit
	skipped []SkippedAnchor
	// mine are the units this process runs: all of them, or the shard's share.
	mine []varianceUnit
}

// SkippedAnchor is a (persona, form) left out because its prompt does not fit the context.
type SkippedAnchor struct {
	Persona      string `json:"persona"`
	Anchor       string `json:"anchor"`
	PromptTokens int    `json:"prompt_tokens"`
	Context      int    `json:"context"`
}

// RunPersonaVariance runs (or resumes) the persona variance benchmark: every persona under
// every anchor form answers every questionnaire item once per seed (one conversation per
// answer: the anchor as system prompt, the item as the user turn, rendered by the model's one
// chat renderer), storing each unit's answers in OUT/answers.jsonl, then writes the report
// (BuildVarianceReport, WriteVarianceReport). Cancelling ctx loses at most the unit in flight.
// A shard (PersonaVarianceOptions.Shard) returns no report: the report is written by
// RunPersonaVariance without Shard once every shard is done.
func RunPersonaVariance(ctx context.Context, m *model.Model, o PersonaVarianceOptions) (*VarianceReport, error) {
	r, err := newVarianceRunner(m, o)
	if err != nil {
		return nil, err
	}
	man, err := r.manifest()
	if err != nil {
		return nil, err
	}
	if r.o.Shard == nil && runstore.IsSharded(r.o.Out) {
		if _, err := os.Stat(filepath.Join(r.o.Out, VarianceManifestFile)); err != nil {
			return r.mergeVarianceShards(man)
		}
	}
	dir, settingsHash, err := r.shardDir(man)
	if err != nil {
		return nil, err
	}
	store, err := openVarianceStore(dir, man, len(r.o.Seeds))
	if err != nil {
		return nil, err
	}
	defer store.close()
	if r.o.Shard != nil {
		if err := runstore.WritePlan(dir, *r.o.Shard, len(r.units), unitKeys(r.mine)); err != nil {
			return nil, fmt.Errorf("bench: variance: %w", err)
		}
	}
	done := 0
	for _, u := range r.mine {
		if store.has(u.key()) {
			done++
		}
	}
	if r.o.Progress != nil {
		r.o.Progress(done, len(r.mine))
	}
	for _, u := range r.mine {
		if store.has(u.key()) {
			continue
		}
		answers, err := r.runUnit(ctx, u)
		if err != nil {
			return nil, err
		}
		if err := store.append(u.key(), answers); err != nil {
			return nil, err
		}
		done++
		if r.o.Progress != nil {
			r.o.Progress(done, len(r.mine))
		}
	}
	if r.o.Shard != nil {
		if err := runstore.SealShard(dir, *r.o.Shard, settingsHash, len(r.units), unitKeys(r.mine)); err != nil {
			return nil, fmt.Errorf("bench: variance: %w", err)
		}
		return nil, nil
	}
	rep, err := BuildVarianceReport(m.Name, man, store.answers(), r.skipped, r.o.Now())
	if err != nil {
		return nil, err
	}
	if r.o.Judge != nil {
		judged, err := r.judgeRun(ctx, store)
		if err != nil {
			return nil, err
		}
		if rep.Consistency, err = varianceConsistency(judged, r.o.Bootstrap); err != nil {
			return nil, err
		}
		for _, f := range consistencyFindings(rep.Consistency) {
			rep.Findings = append(rep.Findings, "anchor form "+f)
		}
	}
	if err := WriteVarianceReport(r.o.Out, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// newVarianceRunner checks the options, fills in defaults and plans the units, skipping the
// (persona, form) pairs whose longest prompt does not fit the context with MaxTokens.
func newVarianceRunner(m *model.Model, o PersonaVarianceOptions) (*varianceRunner, error) {
	if m == nil || m.Engine == nil || m.Tokenizer == nil {
		return nil, fmt.Errorf("bench: variance: the model must be opened with weights and a tokenizer")
	}
	if o.Out == "" {
		return nil, fmt.Errorf("bench: variance: no output directory")
	}
	if o.Judge != nil && (o.Shard != nil || runstore.IsSharded(o.Out)) {
		return nil, fmt.Errorf("bench: variance: a judge cannot be used with a sharded run (%s): run the judged benchmark unsharded", o.Out)
	}
	if len(o.Personas) == 0 || o.Questionnaire == nil || len(o.Questionnaire.Items) == 0 {
		return nil, fmt.Errorf("bench: variance: no personas or no questionnaire items")
	}
	if len(o.Forms) == 0 {
		o.Forms = personas.Forms
	}
	if len(o.Seeds) == 0 {
		for s := uint64(1); s <= DefaultVarianceSeeds; s++ {
			o.Seeds = append(o.Seeds, s)
		}
	}
	seen := map[uint64]bool{}
	for _, s := range o.Seeds {
		if seen[s] {
			return nil, fmt.Errorf("bench: variance: seed %d given twice", s)
		}
		seen[s] = true
	}
	if o.MaxTokens == 0 {
		o.MaxTokens = DefaultVarianceMaxTokens
	}
	if o.MaxTokens < 0 || o.Temperature < 0 {
		return nil, fmt.Errorf("bench: variance: max tokens %d and temperature %v must not be negative", o.MaxTokens, o.Temperature)
	}
	if o.Temperature == 0 {
		o.TopP = 0
	} else if o.TopP == 0 {
		o.TopP = DefaultVarianceTopP
	}
	if o.Bootstrap == 0 {
		o.Bootstrap = DefaultVarianceBootstrap
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	layers := m.Config.NumLayers
	if o.Layer < 0 {
		o.Layer = layers / 2
		if o.Axis != nil {
			if l, _ := axis.DefaultLayer(o.Axis); l >= 0 && l < layers {
				o.Layer = l
			}
		}
	}
	if o.Layer >= layers {
		return nil, fmt.Errorf("bench: variance: layer %d: the model has %d layers (0..%d)", o.Layer, layers, layers-1)
	}
	r := &varianceRunner{m: m, o: o}
	if o.Axis != nil {
		u, err := o.Axis.Unit(o.Layer)
		if err != nil {
			return nil, fmt.Errorf("bench: variance: axis %s: %w", o.AxisPath, err)
		}
		r.unit = u
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("bench: variance: %w", err)
	}
	for _, p := range o.Personas {
		for _, f := range o.Forms {
			anchor, ok := p.Anchor(f)
			if !ok {
				continue
			}
			longest := 0
			for _, it := range o.Questionnaire.Items {
				ids, err := m.ChatPrompt(r.messages(anchor, it), true)
				if err != nil {
					return nil, fmt.Errorf("bench: variance: persona %s, anchor %s: %w", p.ID, f, err)
				}
				longest = max(longest, len(ids))
			}
			if ctxLen := m.Config.MaxPositions; ctxLen > 0 && longest+o.MaxTokens > ctxLen {
				r.skipped = append(r.skipped, SkippedAnchor{Persona: p.ID, Anchor: f, PromptTokens: longest, Context: ctxLen})
				if o.Warn != nil {
					o.Warn(fmt.Sprintf("persona %s, anchor %s: skipped: its longest prompt takes %d tokens, with %d new tokens that exceeds the model's context of %d", p.ID, f, longest, o.MaxTokens, ctxLen))
				}
				continue
			}
			for _, it := range o.Questionnaire.Items {
				r.units = append(r.units, varianceUnit{persona: p, form: f, item: it})
			}
		}
	}
	if len(r.units) == 0 {
		return nil, fmt.Errorf("bench: variance: no persona anchor fits the model's context of %d tokens with %d new tokens (%d skipped)", m.Config.MaxPositions, o.MaxTokens, len(r.skipped))
	}
	r.mine = r.units
	if o.Shard != nil {
		r.mine = nil
		for k, u := range r.units {
			if o.Shard.Owns(k) {
				r.mine = append(r.mine, u)
			}
		}
		if len(r.mine) == 0 {
			return nil, fmt.Errorf("bench: variance: shard %s has no units: the run has only %d (use fewer shards)", o.Shard, len(r.units))
		}
	}
	return r, nil
}

// messages is the conversation of one answer: the anchor as system prompt, the item as the
// user turn.
func (r *varianceRunner) messages(anchor string, it personas.Item) []tokenizer.Message {
	return []tokenizer.Message{{Role: "system", Content: anchor}, {Role: "user", Content: r.o.Questionnaire.Question(it)}}
}

// runUnit generates one unit's answers (one per seed, in one batch) and measures them.
func (r *varianceRunner) runUnit(ctx context.Context, u varianceUnit) ([]VarianceAnswer, error) {
	anchor, _ := u.persona.Anchor(u.form)
	ids, err := r.m.ChatPrompt(r.messages(anchor, u.item), true)
	if err != nil {
		return nil, fmt.Errorf("bench: variance: %s: %w", u.key(), err)
	}
	reqs := make([]engine.Request, len(r.o.Seeds))
	for i, s := range r.o.Seeds {
		reqs[i] = engine.Request{
			Prompt:       ids,
			MaxNewTokens: r.o.MaxTokens,
			Sampling:     engine.SamplingParams{Temperature: r.o.Temperature, TopP: r.o.TopP, Seed: VarianceAnswerSeed(s, u.persona.ID, u.form, u.item.ID)},
			StopTokens:   r.m.StopTokens(),
			StopStrings:  r.m.ChatStopStrings(),
		}
	}
	res, err := r.m.Engine.Generate(ctx, reqs, engine.GenerateOptions{CaptureLayers: []int{r.o.Layer}, Detokenizer: r.m.Tokenizer})
	if err != nil {
		return nil, fmt.Errorf("bench: variance: %s: %w", u.key(), err)
	}
	out := make([]VarianceAnswer, len(res))
	spans := make([]probe.Span, len(res))
	for i, g := range res {
		text, err := r.m.AssistantText(ids, g.Tokens)
		if err != nil {
			return nil, fmt.Errorf("bench: variance: %s: decode: %w", u.key(), err)
		}
		a := VarianceAnswer{Persona: u.persona.ID, Anchor: u.form, Item: u.item.ID, Seed: r.o.Seeds[i], Answer: strings.TrimSpace(text), Tokens: len(g.Tokens)}
		if a.Activation, err = answerMean(g, r.o.Layer); err != nil {
			return nil, fmt.Errorf("bench: variance: %s: %w", u.key(), err)
		}
		if r.unit != nil {
			p := dot(a.Activation, r.unit)
			a.Projection = &p
		}
		if v, ok, why := r.o.Questionnaire.ParseAnswer(a.Answer); ok {
			a.Rating = &v
		} else {
			a.ParseError = why
		}
		if spans[i], err = r.textSpan(a.Answer); err != nil {
			return nil, fmt.Errorf("bench: variance: %s: %w", u.key(), err)
		}
		out[i] = a
	}
	acts, err := probe.Capture(ctx, r.m.Engine, spans, probe.CaptureOptions{Layers: []int{r.o.Layer}})
	if err != nil {
		return nil, fmt.Errorf("bench: variance: %s: text embedding: %w", u.key(), err)
	}
	for i := range out {
		out[i].Text = acts.Mean[i][0]
	}
	return out, nil
}

// answerMean is the mean residual stream at layer over the generated tokens' positions (each
// token's own position as input); an empty answer is measured at the last prompt position.
func answerMean(g engine.Result, layer int) ([]float32, error) {
	rows := g.Captured[layer]
	first, last := g.PromptTokens, g.PromptTokens+len(g.Tokens)
	if len(g.Tokens) == 0 {
		first, last = g.PromptTokens-1, g.PromptTokens
	}
	if first < 0 || last > len(rows) {
		return nil, fmt.Errorf("captured %d positions, expected %d", len(rows), last)
	}
	sum := make([]float64, len(rows[first]))
	for _, h := range rows[first:last] {
		for d, v := range h {
			sum[d] += float64(v)
		}
	}
	out := make([]float32, len(sum))
	for d, v := range sum {
		out[d] = float32(v / float64(last-first))
	}
	return out, nil
}

// textSpan is the answer text on its own (with the tokenizer's BOS), the span being its tokens
// after BOS; an empty answer is the BOS position alone.
func (r *varianceRunner) textSpan(text string) (probe.Span, error) {
	ids, err := r.m.PlainPrompt(text)
	if err != nil {
		return probe.Span{}, err
	}
	start := 0
	if len(ids) > 1 && ids[0] == r.m.Config.BOSTokenID {
		start = 1
	}
	if n := r.m.Config.MaxPositions; n > 0 && len(ids) > n {
		ids = ids[:n]
	}
	return probe.Span{Tokens: ids, Start: start, End: len(ids)}, nil
}
