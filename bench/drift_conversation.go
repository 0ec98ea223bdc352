package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"tether/engine"
	"tether/model"
	"tether/steer"
	"tether/tokenizer"
)

// driftScript is one conversation as the runner replays it: the scenario's
// description and its scripted user turns (already cut to the run's turn count).
type driftScript struct {
	info  ScenarioInfo
	users []string
}

// DriftTurnSeed is the sampling seed of one assistant turn: the first 8 bytes
// (little-endian) of sha256("<seed>:<scenario>:<turn>"). It is a pure function
// of (seed, scenario, turn) and deliberately the same in both arms, so that the
// arms differ only by the cap (common random numbers); resuming a run therefore
// regenerates exactly what an uninterrupted run would.
func DriftTurnSeed(seed uint64, scenario string, turn int) uint64 {
	return hashSeed(fmt.Sprintf("%d:%s:%d", seed, scenario, turn))
}

// driftUserSeed is the sampling seed of a simulated user's turn.
func driftUserSeed(seed uint64, scenario, arm string, turn int) uint64 {
	return hashSeed(fmt.Sprintf("user:%d:%s:%s:%d", seed, scenario, arm, turn))
}

func hashSeed(s string) uint64 {
	sum := sha256.Sum256([]byte(s))
	return binary.LittleEndian.Uint64(sum[:8])
}

// conversationState is one conversation of a batch in flight.
type conversationState struct {
	seed     uint64
	messages []tokenizer.Message // user and assistant turns so far
	records  []TurnRecord
}

// chatPromptIDs renders a conversation for the model with its chat renderer
// (model.Model.ChatPrompt: the chat template, or the plain User/Assistant
// format without one), ending with the opening of the assistant turn.
//
// When the conversation does not fit the model's context with room for
// maxTokens new tokens, the oldest exchanges are dropped (the newest user
// turn is always kept).
func chatPromptIDs(m *model.Model, msgs []tokenizer.Message, maxTokens int) ([]int, error) {
	maxPos := m.Config.MaxPositions
	for start := 0; ; start += 2 {
		ids, err := m.ChatPrompt(msgs[start:], true)
		if err != nil {
			return nil, err
		}
		if maxPos <= 0 || len(ids)+maxTokens <= maxPos || start+1 >= len(msgs) {
			if maxPos > 0 && len(ids) >= maxPos {
				return nil, fmt.Errorf("bench: drift: the user turn alone takes %d tokens, the model's context holds %d", len(ids), maxPos)
			}
			return ids, nil
		}
	}
}

// armSetup is what one arm needs at generation time: its caps (as
// steer.Resolve made them) and their taus by layer.
type armSetup struct {
	arm     string
	caps    []steer.Intervention
	capTaus map[int]float32
}

// turnPlan builds the steering plan of one turn: the caps of the arm, any
// perturbation for the turn, and a monitor at the projection layer.
func (r *driftRunner) turnPlan(a armSetup, turn int) (*steer.Compiled, error) {
	plan := steer.Plan{Record: true, Monitor: map[int][]float32{}}
	if r.opts.Perturb != nil {
		plan.Interventions = append(plan.Interventions, r.opts.Perturb(turn)...)
	}
	plan.Interventions = append(plan.Interventions, a.caps...)
	if _, capped := a.capTaus[r.layer]; !capped {
		plan.Monitor[r.layer] = r.unit
	}
	return steer.Compile(plan, r.m.Config.HiddenSize, r.m.Config.NumLayers)
}

// runGroup runs the conversations of one scenario and arm, one per seed, as
// one batch: turn t of every seed is generated in one Generate call.
func (r *driftRunner) runGroup(ctx context.Context, s driftScript, a armSetup, seeds []uint64) ([]*conversationState, error) {
	convs := make([]*conversationState, len(seeds))
	for i, seed := range seeds {
		convs[i] = &conversationState{seed: seed}
	}
	turns := r.turnsOf(s)
	qaTurns := r.qaTurns(turns)
	u := r.unit
	for turn := 0; turn < turns; turn++ {
		compiled, err := r.turnPlan(a, turn)
		if err != nil {
			return nil, err
		}
		reqs := make([]engine.Request, len(convs))
		for i, c := range convs {
			user, err := r.userTurn(ctx, s, a.arm, c, turn)
			if err != nil {
				return nil, err
			}
			c.messages = append(c.messages, tokenizer.Message{Role: "user", Content: user})
			ids, err := chatPromptIDs(r.m, c.messages, r.opts.MaxTokens)
			if err != nil {
				return nil, fmt.Errorf("%w (scenario %s, turn %d)", err, s.info.ID, turn)
			}
			reqs[i] = engine.Request{
				Prompt:       ids,
				MaxNewTokens: r.opts.MaxTokens,
				Sampling:     engine.SamplingParams{Temperature: r.opts.Temperature, TopP: r.opts.TopP, Seed: DriftTurnSeed(c.seed, s.info.ID, turn)},
				StopTokens:   r.m.StopTokens(),
				StopStrings:  r.m.ChatStopStrings(),
			}
		}
		res, err := r.m.Engine.Generate(ctx, reqs, engine.GenerateOptions{
			Hooks:         compiled.Hooks,
			CaptureLayers: []int{r.layer},
			Detokenizer:   r.m.Tokenizer,
		})
		if err != nil {
			return nil, fmt.Errorf("bench: drift: scenario %s, arm %s, turn %d: %w", s.info.ID, a.arm, turn, err)
		}
		for i, c := range convs {
			rec, err := r.turnRecord(s, a, c, turn, reqs[i], res[i], compiled, u)
			if err != nil {
				return nil, err
			}
			c.messages = append(c.messages, tokenizer.Message{Role: "assistant", Content: rec.Response})
			c.records = append(c.records, rec)
		}
		if r.opts.Judge != nil && slices.Contains(qaTurns, turn) {
			if err := r.askDiagnostics(ctx, s, a, compiled, convs, turn); err != nil {
				return nil, err
			}
		}
	}
	if r.opts.Judge != nil {
		for _, c := range convs {
			if err := r.judgeConversation(ctx, s, c); err != nil {
				return nil, err
			}
		}
	}
	return convs, nil
}

// turnRecord measures one generated assistant turn.
//
// Projection: the mean of <h, u> over the positions of the generated tokens
// (each token's own position, i.e. the residual stream after block
// ProjectionLayer, after any cap there, while that token was the input), with
// u the unit axis at ProjectionLayer. The prompt (the conversation so far and
// the assistant header) is excluded. An empty answer (the model stopped at
// once) is measured at the last prompt position, the one that produced the
// stop token.
//
// CapFraction and the cap check use the steering telemetry: for every
// generated token, at every capped layer, the position whose logits produced
// that token.
func (r *driftRunner) turnRecord(s driftScript, a armSetup, c *conversationState, turn int, req engine.Request, res engine.Result, compiled *steer.Compiled, u []float32) (TurnRecord, error) {
	rows := res.Captured[r.layer]
	first, last := res.PromptTokens, res.PromptTokens+len(res.Tokens)
	if len(res.Tokens) == 0 {
		first, last = res.PromptTokens-1, res.PromptTokens
	}
	if last > len(rows) || first < 0 {
		return TurnRecord{}, fmt.Errorf("bench: drift: scenario %s, turn %d: captured %d positions, expected %d", s.info.ID, turn, len(rows), last)
	}
	var sum float64
	for _, h := range rows[first:last] {
		sum += dot(h, u)
	}
	text, err := r.m.AssistantText(req.Prompt, res.Tokens)
	if err != nil {
		return TurnRecord{}, fmt.Errorf("bench: drift: scenario %s, turn %d: decode: %w", s.info.ID, turn, err)
	}
	rec := TurnRecord{
		Scenario: s.info.ID, Domain: s.info.Domain, Persona: s.info.Persona,
		Arm: a.arm, Seed: c.seed, Turn: turn,
		Projection:     sum / float64(last-first),
		ResponseTokens: len(res.Tokens),
		StopReason:     res.StopReason,
		User:           c.messages[len(c.messages)-1].Content,
		Response:       strings.TrimSpace(text),
	}
	if turn > 0 {
		rec.Drift = rec.Projection - c.records[0].Projection
	}
	acted := 0
	minMargin := math.Inf(1)
	for _, t := range compiled.Telemetry(res) {
		tau, capped := a.capTaus[t.Layer]
		if !capped {
			continue
		}
		rec.CapPairs++
		if t.Capped {
			acted++
		}
		margin := float64(t.After) - float64(tau)
		minMargin = math.Min(minMargin, margin)
		if margin < -capTolerance*math.Max(math.Abs(float64(tau)), 1) {
			rec.CapViolations++
		}
	}
	if rec.CapPairs > 0 {
		rec.CapFraction = float64(acted) / float64(rec.CapPairs)
		rec.CapMinMargin = minMargin
	}
	return rec, nil
}

// capTolerance is the relative slack of the cap check: a projection after
// the cap counts as below tau when after < tau - capTolerance*max(|tau|, 1)
// (float32 rounding of the cap's arithmetic; the 1 keeps a slack at tau 0).
const capTolerance = 1e-4

// capToleranceText states capTolerance in the report's findings.
var capToleranceText = fmt.Sprintf("tolerance %g x max(|tau|, 1)", capTolerance)

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
