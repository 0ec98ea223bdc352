package axis

import "fmt"

// KnownModel is one row of the reference project's table of models (assistant_axis/models.py
// MODEL_CONFIGS and its README's "Models from the Paper"): the layer the axis is read at and,
// where the paper published one, the capping setting.
type KnownModel struct {
	// Name is the model's Hugging Face id as the reference writes it.
	Name string
	// Architecture, Layers and Hidden identify the model from its config.json (architectures[0],
	// num_hidden_layers, hidden_size), so a local directory of any name is recognised.
	Architecture  string
	Layers        int
	Hidden        int
	AxisLayer     int
	CapLayers     string  // slice notation, "" when the reference published no capping setting
	CapPercentile float64 // 0 when CapLayers is ""
}

// KnownModels is the reference's table. Matching is by configuration shape, so models sharing a
// shape share the row: Llama 3.1 70B and Llama 2 70B have Llama 3.3 70B's (80 blocks of 8192).
var KnownModels = []KnownModel{
	{Name: "google/gemma-2-27b-it", Architecture: "Gemma2ForCausalLM", Layers: 46, Hidden: 4608, AxisLayer: 22},
	{Name: "Qwen/Qwen3-32B", Architecture: "Qwen3ForCausalLM", Layers: 64, Hidden: 5120, AxisLayer: 32,
		CapLayers: "46:54", CapPercentile: 25},
	{Name: "meta-llama/Llama-3.3-70B-Instruct", Architecture: "LlamaForCausalLM", Layers: 80, Hidden: 8192, AxisLayer: 40,
		CapLayers: "56:72", CapPercentile: 25},
}

// LookupModel returns the reference's row for a model of this architecture and shape.
func LookupModel(architecture string, layers, hidden int) (KnownModel, bool) {
	for _, k := range KnownModels {
		if k.Architecture == architecture && k.Layers == layers && k.Hidden == hidden {
			return k, true
		}
	}
	return KnownModel{}, false
}

// Defaults is the axis policy chosen for one model: where to read the axis and, when known, the
// capping setting, each with the reason it was chosen.
type Defaults struct {
	AxisLayer       int
	AxisLayerReason string // e.g. "reference default for Qwen/Qwen3-32B"
	// CapLayers and CapPercentile are the reference's capping setting ("" and 0 when it has none).
	CapLayers     string
	CapPercentile float64
	CapReason     string
}

// DefaultsFor is the axis policy of a model: the reference's table when the model is in it, else
// the middle layer (layers/2, as the reference infers for other models) and no capping setting.
func DefaultsFor(architecture string, layers, hidden int) Defaults {
	if k, ok := LookupModel(architecture, layers, hidden); ok {
		d := Defaults{AxisLayer: k.AxisLayer, AxisLayerReason: "reference default for " + k.Name}
		if k.CapLayers != "" {
			d.CapLayers, d.CapPercentile = k.CapLayers, k.CapPercentile
			d.CapReason = fmt.Sprintf("reference capping setting for %s (layers_%s-p%g)", k.Name, k.CapLayers, k.CapPercentile/100)
		}
		return d
	}
	return Defaults{AxisLayer: layers / 2, AxisLayerReason: fmt.Sprintf("middle layer %d/2; the reference has no default for %s with %d layers x %d", layers, architecture, layers, hidden)}
}
