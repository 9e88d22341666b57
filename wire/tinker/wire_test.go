package tinker

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestTensorRoundTrip: a tensor the client writes is read back by the
// server's Vector with the same values.
func TestTensorRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    Tensor
		dtype string
	}{
		{"float32", Float32Tensor([]float32{0.5, -1.25, 3}), "float32"},
		{"int64", Int64Tensor([]int{7, 0, 151645}), "int64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var back Tensor
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			got, err := back.Vector("x", tc.dtype, len(tc.in.Data))
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if got[i] != tc.in.Data[i] {
					t.Fatalf("%s: value %d is %v, want %v", b, i, got[i], tc.in.Data[i])
				}
			}
		})
	}
}

func TestTensorVectorRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Tensor
		want string
	}{
		{"dtype", Tensor{Data: []float64{1}, DType: "int64"}, "dtype"},
		{"shape", Tensor{Data: []float64{1, 2}, DType: "float32", Shape: []int{1, 2}}, "shape"},
		{"length", Tensor{Data: []float64{1, 2}, DType: "float32"}, "values for"},
		{"nan", Tensor{Data: []float64{math.NaN()}, DType: "float32"}, "NaN"},
	} {
		if _, err := tc.in.Vector("w", "float32", 1); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestModelInputTokens(t *testing.T) {
	m := ModelInput{Chunks: []Chunk{{Type: "encoded_text", Tokens: []int{1, 2}}, {Tokens: []int{3}}}}
	got, err := m.Tokens()
	if err != nil || len(got) != 3 || got[2] != 3 {
		t.Fatalf("Tokens = %v, %v", got, err)
	}
	if _, err := (ModelInput{Chunks: []Chunk{{Type: "image"}}}).Tokens(); err == nil {
		t.Fatal("an image chunk was accepted")
	}
}

// FuzzTensorVector: any JSON body either decodes to a tensor whose Vector
// answers without panicking, or fails to decode.
func FuzzTensorVector(f *testing.F) {
	f.Add([]byte(`{"data":[1,2,3],"dtype":"int64","shape":[3]}`))
	f.Add([]byte(`{"data":[0.5],"dtype":"float32"}`))
	f.Add([]byte(`{"data":[1e400],"dtype":"float32","shape":[1,1]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var x Tensor
		if json.Unmarshal(body, &x) != nil {
			return
		}
		for _, dt := range []string{"int64", "float32"} {
			if v, err := x.Vector("x", dt, len(x.Data)); err == nil && len(v) != len(x.Data) {
				t.Fatalf("%d values for %d", len(v), len(x.Data))
			}
		}
	})
}
