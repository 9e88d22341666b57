package trainer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/engine/embedded"
	"github.com/asearcher/asearcher/engine/serve"
	"github.com/asearcher/asearcher/internal/testmodel"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/peft"
	"github.com/asearcher/asearcher/trainer"
)

// scenario is trainer/testdata/tinker_scenario.json, run identically by
// the Go client, the embedded trainer and (scripts/tinker_conformance.py)
// the official Python SDK.
type scenario struct {
	BaseModel string `json:"base_model"`
	LoraRank  int    `json:"lora_rank"`
	Data      []struct {
		Tokens     []int     `json:"tokens"`
		Weights    []float32 `json:"weights"`
		Logprobs   []float32 `json:"logprobs"`
		Advantages []float32 `json:"advantages"`
	} `json:"data"`
	PPOConfig struct {
		Low  float64 `json:"clip_low_threshold"`
		High float64 `json:"clip_high_threshold"`
	} `json:"ppo_config"`
	Adam        trainer.AdamParams `json:"adam"`
	SamplerName string             `json:"sampler_name"`
	Sample      struct {
		Prompt      []int   `json:"prompt"`
		MaxTokens   int     `json:"max_tokens"`
		Temperature float64 `json:"temperature"`
		Seed        int64   `json:"seed"`
	} `json:"sample"`
}

type lossResult struct {
	Loss     float64     `json:"loss"`
	Logprobs [][]float32 `json:"logprobs"`
}

type scenarioResult struct {
	CrossEntropy       lossResult `json:"cross_entropy"`
	ImportanceSampling lossResult `json:"importance_sampling"`
	PPO                lossResult `json:"ppo"`
	AfterStep          lossResult `json:"after_step"`
	Sample             struct {
		Tokens     []int     `json:"tokens"`
		Logprobs   []float32 `json:"logprobs"`
		StopReason string    `json:"stop_reason"`
	} `json:"sample"`
}

func loadScenario(t testing.TB) *scenario {
	t.Helper()
	b, err := os.ReadFile("testdata/tinker_scenario.json")
	if err != nil {
		t.Fatal(err)
	}
	var s scenario
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func (s *scenario) data(loss trainer.LossFn) []trainer.Datum {
	out := make([]trainer.Datum, len(s.Data))
	for i, d := range s.Data {
		out[i] = trainer.Datum{Input: d.Tokens[:len(d.Tokens)-1], Target: d.Tokens[1:]}
		if loss == trainer.CrossEntropy {
			out[i].Weights = d.Weights
		} else {
			out[i].Logprobs, out[i].Advantages = d.Logprobs, d.Advantages
		}
	}
	return out
}

// run drives tr through the scenario; sample draws from the weights saved
// for the sampler.
func (s *scenario) run(t testing.TB, tr trainer.Trainer, sample func(path string, req *llm.Request) (*llm.Response, error)) *scenarioResult {
	t.Helper()
	ctx := context.Background()
	var res scenarioResult
	step := func(dst *lossResult, loss trainer.LossFn, cfg trainer.LossConfig, backward bool) {
		var o *trainer.Output
		var err error
		if backward {
			o, err = tr.ForwardBackward(ctx, s.data(loss), loss, cfg)
		} else {
			o, err = tr.Forward(ctx, s.data(loss), loss, cfg)
		}
		if err != nil {
			t.Fatalf("%s: %v", loss, err)
		}
		*dst = lossResult{Loss: o.Loss, Logprobs: o.Logprobs}
	}
	step(&res.CrossEntropy, trainer.CrossEntropy, trainer.LossConfig{}, true)
	step(&res.ImportanceSampling, trainer.ImportanceSampling, trainer.LossConfig{}, true)
	step(&res.PPO, trainer.PPO, trainer.LossConfig{ClipLow: s.PPOConfig.Low, ClipHigh: s.PPOConfig.High}, true)
	if _, err := tr.OptimStep(ctx, s.Adam); err != nil {
		t.Fatal(err)
	}
	step(&res.AfterStep, trainer.CrossEntropy, trainer.LossConfig{}, false)
	path, err := tr.SaveWeightsForSampler(ctx, s.SamplerName)
	if err != nil {
		t.Fatal(err)
	}
	seed := s.Sample.Seed
	r, err := sample(path, &llm.Request{InputIDs: s.Sample.Prompt, Params: llm.Params{MaxNewTokens: s.Sample.MaxTokens,
		Temperature: s.Sample.Temperature, Seed: &seed}})
	if err != nil {
		t.Fatal(err)
	}
	res.Sample.Tokens, res.Sample.Logprobs = r.OutputIDs, r.Logprobs
	res.Sample.StopReason = string(r.Finish)
	return &res
}

type tinkerEnv struct {
	url  string
	dir  string
	ckpt string // the server's checkpoint directory
	w    *engine.Weights
	srv  *serve.Server
}

func startTinkerServer(t testing.TB) *tinkerEnv {
	t.Helper()
	dir, w, tok := testmodel.Tiny(t, 1)
	ckpt := t.TempDir()
	s, err := serve.New(serve.Options{ModelName: "tiny", ModelDir: dir, Weights: w, Tokenizer: tok,
		CheckpointDir: ckpt, LongPoll: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return &tinkerEnv{url: hs.URL, dir: dir, ckpt: ckpt, w: w, srv: s}
}

func tinkerConfig(url string) llm.TinkerConfig {
	return llm.TinkerConfig{BaseURL: url, Heartbeat: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// goScenario runs the scenario through the Tinker client and the Tinker
// sampling backend.
func goScenario(t testing.TB, env *tinkerEnv, s *scenario) *scenarioResult {
	t.Helper()
	ctx := context.Background()
	tr, err := trainer.NewTinker(ctx, trainer.TinkerOptions{TinkerConfig: tinkerConfig(env.url), BaseModel: s.BaseModel, LoraRank: s.LoraRank})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	return s.run(t, tr, func(path string, req *llm.Request) (*llm.Response, error) {
		if !strings.HasPrefix(path, "tinker://"+tr.ModelID()+"/sampler_weights/") {
			t.Fatalf("sampler path %q", path)
		}
		sm, err := llm.NewTinkerSampler(llm.TinkerSamplerConfig{TinkerConfig: tinkerConfig(env.url), ModelPath: path})
		if err != nil {
			return nil, err
		}
		defer sm.Close()
		return sm.Sample(ctx, req)
	})
}

type sink struct{ w *engine.Weights }

func (k *sink) SetWeights(w *engine.Weights, _ int) { k.w = w }

// localLoRATrainer is the in-process twin of what `serve model` trains for
// a Tinker client asking for this rank: a LoRA adapter with alpha 32 on
// all seven projections, seed 0.
func localLoRATrainer(t testing.TB, env *tinkerEnv, rank int, opts embedded.TrainerOptions) *embedded.Trainer {
	t.Helper()
	tr, err := embedded.NewLoRATrainer(env.w, engine.LoRAConfig{Rank: rank, Alpha: 32}, 0, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// embeddedScenario runs it in process.
func embeddedScenario(t testing.TB, env *tinkerEnv, s *scenario) *scenarioResult {
	t.Helper()
	k := &sink{}
	tr := localLoRATrainer(t, env, s.LoraRank, embedded.TrainerOptions{Sinks: []embedded.WeightsSink{k}})
	return s.run(t, tr, func(string, *llm.Request) (*llm.Response, error) {
		_, tok, _ := engine.OpenModelDir(env.dir)
		sm := engine.NewSampler(k.w, 1, engine.SamplerOptions{Tokenizer: tok, StopTokenIDs: engine.StopTokens(env.dir, env.w.Config, tok)})
		defer sm.Close()
		seed := s.Sample.Seed
		return sm.Sample(context.Background(), &llm.Request{InputIDs: s.Sample.Prompt, Params: llm.Params{
			MaxNewTokens: s.Sample.MaxTokens, Temperature: s.Sample.Temperature, Seed: &seed}})
	})
}

// compare reports the first difference beyond tol (relative for losses).
func compare(a, b *scenarioResult, tol float64) error {
	losses := []struct {
		name string
		x, y lossResult
	}{{"cross_entropy", a.CrossEntropy, b.CrossEntropy}, {"importance_sampling", a.ImportanceSampling, b.ImportanceSampling},
		{"ppo", a.PPO, b.PPO}, {"after_step", a.AfterStep, b.AfterStep}}
	for _, l := range losses {
		if math.Abs(l.x.Loss-l.y.Loss) > tol*math.Max(1, math.Abs(l.y.Loss)) {
			return fmt.Errorf("%s loss %v vs %v", l.name, l.x.Loss, l.y.Loss)
		}
		if len(l.x.Logprobs) != len(l.y.Logprobs) {
			return fmt.Errorf("%s: %d vs %d logprob rows", l.name, len(l.x.Logprobs), len(l.y.Logprobs))
		}
		for i := range l.x.Logprobs {
			if len(l.x.Logprobs[i]) != len(l.y.Logprobs[i]) {
				return fmt.Errorf("%s datum %d: %d vs %d logprobs", l.name, i, len(l.x.Logprobs[i]), len(l.y.Logprobs[i]))
			}
			for j := range l.x.Logprobs[i] {
				if d := math.Abs(float64(l.x.Logprobs[i][j] - l.y.Logprobs[i][j])); d > tol {
					return fmt.Errorf("%s datum %d token %d: logprob %v vs %v", l.name, i, j, l.x.Logprobs[i][j], l.y.Logprobs[i][j])
				}
			}
		}
	}
	if fmt.Sprint(a.Sample.Tokens) != fmt.Sprint(b.Sample.Tokens) {
		return fmt.Errorf("sampled tokens %v vs %v", a.Sample.Tokens, b.Sample.Tokens)
	}
	for i := range a.Sample.Logprobs {
		if d := math.Abs(float64(a.Sample.Logprobs[i] - b.Sample.Logprobs[i])); d > tol {
			return fmt.Errorf("sample logprob %d: %v vs %v", i, a.Sample.Logprobs[i], b.Sample.Logprobs[i])
		}
	}
	return nil
}

// The Go Tinker client against `asearcher serve model` gets the numbers
// the embedded trainer computes in process: the three losses, an Adam
// step, saving for the sampler and sampling from the saved weights.
func TestTinkerClientMatchesEmbedded(t *testing.T) {
	env := startTinkerServer(t)
	s := loadScenario(t)
	got := goScenario(t, env, s)
	want := embeddedScenario(t, env, s)
	if err := compare(got, want, 1e-5); err != nil {
		t.Fatal(err)
	}
	if got.AfterStep.Loss == got.CrossEntropy.Loss {
		t.Fatal("the optimiser step did not change the loss")
	}
	if len(got.Sample.Tokens) == 0 {
		t.Fatal("no tokens sampled")
	}
	t.Logf("losses: ce %.5f is %.5f ppo %.5f after step %.5f; sampled %v", got.CrossEntropy.Loss,
		got.ImportanceSampling.Loss, got.PPO.Loss, got.AfterStep.Loss, got.Sample.Tokens)
}

// The official Python SDK (pinned in scripts/tinker_conformance.sh) and
// the Go client get the same numbers from the same server. Runs when
// TINKER_CONFORMANCE_PYTHON names a Python with the SDK installed.
func TestTinkerSDKConformance(t *testing.T) {
	py := os.Getenv("TINKER_CONFORMANCE_PYTHON")
	if py == "" {
		t.Skip("set TINKER_CONFORMANCE_PYTHON to a python with the tinker SDK (scripts/tinker_conformance.sh does)")
	}
	env := startTinkerServer(t)
	s := loadScenario(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "../scripts/tinker_conformance.py", "--base-url", env.url, "--scenario", "testdata/tinker_scenario.json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "TINKER_API_KEY=tml-conformance")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python SDK run: %v\n%s", err, stderr.String())
	}
	var sdk scenarioResult
	var meta struct {
		SDKVersion string `json:"sdk_version"`
		PathSuffix string `json:"sampler_path_suffix"`
		Path       string `json:"sampler_path"`
	}
	if err := json.Unmarshal(out, &sdk); err != nil {
		t.Fatalf("SDK output %q: %v", out, err)
	}
	_ = json.Unmarshal(out, &meta)
	goRes := goScenario(t, env, s)
	// Numbers cross JSON as float32 on both sides; the server computes both
	// runs from the same base weights, so they agree exactly up to that.
	if err := compare(&sdk, goRes, 1e-6); err != nil {
		t.Fatalf("SDK %s vs Go client: %v", meta.SDKVersion, err)
	}
	if meta.PathSuffix != "sampler_weights/"+s.SamplerName {
		t.Fatalf("SDK sampler path suffix %q", meta.PathSuffix)
	}
	// The SDK's create_lora_training_client got a real adapter of its rank.
	model := strings.Split(strings.TrimPrefix(meta.Path, "tinker://"), "/")[0]
	pa, err := peft.Load(filepath.Join(env.ckpt, model, "sampler_weights", s.SamplerName))
	if err != nil {
		t.Fatalf("SDK sampler weights %s: %v", meta.Path, err)
	}
	if pa.Config.R != s.LoraRank || len(pa.Targets()) != 7 {
		t.Fatalf("SDK sampler weights: rank %d on %v, want rank %d on the seven projections", pa.Config.R, pa.Targets(), s.LoraRank)
	}
	t.Logf("tinker SDK %s and the Go client agree: ce %.6f is %.6f ppo %.6f after %.6f, sample %v", meta.SDKVersion,
		sdk.CrossEntropy.Loss, sdk.ImportanceSampling.Loss, sdk.PPO.Loss, sdk.AfterStep.Loss, sdk.Sample.Tokens)
}

// TokenMean, which Tinker lacks, is emulated by scaling weights or
// advantages: the Tinker client's loss and the step it takes equal the
// embedded trainer's TokenMean.
func TestTinkerTokenMean(t *testing.T) {
	env := startTinkerServer(t)
	s := loadScenario(t)
	ctx := context.Background()
	remote, err := trainer.NewTinker(ctx, trainer.TinkerOptions{TinkerConfig: tinkerConfig(env.url), BaseModel: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	local := localLoRATrainer(t, env, 32, embedded.TrainerOptions{})
	for _, loss := range []trainer.LossFn{trainer.CrossEntropy, trainer.PPO} {
		cfg := trainer.LossConfig{TokenMean: true}
		a, err := remote.ForwardBackward(ctx, s.data(loss), loss, cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := local.ForwardBackward(ctx, s.data(loss), loss, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(a.Loss-b.Loss) > 1e-5*math.Max(1, math.Abs(b.Loss)) {
			t.Fatalf("%s token mean: Tinker %v, embedded %v", loss, a.Loss, b.Loss)
		}
	}
	if _, err := remote.OptimStep(ctx, s.Adam); err != nil {
		t.Fatal(err)
	}
	if _, err := local.OptimStep(ctx, s.Adam); err != nil {
		t.Fatal(err)
	}
	a, _ := remote.Forward(ctx, s.data(trainer.CrossEntropy), trainer.CrossEntropy, trainer.LossConfig{})
	b, _ := local.Forward(ctx, s.data(trainer.CrossEntropy), trainer.CrossEntropy, trainer.LossConfig{})
	if math.Abs(a.Loss-b.Loss) > 1e-4*math.Max(1, math.Abs(b.Loss)) {
		t.Fatalf("after the step: Tinker %v, embedded %v", a.Loss, b.Loss)
	}
}

// A batch over the server's chunk limit (1,024 datums) is split, all
// chunks submitted before any is awaited, and merged in order.
func TestTinkerChunkedBatch(t *testing.T) {
	env := startTinkerServer(t)
	ctx := context.Background()
	remote, err := trainer.NewTinker(ctx, trainer.TinkerOptions{TinkerConfig: tinkerConfig(env.url), BaseModel: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	data := make([]trainer.Datum, 1100)
	for i := range data {
		data[i] = trainer.Datum{Input: []int{i % 200, (i + 1) % 200}, Target: []int{(i + 1) % 200, (i + 2) % 200}}
	}
	got, err := remote.Forward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := embedded.NewTrainer(env.w, embedded.TrainerOptions{}).Forward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Logprobs) != len(data) || math.Abs(got.Loss-want.Loss) > 1e-6*math.Abs(want.Loss) {
		t.Fatalf("%d rows, loss %v vs %v", len(got.Logprobs), got.Loss, want.Loss)
	}
	for i := range data {
		for j := range got.Logprobs[i] {
			if math.Abs(float64(got.Logprobs[i][j]-want.Logprobs[i][j])) > 1e-5 {
				t.Fatalf("datum %d token %d: %v vs %v (chunks merged out of order?)", i, j, got.Logprobs[i][j], want.Logprobs[i][j])
			}
		}
	}
	if got.Metrics["tokens"] != 2*float64(len(data)) {
		t.Fatalf("tokens metric %v summed over chunks, want %d", got.Metrics["tokens"], 2*len(data))
	}
}

// A forward_backward whose reply is lost after the server ran it is
// retried (same idempotency key, same seq_id) and not run twice: the optimiser
// step sees the batch's examples once.
func TestTinkerRetryIsIdempotent(t *testing.T) {
	env := startTinkerServer(t)
	var dropped atomic.Bool
	h := env.srv.Handler()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/forward_backward" && !dropped.Swap(true) {
			h.ServeHTTP(httptest.NewRecorder(), r) // the server runs it ...
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // ... and the reply never arrives
			}
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	s := loadScenario(t)
	ctx := context.Background()
	cfg := tinkerConfig(proxy.URL)
	tr, err := trainer.NewTinker(ctx, trainer.TinkerOptions{TinkerConfig: cfg, BaseModel: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.ForwardBackward(ctx, s.data(trainer.CrossEntropy), trainer.CrossEntropy, trainer.LossConfig{}); err != nil {
		t.Fatal(err)
	}
	if !dropped.Load() {
		t.Fatal("the reply was not dropped")
	}
	m, err := tr.OptimStep(ctx, s.Adam)
	if err != nil {
		t.Fatal(err)
	}
	if m["examples"] != float64(len(s.Data)) {
		t.Fatalf("the step accumulated %v examples, want %d (the retried request ran twice?)", m["examples"], len(s.Data))
	}
	if err := tr.Unload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Forward(ctx, s.data(trainer.CrossEntropy), trainer.CrossEntropy, trainer.LossConfig{}); err == nil || !strings.Contains(err.Error(), "unknown model_id") {
		t.Fatalf("after Unload: %v", err)
	}
}
