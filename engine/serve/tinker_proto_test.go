package serve

import (
	"encoding/json"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/wire/tinker"
)

// The official SDK's protobuf writer (scripts/tinker_proto_fixture.py)
// and its JSON form decode to the same request.
func TestProtoFixture(t *testing.T) {
	pb, err := os.ReadFile("testdata/tinker/fwdbwd_request.pb")
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile("testdata/tinker/fwdbwd_request.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeFwdBwdProto(pb)
	if err != nil {
		t.Fatal(err)
	}
	var want fwdBwdRequest
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	// The SDK writes no shape unless given; compare values, dtypes, tokens.
	for i := range got.FwdBwdInput.Data {
		for k, v := range got.FwdBwdInput.Data[i].LossFnInputs {
			v.Shape = want.FwdBwdInput.Data[i].LossFnInputs[k].Shape
			got.FwdBwdInput.Data[i].LossFnInputs[k] = v
		}
	}
	if !reflect.DeepEqual(got, &want) {
		g, _ := json.Marshal(got)
		t.Fatalf("protobuf decodes to\n%s\nJSON is\n%s", g, js)
	}
	// forward_only (field 6) turns it into a forward request.
	fwd, err := decodeFwdBwdProto(append(append([]byte(nil), pb...), 6<<3, 1))
	if err != nil || fwd.ForwardInput == nil || fwd.FwdBwdInput != nil {
		t.Fatalf("forward_only: %+v %v", fwd, err)
	}
}

// Encoded replies parse back field by field.
func TestProtoReplies(t *testing.T) {
	out := &tinker.FwdBwdOutput{LossFnOutputType: "ArrayRecord", Metrics: map[string]float64{"loss:sum": 1.5},
		LossFnOutputs: []map[string]tinker.Tensor{
			{"logprobs": tinker.Float32Tensor([]float32{-1, -2})},
			{"logprobs": tinker.Float32Tensor([]float32{-3})},
		}}
	fields, err := protoFields(encodeFwdBwdProto(out))
	if err != nil || len(fields) != 3 || string(fields[0].b) != "ArrayRecord" {
		t.Fatalf("%+v %v", fields, err)
	}
	rec, _ := protoFields(fields[1].b)
	if rec[len(rec)-1].num != 3 || rec[len(rec)-1].v != 2 {
		t.Fatalf("num_datums: %+v", rec)
	}
	entry, _ := protoFields(rec[1].b)
	bt, _ := protoFields(entry[1].b)
	if string(entry[0].b) != "logprobs" || len(bt[0].b) != 12 || len(bt[1].b) != 24 || bt[2].v != 1 {
		t.Fatalf("batched tensor: %+v", bt)
	}
	lp := float32(-0.5)
	sr := &tinker.SampleResponse{Sequences: []tinker.Sequence{{Tokens: []int{4, 5}, Logprobs: []float32{-1, -2}, StopReason: "length"}},
		PromptLogprobs: []*float32{nil, &lp}}
	sf, err := protoFields(encodeSampleProto(sr))
	if err != nil || len(sf) != 2 || len(sf[1].b) != 8 || !math.IsNaN(float64(math.Float32frombits(uint32(sf[1].b[0])|uint32(sf[1].b[1])<<8|uint32(sf[1].b[2])<<16|uint32(sf[1].b[3])<<24))) {
		t.Fatalf("sample response: %+v %v", sf, err)
	}
	seq, _ := protoFields(sf[0].b)
	if seq[0].v != 1 || len(seq[1].b) != 8 || len(seq[2].b) != 8 {
		t.Fatalf("sequence: %+v", seq)
	}
}

func FuzzProtoFwdBwd(f *testing.F) {
	pb, err := os.ReadFile("testdata/tinker/fwdbwd_request.pb")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pb)
	f.Add([]byte{0x08, 0x01})
	f.Add([]byte{0x1a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeFwdBwdProto(b)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error")
			}
			return
		}
		if req.FwdBwdInput == nil && req.ForwardInput == nil {
			t.Fatal("no input")
		}
	})
}
