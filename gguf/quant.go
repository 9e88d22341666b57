package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// GGMLType is a tensor's storage type, numbered as in ggml.h.
type GGMLType uint32

// The ggml storage types this package dequantizes (others are named so
// errors can say what a file holds).
const (
	F32  GGMLType = 0
	F16  GGMLType = 1
	Q4_0 GGMLType = 2
	Q4_1 GGMLType = 3
	Q5_0 GGMLType = 6
	Q5_1 GGMLType = 7
	Q8_0 GGMLType = 8
	BF16 GGMLType = 30
)

var ggmlTypeNames = map[GGMLType]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
	10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
	16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
	23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
}

func (t GGMLType) String() string {
	if s, ok := ggmlTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// blockLayout is how many values one block holds and how many bytes it
// takes. Plain float types are blocks of one value.
func (t GGMLType) blockLayout() (values, bytes int, ok bool) {
	switch t {
	case F32:
		return 1, 4, true
	case F16, BF16:
		return 1, 2, true
	case Q4_0:
		return 32, 2 + 16, true // f16 scale, 32 4-bit values
	case Q4_1:
		return 32, 2 + 2 + 16, true // f16 scale and minimum, 32 4-bit values
	case Q5_0:
		return 32, 2 + 4 + 16, true // f16 scale, 32 high bits, 32 low nibbles
	case Q5_1:
		return 32, 2 + 2 + 4 + 16, true
	case Q8_0:
		return 32, 2 + 32, true // f16 scale, 32 int8 values
	}
	return 0, 0, false
}

// rowBytes is the storage size of n values whose contiguous dimension is
// ne0; blocks never straddle rows, so ne0 must be a whole number of blocks.
func (t GGMLType) rowBytes(n, ne0 uint64) (uint64, error) {
	bv, bb, ok := t.blockLayout()
	if !ok {
		return 0, fmt.Errorf("storage type %s is not supported (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 are)", t)
	}
	if ne0%uint64(bv) != 0 {
		return 0, fmt.Errorf("%s rows of %d values are not a whole number of %d-value blocks", t, ne0, bv)
	}
	blocks := n / uint64(bv)
	if blocks > math.MaxInt64/uint64(bb) {
		return 0, fmt.Errorf("%d %s values overflow the file size", n, t)
	}
	return blocks * uint64(bb), nil
}

// Dequantize widens raw data of type t into dst, which holds exactly the
// values raw encodes. Each value is computed in float32 exactly as ggml's
// reference dequantization (and gguf-py's) computes it: q·d, or q·d + m
// with the product rounded before the sum.
func Dequantize(dst []float32, raw []byte, t GGMLType) error {
	bv, bb, ok := t.blockLayout()
	if !ok {
		return fmt.Errorf("storage type %s is not supported", t)
	}
	if len(dst)%bv != 0 || len(raw) != len(dst)/bv*bb {
		return fmt.Errorf("%d bytes of %s do not hold %d values", len(raw), t, len(dst))
	}
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = halfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	default:
		for b := 0; b < len(dst)/bv; b++ {
			dequantBlock(dst[b*bv:(b+1)*bv], raw[b*bb:(b+1)*bb], t)
		}
	}
	return nil
}

// dequantBlock expands one 32-value block. In the 4- and 5-bit formats
// byte j holds value j in its low nibble and value j+16 in its high one;
// Q5's fifth bits sit in a little-endian uint32, bit j for value j.
func dequantBlock(y []float32, b []byte, t GGMLType) {
	d := halfToFloat(binary.LittleEndian.Uint16(b))
	switch t {
	case Q8_0:
		for j := 0; j < 32; j++ {
			y[j] = float32(int8(b[2+j])) * d
		}
	case Q4_0:
		qs := b[2:18]
		for j := 0; j < 16; j++ {
			y[j] = float32(int(qs[j]&0x0f)-8) * d
			y[j+16] = float32(int(qs[j]>>4)-8) * d
		}
	case Q4_1:
		m := halfToFloat(binary.LittleEndian.Uint16(b[2:]))
		qs := b[4:20]
		for j := 0; j < 16; j++ {
			// The explicit conversions keep the product rounded on its own
			// (no fused multiply-add), as in the reference.
			y[j] = float32(float32(qs[j]&0x0f)*d) + m
			y[j+16] = float32(float32(qs[j]>>4)*d) + m
		}
	case Q5_0:
		qh := binary.LittleEndian.Uint32(b[2:])
		qs := b[6:22]
		for j := 0; j < 16; j++ {
			lo := int(qs[j]&0x0f) | int((qh>>j)&1)<<4
			hi := int(qs[j]>>4) | int((qh>>(j+16))&1)<<4
			y[j] = float32(lo-16) * d
			y[j+16] = float32(hi-16) * d
		}
	case Q5_1:
		m := halfToFloat(binary.LittleEndian.Uint16(b[2:]))
		qh := binary.LittleEndian.Uint32(b[4:])
		qs := b[8:24]
		for j := 0; j < 16; j++ {
			lo := qs[j]&0x0f | byte((qh>>j)&1)<<4
			hi := qs[j]>>4 | byte((qh>>(j+16))&1)<<4
			y[j] = float32(float32(lo)*d) + m
			y[j+16] = float32(float32(hi)*d) + m
		}
	}
}

// halfToFloat converts an IEEE 754 binary16 value exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	case frac == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: frac · 2⁻²⁴ is exact in float32.
	v := float32(frac) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}
