package serve

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/asearcher/asearcher/wire/tinker"
)

// Tinker SDKs from 0.25 on send forward_backward as protobuf
// (Content-Type: application/x-protobuf). The schema is the SDK's
// tinker_public.proto, read from the descriptor in tinker_public_pb2.py:
//
//	ForwardBackwardRequest{1 model_id string, 2 seq_id int32, 3 data repeated Datum,
//	  4 loss_fn string, 5 loss_fn_config map<string,double>, 6 forward_only bool,
//	  7 loss_fn_config_v2 map<string,LossConfigValue{1 number double | 2 text string}>}
//	Datum{1 model_input repeated Chunk, 2 loss_fn_inputs map<string,Tensor>, 3, 4 provenance spans}
//	Chunk{oneof: 1 encoded_text EncodedTextChunk{1 tokens bytes (int32 LE)}, 2 image, 3 dmel}
//	Tensor{oneof: 1 dense bytes | 2 sparse_csr; 3 dtype enum (1 float32, 2 int64, 3 int32, 4 bfloat16); 4 shape repeated int64}
//
// Only what this server can run is decoded; images, audio and sparse
// tensors are refused with a message. The decoder is hand-written (no
// protobuf runtime) and bounds-checked at every step.

// protoField is one decoded field: a varint, a fixed64, a fixed32 or a
// length-delimited payload.
type protoField struct {
	num  int
	wire int
	v    uint64
	b    []byte
}

// protoFields splits a message into its fields.
func protoFields(b []byte) ([]protoField, error) {
	var out []protoField
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("bad field key")
		}
		b = b[n:]
		f := protoField{num: int(key >> 3), wire: int(key & 7)}
		if f.num == 0 {
			return nil, errors.New("field number 0")
		}
		switch f.wire {
		case 0:
			f.v, n = binary.Uvarint(b)
			if n <= 0 {
				return nil, fmt.Errorf("field %d: bad varint", f.num)
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return nil, fmt.Errorf("field %d: truncated fixed64", f.num)
			}
			f.v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 5:
			if len(b) < 4 {
				return nil, fmt.Errorf("field %d: truncated fixed32", f.num)
			}
			f.v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return nil, fmt.Errorf("field %d: bad length", f.num)
			}
			f.b, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return nil, fmt.Errorf("field %d: unsupported wire type %d", f.num, f.wire)
		}
		out = append(out, f)
	}
	return out, nil
}

func (f protoField) want(wire int, name string) error {
	if f.wire != wire {
		return fmt.Errorf("%s: wire type %d, want %d", name, f.wire, wire)
	}
	return nil
}

// decodeFwdBwdProto turns a protobuf ForwardBackwardRequest into the JSON
// request shape, and says whether it is forward-only.
func decodeFwdBwdProto(b []byte) (*fwdBwdRequest, error) {
	fields, err := protoFields(b)
	if err != nil {
		return nil, err
	}
	in := &tinker.FwdBwdInput{}
	req := &fwdBwdRequest{}
	forwardOnly := false
	v2 := map[string]float64{}
	for _, f := range fields {
		switch f.num {
		case 1:
			if err := f.want(2, "model_id"); err != nil {
				return nil, err
			}
			req.ModelID = string(f.b)
		case 2:
			if err := f.want(0, "seq_id"); err != nil {
				return nil, err
			}
			if s := int64(int32(f.v)); s != 0 { // proto3: 0 is "not set"
				req.SeqID = &s
			}
		case 3:
			if err := f.want(2, "data"); err != nil {
				return nil, err
			}
			d, err := decodeDatumProto(f.b)
			if err != nil {
				return nil, fmt.Errorf("data[%d]: %w", len(in.Data), err)
			}
			in.Data = append(in.Data, d)
		case 4:
			if err := f.want(2, "loss_fn"); err != nil {
				return nil, err
			}
			in.LossFn = string(f.b)
		case 5, 7:
			if err := f.want(2, "loss_fn_config"); err != nil {
				return nil, err
			}
			k, v, err := decodeConfigEntry(f.b, f.num == 7)
			if err != nil {
				return nil, err
			}
			if f.num == 7 {
				v2[k] = v
			} else {
				if in.LossFnConfig == nil {
					in.LossFnConfig = map[string]float64{}
				}
				in.LossFnConfig[k] = v
			}
		case 6:
			if err := f.want(0, "forward_only"); err != nil {
				return nil, err
			}
			forwardOnly = f.v != 0
		}
	}
	// The SDK writes numbers into both maps; v2 wins where it is set.
	for k, v := range v2 {
		if in.LossFnConfig == nil {
			in.LossFnConfig = map[string]float64{}
		}
		in.LossFnConfig[k] = v
	}
	if forwardOnly {
		req.ForwardInput = in
	} else {
		req.FwdBwdInput = in
	}
	return req, nil
}

func decodeConfigEntry(b []byte, v2 bool) (string, float64, error) {
	fields, err := protoFields(b)
	if err != nil {
		return "", 0, err
	}
	var key string
	var val float64
	for _, f := range fields {
		switch {
		case f.num == 1 && f.wire == 2:
			key = string(f.b)
		case f.num == 2 && !v2 && f.wire == 1:
			val = math.Float64frombits(f.v)
		case f.num == 2 && v2 && f.wire == 2:
			inner, err := protoFields(f.b)
			if err != nil {
				return "", 0, err
			}
			for _, g := range inner {
				switch {
				case g.num == 1 && g.wire == 1:
					val = math.Float64frombits(g.v)
				case g.num == 2:
					return "", 0, fmt.Errorf("loss_fn_config %q: text values are not supported", key)
				}
			}
		}
	}
	return key, val, nil
}

func decodeDatumProto(b []byte) (tinker.Datum, error) {
	d := tinker.Datum{LossFnInputs: map[string]tinker.Tensor{}}
	fields, err := protoFields(b)
	if err != nil {
		return d, err
	}
	for _, f := range fields {
		switch f.num {
		case 1:
			if err := f.want(2, "model_input"); err != nil {
				return d, err
			}
			c, err := decodeChunkProto(f.b)
			if err != nil {
				return d, err
			}
			d.ModelInput.Chunks = append(d.ModelInput.Chunks, c)
		case 2:
			if err := f.want(2, "loss_fn_inputs"); err != nil {
				return d, err
			}
			entry, err := protoFields(f.b)
			if err != nil {
				return d, err
			}
			var key string
			var t tinker.Tensor
			for _, e := range entry {
				switch {
				case e.num == 1 && e.wire == 2:
					key = string(e.b)
				case e.num == 2 && e.wire == 2:
					if t, err = decodeTensorProto(e.b); err != nil {
						return d, fmt.Errorf("loss_fn_inputs: %w", err)
					}
				}
			}
			d.LossFnInputs[key] = t
		}
	}
	return d, nil
}

func decodeChunkProto(b []byte) (tinker.Chunk, error) {
	fields, err := protoFields(b)
	if err != nil {
		return tinker.Chunk{}, err
	}
	c := tinker.Chunk{Type: "encoded_text", Tokens: []int{}}
	for _, f := range fields {
		switch f.num {
		case 1:
			inner, err := protoFields(f.b)
			if err != nil {
				return c, err
			}
			for _, g := range inner {
				if g.num != 1 || g.wire != 2 {
					continue
				}
				if len(g.b)%4 != 0 {
					return c, fmt.Errorf("encoded_text tokens: %d bytes is not a whole number of int32", len(g.b))
				}
				for i := 0; i < len(g.b); i += 4 {
					c.Tokens = append(c.Tokens, int(int32(binary.LittleEndian.Uint32(g.b[i:]))))
				}
			}
		case 2:
			return c, errors.New("image chunks are not supported; send encoded_text")
		case 3:
			return c, errors.New("dmel (audio) chunks are not supported; send encoded_text")
		}
	}
	return c, nil
}

func decodeTensorProto(b []byte) (tinker.Tensor, error) {
	var t tinker.Tensor
	fields, err := protoFields(b)
	if err != nil {
		return t, err
	}
	var dense []byte
	haveDense := false
	for _, f := range fields {
		switch f.num {
		case 1:
			dense, haveDense = f.b, true
		case 2:
			t.SparseCrowIndices = []int{} // Vector refuses sparse tensors with a message
		case 3:
			switch f.v {
			case 1:
				t.DType = "float32"
			case 2:
				t.DType = "int64"
			case 3:
				t.DType = "int32"
			case 4:
				t.DType = "bfloat16"
			default:
				t.DType = fmt.Sprintf("dtype-%d", f.v)
			}
		case 4:
			if f.wire == 0 {
				t.Shape = append(t.Shape, int(int64(f.v)))
				continue
			}
			for p := f.b; len(p) > 0; {
				v, n := binary.Uvarint(p)
				if n <= 0 {
					return t, errors.New("shape: bad packed varint")
				}
				t.Shape, p = append(t.Shape, int(int64(v))), p[n:]
			}
		}
	}
	if !haveDense {
		return t, nil
	}
	switch t.DType {
	case "float32":
		if len(dense)%4 != 0 {
			return t, fmt.Errorf("float32 tensor of %d bytes", len(dense))
		}
		t.Data = make([]float64, len(dense)/4)
		for i := range t.Data {
			t.Data[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(dense[4*i:])))
		}
	case "int64":
		if len(dense)%8 != 0 {
			return t, fmt.Errorf("int64 tensor of %d bytes", len(dense))
		}
		t.Data = make([]float64, len(dense)/8)
		for i := range t.Data {
			t.Data[i] = float64(int64(binary.LittleEndian.Uint64(dense[8*i:])))
		}
	default:
		t.Data = []float64{} // the dtype check names the problem
	}
	return t, nil
}

// Replies: SDKs that send "Accept: application/x-protobuf" (0.24 and
// later) get ForwardBackwardOutput and SampleResponse as protobuf; newer
// ones (checked: 0.38) refuse them as JSON.
//
//	ForwardBackwardOutput{1 loss_fn_output_type string, 2 loss_fn_outputs repeated ArrayRecord, 3 metrics map<string,double>}
//	ArrayRecord{1 type_tag string, 2 fields map<string,BatchedTensor>, 3 num_datums int64}
//	BatchedTensor{1 data bytes, 2 offsets bytes (int64 LE byte offsets, one per datum + 1), 3 dtype enum, 4 trailing_shape}
//	SampleResponse{1 sequences repeated SampledSequence, 2 prompt_logprobs bytes (float32 LE, NaN = none)}
//	SampledSequence{1 stop_reason enum (0 stop, 1 length), 2 tokens bytes (int32 LE), 3 logprobs bytes (float32 LE)}

func appendTag(b []byte, num, wire int) []byte { return binary.AppendUvarint(b, uint64(num<<3|wire)) }

func appendLenField(b []byte, num int, payload []byte) []byte {
	b = appendTag(b, num, 2)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

func appendVarintField(b []byte, num int, v uint64) []byte {
	return binary.AppendUvarint(appendTag(b, num, 0), v)
}

func float32Bytes(v []float32) []byte {
	out := make([]byte, 0, 4*len(v))
	for _, x := range v {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
	}
	return out
}

// encodeFwdBwdProto writes a ForwardBackwardOutput whose per-datum fields
// are float32 vectors, as one batched ArrayRecord.
func encodeFwdBwdProto(o *tinker.FwdBwdOutput) []byte {
	var b []byte
	b = appendLenField(b, 1, []byte(o.LossFnOutputType))
	if n := len(o.LossFnOutputs); n > 0 {
		var rec []byte
		rec = appendLenField(rec, 1, []byte(o.LossFnOutputType))
		names := make([]string, 0, len(o.LossFnOutputs[0]))
		for k := range o.LossFnOutputs[0] {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, name := range names {
			var data, offsets []byte
			offsets = binary.LittleEndian.AppendUint64(offsets, 0)
			for _, out := range o.LossFnOutputs {
				for _, x := range out[name].Data {
					data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(x)))
				}
				offsets = binary.LittleEndian.AppendUint64(offsets, uint64(len(data)))
			}
			var bt []byte
			bt = appendLenField(bt, 1, data)
			bt = appendLenField(bt, 2, offsets)
			bt = appendVarintField(bt, 3, 1) // float32
			var entry []byte
			entry = appendLenField(entry, 1, []byte(name))
			entry = appendLenField(entry, 2, bt)
			rec = appendLenField(rec, 2, entry)
		}
		rec = appendVarintField(rec, 3, uint64(n))
		b = appendLenField(b, 2, rec)
	}
	keys := make([]string, 0, len(o.Metrics))
	for k := range o.Metrics {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var entry []byte
		entry = appendLenField(entry, 1, []byte(k))
		entry = appendTag(entry, 2, 1)
		entry = binary.LittleEndian.AppendUint64(entry, math.Float64bits(o.Metrics[k]))
		b = appendLenField(b, 3, entry)
	}
	return b
}

// encodeSampleProto writes a SampleResponse.
func encodeSampleProto(r *tinker.SampleResponse) []byte {
	var b []byte
	for _, s := range r.Sequences {
		var seq []byte
		reason := uint64(0)
		if s.StopReason == "length" {
			reason = 1
		}
		seq = appendVarintField(seq, 1, reason)
		toks := make([]byte, 0, 4*len(s.Tokens))
		for _, t := range s.Tokens {
			toks = binary.LittleEndian.AppendUint32(toks, uint32(int32(t)))
		}
		seq = appendLenField(seq, 2, toks)
		seq = appendLenField(seq, 3, float32Bytes(s.Logprobs))
		b = appendLenField(b, 1, seq)
	}
	if r.PromptLogprobs != nil {
		lp := make([]float32, len(r.PromptLogprobs))
		for i, p := range r.PromptLogprobs {
			lp[i] = float32(math.NaN())
			if p != nil {
				lp[i] = *p
			}
		}
		b = appendLenField(b, 2, float32Bytes(lp))
	}
	return b
}
