package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// benchRequest is one agent turn deep into a long trajectory.
func benchRequest(n int) *Request {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = (i * 7919) % 151643
	}
	s := int64(7)
	return &Request{ID: "traj-123#45", InputIDs: ids, Params: Params{MaxNewTokens: 4096, Temperature: 1, TopP: 1,
		Stop: []string{"</search>", "</access>", "</answer>"}, StopTokenIDs: []int{151645, 151643}, Seed: &s}}
}

// reflectBody is the same /generate body built with encoding/json, the
// baseline for the hand-written encoder.
func reflectBody(req *Request) ([]byte, error) {
	type sp struct {
		MaxNewTokens int      `json:"max_new_tokens,omitempty"`
		Temperature  float64  `json:"temperature"`
		TopP         float64  `json:"top_p"`
		TopK         int      `json:"top_k"`
		Stop         []string `json:"stop,omitempty"`
		NoStopTrim   bool     `json:"no_stop_trim,omitempty"`
		StopTokenIDs []int    `json:"stop_token_ids,omitempty"`
		Seed         *int64   `json:"sampling_seed,omitempty"`
	}
	return json.Marshal(struct {
		InputIDs       []int  `json:"input_ids"`
		SamplingParams sp     `json:"sampling_params"`
		ReturnLogprob  bool   `json:"return_logprob"`
		Stream         bool   `json:"stream"`
		RID            string `json:"rid,omitempty"`
	}{req.InputIDs, sp{req.Params.MaxNewTokens, req.Params.Temperature, topPOrOne(req.Params.TopP), topKOrAll(req.Params.TopK),
		req.Params.Stop, len(req.Params.Stop) > 0, req.Params.StopTokenIDs, req.Params.Seed}, true, false, req.ID})
}

// The baseline must send the same JSON value, or the comparison is void
// (encoding/json escapes <, > and & while our encoder does not).
func TestReflectBaselineMatchesEncoder(t *testing.T) {
	req := benchRequest(50)
	a, _ := encodeSGLangGenerate(nil, req)
	b, _ := reflectBody(req)
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil || !reflect.DeepEqual(va, vb) {
		t.Fatalf("baseline differs:\n%s\n%s", a, b)
	}
}

func BenchmarkEncodeGenerate(b *testing.B) {
	for _, n := range []int{2000, 100000} {
		req := benchRequest(n)
		b.Run(fmt.Sprintf("tokens=%d/appender", n), func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = encodeSGLangGenerate(buf[:0], req)
			}
			b.SetBytes(int64(len(buf)))
		})
		b.Run(fmt.Sprintf("tokens=%d/encoding-json", n), func(b *testing.B) {
			var out []byte
			b.ReportAllocs()
			for b.Loop() {
				out, _ = reflectBody(req)
			}
			b.SetBytes(int64(len(out)))
		})
	}
}

// benchReply is a /generate reply with n tokens and their logprobs.
func benchReply(n int) []byte {
	var lp, ids strings.Builder
	for i := range n {
		if i > 0 {
			lp.WriteByte(',')
			ids.WriteByte(',')
		}
		id := (i * 31) % 151000
		fmt.Fprintf(&lp, "[%s,%d,null]", strconv.FormatFloat(-float64(i%97)/37, 'g', -1, 64), id)
		ids.WriteString(strconv.Itoa(id))
	}
	return fmt.Appendf(nil, `{"text":%q,"output_ids":[%s],"meta_info":{"id":"traj-1#0","finish_reason":{"type":"stop","matched":"</search>"},"prompt_tokens":90000,"weight_version":"12","completion_tokens":%d,"output_token_logprobs":[%s]}}`,
		strings.Repeat("word ", n), ids.String(), n, lp.String())
}

func BenchmarkDecodeGenerate(b *testing.B) {
	for _, n := range []int{256, 4096} {
		data := benchReply(n)
		b.Run(fmt.Sprintf("tokens=%d/scanner", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeSGLangGenerate(data, nil, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("tokens=%d/encoding-json", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := decodeReflect(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// decodeReflect is the encoding/json baseline for reply decoding.
func decodeReflect(data []byte) error {
	var r struct {
		Text      string `json:"text"`
		OutputIDs []int  `json:"output_ids"`
		MetaInfo  struct {
			OutputTokenLogprobs [][]any `json:"output_token_logprobs"`
		} `json:"meta_info"`
	}
	return json.Unmarshal(data, &r)
}

type noopSampler struct{ name string }

func (n noopSampler) Sample(ctx context.Context, req *Request) (*Response, error) {
	return &Response{Finish: FinishStop}, nil
}
func (n noopSampler) String() string { return n.name }

// BenchmarkPoolRouting is the pool's own cost per call: sticky lookup or
// least-loaded choice, concurrency slot, attempt timeout, metrics.
func BenchmarkPoolRouting(b *testing.B) {
	met, _ := NewPoolMetrics(nil)
	var ss []Sampler
	for i := range 8 {
		ss = append(ss, noopSampler{fmt.Sprintf("s%d", i)})
	}
	for _, withMetrics := range []bool{false, true} {
		cfg := PoolConfig{HealthInterval: -1}
		if withMetrics {
			cfg.Metrics = met
		}
		p, _ := NewPool(ss, cfg)
		ids := make([]string, 4096)
		for i := range ids {
			ids[i] = fmt.Sprintf("traj-%d#3", i)
		}
		b.Run(fmt.Sprintf("metrics=%v", withMetrics), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				req := &Request{InputIDs: []int{1}}
				for pb.Next() {
					req.ID = ids[i%len(ids)]
					i++
					if _, err := p.Sample(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
		p.Close()
	}
}
