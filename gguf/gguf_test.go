package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"slices"
	"strings"
	"testing"
)

// builder writes GGUF files for tests, following the specification's
// layout: header, metadata, tensor descriptions, padding, tensor data.
type builder struct {
	kv      bytes.Buffer
	nKV     int
	tensors []testTensor
	align   int
}

type testTensor struct {
	name string
	dims []uint64
	typ  GGMLType
	data []byte
}

func le(v any) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, v)
	return b.Bytes()
}

func ggufString(s string) []byte { return append(le(uint64(len(s))), s...) }

func (b *builder) add(key string, t ValueType, payload []byte) *builder {
	b.kv.Write(ggufString(key))
	b.kv.Write(le(uint32(t)))
	b.kv.Write(payload)
	b.nKV++
	return b
}

func (b *builder) str(key, v string) *builder { return b.add(key, TypeString, ggufString(v)) }
func (b *builder) u32(key string, v uint32) *builder {
	return b.add(key, TypeUint32, le(v))
}
func (b *builder) f32(key string, v float32) *builder { return b.add(key, TypeFloat32, le(v)) }
func (b *builder) strs(key string, vs []string) *builder {
	p := append(le(uint32(TypeString)), le(uint64(len(vs)))...)
	for _, v := range vs {
		p = append(p, ggufString(v)...)
	}
	return b.add(key, TypeArray, p)
}
func (b *builder) i32s(key string, vs []int32) *builder {
	p := append(le(uint32(TypeInt32)), le(uint64(len(vs)))...)
	for _, v := range vs {
		p = append(p, le(v)...)
	}
	return b.add(key, TypeArray, p)
}

func (b *builder) tensor(name string, typ GGMLType, data []byte, dims ...uint64) *builder {
	b.tensors = append(b.tensors, testTensor{name, dims, typ, data})
	return b
}

func (b *builder) bytes() []byte {
	align := b.align
	if align == 0 {
		align = defaultAlignment
	}
	var out bytes.Buffer
	out.Write(le(uint32(magic)))
	out.Write(le(uint32(3)))
	out.Write(le(uint64(len(b.tensors))))
	out.Write(le(uint64(b.nKV)))
	out.Write(b.kv.Bytes())
	var data bytes.Buffer
	for _, t := range b.tensors {
		for data.Len()%align != 0 {
			data.WriteByte(0)
		}
		out.Write(ggufString(t.name))
		out.Write(le(uint32(len(t.dims))))
		for _, d := range t.dims {
			out.Write(le(d))
		}
		out.Write(le(uint32(t.typ)))
		out.Write(le(uint64(data.Len())))
		data.Write(t.data)
	}
	for out.Len()%align != 0 {
		out.WriteByte(0)
	}
	out.Write(data.Bytes())
	return out.Bytes()
}

func parseBytes(b []byte) (*File, error) { return Parse(bytes.NewReader(b), int64(len(b))) }

// Hand-made blocks whose values are written out below from the format
// definitions (ggml-quants.c), not computed by the code under test.
func q80Block() []byte { // d = 0.5, q = -16..15
	b := le(uint16(0x3800))
	for j := 0; j < 32; j++ {
		b = append(b, byte(int8(j-16)))
	}
	return b
}

func q40Block() []byte { // d = 2; byte j: low nibble j, high nibble 15−j
	b := le(uint16(0x4000))
	for j := 0; j < 16; j++ {
		b = append(b, byte(j)|byte(15-j)<<4)
	}
	return b
}

func q41Block() []byte { // d = 0.25, m = −1; byte j: low nibble j, high nibble 15−j
	b := append(le(uint16(0x3400)), le(uint16(0xBC00))...)
	for j := 0; j < 16; j++ {
		b = append(b, byte(j)|byte(15-j)<<4)
	}
	return b
}

func q50Block() []byte { // d = 1; nibbles as Q4; fifth bit set for values 0..7 and 16..19
	b := append(le(uint16(0x3C00)), le(uint32(0x000F00FF))...)
	for j := 0; j < 16; j++ {
		b = append(b, byte(j)|byte(15-j)<<4)
	}
	return b
}

func q51Block() []byte { // d = 0.5, m = 2; nibbles as Q4; fifth bit only for value 31
	b := append(append(le(uint16(0x3800)), le(uint16(0x4000))...), le(uint32(0x80000000))...)
	for j := 0; j < 16; j++ {
		b = append(b, byte(j)|byte(15-j)<<4)
	}
	return b
}

func TestDequantizeKnownBlocks(t *testing.T) {
	tests := []struct {
		typ  GGMLType
		raw  []byte
		want map[int]float32 // index → value
	}{
		{Q8_0, q80Block(), map[int]float32{0: -8, 1: -7.5, 16: 0, 31: 7.5}},
		// Q4_0: (nibble − 8)·d. Value j < 16 is the low nibble j, value
		// j+16 the high nibble 15−j.
		{Q4_0, q40Block(), map[int]float32{0: -16, 8: 0, 15: 14, 16: 14, 31: -16}},
		// Q4_1: nibble·d + m.
		{Q4_1, q41Block(), map[int]float32{0: -1, 4: 0, 15: 2.75, 16: 2.75, 31: -1}},
		// Q5_0: (nibble | fifth bit << 4) − 16, times d.
		{Q5_0, q50Block(), map[int]float32{0: 0, 7: 7, 8: -8, 15: -1, 16: 15, 19: 12, 20: -5, 31: -16}},
		// Q5_1: (nibble | fifth bit << 4)·d + m.
		{Q5_1, q51Block(), map[int]float32{0: 2, 15: 9.5, 16: 9.5, 30: 2.5, 31: 10}},
		{F16, slices.Concat(le(uint16(0x3C00)), le(uint16(0xC000)), le(uint16(0x0001)), le(uint16(0x7BFF))),
			map[int]float32{0: 1, 1: -2, 2: 1.0 / (1 << 24), 3: 65504}},
		{BF16, slices.Concat(le(uint16(0x3F80)), le(uint16(0xC0A0))), map[int]float32{0: 1, 1: -5}},
		{F32, slices.Concat(le(float32(1.5)), le(float32(-3e-8))), map[int]float32{0: 1.5, 1: -3e-8}},
	}
	for _, tt := range tests {
		t.Run(tt.typ.String(), func(t *testing.T) {
			bv, bb, _ := tt.typ.blockLayout()
			dst := make([]float32, len(tt.raw)/bb*bv)
			if err := Dequantize(dst, tt.raw, tt.typ); err != nil {
				t.Fatal(err)
			}
			for i, w := range tt.want {
				if dst[i] != w {
					t.Errorf("value %d = %v, want %v", i, dst[i], w)
				}
			}
			if err := Dequantize(dst[:len(dst)-1], tt.raw, tt.typ); err == nil && bv > 1 {
				t.Errorf("a short destination was accepted")
			}
		})
	}
	if err := Dequantize(make([]float32, 256), make([]byte, 210), 14); err == nil || !strings.Contains(err.Error(), "Q6_K") {
		t.Errorf("unsupported type: err = %v, want one naming Q6_K", err)
	}
}

func TestHalfToFloatSpecials(t *testing.T) {
	if v := halfToFloat(0x7C00); !math.IsInf(float64(v), 1) {
		t.Errorf("0x7C00 = %v, want +Inf", v)
	}
	if v := halfToFloat(0xFE00); !math.IsNaN(float64(v)) {
		t.Errorf("0xFE00 = %v, want NaN", v)
	}
	if v := halfToFloat(0x8000); v != 0 || !math.Signbit(float64(v)) {
		t.Errorf("0x8000 = %v, want -0", v)
	}
	if v := halfToFloat(0x83FF); v != -1023.0/(1<<24) {
		t.Errorf("0x83FF = %v, want the largest negative subnormal", v)
	}
}

func sampleFile() []byte {
	b := &builder{}
	b.str("general.architecture", "llama").u32("llama.block_count", 2).f32("llama.rope.freq_base", 100000).
		add("flag", TypeBool, []byte{1}).add("neg", TypeInt8, []byte{0xff}).add("big", TypeUint64, le(uint64(1)<<63)).
		strs("tokenizer.ggml.tokens", []string{"a", "b", "<|x|>"}).i32s("tokenizer.ggml.token_type", []int32{1, 1, 3})
	b.tensor("q8", Q8_0, slices.Concat(q80Block(), q80Block()), 32, 2)
	b.tensor("q41", Q4_1, q41Block(), 32)
	b.tensor("f32", F32, slices.Concat(le(float32(1)), le(float32(2)), le(float32(3))), 3)
	b.tensor("f16", F16, slices.Concat(le(uint16(0x3C00)), le(uint16(0xC000))), 1, 2)
	return b.bytes()
}

func TestParseSample(t *testing.T) {
	f, err := parseBytes(sampleFile())
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := f.String("general.architecture"); s != "llama" {
		t.Errorf("architecture %q", s)
	}
	if n, _ := f.Int("llama.block_count"); n != 2 {
		t.Errorf("block_count %d", n)
	}
	if v, _ := f.Float("llama.rope.freq_base"); v != 100000 {
		t.Errorf("freq_base %v", v)
	}
	if b, ok := f.Bool("flag"); !ok || !b {
		t.Errorf("flag %v %v", b, ok)
	}
	if n, _ := f.Int("neg"); n != -1 {
		t.Errorf("int8 0xff = %d, want -1", n)
	}
	if v := f.Meta["big"].V; v != uint64(1)<<63 {
		t.Errorf("uint64 2^63 = %v (%T)", v, v)
	}
	if toks, _ := f.Strings("tokenizer.ggml.tokens"); !slices.Equal(toks, []string{"a", "b", "<|x|>"}) {
		t.Errorf("tokens %q", toks)
	}
	if tt, _ := f.Ints("tokenizer.ggml.token_type"); !slices.Equal(tt, []int64{1, 1, 3}) {
		t.Errorf("token types %v", tt)
	}
	if !slices.Equal(f.Keys[:2], []string{"general.architecture", "llama.block_count"}) {
		t.Errorf("keys out of file order: %v", f.Keys)
	}
	ti, _ := f.Tensor("q8")
	if !slices.Equal(ti.Shape(), []int{2, 32}) {
		t.Errorf("q8 shape %v, want [2 32] (ggml dims reversed)", ti.Shape())
	}
	q8, err := f.Float32("q8")
	if err != nil {
		t.Fatal(err)
	}
	if len(q8) != 64 || q8[0] != -8 || q8[32] != -8 || q8[63] != 7.5 {
		t.Errorf("q8 = %v", q8)
	}
	q41, _ := f.Float32("q41")
	if q41[15] != 2.75 || q41[31] != -1 {
		t.Errorf("q41 = %v", q41)
	}
	f32, _ := f.Float32("f32")
	f16, _ := f.Float32("f16")
	if !slices.Equal(f32, []float32{1, 2, 3}) || !slices.Equal(f16, []float32{1, -2}) {
		t.Errorf("f32 %v f16 %v", f32, f16)
	}
	if _, err := f.Float32("nope"); err == nil {
		t.Error("a missing tensor read without error")
	}
}

func TestParseRejectsCorruptFiles(t *testing.T) {
	good := sampleFile()
	// Every truncation fails cleanly.
	for n := 0; n < len(good); n++ {
		if _, err := parseBytes(good[:n]); err == nil {
			t.Fatalf("a file cut to %d of %d bytes parsed", n, len(good))
		}
	}
	header := func(nTensors, nKV uint64) []byte {
		return slices.Concat(le(uint32(magic)), le(uint32(3)), le(nTensors), le(nKV))
	}
	kv := func(key string, t ValueType, payload ...[]byte) []byte {
		return slices.Concat(ggufString(key), le(uint32(t)), slices.Concat(payload...))
	}
	tinfo := func(name string, dims []uint64, typ GGMLType, off uint64) []byte {
		b := slices.Concat(ggufString(name), le(uint32(len(dims))))
		for _, d := range dims {
			b = append(b, le(d)...)
		}
		return slices.Concat(b, le(uint32(typ)), le(off))
	}
	pad := make([]byte, 64)
	tests := []struct {
		name, file, want string
	}{
		{"magic", string(slices.Concat([]byte("GGML"), good[4:])), "not a GGUF file"},
		{"version", string(slices.Concat(le(uint32(magic)), le(uint32(1)), good[8:])), "version 1"},
		{"kv count", string(header(0, 1<<60)), "do not fit"},
		{"tensor count", string(header(1<<60, 0)), "do not fit"},
		{"string length", string(slices.Concat(header(0, 1), le(uint64(1)<<62), pad)), "longer than"},
		{"array count", string(slices.Concat(header(0, 1), kv("a", TypeArray, le(uint32(TypeUint32)), le(uint64(1)<<61)))), "does not fit"},
		{"string array count", string(slices.Concat(header(0, 1), kv("a", TypeArray, le(uint32(TypeString)), le(uint64(1)<<40)))), "does not fit"},
		{"nested array", string(slices.Concat(header(0, 1), kv("a", TypeArray, le(uint32(TypeArray)), le(uint64(1))))), "arrays of arrays"},
		{"value type", string(slices.Concat(header(0, 1), kv("a", 99))), "unknown value type"},
		{"bool", string(slices.Concat(header(0, 1), kv("a", TypeBool, []byte{7}))), "neither 0 nor 1"},
		{"duplicate key", string(slices.Concat(header(0, 2), kv("a", TypeUint8, []byte{1}), kv("a", TypeUint8, []byte{2}))), "twice"},
		{"alignment", string(slices.Concat(header(0, 1), kv("general.alignment", TypeUint32, le(uint32(24))))), "power of two"},
		{"rank", string(slices.Concat(header(1, 0), tinfo("t", []uint64{1, 1, 1, 1, 1}, F32, 0), pad)), "dimensions"},
		{"zero dim", string(slices.Concat(header(1, 0), tinfo("t", []uint64{0}, F32, 0), pad)), "dimension 0 = 0"},
		{"huge dims", string(slices.Concat(header(1, 0), tinfo("t", []uint64{1 << 31, 1 << 31, 1 << 31}, F32, 0), pad)), "dimension"},
		{"type", string(slices.Concat(header(1, 0), tinfo("t", []uint64{256}, 14, 0), pad)), "Q6_K"},
		{"partial block", string(slices.Concat(header(1, 0), tinfo("t", []uint64{48}, Q8_0, 0), pad)), "whole number"},
		{"beyond end", string(slices.Concat(header(1, 0), tinfo("t", []uint64{1 << 20}, F32, 0), pad)), "beyond the end"},
		{"offset beyond end", string(slices.Concat(header(1, 0), tinfo("t", []uint64{1}, F32, 1<<62), pad)), "beyond the end"},
		{"misaligned", string(slices.Concat(header(1, 0), tinfo("t", []uint64{1}, F32, 4), pad)), "not aligned"},
		{"duplicate tensor", string(slices.Concat(header(2, 0), tinfo("t", []uint64{1}, F32, 0), tinfo("t", []uint64{1}, F32, 32), pad)), "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseBytes([]byte(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestOpenMissingFile(t *testing.T) {
	_, err := Open(t.TempDir() + "/none.gguf")
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzParse: arbitrary bytes never panic, and whatever parses reads back
// every tensor within the file's bounds.
func FuzzParse(f *testing.F) {
	f.Add(sampleFile())
	f.Add(tinyLlamaGGUF(f))
	f.Add([]byte("GGUF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := parseBytes(data)
		if err != nil {
			return
		}
		for _, ti := range g.Tensors {
			if ti.Elements() > uint64(len(data))*2 {
				t.Fatalf("tensor %q claims %d values from a %d-byte file", ti.Name, ti.Elements(), len(data))
			}
			if _, err := g.Float32(ti.Name); err != nil {
				t.Fatalf("tensor %q parsed but does not read: %v", ti.Name, err)
			}
		}
	})
}
