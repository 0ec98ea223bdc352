package probe

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
)

// AxisSample is one rollout as the axis build sees it: its id, its role (DefaultRoleName for the
// default prompts) and whether it counts for its role's vector.
type AxisSample struct {
	ID, Role string
	Kept     bool
}

// ActivationSource gives the rollouts of a run and their mean activations (per layer, the mean of
// the residual stream over the response tokens).
type ActivationSource interface {
	// Shape is the number of layers and the hidden size of every activation.
	Shape() (layers, hidden int)
	// Samples lists the rollouts.
	Samples() []AxisSample
	// MeanActivations returns [len(ids)][layers][hidden] for the given rollout ids.
	MeanActivations(ids []string) ([][][]float32, error)
}

// Calibration sets (AxisOptions.CalibrateOn) and units (AxisOptions.CalibrateUnit).
const (
	// CalibrateDefault calibrates on the default (Assistant) rollouts only.
	CalibrateDefault = "default"
	// CalibrateRoles calibrates on the rollouts that make the role vectors (kept rollouts of the
	// roles that passed the minimum-count filter).
	CalibrateRoles = "roles"
	// CalibrateAll calibrates on every non-empty rollout: defaults and every role rollout, kept
	// or not.
	CalibrateAll = "all"
	// UnitRollout takes percentiles of the rollouts' span means (one value per rollout).
	UnitRollout = "rollout"
	// UnitToken takes percentiles of the projections of every response token (the unit the cap
	// acts on); it needs a TokenProjector.
	UnitToken = "token"
)

// CalibrateSets and CalibrateUnits list the accepted values, default first.
var (
	CalibrateSets  = []string{CalibrateDefault, CalibrateRoles, CalibrateAll}
	CalibrateUnits = []string{UnitToken, UnitRollout}
)

// TokenProjector gives the residual stream of every response token of rollouts, projected.
type TokenProjector interface {
	// ProjectTokens calls fn once per rollout of ids, in order, with proj[layer][token]: the
	// projection on units[layer] of the residual stream after that block at each response token.
	ProjectTokens(ids []string, units [][]float64, fn func(i int, proj [][]float64) error) error
}

// DefaultMaxTokenValues bounds the per-token projections a token calibration holds in memory
// (8 bytes each: 4 GiB).
const DefaultMaxTokenValues = 1 << 29

// AxisOptions configures BuildAxis.
type AxisOptions struct {
	// Percentiles at which tau is calibrated (DefaultPercentiles when nil).
	Percentiles []float64
	// Components is how many principal components' role loadings are kept per layer (3 when <= 0).
	Components int
	// ChunkBytes bounds the activations read at a time (256 MiB when <= 0).
	ChunkBytes int64
	// MinRoleRollouts is the number of kept rollouts a role needs to enter the axis (1 when
	// <= 0; the reference requires 50 score-3 rollouts). Roles below it are listed in Dropped.
	MinRoleRollouts int
	// CalibrateOn is the calibration set: CalibrateDefault (when ""), CalibrateRoles or
	// CalibrateAll.
	CalibrateOn string
	// CalibrateUnit is UnitToken (when "") or UnitRollout.
	CalibrateUnit string
	// Tokens re-reads the response tokens' residual stream; needed by UnitToken and
	// TokenFractions.
	Tokens TokenProjector
	// TokenFractions asks, with UnitRollout, for the fraction of calibration tokens each tau
	// would cap (always computed with UnitToken).
	TokenFractions bool
	// MaxTokenValues bounds the per-token projections held (DefaultMaxTokenValues when <= 0).
	MaxTokenValues int64
}

// withDefaults fills the zero values and checks the choices.
func (o AxisOptions) withDefaults() (AxisOptions, error) {
	if o.Percentiles == nil {
		o.Percentiles = DefaultPercentiles
	}
	if err := CheckPercentiles(o.Percentiles); err != nil {
		return o, err
	}
	if o.Components <= 0 {
		o.Components = 3
	}
	if o.MinRoleRollouts <= 0 {
		o.MinRoleRollouts = 1
	}
	if o.CalibrateOn == "" {
		o.CalibrateOn = CalibrateDefault
	}
	if o.CalibrateUnit == "" {
		o.CalibrateUnit = UnitToken
	}
	if !slices.Contains(CalibrateSets, o.CalibrateOn) {
		return o, fmt.Errorf("calibration set %q: expected one of %s", o.CalibrateOn, strings.Join(CalibrateSets, ", "))
	}
	if !slices.Contains(CalibrateUnits, o.CalibrateUnit) {
		return o, fmt.Errorf("calibration unit %q: expected one of %s", o.CalibrateUnit, strings.Join(CalibrateUnits, ", "))
	}
	if o.MaxTokenValues <= 0 {
		o.MaxTokenValues = DefaultMaxTokenValues
	}
	return o, nil
}

// needsTokens reports whether the build reads per-token residuals.
func (o AxisOptions) needsTokens() bool { return o.CalibrateUnit == UnitToken || o.TokenFractions }

// LayerPCA is persona space at one layer: the PCA of the mean-centred role vectors.
type LayerPCA struct {
	// Explained is the fraction of variance of every component (min(roles, hidden) of them).
	Explained []float64 `json:"variance_explained"`
	// Variance is the variance along every component (ddof=1).
	Variance []float64 `json:"variance"`
	// PC1Cosine is the cosine between PC1 (oriented so the default projects high) and the axis.
	PC1Cosine float64 `json:"pc1_cosine"`
	// PC1Flipped reports whether orienting PC1 towards the default flipped it from the sign
	// scikit-learn gives (its largest-magnitude entry positive, sklearn's svd_flip on V).
	PC1Flipped bool `json:"pc1_flipped"`
	// Components are the first principal directions [k][hidden] (PC1 oriented as above, the others
	// with their largest entry positive).
	Components [][]float64 `json:"-"`
	// Loadings are the roles' coordinates on the first components [roles][k].
	Loadings [][]float64 `json:"role_loadings"`
	// DefaultLoading is the default vector's coordinates on the same components [k].
	DefaultLoading []float64 `json:"default_loading"`
}

// DroppedRole is a role left out of the axis for having too few kept rollouts.
type DroppedRole struct {
	Role string `json:"role"`
	Kept int    `json:"kept_rollouts"`
}

// AxisBuild is the Assistant Axis of a run with everything that was computed on the way.
//
// Method (following the reference project's scripts): a role's vector is the mean of its kept
// rollouts' mean activations; the default vector is the mean over ALL default rollouts pooled
// (the reference computes one "default" vector over every default prompt's rollouts, not one per
// prompt); axis = default vector - mean of the role vectors, each role weighing the same whatever
// its number of kept rollouts. Roles with fewer than MinRoleRollouts kept rollouts are left out
// (listed in Dropped, as the reference's 4_vectors.py --min_count does).
type AxisBuild struct {
	Layers, Hidden int

	RoleNames       []string      // roles in the axis, sorted by name
	RoleCounts      []int         // kept rollouts of each role
	RoleMeans       [][][]float32 // [roles][layers][hidden]
	MinRoleRollouts int
	Dropped         []DroppedRole // roles that had rollouts but fewer than MinRoleRollouts kept, by name

	DefaultCount int
	DefaultMean  [][]float32 // [layers][hidden]
	Axis         [][]float32 // [layers][hidden]: DefaultMean - mean(RoleMeans)
	AxisNorms    []float64   // |axis| per layer

	// Percentiles and Tau[percentile][layer]: percentiles of the projections on the unit axis of
	// each layer of the calibration set (CalibrateOn) in CalibrateUnit units.
	Percentiles   []float64
	Tau           [][]float32
	CalibrateOn   string
	CalibrateUnit string
	// CalibrationSet is the number of rollouts calibrated on; CalibrationTokens their response
	// tokens (0 when no per-token pass was made).
	CalibrationSet    int
	CalibrationTokens int
	// CapTokenFraction[percentile][layer] is the fraction of the calibration set's tokens whose
	// projection is below tau, the tokens a cap at that tau acts on (nil without a per-token pass).
	CapTokenFraction [][]float64
	// TokenMeanDeviation is, over the per-token pass, the largest |mean of a rollout's token
	// projections - projection of its stored span mean| relative to the stored mean's norm: how
	// closely the re-run reproduced the run's capture.
	TokenMeanDeviation float64

	// AxisLayerIndex is the layer to read the axis at and AxisLayerReason why (the middle layer
	// unless the caller sets them).
	AxisLayerIndex  int
	AxisLayerReason string

	PCA []LayerPCA // per layer
}

// BuildAxis computes the axis, persona space (PCA) and calibration from an activation source,
// reading the stored activations twice (sums, then projections), a bounded chunk at a time, and,
// for a per-token calibration, the calibration rollouts' tokens through opts.Tokens.
func BuildAxis(src ActivationSource, opts AxisOptions) (*AxisBuild, error) {
	L, H := src.Shape()
	if L <= 0 || H <= 0 {
		return nil, fmt.Errorf("probe: axis: activations have %d layers and hidden size %d", L, H)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("probe: axis: %w", err)
	}
	if opts.needsTokens() && opts.Tokens == nil {
		return nil, fmt.Errorf("probe: axis: calibration unit %q (or token fractions) needs the response tokens' residuals, and no model was given to re-read them", opts.CalibrateUnit)
	}
	samples := src.Samples()
	if len(samples) == 0 {
		return nil, fmt.Errorf("probe: axis: the run has no rollouts")
	}
	chunk := chunkRows(opts.ChunkBytes, L, H)
	b := &AxisBuild{Layers: L, Hidden: H, Percentiles: append([]float64(nil), opts.Percentiles...),
		MinRoleRollouts: opts.MinRoleRollouts, CalibrateOn: opts.CalibrateOn, CalibrateUnit: opts.CalibrateUnit,
		AxisLayerIndex: L / 2, AxisLayerReason: fmt.Sprintf("middle layer, %d/2", L)}

	sums, counts, err := keptSums(src, samples, chunk, L, H)
	if err != nil {
		return nil, err
	}
	if counts[DefaultRoleName] == 0 {
		return nil, fmt.Errorf("probe: axis: no %q rollouts: the axis needs the default (Assistant) prompts' rollouts", DefaultRoleName)
	}
	seenRole := map[string]bool{}
	for _, s := range samples {
		seenRole[s.Role] = true
	}
	for role := range seenRole {
		switch {
		case role == DefaultRoleName:
		case counts[role] < opts.MinRoleRollouts:
			b.Dropped = append(b.Dropped, DroppedRole{Role: role, Kept: counts[role]})
		default:
			b.RoleNames = append(b.RoleNames, role)
		}
	}
	sort.Strings(b.RoleNames)
	sort.Slice(b.Dropped, func(i, j int) bool { return b.Dropped[i].Role < b.Dropped[j].Role })
	if len(b.RoleNames) == 0 {
		return nil, fmt.Errorf("probe: axis: no role has %d or more kept rollouts (roles seen: %d, all left out); with a judge, only rollouts scored %d count; lower the minimum (--min-role-rollouts)", opts.MinRoleRollouts, len(b.Dropped), KeepScore)
	}

	// meanOf turns a role's sums into its mean in place (float64) and returns a float32 copy.
	meanOf := func(role string) ([][]float32, [][]float64) {
		n := float64(counts[role])
		m64 := sums[role]
		m32 := make([][]float32, L)
		for l := range m32 {
			m32[l] = make([]float32, H)
			for j := range m64[l] {
				m64[l][j] /= n
				m32[l][j] = float32(m64[l][j])
			}
		}
		return m32, m64
	}
	var def64 [][]float64
	b.DefaultMean, def64 = meanOf(DefaultRoleName)
	b.DefaultCount = counts[DefaultRoleName]
	roles64 := make([][][]float64, len(b.RoleNames))
	for r, role := range b.RoleNames {
		var m32 [][]float32
		m32, roles64[r] = meanOf(role)
		b.RoleMeans = append(b.RoleMeans, m32)
		b.RoleCounts = append(b.RoleCounts, counts[role])
	}
	sums = nil

	axis64, units, err := b.setAxis(def64, roles64)
	if err != nil {
		return nil, err
	}
	if err := b.calibrate(src, samples, chunk, units, opts); err != nil {
		return nil, err
	}
	if err := b.personaSpace(roles64, def64, axis64, opts.Components); err != nil {
		return nil, err
	}
	return b, nil
}

// keptSums is pass 1: per role, the sum and number of its kept rollouts' mean activations.
func keptSums(src ActivationSource, samples []AxisSample, chunk, L, H int) (map[string][][]float64, map[string]int, error) {
	sums := map[string][][]float64{}
	counts := map[string]int{}
	var kept []AxisSample
	for _, s := range samples {
		if s.Kept {
			kept = append(kept, s)
		}
	}
	err := forChunks(src, kept, chunk, func(batch []AxisSample, acts [][][]float32) error {
		for i, s := range batch {
			a := acts[i]
			if err := checkActivation(s.ID, a, L, H); err != nil {
				return err
			}
			sum, ok := sums[s.Role]
			if !ok {
				sum = make([][]float64, L)
				for l := range sum {
					sum[l] = make([]float64, H)
				}
				sums[s.Role] = sum
			}
			for l := range a {
				row := sum[l]
				for j, v := range a[l] {
					row[j] += float64(v)
				}
			}
			counts[s.Role]++
		}
		return nil
	})
	return sums, counts, err
}

// setAxis sets Axis = default - mean of role vectors and its norms; it returns the axis and the
// unit axis per layer in float64.
func (b *AxisBuild) setAxis(def64 [][]float64, roles64 [][][]float64) (axis64, units [][]float64, err error) {
	L, H := b.Layers, b.Hidden
	axis64 = make([][]float64, L)
	units = make([][]float64, L)
	b.Axis = make([][]float32, L)
	b.AxisNorms = make([]float64, L)
	for l := 0; l < L; l++ {
		axis64[l] = make([]float64, H)
		b.Axis[l] = make([]float32, H)
		var norm2 float64
		for j := 0; j < H; j++ {
			var rm float64
			for r := range roles64 {
				rm += roles64[r][l][j]
			}
			rm /= float64(len(roles64))
			axis64[l][j] = def64[l][j] - rm
			b.Axis[l][j] = float32(axis64[l][j])
			norm2 += axis64[l][j] * axis64[l][j]
		}
		b.AxisNorms[l] = math.Sqrt(norm2)
		if b.AxisNorms[l] == 0 {
			return nil, nil, fmt.Errorf("probe: axis: layer %d: the default and role means coincide (axis norm 0)", l)
		}
		units[l] = make([]float64, H)
		for j := range units[l] {
			units[l][j] = axis64[l][j] / b.AxisNorms[l]
		}
	}
	return axis64, units, nil
}

// calibrationSamples are the rollouts tau is taken over.
func (b *AxisBuild) calibrationSamples(samples []AxisSample) []AxisSample {
	inAxis := map[string]bool{}
	for _, r := range b.RoleNames {
		inAxis[r] = true
	}
	var out []AxisSample
	for _, s := range samples {
		var in bool
		switch b.CalibrateOn {
		case CalibrateDefault:
			in = s.Role == DefaultRoleName
		case CalibrateRoles:
			in = s.Kept && inAxis[s.Role]
		default:
			in = true
		}
		if in {
			out = append(out, s)
		}
	}
	return out
}

// calibrate is pass 2: the projections of the calibration set on the unit axis (span means, and
// per token when asked), their percentiles as Tau, and the fraction of tokens each tau caps.
func (b *AxisBuild) calibrate(src ActivationSource, samples []AxisSample, chunk int, units [][]float64, opts AxisOptions) error {
	L, H := b.Layers, b.Hidden
	cal := b.calibrationSamples(samples)
	if len(cal) == 0 {
		return fmt.Errorf("probe: axis: calibration set %q has no rollouts", b.CalibrateOn)
	}
	b.CalibrationSet = len(cal)
	means := make([][]float64, L)  // [layer][rollout]: projections of the span means
	tokens := make([][]float64, L) // [layer][token]: per-token projections
	err := forChunks(src, cal, chunk, func(batch []AxisSample, acts [][][]float32) error {
		ids := make([]string, len(batch))
		for i, s := range batch {
			if err := checkActivation(s.ID, acts[i], L, H); err != nil {
				return err
			}
			ids[i] = s.ID
			for l := range acts[i] {
				means[l] = append(means[l], dot3264(acts[i][l], units[l]))
			}
		}
		if !opts.needsTokens() {
			return nil
		}
		return opts.Tokens.ProjectTokens(ids, units, func(i int, proj [][]float64) error {
			return b.addTokens(batch[i].ID, acts[i], units, proj, tokens, opts.MaxTokenValues)
		})
	})
	if err != nil {
		return err
	}
	projs := means
	if b.CalibrateUnit == UnitToken {
		projs = tokens
	}
	if b.Tau, err = Calibrate(projs, b.Percentiles); err != nil {
		return fmt.Errorf("probe: axis: calibration set %q in %s units: %w", b.CalibrateOn, b.CalibrateUnit, err)
	}
	if opts.needsTokens() {
		b.CapTokenFraction = capFractions(tokens, b.Tau)
	}
	return nil
}

// addTokens appends one rollout's token projections and checks they reproduce its stored mean.
func (b *AxisBuild) addTokens(id string, mean [][]float32, units, proj, tokens [][]float64, maxValues int64) error {
	if len(proj) != b.Layers {
		return fmt.Errorf("probe: axis: rollout %q: token projections for %d layers, want %d", id, len(proj), b.Layers)
	}
	n := len(proj[0])
	if n == 0 {
		for _, row := range mean {
			for _, v := range row {
				if v != 0 {
					return fmt.Errorf("probe: axis: rollout %q: no response token re-read, but its stored span mean is not zero: the model or its chat rendering is not the one the run was made with", id)
				}
			}
		}
		return nil // the run's capture found no response token either
	}
	b.CalibrationTokens += n
	if int64(b.CalibrationTokens)*int64(b.Layers) > maxValues {
		return fmt.Errorf("probe: axis: per-token calibration holds more than %d projections (%d tokens so far x %d layers); calibrate on a smaller set (--calibrate-on default) or in rollout units", maxValues, b.CalibrationTokens, b.Layers)
	}
	for l, row := range proj {
		if len(row) != n {
			return fmt.Errorf("probe: axis: rollout %q layer %d: %d token projections, layer 0 has %d", id, l, len(row), n)
		}
		var s float64
		for _, p := range row {
			if math.IsNaN(p) || math.IsInf(p, 0) {
				return fmt.Errorf("probe: axis: rollout %q layer %d: token projection %v", id, l, p)
			}
			s += p
		}
		tokens[l] = append(tokens[l], row...)
		var norm2 float64
		for _, v := range mean[l] {
			norm2 += float64(v) * float64(v)
		}
		dev := math.Abs(s/float64(n)-dot3264(mean[l], units[l])) / math.Max(math.Sqrt(norm2), 1e-6)
		b.TokenMeanDeviation = max(b.TokenMeanDeviation, dev)
		if dev > MaxTokenMeanDeviation {
			return fmt.Errorf("probe: axis: rollout %q layer %d: the re-read tokens' mean projection %.6g differs from the run's stored span mean (%.6g) by %.3g of its norm: the model or its chat rendering is not the one the run was made with",
				id, l, s/float64(n), dot3264(mean[l], units[l]), dev)
		}
	}
	return nil
}

// MaxTokenMeanDeviation is the largest relative difference allowed between a rollout's stored
// span mean and the mean of its re-read tokens, projected (bf16 GPU runs differ by about 1e-3).
const MaxTokenMeanDeviation = 0.02

// capFractions is, per percentile and layer, the fraction of projections below tau.
func capFractions(tokens [][]float64, tau [][]float32) [][]float64 {
	out := make([][]float64, len(tau))
	for i := range out {
		out[i] = make([]float64, len(tokens))
	}
	for l, xs := range tokens {
		s := append([]float64(nil), xs...)
		sort.Float64s(s)
		for i := range tau {
			out[i][l] = float64(sort.SearchFloat64s(s, float64(tau[i][l]))) / float64(len(s))
		}
	}
	return out
}

// personaSpace computes the PCA of every layer, layers in parallel.
func (b *AxisBuild) personaSpace(roles64 [][][]float64, def64, axis64 [][]float64, k int) error {
	L := b.Layers
	b.PCA = make([]LayerPCA, L)
	errs := make([]error, L)
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), L) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range next {
				rows := make([][]float64, len(roles64))
				for r := range roles64 {
					rows[r] = roles64[r][l]
				}
				b.PCA[l], errs[l] = layerPCA(rows, def64[l], axis64[l], k)
			}
		}()
	}
	for l := 0; l < L; l++ {
		next <- l
	}
	close(next)
	wg.Wait()
	for l, err := range errs {
		if err != nil {
			return fmt.Errorf("probe: axis: layer %d: %w", l, err)
		}
	}
	return nil
}

// dot3264 is the dot product of a float32 and a float64 vector, in float64.
func dot3264(a []float32, b []float64) float64 {
	var s float64
	for j, v := range a {
		s += float64(v) * b[j]
	}
	return s
}

// layerPCA is the PCA of one layer's role vectors with PC1 oriented towards the default.
func layerPCA(roles [][]float64, def, axis []float64, k int) (LayerPCA, error) {
	p, err := ComputePCA(roles)
	if err != nil {
		return LayerPCA{}, err
	}
	flipped := p.OrientTowards(0, def)
	k = min(k, len(p.Components))
	lp := LayerPCA{Explained: p.Explained, Variance: p.Variance, Components: p.Components[:k], PC1Flipped: flipped}
	if len(p.Components) > 0 && p.Explained[0] > 0 {
		// With a single role (or identical roles) there is no variance and no meaningful PC1.
		lp.PC1Cosine = cosine(p.Components[0], axis)
	}
	for _, sc := range p.Scores {
		lp.Loadings = append(lp.Loadings, sc[:k])
	}
	lp.DefaultLoading = p.Project(def)[:k]
	return lp, nil
}

// chunkRows is how many rollouts' activations fit in maxBytes (at least 1).
func chunkRows(maxBytes int64, layers, hidden int) int {
	if maxBytes <= 0 {
		maxBytes = 256 << 20
	}
	n := maxBytes / (int64(layers) * int64(hidden) * 4)
	return int(max(n, 1))
}

// forChunks reads the activations of samples chunk rows at a time and hands them to fn.
func forChunks(src ActivationSource, samples []AxisSample, chunk int, fn func([]AxisSample, [][][]float32) error) error {
	for lo := 0; lo < len(samples); lo += chunk {
		batch := samples[lo:min(lo+chunk, len(samples))]
		ids := make([]string, len(batch))
		for i, s := range batch {
			ids[i] = s.ID
		}
		acts, err := src.MeanActivations(ids)
		if err != nil {
			return fmt.Errorf("probe: axis: %w", err)
		}
		if len(acts) != len(ids) {
			return fmt.Errorf("probe: axis: asked for %d rollouts' activations, got %d", len(ids), len(acts))
		}
		if err := fn(batch, acts); err != nil {
			return err
		}
	}
	return nil
}

// checkActivation verifies one rollout's activations: [layers][hidden], all finite.
func checkActivation(id string, a [][]float32, layers, hidden int) error {
	if len(a) != layers {
		return fmt.Errorf("probe: axis: rollout %q: %d layers of activations, want %d", id, len(a), layers)
	}
	for l, row := range a {
		if len(row) != hidden {
			return fmt.Errorf("probe: axis: rollout %q layer %d: %d values, want hidden size %d", id, l, len(row), hidden)
		}
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("probe: axis: rollout %q layer %d value %d is %v", id, l, j, v)
			}
		}
	}
	return nil
}
