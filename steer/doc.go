// Package steer changes the residual stream during generation through the
// engine's hooks: capping along the Assistant Axis (the paper's floor),
// adding a steering vector, and ablating a direction, on any set of layers.
//
// # Spec and Resolve
//
// Every command steers the same way. A Spec is the request as plain data
// (JSON tags; layers in ParseLayers syntax, axes by name, files by path):
// lists of caps (each at a percentile of its axis's calibration or at
// given taus), or a reference capping experiment; of adds; of ablations;
// the projection axis; newest-only; the measure layer; telemetry. Each cap
// or ablation names its axis and each add its vector among the axes given
// to ResolveAxes; "" is the default axis, the command line's --axis, so a
// command's flags make one entry of each kind along it. Spec.Validate
// checks it alone, with *FieldError errors naming the field with its
// entry's index ("cap[1].percentile"). ResolveAxes(ctx, spec, axes, model)
// (Resolve for one default axis) checks the axes against the model
// (axis.Axis.CheckModel), takes the thresholds, reads the vector files,
// chooses the projection axis and the measure layer and compiles the
// engine hooks into a Setup: Setup.Compiled.Hooks go to engine.Generate,
// Setup.Caps are the taus applied per layer, Setup.MeasureLayer is where
// the projection is reported, Setup.Description says it all in one line.
// The command line only turns its flags into a Spec; bench drift takes the
// Spec and resolves it; project resolves an empty Spec for its layer; the
// server maps a request's steering field onto a Spec entry for entry.
//
//	var spec steer.Spec // e.g. from {"cap": [{"layers": "46:54", "percentile": 25}]}
//	setup, err := steer.Resolve(ctx, spec, ax, steer.ForModel(m))
//	res, err := m.Engine.Generate(ctx, reqs, engine.GenerateOptions{Hooks: setup.Compiled.Hooks})
//	recs := setup.Compiled.Telemetry(res[0])
//
// A Spec's lists (List) decode from a JSON list or from one entry's object,
// and a one-entry list encodes as that object: the form a Spec had when it
// held one cap, one add and one ablation, which therefore reads and writes
// back unchanged.
//
// # Several axes on a layer
//
// On each layer the engine applies the sum of every add of the layer, then
// the caps of every cap entry in order, then the ablations of every ablate
// entry in order; caps and ablations along different axes on one layer are
// separate clamps, each acting on the stream the previous one left.
// Projections are reported along one axis, the projection axis
// (Spec.Projections; default: the default axis, else the first cap's axis,
// else the first ablation's, else the first add's vector when it is an
// axis): each recorded layer reports the projection on it after the layer's
// adds and before any cap or ablation (Before), after the whole hook
// (After), and whether a cap along it acted (Capped); see TelemetryRecord.
// Summarize and the measure layer use the same axis. Recording the
// projection axis on a layer whose first clamp is along another axis takes
// one more clamp (an open one, which never changes the stream); a batcher
// bounds the clamps per layer (Model.MaxClamps).
//
// # Measure layer
//
// One rule (DefaultMeasureLayer) for every command: the layer the spec
// names; else, with an axis, the axis file's default layer
// (axis.DefaultLayer: its axis_layer metadata, else the reference's layer
// for the model, else the middle layer), whichever layers are capped;
// without an axis, for a capping experiment, the middle capped layer.
//
// # Conventions
//
// Layers are 0-based decoder block indices; an intervention on layer L acts
// on the output of block L (the residual stream after the whole block), at
// every position (prefill and each decoded token) unless NewestOnly is set.
//
// The axis follows the axis file's convention (axis.Convention): u is the
// unit axis of a layer, the default Assistant projects HIGH on u, and the cap
// is a floor: h <- h + max(0, tau - <h,u>) u. It only acts on activations
// that drifted below tau. The reference project writes the same map as a
// ceiling on v = -u (role minus default) at -tau; the tests check that both
// forms give identical activations.
//
// Within one layer the engine applies, in order: the sum of every Add of the
// layer (alpha * vector), then every cap and ablation in the order given.
//
// # Steering magnitudes
//
// Add's Alpha multiplies its vector as given. Callers that want alpha "in
// units of the layer's mean residual norm" scale it by a norm from one of
// two documented sources: NormsFromAxis (the norm of the axis file's
// default_mean at the layer: the size of the Assistant's mean activation) or
// MeanResidualNorms (the mean, over the positions of a neutral prompt except
// the first, of |h| measured by a Forward pass). The command line uses the
// axis file when one is given and the Forward measurement otherwise.
//
// # llama.cpp interop
//
// ReadControlVector and WriteControlVector handle llama.cpp / repeng control
// vectors: GGUF files with general.architecture "controlvector" and F32
// tensors "direction.N" of [hidden]. Exactly as llama.cpp does, direction.N
// is added to the output of 0-based block N (llama.cpp rejects
// "direction.0", so block 0's output cannot be steered through this format),
// and several tensors for the same layer are summed. llama.cpp can only add
// vectors: it cannot cap, so an exported axis steers llama.cpp by addition
// only.
package steer
