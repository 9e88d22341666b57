// Package gguf reads GGUF model files (the llama.cpp format): metadata,
// tensor descriptions and tensor data, dequantizing the common ggml block
// formats to float32. Convert turns a Llama-architecture GGUF into a
// Hugging Face model directory.
//
// The reader treats the file as untrusted: every count and size is checked
// against the bytes that remain before anything is allocated for it, so a
// corrupt or hostile file yields an error, never a panic or a huge
// allocation.
package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// magic is "GGUF" read as a little-endian uint32.
const magic = 0x46554747

// defaultAlignment is the tensor-data alignment when general.alignment is absent.
const defaultAlignment = 32

// maxDims is ggml's GGML_MAX_DIMS.
const maxDims = 4

// maxStringLen bounds one metadata string or tensor name (llama.cpp's
// longest are chat templates of a few tens of kilobytes).
const maxStringLen = 64 << 20

// ValueType is the type tag of a metadata value.
type ValueType uint32

// Metadata value types, as numbered by the GGUF specification.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// scalarSize is the encoded size of a fixed-width value type, 0 otherwise.
func (t ValueType) scalarSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// Value is one metadata value. Scalars are held as int64 (signed and
// unsigned integers up to 2⁶³−1), uint64 (larger unsigned), float64, bool or
// string; arrays as []int64, []float64, []bool or []string, with Elem the
// element type on disk.
type Value struct {
	Type ValueType
	Elem ValueType // element type when Type is TypeArray
	V    any
}

// TensorInfo describes one tensor. Dims are in ggml order (ne[0], the
// contiguous dimension, first); Shape gives them in PyTorch order.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   GGMLType
	Offset uint64 // from the start of the tensor data section
}

// Shape returns the dimensions in row-major (PyTorch) order.
func (t TensorInfo) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[len(t.Dims)-1-i] = int(d)
	}
	return s
}

// Elements is the number of values in the tensor.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a parsed GGUF file. Tensor data is read on demand.
type File struct {
	Version   uint32
	Keys      []string // metadata keys in file order
	Meta      map[string]Value
	Tensors   []TensorInfo
	byName    map[string]int
	dataStart int64
	size      int64
	r         io.ReaderAt
	closer    io.Closer
}

// Open parses the GGUF file at path. Close releases it.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	g, err := Parse(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	g.closer = f
	return g, nil
}

// Close releases the underlying file when Open opened it.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// parser reads the header sequentially and knows how many bytes are left.
type parser struct {
	br   *bufio.Reader
	left int64
	buf  [8]byte
}

var errTruncated = errors.New("file is truncated")

func (p *parser) need(n int64) error {
	if n < 0 || n > p.left {
		return errTruncated
	}
	return nil
}

func (p *parser) bytes(n int) ([]byte, error) {
	if err := p.need(int64(n)); err != nil {
		return nil, err
	}
	var b []byte
	if n <= len(p.buf) {
		b = p.buf[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := io.ReadFull(p.br, b); err != nil {
		return nil, errTruncated
	}
	p.left -= int64(n)
	return b, nil
}

func (p *parser) u32() (uint32, error) {
	b, err := p.bytes(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (p *parser) u64() (uint64, error) {
	b, err := p.bytes(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (p *parser) str() (string, error) {
	n, err := p.u64()
	if err != nil {
		return "", err
	}
	if n > maxStringLen {
		return "", fmt.Errorf("string of %d bytes is longer than the %d allowed", n, maxStringLen)
	}
	if err := p.need(int64(n)); err != nil {
		return "", err
	}
	b, err := p.bytes(int(n))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// scalar decodes one fixed-width value.
func (p *parser) scalar(t ValueType) (any, error) {
	b, err := p.bytes(t.scalarSize())
	if err != nil {
		return nil, err
	}
	switch t {
	case TypeUint8:
		return int64(b[0]), nil
	case TypeInt8:
		return int64(int8(b[0])), nil
	case TypeBool:
		if b[0] > 1 {
			return nil, fmt.Errorf("bool value %d is neither 0 nor 1", b[0])
		}
		return b[0] == 1, nil
	case TypeUint16:
		return int64(binary.LittleEndian.Uint16(b)), nil
	case TypeInt16:
		return int64(int16(binary.LittleEndian.Uint16(b))), nil
	case TypeUint32:
		return int64(binary.LittleEndian.Uint32(b)), nil
	case TypeInt32:
		return int64(int32(binary.LittleEndian.Uint32(b))), nil
	case TypeFloat32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), nil
	case TypeUint64:
		u := binary.LittleEndian.Uint64(b)
		if u > math.MaxInt64 {
			return u, nil
		}
		return int64(u), nil
	case TypeInt64:
		return int64(binary.LittleEndian.Uint64(b)), nil
	case TypeFloat64:
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
	}
	return nil, fmt.Errorf("value type %s is not a scalar", t)
}

func (p *parser) value(t ValueType) (Value, error) {
	switch {
	case t == TypeString:
		s, err := p.str()
		return Value{Type: t, V: s}, err
	case t == TypeArray:
		return p.array()
	case t.scalarSize() > 0:
		v, err := p.scalar(t)
		return Value{Type: t, V: v}, err
	}
	return Value{}, fmt.Errorf("unknown value type %d", uint32(t))
}

func (p *parser) array() (Value, error) {
	et, err := p.u32()
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	n, err := p.u64()
	if err != nil {
		return Value{}, err
	}
	// Each element takes at least its fixed size (8 bytes for a string's
	// length), so a count the remaining bytes cannot hold is refused before
	// anything is allocated for it.
	minSize := int64(elem.scalarSize())
	switch {
	case elem == TypeString:
		minSize = 8
	case elem == TypeArray:
		return Value{}, fmt.Errorf("arrays of arrays are not supported")
	case minSize == 0:
		return Value{}, fmt.Errorf("array of unknown value type %d", et)
	}
	if n > uint64(p.left/minSize) {
		return Value{}, fmt.Errorf("array of %d %s values does not fit in the file: %w", n, elem, errTruncated)
	}
	v := Value{Type: TypeArray, Elem: elem}
	switch elem {
	case TypeString:
		out := make([]string, n)
		for i := range out {
			if out[i], err = p.str(); err != nil {
				return Value{}, err
			}
		}
		v.V = out
	case TypeFloat32, TypeFloat64:
		out := make([]float64, n)
		for i := range out {
			x, err := p.scalar(elem)
			if err != nil {
				return Value{}, err
			}
			out[i] = x.(float64)
		}
		v.V = out
	case TypeBool:
		out := make([]bool, n)
		for i := range out {
			x, err := p.scalar(elem)
			if err != nil {
				return Value{}, err
			}
			out[i] = x.(bool)
		}
		v.V = out
	default:
		out := make([]int64, n)
		for i := range out {
			x, err := p.scalar(elem)
			if err != nil {
				return Value{}, err
			}
			i64, ok := x.(int64)
			if !ok {
				return Value{}, fmt.Errorf("array element %d overflows int64", i)
			}
			out[i] = i64
		}
		v.V = out
	}
	return v, nil
}

// Parse reads a GGUF file's header from r, which holds size bytes.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	p := &parser{br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), left: size}
	m, err := p.u32()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if m != magic {
		return nil, fmt.Errorf("gguf: not a GGUF file (magic %#08x)", m)
	}
	f := &File{Meta: map[string]Value{}, byName: map[string]int{}, size: size, r: r}
	if f.Version, err = p.u32(); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if f.Version < 2 || f.Version > 3 {
		return nil, fmt.Errorf("gguf: version %d is not supported (2 and 3 are)", f.Version)
	}
	nTensors, err := p.u64()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	nKV, err := p.u64()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	// A key-value pair takes at least 12 bytes (key length and type), a
	// tensor description at least 28 (name length, rank, type, offset).
	if nKV > uint64(p.left/12) {
		return nil, fmt.Errorf("gguf: %d metadata entries do not fit in the file", nKV)
	}
	for i := uint64(0); i < nKV; i++ {
		key, err := p.str()
		if err != nil {
			return nil, fmt.Errorf("gguf: metadata entry %d: %w", i, err)
		}
		t, err := p.u32()
		if err != nil {
			return nil, fmt.Errorf("gguf: metadata %q: %w", key, err)
		}
		v, err := p.value(ValueType(t))
		if err != nil {
			return nil, fmt.Errorf("gguf: metadata %q: %w", key, err)
		}
		if _, dup := f.Meta[key]; dup {
			return nil, fmt.Errorf("gguf: metadata key %q appears twice", key)
		}
		f.Keys = append(f.Keys, key)
		f.Meta[key] = v
	}
	if nTensors > uint64(p.left/28) {
		return nil, fmt.Errorf("gguf: %d tensors do not fit in the file", nTensors)
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	for i := uint64(0); i < nTensors; i++ {
		ti, err := p.tensorInfo()
		if err != nil {
			return nil, fmt.Errorf("gguf: tensor %d: %w", i, err)
		}
		if _, dup := f.byName[ti.Name]; dup {
			return nil, fmt.Errorf("gguf: tensor %q appears twice", ti.Name)
		}
		f.byName[ti.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}
	align := int64(defaultAlignment)
	if v, ok := f.Meta["general.alignment"]; ok {
		a, ok := v.V.(int64)
		if !ok || a <= 0 || a > 1<<20 || a&(a-1) != 0 {
			return nil, fmt.Errorf("gguf: general.alignment %v is not a power of two", v.V)
		}
		align = a
	}
	pos := size - p.left
	f.dataStart = (pos + align - 1) / align * align
	for _, ti := range f.Tensors {
		if ti.Offset%uint64(align) != 0 {
			return nil, fmt.Errorf("gguf: tensor %q: offset %d is not aligned to %d", ti.Name, ti.Offset, align)
		}
		n, err := ti.Type.rowBytes(ti.Elements(), ti.Dims[0])
		if err != nil {
			return nil, fmt.Errorf("gguf: tensor %q: %w", ti.Name, err)
		}
		if ti.Offset > uint64(size) || n > uint64(size)-ti.Offset || f.dataStart+int64(ti.Offset)+int64(n) > size {
			return nil, fmt.Errorf("gguf: tensor %q (%d bytes at data offset %d) lies beyond the end of the file", ti.Name, n, ti.Offset)
		}
	}
	return f, nil
}

func (p *parser) tensorInfo() (TensorInfo, error) {
	var ti TensorInfo
	var err error
	if ti.Name, err = p.str(); err != nil {
		return ti, err
	}
	nd, err := p.u32()
	if err != nil {
		return ti, err
	}
	if nd == 0 || nd > maxDims {
		return ti, fmt.Errorf("%q has %d dimensions (1 to %d allowed)", ti.Name, nd, maxDims)
	}
	ti.Dims = make([]uint64, nd)
	elems := uint64(1)
	for i := range ti.Dims {
		if ti.Dims[i], err = p.u64(); err != nil {
			return ti, err
		}
		d := ti.Dims[i]
		if d == 0 || d > math.MaxInt32 || elems > math.MaxInt64/d {
			return ti, fmt.Errorf("%q has dimension %d = %d", ti.Name, i, d)
		}
		elems *= d
	}
	t, err := p.u32()
	if err != nil {
		return ti, err
	}
	ti.Type = GGMLType(t)
	if ti.Offset, err = p.u64(); err != nil {
		return ti, err
	}
	return ti, nil
}

// Tensor returns a tensor's description by name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// Float32 reads a tensor and dequantizes it to float32, in row-major order
// (ggml's element order, which is PyTorch's for the reversed shape).
func (f *File) Float32(name string) ([]float32, error) {
	ti, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: no tensor %q", name)
	}
	n, err := ti.Type.rowBytes(ti.Elements(), ti.Dims[0])
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	raw := make([]byte, n)
	if _, err := f.r.ReadAt(raw, f.dataStart+int64(ti.Offset)); err != nil {
		return nil, fmt.Errorf("gguf: read tensor %q: %w", name, err)
	}
	out := make([]float32, ti.Elements())
	if err := Dequantize(out, raw, ti.Type); err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	return out, nil
}

// String returns a string metadata value.
func (f *File) String(key string) (string, bool) {
	s, ok := f.Meta[key].V.(string)
	return s, ok
}

// Int returns an integer metadata value.
func (f *File) Int(key string) (int64, bool) {
	i, ok := f.Meta[key].V.(int64)
	return i, ok
}

// Float returns a floating-point metadata value (integers convert).
func (f *File) Float(key string) (float64, bool) {
	switch v := f.Meta[key].V.(type) {
	case float64:
		return v, true
	case int64:
		return float64(v), true
	}
	return 0, false
}

// Bool returns a boolean metadata value.
func (f *File) Bool(key string) (bool, bool) {
	b, ok := f.Meta[key].V.(bool)
	return b, ok
}

// Strings returns a string-array metadata value.
func (f *File) Strings(key string) ([]string, bool) {
	s, ok := f.Meta[key].V.([]string)
	return s, ok
}

// Ints returns an integer-array metadata value.
func (f *File) Ints(key string) ([]int64, bool) {
	s, ok := f.Meta[key].V.([]int64)
	return s, ok
}
