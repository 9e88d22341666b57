package trainer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine/embedded"
	"github.com/asearcher/asearcher/trainer"
	"github.com/asearcher/asearcher/wire/tinker"
)

// batch32k is 32 sequences of 1,024 tokens with cross-entropy weights.
func batch32k() []trainer.Datum {
	data := make([]trainer.Datum, 32)
	for d := range data {
		full := make([]int, 1025)
		for i := range full {
			full[i] = (d*131 + i*17) % 250
		}
		w := make([]float32, 1024)
		for i := range w {
			w[i] = 1
		}
		data[d] = trainer.Datum{Input: full[:1024], Target: full[1:], Weights: w}
	}
	return data
}

func benchFwdBwd(b *testing.B, remote bool) {
	env := startTinkerServer(b)
	var tr trainer.Trainer = embedded.NewTrainer(env.w, embedded.TrainerOptions{})
	if remote {
		t, err := trainer.NewTinker(context.Background(), trainer.TinkerOptions{TinkerConfig: tinkerConfig(env.url), BaseModel: "tiny"})
		if err != nil {
			b.Fatal(err)
		}
		defer t.Close()
		tr = t
	}
	data := batch32k()
	b.ResetTimer()
	for range b.N {
		if _, err := tr.ForwardBackward(context.Background(), data, trainer.CrossEntropy, trainer.LossConfig{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(32*1024*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// go test -bench FwdBwd32k ./trainer: one 32k-token forward_backward on the
// tiny model, in process and through the Tinker API on loopback.
func BenchmarkFwdBwd32kEmbedded(b *testing.B) { benchFwdBwd(b, false) }
func BenchmarkFwdBwd32kTinker(b *testing.B)   { benchFwdBwd(b, true) }

// TestTinkerRoundTripOverhead times a 32k-token forward_backward in
// process and through the Tinker HTTP API (JSON, futures, long poll)
// side by side, alternating, and prints medians and the difference.
//
//	ASEARCHER_SERVE_BENCH=1 go test -run TinkerRoundTripOverhead -v ./trainer
func TestTinkerRoundTripOverhead(t *testing.T) {
	if os.Getenv("ASEARCHER_SERVE_BENCH") == "" {
		t.Skip("set ASEARCHER_SERVE_BENCH=1 to measure")
	}
	runs := 7
	if n, err := strconv.Atoi(os.Getenv("RUNS")); err == nil && n > 0 {
		runs = n
	}
	env := startTinkerServer(t)
	ctx := context.Background()
	local := embedded.NewTrainer(env.w, embedded.TrainerOptions{})
	remote, err := trainer.NewTinker(ctx, trainer.TinkerOptions{TinkerConfig: tinkerConfig(env.url), BaseModel: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	data := batch32k()
	timeIt := func(tr trainer.Trainer) float64 {
		start := time.Now()
		if _, err := tr.ForwardBackward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{}); err != nil {
			t.Fatal(err)
		}
		return time.Since(start).Seconds() * 1000
	}
	timeIt(local)
	timeIt(remote)
	var a, h, d []float64
	for range runs {
		x, y := timeIt(local), timeIt(remote)
		a, h, d = append(a, x), append(h, y), append(d, y-x)
	}
	med := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("forward_backward, 32 × 1,024 tokens, tiny model, %d runs (load %s)\n", runs, string(load[:min(len(load), 14)]))
	fmt.Printf("in-process %.1f ms, Tinker API %.1f ms, round-trip overhead %.1f ms (%.1f%%)\n",
		med(a), med(h), med(d), 100*med(d)/med(a))
	// The protocol's own cost, without the model: encode the request as
	// the client does, decode it as the server does.
	var enc, dec []float64
	var size int
	for range runs {
		start := time.Now()
		body, err := json.Marshal(map[string]any{"model_id": "m", "seq_id": 1, "forward_backward_input": tinker.FwdBwdInput{Data: wireData(data), LossFn: "cross_entropy"}})
		if err != nil {
			t.Fatal(err)
		}
		mid := time.Now()
		var back struct {
			In tinker.FwdBwdInput `json:"forward_backward_input"`
		}
		if err := json.Unmarshal(body, &back); err != nil {
			t.Fatal(err)
		}
		enc, dec = append(enc, mid.Sub(start).Seconds()*1000), append(dec, time.Since(mid).Seconds()*1000)
		size = len(body)
	}
	fmt.Printf("request body %.2f MB: encode %.1f ms, decode %.1f ms (medians)\n", float64(size)/1e6, med(enc), med(dec))
}

func wireData(data []trainer.Datum) []tinker.Datum {
	out := make([]tinker.Datum, len(data))
	for i, d := range data {
		out[i] = tinker.Datum{ModelInput: tinker.Input(d.Input), LossFnInputs: map[string]tinker.Tensor{
			"target_tokens": tinker.Int64Tensor(d.Target), "weights": tinker.Float32Tensor(d.Weights)}}
	}
	return out
}
