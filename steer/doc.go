// Package steer changes the residual stream during generation through the
// engine's hooks: capping along the Assistant Axis (the paper's floor),
// adding a steering vector, and ablating a direction, on any set of layers.
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
