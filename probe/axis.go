package probe

import (
	"fmt"
	"math"
	"runtime"
	"sort"
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

// AxisOptions configures BuildAxis.
type AxisOptions struct {
	// Percentiles at which tau is calibrated (DefaultPercentiles when nil).
	Percentiles []float64
	// Components is how many principal components' role loadings are kept per layer (3 when <= 0).
	Components int
	// ChunkBytes bounds the activations read at a time (256 MiB when <= 0).
	ChunkBytes int64
}

// LayerPCA is persona space at one layer: the PCA of the mean-centred role vectors.
type LayerPCA struct {
	// Explained is the fraction of variance of every component (min(roles, hidden) of them).
	Explained []float64 `json:"variance_explained"`
	// Variance is the variance along every component (ddof=1).
	Variance []float64 `json:"variance"`
	// PC1Cosine is the cosine between PC1 (oriented so the default projects high) and the axis.
	PC1Cosine float64 `json:"pc1_cosine"`
	// Components are the first principal directions [k][hidden] (PC1 oriented as above, the others
	// with their largest entry positive).
	Components [][]float64 `json:"-"`
	// Loadings are the roles' coordinates on the first components [roles][k].
	Loadings [][]float64 `json:"role_loadings"`
	// DefaultLoading is the default vector's coordinates on the same components [k].
	DefaultLoading []float64 `json:"default_loading"`
}

// AxisBuild is the Assistant Axis of a run with everything that was computed on the way.
//
// Method (following the reference project's scripts): a role's vector is the mean of its kept
// rollouts' mean activations; the default vector is the mean over ALL default rollouts pooled
// (the reference computes one "default" vector over every default prompt's rollouts, not one per
// prompt); axis = default vector - mean of the role vectors, each role weighing the same whatever
// its number of kept rollouts. Roles with no kept rollout are left out (listed in Dropped).
type AxisBuild struct {
	Layers, Hidden int

	RoleNames  []string      // roles with at least one kept rollout, sorted by name
	RoleCounts []int         // kept rollouts of each role
	RoleMeans  [][][]float32 // [roles][layers][hidden]
	Dropped    []string      // roles that had rollouts but none kept

	DefaultCount int
	DefaultMean  [][]float32 // [layers][hidden]
	Axis         [][]float32 // [layers][hidden]: DefaultMean - mean(RoleMeans)
	AxisNorms    []float64   // |axis| per layer

	// Percentiles and Tau[percentile][layer]: percentiles of the projections of every rollout's
	// mean activation (roles, kept or not, and defaults) on the unit axis of each layer.
	Percentiles    []float64
	Tau            [][]float32
	CalibrationSet int // number of rollouts the percentiles are taken over

	PCA []LayerPCA // per layer
}

// BuildAxis computes the axis, persona space (PCA) and calibration from an activation source,
// reading the activations twice (sums, then projections), a bounded chunk at a time.
func BuildAxis(src ActivationSource, opts AxisOptions) (*AxisBuild, error) {
	L, H := src.Shape()
	if L <= 0 || H <= 0 {
		return nil, fmt.Errorf("probe: axis: activations have %d layers and hidden size %d", L, H)
	}
	percentiles := opts.Percentiles
	if percentiles == nil {
		percentiles = DefaultPercentiles
	}
	if err := CheckPercentiles(percentiles); err != nil {
		return nil, fmt.Errorf("probe: axis: %w", err)
	}
	k := opts.Components
	if k <= 0 {
		k = 3
	}
	samples := src.Samples()
	if len(samples) == 0 {
		return nil, fmt.Errorf("probe: axis: the run has no rollouts")
	}
	chunk := chunkRows(opts.ChunkBytes, L, H)

	// Pass 1: per-role sums of kept rollouts.
	sums := map[string][][]float64{}
	counts := map[string]int{}
	seenRole := map[string]bool{}
	var kept []AxisSample
	for _, s := range samples {
		seenRole[s.Role] = true
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
	if err != nil {
		return nil, err
	}
	if counts[DefaultRoleName] == 0 {
		return nil, fmt.Errorf("probe: axis: no %q rollouts: the axis needs the default (Assistant) prompts' rollouts", DefaultRoleName)
	}
	b := &AxisBuild{Layers: L, Hidden: H, Percentiles: append([]float64(nil), percentiles...)}
	for role := range seenRole {
		if role == DefaultRoleName {
			continue
		}
		if counts[role] == 0 {
			b.Dropped = append(b.Dropped, role)
		} else {
			b.RoleNames = append(b.RoleNames, role)
		}
	}
	sort.Strings(b.RoleNames)
	sort.Strings(b.Dropped)
	if len(b.RoleNames) == 0 {
		return nil, fmt.Errorf("probe: axis: no role has a kept rollout (roles seen: %d, all without a kept rollout); with a judge, only score-%d rollouts count", len(b.Dropped), KeepScore)
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

	// Axis = default - mean of role vectors.
	axis64 := make([][]float64, L)
	units := make([][]float64, L)
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
			return nil, fmt.Errorf("probe: axis: layer %d: the default and role means coincide (axis norm 0)", l)
		}
		units[l] = make([]float64, H)
		for j := range units[l] {
			units[l][j] = axis64[l][j] / b.AxisNorms[l]
		}
	}

	// Pass 2: projections of every rollout on the unit axis, for calibration.
	projs := make([][]float64, L)
	err = forChunks(src, samples, chunk, func(batch []AxisSample, acts [][][]float32) error {
		for i, s := range batch {
			a := acts[i]
			if err := checkActivation(s.ID, a, L, H); err != nil {
				return err
			}
			for l := range a {
				var p float64
				for j, v := range a[l] {
					p += float64(v) * units[l][j]
				}
				projs[l] = append(projs[l], p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.CalibrationSet = len(samples)
	if b.Tau, err = Calibrate(projs, percentiles); err != nil {
		return nil, fmt.Errorf("probe: axis: %w", err)
	}

	// Persona space per layer, layers in parallel.
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
			return nil, fmt.Errorf("probe: axis: layer %d: %w", l, err)
		}
	}
	return b, nil
}

// layerPCA is the PCA of one layer's role vectors with PC1 oriented towards the default.
func layerPCA(roles [][]float64, def, axis []float64, k int) (LayerPCA, error) {
	p, err := ComputePCA(roles)
	if err != nil {
		return LayerPCA{}, err
	}
	p.OrientTowards(0, def)
	k = min(k, len(p.Components))
	lp := LayerPCA{Explained: p.Explained, Variance: p.Variance, Components: p.Components[:k]}
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
