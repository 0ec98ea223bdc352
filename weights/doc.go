// Package weights reads and writes model weights and configs: safetensors
// files (memory-mapped, validated, F32/BF16/F16 to float32), single-file and
// sharded checkpoints of a Hugging Face model directory, config.json for the
// supported families parsed into one typed Config, offline resolution of
// Hugging Face cache ids, the llama2.c checkpoint importer and a random-model
// writer for tests. It does no tensor math beyond dtype conversion.
//
// Commands open a model with model.Open (package model): it does what
// follows, checks every expected tensor (Config.ValidateSource) and loads the
// engine and the tokenizer. Reading tensors directly:
//
//	dir, err := weights.ResolveModel("HuggingFaceTB/SmolLM2-135M-Instruct")
//	if err != nil { ... }
//	cfg, err := weights.LoadConfig(dir)
//	if err != nil { ... }
//	ckpt, err := weights.OpenCheckpoint(dir)
//	if err != nil { ... }
//	defer ckpt.Close()
//	ckpt.SetPrefix(cfg.TensorPrefix)
//	w, shape, err := ckpt.Float32("model.layers.0.self_attn.q_proj.weight")
package weights
