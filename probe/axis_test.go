package probe

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

// rolloutAll calibrates as tether did before the choice was explicit: span means of every rollout.
var rolloutAll = AxisOptions{CalibrateOn: CalibrateAll, CalibrateUnit: UnitRollout, MinRoleRollouts: 1}

// memSource is an in-memory ActivationSource for tests.
type memSource struct {
	layers, hidden int
	samples        []AxisSample
	acts           map[string][][]float32
}

func (m *memSource) Shape() (int, int)     { return m.layers, m.hidden }
func (m *memSource) Samples() []AxisSample { return m.samples }
func (m *memSource) MeanActivations(ids []string) ([][][]float32, error) {
	out := make([][][]float32, len(ids))
	for i, id := range ids {
		a, ok := m.acts[id]
		if !ok {
			return nil, fmt.Errorf("no rollout %q", id)
		}
		out[i] = a
	}
	return out, nil
}

func (m *memSource) add(id, role string, kept bool, a [][]float32) {
	if m.acts == nil {
		m.acts = map[string][][]float32{}
	}
	m.samples = append(m.samples, AxisSample{ID: id, Role: role, Kept: kept})
	m.acts[id] = a
}

// orthonormal returns n orthonormal vectors of dimension dim (Gram-Schmidt of random vectors).
func orthonormal(rng *rand.Rand, n, dim int) [][]float64 {
	return extendOrthonormal(rng, nil, n, dim)
}

// extendOrthonormal appends random vectors of dimension dim, each made orthogonal to all before
// it (Gram-Schmidt) and of unit length, to the orthonormal basis until it holds n vectors.
func extendOrthonormal(rng *rand.Rand, basis [][]float64, n, dim int) [][]float64 {
	for len(basis) < n {
		v := make([]float64, dim)
		for j := range v {
			v[j] = rng.NormFloat64()
		}
		for _, u := range basis {
			d := dot64(v, u)
			for j := range v {
				v[j] -= d * u[j]
			}
		}
		nv := math.Sqrt(dot64(v, v))
		for j := range v {
			v[j] /= nv
		}
		basis = append(basis, v)
	}
	return basis
}

func dot64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// plantedCoords returns, for nRoles roles, k coordinate columns that are zero-mean, mutually
// orthogonal across roles and have sample variance (ddof=1) exactly sigmas[c]^2.
func plantedCoords(rng *rand.Rand, nRoles int, sigmas []float64) [][]float64 {
	// Columns in role space, orthogonal to the all-ones vector and to each other.
	ones := make([]float64, nRoles)
	for i := range ones {
		ones[i] = 1 / math.Sqrt(float64(nRoles))
	}
	basis := extendOrthonormal(rng, [][]float64{ones}, len(sigmas)+1, nRoles)
	coords := make([][]float64, nRoles) // [role][component]
	for r := range coords {
		coords[r] = make([]float64, len(sigmas))
		for c, s := range sigmas {
			// A unit column has sum of squares 1, so scale by s*sqrt(n-1) for variance s^2.
			coords[r][c] = basis[c+1][r] * s * math.Sqrt(float64(nRoles-1))
		}
	}
	return coords
}

type planted struct {
	src        *memSource
	assistant  []float64   // unit Assistant direction
	components [][]float64 // planted persona-space directions
	sigmas     []float64
}

// plantedRun builds a run with a known Assistant direction and role clusters: at every layer the
// roles sit at centre + sum_c coords[r][c]*components[c] (exact variances sigmas^2), the default at
// centre + delta*assistant, and every rollout adds Gaussian noise.
func plantedRun(seed uint64, pc1IsAssistant bool) planted {
	rng := rand.New(rand.NewPCG(seed, 7))
	const L, H, nRoles, perRole, nDefault = 2, 48, 30, 4, 12
	const delta, noise = 6.0, 0.05
	sigmas := []float64{5, 3, 1.5}
	dirs := orthonormal(rng, 4, H)
	assistant := dirs[0]
	comps := dirs[1:4]
	if pc1IsAssistant {
		comps = [][]float64{dirs[0], dirs[1], dirs[2]}
	}
	coords := plantedCoords(rng, nRoles, sigmas)
	centre := make([]float64, H)
	for j := range centre {
		centre[j] = 3 * rng.NormFloat64()
	}
	src := &memSource{layers: L, hidden: H}
	sample := func(mean []float64) [][]float32 {
		a := make([][]float32, L)
		for l := range a {
			a[l] = make([]float32, H)
			for j := range a[l] {
				// Layer l is the same geometry scaled by (l+1).
				a[l][j] = float32(float64(l+1)*mean[j] + noise*rng.NormFloat64())
			}
		}
		return a
	}
	for i := 0; i < nDefault; i++ {
		m := make([]float64, H)
		for j := range m {
			m[j] = centre[j] + delta*assistant[j]
		}
		src.add(fmt.Sprintf("default/p%d/q0/s0", i), DefaultRoleName, true, sample(m))
	}
	for r := 0; r < nRoles; r++ {
		m := make([]float64, H)
		for j := range m {
			m[j] = centre[j]
			for c := range comps {
				m[j] += coords[r][c] * comps[c][j]
			}
		}
		for s := 0; s < perRole; s++ {
			src.add(fmt.Sprintf("role%02d/p0/q%d/s0", r, s), fmt.Sprintf("role%02d", r), true, sample(m))
		}
	}
	return planted{src: src, assistant: assistant, components: comps, sigmas: sigmas}
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func TestBuildAxisRecoversPlantedStructure(t *testing.T) {
	for _, tc := range []struct {
		name           string
		pc1IsAssistant bool
	}{
		{"assistant direction orthogonal to persona space", false},
		{"PC1 is the assistant direction", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plantedRun(11, tc.pc1IsAssistant)
			b, err := BuildAxis(p.src, AxisOptions{CalibrateOn: CalibrateAll, CalibrateUnit: UnitRollout, ChunkBytes: 7 * 2 * 48 * 4}) // chunks of 7 rollouts
			if err != nil {
				t.Fatal(err)
			}
			if len(b.RoleNames) != 30 || b.DefaultCount != 12 {
				t.Fatalf("roles %d default count %d, want 30 and 12", len(b.RoleNames), b.DefaultCount)
			}
			for l := 0; l < b.Layers; l++ {
				if c := cosine(to64(b.Axis[l]), p.assistant); c < 0.99 {
					t.Errorf("layer %d: cosine(axis, planted) = %.4f, want > 0.99", l, c)
				}
				scale := float64((l + 1) * (l + 1))
				pca := b.PCA[l]
				for c, comp := range p.components {
					if got := math.Abs(cosine(pca.Components[c], comp)); got < 0.99 {
						t.Errorf("layer %d PC%d: |cos| with planted = %.4f, want > 0.99", l, c+1, got)
					}
					want := p.sigmas[c] * p.sigmas[c] * scale
					if rel := math.Abs(pca.Variance[c]-want) / want; rel > 0.03 {
						t.Errorf("layer %d PC%d: variance %.4f, planted %.4f (%.1f%% off)", l, c+1, pca.Variance[c], want, 100*rel)
					}
				}
				// Explained fractions follow from the planted variances (noise adds a little).
				total := 0.0
				for _, s := range p.sigmas {
					total += s * s
				}
				if want := p.sigmas[0] * p.sigmas[0] / total; math.Abs(pca.Explained[0]-want) > 0.02 {
					t.Errorf("layer %d: PC1 explains %.4f, planted %.4f", l, pca.Explained[0], want)
				}
				// Orientation: the default projects high on PC1.
				if pca.DefaultLoading[0] < 0 {
					t.Errorf("layer %d: default loading on PC1 %.4f, want >= 0", l, pca.DefaultLoading[0])
				}
				if tc.pc1IsAssistant {
					if pca.PC1Cosine < 0.99 {
						t.Errorf("layer %d: PC1-axis cosine %.4f, want > 0.99", l, pca.PC1Cosine)
					}
					if c := cosine(pca.Components[0], p.assistant); c < 0.99 {
						t.Errorf("layer %d: PC1 not oriented towards the assistant: cos %.4f", l, c)
					}
				} else if math.Abs(pca.PC1Cosine) > 0.05 {
					t.Errorf("layer %d: PC1-axis cosine %.4f, planted orthogonal", l, pca.PC1Cosine)
				}
			}
		})
	}
}

func TestOrientTowardsFlipsPC1(t *testing.T) {
	// Rows spread along e0; the largest-entry rule makes PC1 = +e0, but the reference point lies
	// on the -e0 side, so orientation must flip it (and the scores).
	rows := [][]float64{{-3, 0.1, 0}, {-1, -0.1, 0}, {1, 0.1, 0}, {3, -0.1, 0}}
	p, err := ComputePCA(rows)
	if err != nil {
		t.Fatal(err)
	}
	if p.Components[0][0] <= 0 {
		t.Fatalf("PC1 %v: want the largest entry positive before orientation", p.Components[0])
	}
	before := p.Scores[0][0]
	if !p.OrientTowards(0, []float64{-5, 0, 0}) {
		t.Fatal("OrientTowards did not flip PC1 towards a reference on the negative side")
	}
	if p.Components[0][0] >= 0 || p.Scores[0][0] != -before {
		t.Errorf("after flip: PC1 %v, score %v (before %v)", p.Components[0], p.Scores[0][0], before)
	}
	if p.Project([]float64{-5, 0, 0})[0] <= 0 {
		t.Error("reference does not project high after orientation")
	}
	if p.OrientTowards(0, []float64{-5, 0, 0}) {
		t.Error("second OrientTowards flipped again")
	}
}

func TestPercentileMatchesNumpyLinear(t *testing.T) {
	// Values from numpy.percentile's definition (method="linear"): position (n-1)*p/100.
	xs := []float64{4, 1, 3, 2}
	for _, tc := range []struct{ p, want float64 }{
		{0, 1}, {25, 1.75}, {50, 2.5}, {75, 3.25}, {100, 4}, {1, 1.03},
	} {
		got, err := percentile(xs, tc.p)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("percentile(%v, %g) = %v, want %v", xs, tc.p, got, tc.want)
		}
	}
	if _, err := percentile(nil, 50); err == nil {
		t.Error("percentile of no values: no error")
	}
	for _, bad := range [][]float64{{}, {101}, {-1}, {25, 25}} {
		if err := CheckPercentiles(bad); err == nil {
			t.Errorf("CheckPercentiles(%v): no error", bad)
		}
	}
}

func TestBuildAxisTauIsPercentileOfProjections(t *testing.T) {
	p := plantedRun(5, false)
	percentiles := []float64{1, 25, 50, 75, 99}
	b, err := BuildAxis(p.src, AxisOptions{CalibrateOn: CalibrateAll, CalibrateUnit: UnitRollout, Percentiles: percentiles})
	if err != nil {
		t.Fatal(err)
	}
	for l := 0; l < b.Layers; l++ {
		u := to64(b.Axis[l])
		n := math.Sqrt(dot64(u, u))
		var projs []float64
		for _, s := range p.src.samples {
			projs = append(projs, dot64(to64(p.src.acts[s.ID][l]), u)/n)
		}
		sort.Float64s(projs)
		for i, pc := range percentiles {
			// Direct: numpy linear interpolation by hand.
			h := float64(len(projs)-1) * pc / 100
			lo := int(h)
			want := projs[lo]
			if lo+1 < len(projs) {
				want += (h - float64(lo)) * (projs[lo+1] - projs[lo])
			}
			if got := float64(b.Tau[i][l]); math.Abs(got-want) > 1e-4*math.Max(1, math.Abs(want)) {
				t.Errorf("layer %d p%g: tau %v, direct %v", l, pc, got, want)
			}
		}
		// The default rollouts sit at the top: the 99th percentile is above the 1st.
		if b.Tau[4][l] <= b.Tau[0][l] {
			t.Errorf("layer %d: tau not increasing with the percentile: %v", l, b.Tau)
		}
	}
}

func TestBuildAxisBadInput(t *testing.T) {
	ones := func(L, H int, v float32) [][]float32 {
		a := make([][]float32, L)
		for l := range a {
			a[l] = make([]float32, H)
			for j := range a[l] {
				a[l][j] = v
			}
		}
		return a
	}
	cases := []struct {
		name  string
		build func() *memSource
		want  string
	}{
		{"no rollouts", func() *memSource { return &memSource{layers: 1, hidden: 2} }, "no rollouts"},
		{"no default rollouts", func() *memSource {
			s := &memSource{layers: 1, hidden: 2}
			s.add("a/p0/q0/s0", "a", true, ones(1, 2, 1))
			return s
		}, `no "default" rollouts`},
		{"no role kept", func() *memSource {
			s := &memSource{layers: 1, hidden: 2}
			s.add("default/p0/q0/s0", DefaultRoleName, true, ones(1, 2, 1))
			s.add("a/p0/q0/s0", "a", false, ones(1, 2, 2))
			return s
		}, "no role has 1 or more kept rollouts"},
		{"only defaults", func() *memSource {
			s := &memSource{layers: 1, hidden: 2}
			s.add("default/p0/q0/s0", DefaultRoleName, true, ones(1, 2, 1))
			return s
		}, "no role has 1 or more kept rollouts"},
		{"wrong hidden size", func() *memSource {
			s := &memSource{layers: 1, hidden: 3}
			s.add("default/p0/q0/s0", DefaultRoleName, true, ones(1, 2, 1))
			return s
		}, "want hidden size 3"},
		{"NaN activation", func() *memSource {
			s := &memSource{layers: 1, hidden: 2}
			s.add("default/p0/q0/s0", DefaultRoleName, true, ones(1, 2, float32(math.NaN())))
			return s
		}, "NaN"},
		{"axis of zero length", func() *memSource {
			s := &memSource{layers: 1, hidden: 2}
			s.add("default/p0/q0/s0", DefaultRoleName, true, ones(1, 2, 1))
			s.add("a/p0/q0/s0", "a", true, ones(1, 2, 1))
			return s
		}, "axis norm 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildAxis(tc.build(), rolloutAll)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestBuildAxisDropsRolesWithoutKeptRollouts(t *testing.T) {
	s := &memSource{layers: 1, hidden: 2}
	s.add("default/p0/q0/s0", DefaultRoleName, true, [][]float32{{1, 0}})
	s.add("a/p0/q0/s0", "a", true, [][]float32{{0, 1}})
	s.add("b/p0/q0/s0", "b", true, [][]float32{{0, 3}})
	s.add("c/p0/q0/s0", "c", false, [][]float32{{5, 5}})
	b, err := BuildAxis(s, rolloutAll)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(b.RoleNames) != "[a b]" || fmt.Sprint(b.Dropped) != "[{c 0}]" {
		t.Errorf("roles %v dropped %v, want [a b] and [c]", b.RoleNames, b.Dropped)
	}
	// axis = (1,0) - mean((0,1),(0,3)) = (1,-2)
	if fmt.Sprint(b.Axis[0]) != "[1 -2]" {
		t.Errorf("axis %v, want [1 -2]", b.Axis[0])
	}
	if b.CalibrationSet != 4 {
		t.Errorf("calibrated over %d rollouts, want all 4", b.CalibrationSet)
	}
	// Two roles differ along (0, 1) only: PC1 is that direction, oriented so the default, at
	// y = 0 below the roles' centre y = 2, projects high: PC1 = (0, -1); explained 100%.
	lp := b.PCA[0]
	if math.Abs(lp.Components[0][0]) > 1e-12 || math.Abs(lp.Components[0][1]+1) > 1e-12 || math.Abs(lp.Explained[0]-1) > 1e-12 {
		t.Errorf("PC1 %v explained %v, want (0, -1) and 1", lp.Components[0], lp.Explained)
	}
	// cos(PC1, axis) = (0,-1).(1,-2)/sqrt(5) = 2/sqrt(5).
	if math.Abs(lp.PC1Cosine-2/math.Sqrt(5)) > 1e-12 {
		t.Errorf("PC1 cosine %v, want %v", lp.PC1Cosine, 2/math.Sqrt(5))
	}

	// A single role has no persona-space variance: PC1 cosine is reported as 0.
	one := &memSource{layers: 1, hidden: 2}
	one.add("default/p0/q0/s0", DefaultRoleName, true, [][]float32{{1, 0}})
	one.add("a/p0/q0/s0", "a", true, [][]float32{{0, 1}})
	b1, err := BuildAxis(one, rolloutAll)
	if err != nil {
		t.Fatal(err)
	}
	if b1.PCA[0].PC1Cosine != 0 {
		t.Errorf("single role: PC1 cosine %v, want 0", b1.PCA[0].PC1Cosine)
	}
}

// badTokens re-reads every rollout as two tokens around its span mean, shifted by shift along
// the unit axis: a shift other than 0 is a capture that does not reproduce the run.
type badTokens struct {
	src   *memSource
	shift float64
}

func (b badTokens) ProjectTokens(ids []string, units [][]float64, fn func(int, [][]float64) error) error {
	for i, id := range ids {
		a := b.src.acts[id]
		proj := make([][]float64, len(units))
		for l := range units {
			p := dot3264(a[l], units[l]) + b.shift
			proj[l] = []float64{p - 1, p + 1}
		}
		if err := fn(i, proj); err != nil {
			return err
		}
	}
	return nil
}

func TestBuildAxisTokenCalibrationChecks(t *testing.T) {
	p := plantedRun(3, false)
	if _, err := BuildAxis(p.src, AxisOptions{}); err == nil || !strings.Contains(err.Error(), "no model was given") {
		t.Errorf("token calibration without a projector: error %v", err)
	}
	if _, err := BuildAxis(p.src, AxisOptions{CalibrateUnit: UnitToken, Tokens: badTokens{p.src, 0.5}}); err == nil || !strings.Contains(err.Error(), "not the one the run was made with") {
		t.Errorf("tokens that do not average to the stored means: error %v", err)
	}
	if _, err := BuildAxis(p.src, AxisOptions{Tokens: badTokens{p.src, 0}, MaxTokenValues: 10}); err == nil || !strings.Contains(err.Error(), "more than 10 projections") {
		t.Errorf("token bound: error %v", err)
	}
	for _, bad := range []AxisOptions{{CalibrateOn: "some"}, {CalibrateUnit: "turn"}} {
		if _, err := BuildAxis(p.src, bad); err == nil || !strings.Contains(err.Error(), "expected one of") {
			t.Errorf("%+v: error %v", bad, err)
		}
	}
	// Two tokens at mean-1 and mean+1 of each default rollout: the calibration set is the 12
	// default rollouts' 24 tokens, and their percentiles are numpy's by hand.
	b, err := BuildAxis(p.src, AxisOptions{Tokens: badTokens{p.src, 0}, Percentiles: []float64{25}})
	if err != nil {
		t.Fatal(err)
	}
	if b.CalibrationSet != 12 || b.CalibrationTokens != 24 || b.CalibrateOn != CalibrateDefault || b.CalibrateUnit != UnitToken {
		t.Fatalf("calibrated on %d rollouts, %d tokens (%s/%s); want the 12 default rollouts' 24 tokens", b.CalibrationSet, b.CalibrationTokens, b.CalibrateOn, b.CalibrateUnit)
	}
	for l := 0; l < b.Layers; l++ {
		u := to64(b.Axis[l])
		n := math.Sqrt(dot64(u, u))
		var xs []float64
		for _, s := range p.src.samples {
			if s.Role == DefaultRoleName {
				m := dot64(to64(p.src.acts[s.ID][l]), u) / n
				xs = append(xs, m-1, m+1)
			}
		}
		sort.Float64s(xs)
		h := 23 * 0.25
		want := xs[5] + (h-5)*(xs[6]-xs[5])
		if math.Abs(float64(b.Tau[0][l])-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("layer %d: tau p25 %v, by hand %v", l, b.Tau[0][l], want)
		}
		// 6 of the 24 tokens lie below it (xs[0..5]).
		if b.CapTokenFraction[0][l] != 6.0/24 {
			t.Errorf("layer %d: cap fraction %v, want 6/24", l, b.CapTokenFraction[0][l])
		}
	}
}

// percentile returns the p-th percentile (0..100) of xs with numpy's default "linear" method:
// with the values sorted ascending as s[0..n-1], the position h = (n-1)*p/100 is split into its
// integer part i and fraction f, and the result is s[i] + f*(s[i+1]-s[i]) (s[n-1] when i = n-1).
// xs is not modified. An empty xs or a p outside [0, 100] is an error.
func percentile(xs []float64, p float64) (float64, error) {
	if len(xs) == 0 {
		return 0, fmt.Errorf("probe: percentile %g of no values", p)
	}
	if math.IsNaN(p) || p < 0 || p > 100 {
		return 0, fmt.Errorf("probe: percentile %g outside [0, 100]", p)
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return percentileSorted(s, p), nil
}
