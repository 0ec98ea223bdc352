package weights

// DType is a safetensors element type as spelled in the file header
// ("F32", "BF16", "F16", "I64", ...).
type DType string

// The element types a safetensors header may name. Only F32, BF16 and F16 can
// be converted to float32; the others are readable as raw bytes.
const (
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	F64    DType = "F64"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	U8     DType = "U8"
	Bool   DType = "BOOL"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
)

var dtypeSizes = map[DType]int{
	F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1,
	U64: 8, U32: 4, U16: 2, U8: 1, Bool: 1, F8E4M3: 1, F8E5M2: 1,
}

// Size returns the number of bytes of one element, or 0 for an unknown type.
func (d DType) Size() int { return dtypeSizes[d] }

// Known reports whether d is a safetensors element type this package recognises.
func (d DType) Known() bool { return dtypeSizes[d] != 0 }

// IsFloat reports whether tensors of this type can be converted to float32
// by this package (F32, BF16, F16).
func (d DType) IsFloat() bool { return d == F32 || d == BF16 || d == F16 }

// TorchName returns the torch_dtype spelling of a float DType ("float32",
// "bfloat16", "float16"), or "" for other types.
func (d DType) TorchName() string {
	switch d {
	case F32:
		return "float32"
	case BF16:
		return "bfloat16"
	case F16:
		return "float16"
	}
	return ""
}
