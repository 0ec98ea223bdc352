package weights

// OpenModel resolves ref (a directory or an offline Hugging Face id, see
// ResolveModel), parses its config.json, opens its safetensors checkpoint
// with the config's TensorPrefix and checks that every expected tensor is
// present with the right shape. The caller closes the checkpoint.
func OpenModel(ref string) (*Config, *Checkpoint, error) {
	dir, err := ResolveModel(ref)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	ckpt, err := OpenCheckpoint(dir)
	if err != nil {
		return nil, nil, err
	}
	ckpt.SetPrefix(cfg.TensorPrefix)
	if err := cfg.ValidateSource(ckpt); err != nil {
		ckpt.Close()
		return nil, nil, err
	}
	return cfg, ckpt, nil
}
