package weights

// TensorSource is what the engine loads weights from: a checkpoint on disk or
// an in-memory set of tensors (tests). Names are the standard Hugging Face
// names (see Config.ExpectedTensors), without Config.TensorPrefix.
type TensorSource interface {
	// Float32 returns the tensor converted to float32 in row-major order and
	// its shape. The slice may alias memory owned by the source; callers must
	// not modify it.
	Float32(name string) (data []float32, shape []int, err error)
	// Has reports whether the tensor exists.
	Has(name string) bool
}
