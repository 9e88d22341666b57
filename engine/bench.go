package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/asearcher/asearcher/llm"
)

// BenchOptions configure BenchEngine (`asearcher bench engine`).
type BenchOptions struct {
	Preset string // model preset (default "small")
	// Model, when set, is a model directory whose real weights are
	// measured instead of a random preset (Preset and Vocab are ignored).
	Model     string
	Vocab     int // vocabulary size (default 4096)
	Seqs      int // training sequences per step (default 2)
	SeqLen    int // tokens per training sequence (default 1024)
	Prompt    int // prompt tokens per sampling request (default 32)
	NewTokens int // generated tokens per sampling request (default 128)
	Rounds    int // measurement rounds; medians are reported (default 3)
	// Python, when set, runs testdata/bench_torch.py with this interpreter
	// in each round for the PyTorch column.
	Python      string
	TorchScript string
	Threads     int // PyTorch intra-op threads (default: GOMAXPROCS)
	Log         io.Writer
}

// BenchResult holds medians over rounds.
type BenchResult struct {
	Params               int         `json:"params"`
	PeakGFLOPS           float64     `json:"peak_gflops"`             // our kernel, 1024³
	TorchPeakGFLOPS      float64     `json:"torch_peak_gflops"`       // torch.mm, 1024³, same threads
	TrainMatmulGFLOPS    float64     `json:"train_matmul_gflops"`     // the training step's GEMM shapes
	TrainEffectiveGFLOPS float64     `json:"train_effective_gflops"`  // step matmul FLOPs / whole step time
	TrainTokensPerSec    float64     `json:"train_tokens_per_sec"`    // forward_backward + optim_step
	Sample1TokensPerSec  float64     `json:"sample1_tokens_per_sec"`  // batch 1 decoding
	Sample32TokensPerSec float64     `json:"sample32_tokens_per_sec"` // batch 32 decoding
	KVBytesPerToken      int         `json:"kv_bytes_per_token"`
	Torch                *TorchBench `json:"torch,omitempty"`
	// Ratios are engine/PyTorch per round, then the median over rounds
	// (keys: peak, train, sample1, sample32), so load that shifts between
	// rounds cancels out.
	Ratios map[string]float64 `json:"ratios,omitempty"`
}

// TorchBench is what bench_torch.py prints (medians over its rounds).
type TorchBench struct {
	Version              string  `json:"torch_version"`
	Threads              int     `json:"threads"`
	PeakGFLOPS           float64 `json:"peak_gflops"`
	TrainTokensPerSec    float64 `json:"train_tokens_per_sec"`
	Sample1TokensPerSec  float64 `json:"sample1_tokens_per_sec"`
	Sample32TokensPerSec float64 `json:"sample32_tokens_per_sec"`
	KVBytesPerToken      int     `json:"kv_bytes_per_token"`
}

func (o *BenchOptions) defaults() {
	if o.Preset == "" {
		o.Preset = "small"
	}
	if o.Vocab == 0 {
		o.Vocab = 4096
	}
	if o.Seqs == 0 {
		o.Seqs = 2
	}
	if o.SeqLen == 0 {
		o.SeqLen = 1024
	}
	if o.Prompt == 0 {
		o.Prompt = 32
	}
	if o.NewTokens == 0 {
		o.NewTokens = 128
	}
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// trainMatmulFLOPs counts the multiply-adds of one training step's matrix
// products (forward, input gradients and weight gradients: 3 products of
// 2·tokens·in·out each per linear layer and for the head; attention: 2
// products forward, 5 backward including the recomputed scores).
func trainMatmulFLOPs(c *Config, seqLens []int) float64 {
	d, hd := float64(c.HiddenSize), float64(c.headDim())
	qd, kvd, ff := float64(c.NumAttentionHeads)*hd, float64(c.NumKeyValueHeads)*hd, float64(c.IntermediateSize)
	perTok := d*qd + 2*d*kvd + qd*d + 3*d*ff
	tokens, attn := 0.0, 0.0
	for _, n := range seqLens {
		tokens += float64(n)
		attn += float64(n) * float64(n+1) / 2 * hd * float64(c.NumAttentionHeads)
	}
	L := float64(c.NumHiddenLayers)
	return 6*tokens*(perTok*L+d*float64(c.VocabSize)) + 2*attn*L*(2+5)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// BenchEngine measures the engine (and optionally PyTorch) side by side.
func BenchEngine(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	o.defaults()
	var w *Weights
	var err error
	if o.Model != "" {
		if w, err = LoadWeights(o.Model); err != nil {
			return nil, err
		}
		if need := max(o.SeqLen+1, o.Prompt+o.NewTokens+1); w.Config.MaxPositionEmbeddings < need {
			return nil, fmt.Errorf("bench: %s holds %d positions, the shapes need %d", o.Model, w.Config.MaxPositionEmbeddings, need)
		}
	} else {
		cfg, err := Preset(o.Preset, o.Vocab)
		if err != nil {
			return nil, err
		}
		cfg.MaxPositionEmbeddings = max(cfg.MaxPositionEmbeddings, o.SeqLen+1, o.Prompt+o.NewTokens+1)
		if w, err = NewRandomWeights(cfg, 1); err != nil {
			return nil, err
		}
	}
	cfg := w.Config
	res := &BenchResult{Params: cfg.ParamCount(), KVBytesPerToken: cfg.KVBytesPerToken()}
	var peak, mm, eff, train, s1, s32 []float64
	var torch []*TorchBench
	for r := 0; r < o.Rounds; r++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "round %d/%d: engine\n", r+1, o.Rounds)
		peak = append(peak, benchPeak())
		m, e, tps, err := benchTrain(ctx, w, o)
		if err != nil {
			return nil, err
		}
		mm, eff, train = append(mm, m), append(eff, e), append(train, tps)
		for _, b := range []int{1, 32} {
			tps, err := benchSample(ctx, w, o, b)
			if err != nil {
				return nil, err
			}
			if b == 1 {
				s1 = append(s1, tps)
			} else {
				s32 = append(s32, tps)
			}
		}
		if o.Python != "" {
			fmt.Fprintf(o.Log, "round %d/%d: pytorch\n", r+1, o.Rounds)
			tb, err := runTorchBench(ctx, o)
			if err != nil {
				return nil, err
			}
			torch = append(torch, tb)
		}
	}
	res.PeakGFLOPS, res.TrainMatmulGFLOPS, res.TrainEffectiveGFLOPS = median(peak), median(mm), median(eff)
	res.TrainTokensPerSec, res.Sample1TokensPerSec, res.Sample32TokensPerSec = median(train), median(s1), median(s32)
	if len(torch) > 0 {
		pick := func(f func(*TorchBench) float64) float64 {
			var v []float64
			for _, t := range torch {
				v = append(v, f(t))
			}
			return median(v)
		}
		res.Torch = &TorchBench{Version: torch[0].Version, Threads: torch[0].Threads, KVBytesPerToken: torch[0].KVBytesPerToken,
			PeakGFLOPS:           pick(func(t *TorchBench) float64 { return t.PeakGFLOPS }),
			TrainTokensPerSec:    pick(func(t *TorchBench) float64 { return t.TrainTokensPerSec }),
			Sample1TokensPerSec:  pick(func(t *TorchBench) float64 { return t.Sample1TokensPerSec }),
			Sample32TokensPerSec: pick(func(t *TorchBench) float64 { return t.Sample32TokensPerSec })}
		res.TorchPeakGFLOPS = res.Torch.PeakGFLOPS
		res.Ratios = map[string]float64{}
		for key, pair := range map[string]struct {
			ours   []float64
			theirs func(*TorchBench) float64
		}{
			"peak":     {peak, func(t *TorchBench) float64 { return t.PeakGFLOPS }},
			"train":    {train, func(t *TorchBench) float64 { return t.TrainTokensPerSec }},
			"sample1":  {s1, func(t *TorchBench) float64 { return t.Sample1TokensPerSec }},
			"sample32": {s32, func(t *TorchBench) float64 { return t.Sample32TokensPerSec }},
		} {
			var r []float64
			for i, t := range torch {
				if v := pair.theirs(t); v > 0 {
					r = append(r, pair.ours[i]/v)
				}
			}
			res.Ratios[key] = median(r)
		}
	}
	return res, nil
}

// benchPeak is our SGEMM on a 1024³ product, best of 5.
func benchPeak() float64 {
	const n = 1024
	rng := rand.New(rand.NewPCG(1, 1))
	a, b, c := randVec(rng, n*n), randVec(rng, n*n), make([]float32, n*n)
	best := 0.0
	for i := 0; i < 5; i++ {
		t := time.Now()
		MatMul(c, a, b, n, n, n)
		best = max(best, 2*n*n*n/time.Since(t).Seconds()/1e9)
	}
	return best
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// benchTrain times forward_backward + optim_step on Seqs×SeqLen tokens,
// and replays the step's linear-layer GEMM shapes alone.
func benchTrain(ctx context.Context, w *Weights, o BenchOptions) (matmul, effective, tokensPerSec float64, err error) {
	c := w.Config
	rng := rand.New(rand.NewPCG(2, 2))
	var ex []Example
	var lens []int
	for s := 0; s < o.Seqs; s++ {
		e := Example{}
		for i := 0; i < o.SeqLen; i++ {
			e.Input = append(e.Input, rng.IntN(c.VocabSize))
			e.Target = append(e.Target, rng.IntN(c.VocabSize))
		}
		ex = append(ex, e)
		lens = append(lens, o.SeqLen)
	}
	l := NewLearner(w)
	opt := AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}
	step := func() (time.Duration, error) {
		t := time.Now()
		if _, err := l.ForwardBackward(ctx, ex, Loss{Fn: CrossEntropy}); err != nil {
			return 0, err
		}
		if _, err := l.OptimStep(ctx, opt); err != nil {
			return 0, err
		}
		return time.Since(t), nil
	}
	if _, err := step(); err != nil { // warm-up: pools, page faults
		return 0, 0, 0, err
	}
	var times []float64
	for i := 0; i < 3; i++ {
		d, err := step()
		if err != nil {
			return 0, 0, 0, err
		}
		times = append(times, d.Seconds())
	}
	st := median(times)
	tokens := float64(o.Seqs * o.SeqLen)
	flops := trainMatmulFLOPs(c, lens)

	// The linear layers' products of one step, timed alone.
	T := o.Seqs * o.SeqLen
	d, hd := c.HiddenSize, c.headDim()
	qd, kvd, ff := c.NumAttentionHeads*hd, c.NumKeyValueHeads*hd, c.IntermediateSize
	shapes := [][2]int{{d, qd}, {d, kvd}, {d, kvd}, {qd, d}, {d, ff}, {d, ff}, {ff, d}}
	x := randVec(rng, T*max(d, ff, qd))
	dy := randVec(rng, T*max(d, ff, qd))
	out := make([]float32, T*max(d, ff, qd))
	var lin float64
	t := time.Now()
	for _, sh := range shapes {
		in, outDim := sh[0], sh[1]
		wt := randVec(rng, in*outDim)
		gw := make([]float32, in*outDim)
		matMulNT(out, x, wt, T, in, outDim, false)  // forward
		matMulNN(out, dy, wt, T, outDim, in, false) // input gradient
		matMulTN(gw, dy, x, outDim, T, in, true)    // weight gradient
		lin += 6 * float64(T*in*outDim)
	}
	matmul = lin / time.Since(t).Seconds() / 1e9
	return matmul, flops / st / 1e9, tokens / st, nil
}

// benchSample times batch concurrent requests of Prompt tokens generating
// NewTokens each (no stop), and returns generated tokens per second.
func benchSample(ctx context.Context, w *Weights, o BenchOptions, batch int) (float64, error) {
	s := NewSampler(w, 0, SamplerOptions{MaxBatch: batch, PrefixCache: -1})
	defer s.Close()
	rng := rand.New(rand.NewPCG(3, uint64(batch)))
	run := func() (time.Duration, error) {
		errs := make(chan error, batch)
		t := time.Now()
		for b := 0; b < batch; b++ {
			prompt := make([]int, o.Prompt)
			for i := range prompt {
				prompt[i] = rng.IntN(w.Config.VocabSize)
			}
			seed := int64(b)
			go func() {
				r, err := s.Sample(ctx, &llm.Request{InputIDs: prompt, Params: llm.Params{Temperature: 1, MaxNewTokens: o.NewTokens, Seed: &seed}})
				if err == nil && len(r.OutputIDs) != o.NewTokens {
					err = fmt.Errorf("bench sample: %d tokens, want %d", len(r.OutputIDs), o.NewTokens)
				}
				errs <- err
			}()
		}
		for b := 0; b < batch; b++ {
			if err := <-errs; err != nil {
				return 0, err
			}
		}
		return time.Since(t), nil
	}
	if _, err := run(); err != nil {
		return 0, err
	}
	d, err := run()
	if err != nil {
		return 0, err
	}
	return float64(batch*o.NewTokens) / d.Seconds(), nil
}

func runTorchBench(ctx context.Context, o BenchOptions) (*TorchBench, error) {
	threads := o.Threads
	if threads == 0 {
		threads = goMaxProcs()
	}
	args := []string{o.TorchScript, "--preset", o.Preset, "--vocab", fmt.Sprint(o.Vocab), "--model", o.Model, "--seqs", fmt.Sprint(o.Seqs),
		"--seq-len", fmt.Sprint(o.SeqLen), "--prompt", fmt.Sprint(o.Prompt), "--new-tokens", fmt.Sprint(o.NewTokens),
		"--threads", fmt.Sprint(threads)}
	cmd := exec.CommandContext(ctx, o.Python, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pytorch bench (%s %s): %w: %s", o.Python, o.TorchScript, err, lastLine(stderr.String()))
	}
	var tb TorchBench
	if err := json.Unmarshal(out, &tb); err != nil {
		return nil, fmt.Errorf("pytorch bench output: %w", err)
	}
	return &tb, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// WriteBenchTable prints the result as a Markdown table.
func WriteBenchTable(w io.Writer, r *BenchResult, o BenchOptions) {
	o.defaults()
	model := fmt.Sprintf("preset %s, vocab %d", o.Preset, o.Vocab)
	if o.Model != "" {
		model = o.Model
	}
	fmt.Fprintf(w, "model: %s, %.1fM parameters; training batch %d×%d tokens; sampling %d-token prompts, %d new tokens; medians of %d rounds\n\n",
		model, float64(r.Params)/1e6, o.Seqs, o.SeqLen, o.Prompt, o.NewTokens, o.Rounds)
	peak := max(r.PeakGFLOPS, r.TorchPeakGFLOPS)
	fmt.Fprintf(w, "| metric | engine (Go) | PyTorch eager | engine / PyTorch (median of per-round ratios) |\n|---|---|---|---|\n")
	row := func(name string, ours, theirs float64, unit, key string) {
		ratio := "—"
		t := "—"
		if theirs > 0 {
			t = fmt.Sprintf("%.1f %s", theirs, unit)
			ratio = fmt.Sprintf("%.2f×", ours/theirs)
			if v, ok := r.Ratios[key]; ok {
				ratio = fmt.Sprintf("%.2f×", v)
			}
		}
		fmt.Fprintf(w, "| %s | %.1f %s | %s | %s |\n", name, ours, unit, t, ratio)
	}
	var tb TorchBench
	if r.Torch != nil {
		tb = *r.Torch
	}
	row("SGEMM 1024³", r.PeakGFLOPS, tb.PeakGFLOPS, "GFLOP/s", "peak")
	fmt.Fprintf(w, "| training-step GEMMs (linear layers) | %.1f GFLOP/s = %.0f%% of peak %.1f | | |\n", r.TrainMatmulGFLOPS, 100*r.TrainMatmulGFLOPS/peak, peak)
	fmt.Fprintf(w, "| training step, matmul FLOPs / wall time | %.1f GFLOP/s = %.0f%% of peak | | |\n", r.TrainEffectiveGFLOPS, 100*r.TrainEffectiveGFLOPS/peak)
	row("training tokens/s (fwd+bwd+AdamW)", r.TrainTokensPerSec, tb.TrainTokensPerSec, "tok/s", "train")
	row("sampling tokens/s, batch 1", r.Sample1TokensPerSec, tb.Sample1TokensPerSec, "tok/s", "sample1")
	row("sampling tokens/s, batch 32", r.Sample32TokensPerSec, tb.Sample32TokensPerSec, "tok/s", "sample32")
	kv := "—"
	if tb.KVBytesPerToken > 0 {
		kv = fmt.Sprintf("%d B", tb.KVBytesPerToken)
	}
	fmt.Fprintf(w, "| KV cache per token (f32) | %d B | %s | |\n", r.KVBytesPerToken, kv)
	if r.Torch != nil {
		fmt.Fprintf(w, "\nPyTorch %s, %d threads.\n", tb.Version, tb.Threads)
	}
}
