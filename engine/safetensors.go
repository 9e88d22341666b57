package engine

import "github.com/asearcher/asearcher/safetensors"

// The safetensors codec lives in its own package so that packages the
// engine may import (peft adapters) can read and write weights too; these
// names keep the engine's callers unchanged.

// DType is an on-disk element type.
type DType = safetensors.DType

// Tensor is one decoded tensor, always widened to float32.
type Tensor = safetensors.Tensor

// NamedTensor is a tensor to write.
type NamedTensor = safetensors.NamedTensor

const (
	F32  = safetensors.F32
	F16  = safetensors.F16
	BF16 = safetensors.BF16
)

// ParseDType accepts the safetensors names and the torch_dtype spellings.
func ParseDType(s string) (DType, error) { return safetensors.ParseDType(s) }

// DecodeSafetensors parses a safetensors file held in memory.
func DecodeSafetensors(buf []byte) (map[string]Tensor, error) { return safetensors.Decode(buf) }

// EncodeSafetensors serialises tensors in dt, sorted by name.
func EncodeSafetensors(tensors []NamedTensor, dt DType, metadata map[string]string) ([]byte, error) {
	return safetensors.Encode(tensors, dt, metadata)
}
