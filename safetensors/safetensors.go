// Package safetensors reads and writes the safetensors format (Hugging Face
// weights): F32, F16 and BF16 tensors, always widened to float32 in memory.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
)

// Safetensors layout: an 8-byte little-endian header length N, N bytes of
// JSON mapping tensor names to {dtype, shape, data_offsets}, then the raw
// little-endian data. Offsets are relative to the end of the header.

// DType is an on-disk element type.
type DType string

const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
)

func (d DType) size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// ParseDType accepts the safetensors names and the torch_dtype spellings.
func ParseDType(s string) (DType, error) {
	switch s {
	case "F32", "f32", "float32", "":
		return F32, nil
	case "F16", "f16", "float16":
		return F16, nil
	case "BF16", "bf16", "bfloat16":
		return BF16, nil
	}
	return "", fmt.Errorf("dtype %q is not supported (want float32, float16 or bfloat16)", s)
}

type stEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// Tensor is one decoded tensor, always widened to float32.
type Tensor struct {
	Shape []int
	Data  []float32
}

// maxHeader bounds the JSON header so a corrupt length cannot make us
// allocate gigabytes.
const maxHeader = 100 << 20

// Decode parses a safetensors file held in memory.
func Decode(buf []byte) (map[string]Tensor, error) {
	if len(buf) < 8 {
		return nil, errors.New("safetensors: file shorter than its 8-byte header length")
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > maxHeader || n > uint64(len(buf)-8) {
		return nil, fmt.Errorf("safetensors: header length %d does not fit the %d-byte file", n, len(buf))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("safetensors: header: %w", err)
	}
	data := buf[8+n:]
	out := make(map[string]Tensor, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			continue
		}
		var e stEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		dt, err := ParseDType(e.DType)
		if err != nil || e.DType == "" {
			return nil, fmt.Errorf("safetensors: tensor %q: dtype %q is not supported (want F32, F16 or BF16)", name, e.DType)
		}
		count := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && count > math.MaxInt32/int64(d)) {
				return nil, fmt.Errorf("safetensors: tensor %q: bad shape %v", name, e.Shape)
			}
			count *= int64(d)
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > int64(len(data)) || hi-lo != count*int64(dt.size()) {
			return nil, fmt.Errorf("safetensors: tensor %q: offsets %v do not match shape %v and dtype %s in %d data bytes",
				name, e.Offsets, e.Shape, e.DType, len(data))
		}
		out[name] = Tensor{Shape: e.Shape, Data: decodeFloats(data[lo:hi], dt)}
	}
	return out, nil
}

func decodeFloats(b []byte, dt DType) []float32 {
	n := len(b) / dt.size()
	v := make([]float32, n)
	switch dt {
	case F32:
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case BF16:
		for i := range v {
			v[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case F16:
		for i := range v {
			v[i] = halfToFloat(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
	return v
}

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := int32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// subnormal half: value = mant · 2^-24
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | mant<<13)
}

func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff { // inf / NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := mant >> shift
		rem := mant & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, which is still correct rounding
	}
	return sign | uint16(half)
}

func floatToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN stays NaN
		return uint16(b>>16) | 0x40
	}
	rounding := uint32(0x7fff) + (b>>16)&1
	return uint16((b + rounding) >> 16)
}

// NamedTensor is a tensor to write.
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Encode serialises tensors in dt, sorted by name like the
// reference implementation, with the header padded to 8 bytes.
func Encode(tensors []NamedTensor, dt DType, metadata map[string]string) ([]byte, error) {
	sorted := append([]NamedTensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := make(map[string]any, len(sorted)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range sorted {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n != len(t.Data) {
			return nil, fmt.Errorf("safetensors: tensor %q has %d values for shape %v", t.Name, len(t.Data), t.Shape)
		}
		size := int64(n * dt.size())
		header[t.Name] = stEntry{DType: string(dt), Shape: t.Shape, Offsets: [2]int64{off, off + size}}
		off += size
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	buf := make([]byte, 8, 8+len(hj)+int(off))
	binary.LittleEndian.PutUint64(buf, uint64(len(hj)))
	buf = append(buf, hj...)
	for _, t := range sorted {
		for _, x := range t.Data {
			switch dt {
			case F32:
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
			case F16:
				buf = binary.LittleEndian.AppendUint16(buf, floatToHalf(x))
			case BF16:
				buf = binary.LittleEndian.AppendUint16(buf, floatToBF16(x))
			}
		}
	}
	return buf, nil
}
