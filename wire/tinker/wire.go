package tinker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/asearcher/asearcher/internal/jsonw"
)

// Tinker wire types: the JSON bodies of the Tinker API as the official
// Python SDK (pinned in engine/serve/testdata/tinker_conformance) sends and
// reads them. The Tinker sampling backend, the Tinker trainer client and the
// Tinker-compatible server in engine/serve all use these, so the three
// cannot drift apart.

// Chunk is one chunk of a model input; only "encoded_text" chunks
// (token ids) are produced here.
type Chunk struct {
	Type   string `json:"type"`
	Tokens []int  `json:"tokens"`
}

// ModelInput is Tinker's ModelInput.
type ModelInput struct {
	Chunks []Chunk `json:"chunks"`
}

// Input wraps token ids as a one-chunk model input.
func Input(ids []int) ModelInput {
	return ModelInput{Chunks: []Chunk{{Type: "encoded_text", Tokens: ids}}}
}

// Tokens concatenates the chunks' token ids; any chunk that is not
// encoded text is an error.
func (m ModelInput) Tokens() ([]int, error) {
	n := 0
	for _, c := range m.Chunks {
		n += len(c.Tokens)
	}
	out := make([]int, 0, n)
	for i, c := range m.Chunks {
		if c.Type != "encoded_text" && c.Type != "" {
			return nil, fmt.Errorf("model_input chunk %d has type %q; only encoded_text is supported", i, c.Type)
		}
		out = append(out, c.Tokens...)
	}
	return out, nil
}

// Tensor is Tinker's TensorData: flattened values, a dtype ("int64"
// or "float32") and an optional shape.
type Tensor struct {
	Data  []float64 `json:"data"`
	DType string    `json:"dtype"`
	Shape []int     `json:"shape,omitempty"`
	// Sparse CSR tensors (2-D only in the SDK) are rejected by the server;
	// the fields are decoded so that the rejection can say why.
	SparseCrowIndices []int `json:"sparse_crow_indices,omitempty"`
	SparseColIndices  []int `json:"sparse_col_indices,omitempty"`
}

// Float32Tensor builds a 1-D float32 tensor.
func Float32Tensor(v []float32) Tensor {
	d := make([]float64, len(v))
	for i, x := range v {
		d[i] = float64(x)
	}
	return Tensor{Data: d, DType: "float32", Shape: []int{len(v)}}
}

// Int64Tensor builds a 1-D int64 tensor.
func Int64Tensor(v []int) Tensor {
	d := make([]float64, len(v))
	for i, x := range v {
		d[i] = float64(x)
	}
	return Tensor{Data: d, DType: "int64", Shape: []int{len(v)}}
}

// MarshalJSON writes int64 tensors as integers and float32 tensors with
// float32 precision, the way the SDK's numpy .tolist() round-trips them.
func (t Tensor) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 16+len(t.Data)*10)
	b = append(b, `{"data":[`...)
	for i, x := range t.Data {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			return nil, fmt.Errorf("tensor value %v has no JSON form", x)
		case t.DType == "int64":
			b = appendInt64(b, int64(x))
		case t.DType == "float32":
			b = appendFloat32(b, float32(x))
		default:
			b = jsonw.AppendFloat(b, x)
		}
	}
	b = append(b, `],"dtype":`...)
	b = jsonw.AppendString(b, t.DType)
	if t.Shape != nil {
		b = append(b, `,"shape":`...)
		b = jsonw.AppendInts(b, t.Shape)
	}
	return append(b, '}'), nil
}

// Vector returns the values of a 1-D tensor of the wanted dtype with n
// entries, or an error that names the problem (for a 4xx reply).
func (t Tensor) Vector(name, dtype string, n int) ([]float64, error) {
	if t.SparseCrowIndices != nil || t.SparseColIndices != nil {
		return nil, fmt.Errorf("%s: sparse tensors are not supported; send a dense 1-D tensor", name)
	}
	if t.DType != dtype {
		return nil, fmt.Errorf("%s: dtype %q, want %q", name, t.DType, dtype)
	}
	if t.Shape != nil {
		if len(t.Shape) != 1 {
			return nil, fmt.Errorf("%s: shape %v, want a 1-D tensor of %d values", name, t.Shape, n)
		}
		if t.Shape[0] != len(t.Data) {
			return nil, fmt.Errorf("%s: shape %v does not match %d values", name, t.Shape, len(t.Data))
		}
	}
	if len(t.Data) != n {
		return nil, fmt.Errorf("%s: %d values for %d input tokens", name, len(t.Data), n)
	}
	for i, x := range t.Data {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%s[%d] is %v", name, i, x)
		}
		if dtype == "int64" && x != math.Trunc(x) {
			return nil, fmt.Errorf("%s[%d] = %v is not an integer", name, i, x)
		}
	}
	return t.Data, nil
}

// Datum is one training example.
type Datum struct {
	ModelInput   ModelInput        `json:"model_input"`
	LossFnInputs map[string]Tensor `json:"loss_fn_inputs"`
}

// FwdBwdInput is forward_backward_input (and forward_input).
type FwdBwdInput struct {
	Data         []Datum            `json:"data"`
	LossFn       string             `json:"loss_fn"`
	LossFnConfig map[string]float64 `json:"loss_fn_config,omitempty"`
}

// FwdBwdRequest is the body of /api/v1/forward_backward; /forward
// carries the same input under forward_input.
type FwdBwdRequest struct {
	ModelID      string       `json:"model_id"`
	SeqID        *int64       `json:"seq_id,omitempty"`
	FwdBwdInput  *FwdBwdInput `json:"forward_backward_input,omitempty"`
	ForwardInput *FwdBwdInput `json:"forward_input,omitempty"`
	Type         string       `json:"type,omitempty"`
}

// FwdBwdOutput is ForwardBackwardOutput.
type FwdBwdOutput struct {
	LossFnOutputType string              `json:"loss_fn_output_type"`
	LossFnOutputs    []map[string]Tensor `json:"loss_fn_outputs"`
	Metrics          map[string]float64  `json:"metrics"`
}

// AdamParams is optim_step's adam_params.
type AdamParams struct {
	LearningRate float64 `json:"learning_rate"`
	Beta1        float64 `json:"beta1"`
	Beta2        float64 `json:"beta2"`
	Eps          float64 `json:"eps"`
	WeightDecay  float64 `json:"weight_decay"`
	GradClipNorm float64 `json:"grad_clip_norm"`
}

// SamplingParams is SamplingParams. Stop holds strings or token ids.
type SamplingParams struct {
	MaxTokens   *int            `json:"max_tokens,omitempty"`
	Seed        *int64          `json:"seed,omitempty"`
	Stop        json.RawMessage `json:"stop,omitempty"`
	Temperature *float64        `json:"temperature,omitempty"`
	TopK        *int            `json:"top_k,omitempty"`
	TopP        *float64        `json:"top_p,omitempty"`
}

// StopLists splits Stop into strings and token ids.
func (p SamplingParams) StopLists() (strs []string, ids []int, err error) {
	raw := bytes.TrimSpace(p.Stop)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, nil, fmt.Errorf("stop: %v", err)
		}
		return []string{s}, nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, nil, errors.New("stop: want a string, a list of strings or a list of token ids")
	}
	for _, it := range items {
		it = bytes.TrimSpace(it)
		if len(it) > 0 && it[0] == '"' {
			var s string
			if err := json.Unmarshal(it, &s); err != nil {
				return nil, nil, fmt.Errorf("stop: %v", err)
			}
			strs = append(strs, s)
			continue
		}
		var id int
		if err := json.Unmarshal(it, &id); err != nil {
			return nil, nil, errors.New("stop: want a string, a list of strings or a list of token ids")
		}
		ids = append(ids, id)
	}
	if len(strs) > 0 && len(ids) > 0 {
		return nil, nil, errors.New("stop: mixes strings and token ids")
	}
	return strs, ids, nil
}

// SampleRequest is the body of /api/v1/asample.
type SampleRequest struct {
	NumSamples         int            `json:"num_samples"`
	Prompt             ModelInput     `json:"prompt"`
	SamplingParams     SamplingParams `json:"sampling_params"`
	BaseModel          string         `json:"base_model,omitempty"`
	ModelPath          string         `json:"model_path,omitempty"`
	SamplingSessionID  string         `json:"sampling_session_id,omitempty"`
	SeqID              *int64         `json:"seq_id,omitempty"`
	PromptLogprobs     bool           `json:"prompt_logprobs,omitempty"`
	TopKPromptLogprobs int            `json:"topk_prompt_logprobs,omitempty"`
	Type               string         `json:"type,omitempty"`
}

// Sequence is one sampled sequence.
type Sequence struct {
	Tokens     []int     `json:"tokens"`
	Logprobs   []float32 `json:"logprobs"`
	StopReason string    `json:"stop_reason"` // "stop" or "length"
}

// SampleResponse is SampleResponse. PromptLogprobs entries are null
// where no logprob exists (the first prompt token).
type SampleResponse struct {
	Type           string     `json:"type"`
	Sequences      []Sequence `json:"sequences"`
	PromptLogprobs []*float32 `json:"prompt_logprobs,omitempty"`
}

// Future is UntypedAPIFuture, what every asynchronous call returns.
type Future struct {
	RequestID string `json:"request_id"`
	ModelID   string `json:"model_id,omitempty"`
}

// Failure is RequestFailedResponse (HTTP 400 from retrieve_future).
type Failure struct {
	Error    string `json:"error"`
	Category string `json:"category"` // "user", "server" or "unknown"
}

// ClientConfig is the subset of /api/v1/client/config's flags that
// clients here honour.
type ClientConfig struct {
	ProtoWriteFwdBwd     bool `json:"proto_write_fwdbwd"`
	FwdBwdMaxChunkLen    int  `json:"fwdbwd_max_chunk_len"`
	FwdBwdMaxChunkBytes  int  `json:"fwdbwd_max_chunk_bytes_count"`
	SampleMaxConcurrent  int  `json:"sample_max_concurrent_requests"`
	ParallelFwdBwdChunks bool `json:"parallel_fwdbwd_chunks"`
}

func appendInt64(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }

func appendFloat32(b []byte, f float32) []byte {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, float64(f), 'g', -1, 32)
}
