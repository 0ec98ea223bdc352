package probe

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// PCA is a principal component analysis of a set of vectors (rows), computed from the thin SVD of
// the mean-centred rows: X - mean = U S V^T.
type PCA struct {
	// Mean is the mean row that was subtracted [dim].
	Mean []float64
	// Components are the principal directions, unit length, by decreasing variance [k][dim],
	// k = min(rows, dim).
	Components [][]float64
	// Variance is the variance along each component, S^2/(rows-1) (numpy's and scikit-learn's
	// ddof=1 convention; S^2 itself for a single row).
	Variance []float64
	// Explained is each component's fraction of the total variance (S^2 / sum S^2); all zero when
	// the rows do not vary.
	Explained []float64
	// Scores are the centred rows projected on the components [rows][k].
	Scores [][]float64
}

// ComputePCA runs a PCA of rows (all of the same length, at least one). Component signs are made
// deterministic: each component is oriented so that its entry of largest magnitude is positive;
// callers that need another orientation (OrientTowards) flip it afterwards.
func ComputePCA(rows [][]float64) (*PCA, error) {
	n := len(rows)
	if n == 0 {
		return nil, fmt.Errorf("probe: pca: no rows")
	}
	dim := len(rows[0])
	if dim == 0 {
		return nil, fmt.Errorf("probe: pca: rows are empty")
	}
	mean := make([]float64, dim)
	for i, r := range rows {
		if len(r) != dim {
			return nil, fmt.Errorf("probe: pca: row %d has %d values, want %d", i, len(r), dim)
		}
		for j, v := range r {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("probe: pca: row %d value %d is %v", i, j, v)
			}
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	x := mat.NewDense(n, dim, nil)
	for i, r := range rows {
		for j, v := range r {
			x.Set(i, j, v-mean[j])
		}
	}
	var svd mat.SVD
	if !svd.Factorize(x, mat.SVDThinV) {
		return nil, fmt.Errorf("probe: pca: SVD of a %dx%d matrix did not converge", n, dim)
	}
	s := svd.Values(nil)
	var v mat.Dense
	svd.VTo(&v)
	k := len(s)
	p := &PCA{Mean: mean, Components: make([][]float64, k), Variance: make([]float64, k), Explained: make([]float64, k)}
	var total float64
	for _, sv := range s {
		total += sv * sv
	}
	denom := float64(n - 1)
	if n == 1 {
		denom = 1
	}
	for c := 0; c < k; c++ {
		comp := make([]float64, dim)
		big := 0.0
		for j := range comp {
			comp[j] = v.At(j, c)
			if math.Abs(comp[j]) > math.Abs(big) {
				big = comp[j]
			}
		}
		if big < 0 {
			for j := range comp {
				comp[j] = -comp[j]
			}
		}
		p.Components[c] = comp
		p.Variance[c] = s[c] * s[c] / denom
		if total > 0 {
			p.Explained[c] = s[c] * s[c] / total
		}
	}
	p.Scores = make([][]float64, n)
	for i := range rows {
		p.Scores[i] = p.Project(rows[i])
	}
	return p, nil
}

// Project returns the coordinates of a vector on the components, after subtracting Mean.
func (p *PCA) Project(row []float64) []float64 {
	out := make([]float64, len(p.Components))
	for c, comp := range p.Components {
		var s float64
		for j, v := range row {
			s += (v - p.Mean[j]) * comp[j]
		}
		out[c] = s
	}
	return out
}

// OrientTowards flips component c (and its scores) so that the vector ref projects on it at
// least as high as the mean does: <ref - Mean, component> >= 0. It reports whether it flipped.
func (p *PCA) OrientTowards(c int, ref []float64) bool {
	if c < 0 || c >= len(p.Components) {
		return false
	}
	if p.Project(ref)[c] >= 0 {
		return false
	}
	for j := range p.Components[c] {
		p.Components[c][j] = -p.Components[c][j]
	}
	for _, sc := range p.Scores {
		sc[c] = -sc[c]
	}
	return true
}

// cosine is the cosine similarity of two vectors (0 when either is zero).
func cosine(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}
