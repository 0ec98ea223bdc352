package axis

import (
	"strings"
	"testing"
)

// TestDefaultsFor: the reference's README table ("Models from the Paper": Gemma 2 27B layer 22,
// Qwen3-32B layer 32 capped at layers_46:54-p0.25, Llama 3.3 70B layer 40 capped at
// layers_56:72-p0.25) is found from a model's configuration, whatever its directory is called;
// any other shape gets the middle layer and no capping setting.
func TestDefaultsFor(t *testing.T) {
	for _, tc := range []struct {
		arch          string
		layers, hid   int
		axisLayer     int
		capLayers     string
		capPercentile float64
		reason        string
	}{
		{"Gemma2ForCausalLM", 46, 4608, 22, "", 0, "reference default for google/gemma-2-27b-it"},
		{"Qwen3ForCausalLM", 64, 5120, 32, "46:54", 25, "reference default for Qwen/Qwen3-32B"},
		{"LlamaForCausalLM", 80, 8192, 40, "56:72", 25, "reference default for meta-llama/Llama-3.3-70B-Instruct"},
		// Same layer count, other family or width: not the reference's model.
		{"Qwen2ForCausalLM", 64, 5120, 32, "", 0, "middle layer 64/2"},
		{"Gemma2ForCausalLM", 46, 4096, 23, "", 0, "middle layer 46/2"},
		{"Qwen3ForCausalLM", 28, 1024, 14, "", 0, "middle layer 28/2"},
		{"LlamaForCausalLM", 5, 64, 2, "", 0, "middle layer 5/2"},
	} {
		d := DefaultsFor(tc.arch, tc.layers, tc.hid)
		if d.AxisLayer != tc.axisLayer || d.CapLayers != tc.capLayers || d.CapPercentile != tc.capPercentile || !strings.HasPrefix(d.AxisLayerReason, tc.reason) {
			t.Errorf("%s %dx%d: %+v, want layer %d (%s), cap %q at p%g", tc.arch, tc.layers, tc.hid, d, tc.axisLayer, tc.reason, tc.capLayers, tc.capPercentile)
		}
		if (d.CapLayers != "") != strings.Contains(d.CapReason, "layers_"+d.CapLayers+"-p0.25") {
			t.Errorf("%s: cap reason %q does not name the reference experiment id", tc.arch, d.CapReason)
		}
	}
}
