// Package steer changes the residual stream during generation through the
// engine's hooks: capping along the Assistant Axis (the paper's floor),
// adding a steering vector, and ablating a direction, on any set of layers.
//
// # Spec and Resolve
//
// Every command steers the same way. A Spec is the request as plain data
// (JSON tags; layers in ParseLayers syntax, files by path): a cap at a
// percentile of the axis calibration or at given taus, or a reference
// capping experiment; an add; an ablation; newest-only; the measure layer;
// telemetry. Spec.Validate checks it alone, with *FieldError errors naming
// the field ("cap.percentile"). Resolve(ctx, spec, axis, model) checks the
// axis against the model (axis.Axis.CheckModel), takes the thresholds,
// reads the vector files, chooses the measure layer and compiles the engine
// hooks into a Setup: Setup.Compiled.Hooks go to engine.Generate, Setup.Caps
// are the taus applied per layer, Setup.MeasureLayer is where the projection
// is reported, Setup.Description says it all in one line. The command line
// only turns its flags into a Spec; bench drift takes the Spec and resolves
// it; project resolves an empty Spec for its layer.
//
//	var spec steer.Spec // e.g. from {"cap": {"layers": "46:54", "percentile": 25}}
//	setup, err := steer.Resolve(ctx, spec, ax, steer.ForModel(m))
//	res, err := m.Engine.Generate(ctx, reqs, engine.GenerateOptions{Hooks: setup.Compiled.Hooks})
//	recs := setup.Compiled.Telemetry(res[0])
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
// layer (alpha * vector), then every ablation and cap in the order given.
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
