package rl

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asearcher/asearcher/internal/testfleet"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/trainer"
)

// This file runs the controller the way a cluster runs it, over HTTP only:
// the trainer is the Tinker client talking to a Tinker-compatible server,
// rollouts go through the SGLang backend and pool to a fleet of
// SGLang-compatible servers, and each new version travels as Tinker
// save_weights_for_sampler → SGLang pause_generation /
// update_weights_from_disk / continue_generation on every server. The
// servers are internal/testfleet: `asearcher serve model` processes in
// miniature (engine/serve on loopback) that share a checkpoint directory.

// servedVersion asks a fleet server for its weight version over HTTP.
func servedVersion(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/get_weight_version", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		WeightVersion string `json:"weight_version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("get_weight_version: %w", err)
	}
	return strconv.Atoi(out.WeightVersion)
}

// servedLogprobs scores ids on a fleet server through SGLang's prompt
// logprobs: out[i] = log p(ids[i+1] | ids[:i+1]), Tinker's layout.
func servedLogprobs(ctx context.Context, url string, ids []int) ([]float64, error) {
	body, _ := json.Marshal(map[string]any{"input_ids": ids, "return_logprob": true, "logprob_start_len": 0,
		"sampling_params": map[string]any{"max_new_tokens": 0}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/generate", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		MetaInfo struct {
			InputTokenLogprobs [][]any `json:"input_token_logprobs"`
		} `json:"meta_info"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if len(out.MetaInfo.InputTokenLogprobs) != len(ids) {
		return nil, fmt.Errorf("%d prompt logprobs for %d tokens", len(out.MetaInfo.InputTokenLogprobs), len(ids))
	}
	var lps []float64
	for _, e := range out.MetaInfo.InputTokenLogprobs[1:] {
		v, ok := e[0].(float64)
		if !ok {
			return nil, fmt.Errorf("prompt logprob %v is not a number", e[0])
		}
		lps = append(lps, v)
	}
	return lps, nil
}

// protoRollout is a two-turn token agent: it generates, gets a masked
// observation, generates again. The reward is the share of generated
// tokens that are "wanted" (ids below wantBelow), a signal every policy
// can move along, so groups have variance from the start.
type protoRollout struct {
	eos, wantBelow, vocab int
	maxNew                int           // per turn [6]
	toolDelay             time.Duration // between turns, drawn from [0, toolDelay]
	// mixed counts replies whose tokens came from more than one version:
	// calls that a weight update interrupted and that were resumed on the
	// new weights.
	mixed *atomic.Int64
}

func (p protoRollout) Run(ctx context.Context, q Question, s llm.Sampler, sample int, seed int64) (*Sample, error) {
	r := rand.New(rand.NewPCG(uint64(seed), 9))
	seq := Sequence{}
	push := func(tok int, gen bool, lp float32, v int) {
		seq.Tokens = append(seq.Tokens, tok)
		seq.LossMask = append(seq.LossMask, gen)
		seq.Logprobs = append(seq.Logprobs, lp)
		seq.Versions = append(seq.Versions, v)
	}
	for _, tok := range []int{'Q', 'a' + int(q.Index%26), ':'} {
		push(tok, false, 0, -1)
	}
	wanted, generated := 0, 0
	for turn := range 2 {
		seed := r.Int64()
		resp, err := s.Sample(ctx, &llm.Request{ID: fmt.Sprintf("%s-%d-%d-%x", q.ID, sample, turn, seed&0xffff),
			InputIDs: append([]int(nil), seq.Tokens...),
			Params:   llm.Params{MaxNewTokens: cmp.Or(p.maxNew, 6), Temperature: 1, Seed: &seed}})
		if err != nil {
			return nil, err
		}
		if len(resp.Logprobs) != len(resp.OutputIDs) || len(resp.Versions) != len(resp.OutputIDs) {
			return nil, fmt.Errorf("reply with %d tokens, %d logprobs, %d versions", len(resp.OutputIDs), len(resp.Logprobs), len(resp.Versions))
		}
		if len(resp.OutputIDs) > cmp.Or(p.maxNew, 6) {
			return nil, fmt.Errorf("%d tokens over a budget of %d", len(resp.OutputIDs), cmp.Or(p.maxNew, 6))
		}
		for i := 1; i < len(resp.Versions); i++ {
			if resp.Versions[i] < resp.Versions[i-1] {
				return nil, fmt.Errorf("token versions go back in one reply: %v", resp.Versions)
			}
		}
		if n := len(resp.Versions); n > 0 && resp.Versions[0] != resp.Versions[n-1] && p.mixed != nil {
			p.mixed.Add(1)
		}
		for i, tok := range resp.OutputIDs {
			push(tok, true, resp.Logprobs[i], resp.Versions[i])
			if tok != p.eos {
				generated++
				if tok < p.wantBelow {
					wanted++
				}
			}
		}
		if turn == 0 {
			// A tool call takes time; weights may change meanwhile, so the
			// next turn can run on a newer version.
			select {
			case <-time.After(time.Duration(r.IntN(int(p.toolDelay) + 1))):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			push('\n', false, 0, -1) // the observation: not trained on
		}
	}
	reward := 0.0
	if generated > 0 {
		reward = float64(wanted) / float64(generated)
	}
	return &Sample{Sequences: []Sequence{seq}, Reward: reward, Score: reward, Turns: 2}, nil
}

// probeDatum is a fixed sequence whose logprobs show whether, and which,
// weights changed.
func probeDatum() trainer.Datum {
	s := []int{'Q', 'z', ':', 'a', 'b', '\n', 'c', 'd'}
	return trainer.Datum{Input: s[:len(s)-1], Target: s[1:], Weights: []float32{0, 0, 1, 1, 0, 1, 1}}
}

func probeLogprobs(t *testing.T, tr trainer.Trainer) []float64 {
	t.Helper()
	out, err := tr.Forward(context.Background(), []trainer.Datum{probeDatum()}, trainer.CrossEntropy, trainer.LossConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var lps []float64
	for _, v := range out.Logprobs[0] {
		lps = append(lps, float64(v))
	}
	return lps
}

// recordingPublisher notes the paths published, which must be the
// trainer's tinker:// sampler paths.
type recordingPublisher struct {
	inner Publisher
	mu    sync.Mutex
	paths []string
}

func (p *recordingPublisher) Publish(ctx context.Context, path string, version int, d Drainer) error {
	p.mu.Lock()
	p.paths = append(p.paths, path)
	p.mu.Unlock()
	return p.inner.Publish(ctx, path, version, d)
}

// TestControllerOverRealProtocols: a few RL steps with the Tinker HTTP
// client as trainer and SGLang HTTP servers as the generation fleet. The
// steps complete; every fleet server's weight version advances with the
// steps and finally equals the trainer's; every consumed sample's
// per-token versions (reported by the servers) respect η; the trained
// weights differ from the initial ones and are exactly what the fleet
// serves; and a resume from the checkpoint (a new Tinker model loading the
// saved state) continues the version sequence.
func TestControllerOverRealProtocols(t *testing.T) {
	fleet := testfleet.Start(t, 2, 0)
	cfg := DefaultConfig()
	cfg.Steps = 3
	cfg.BatchGroups = 2
	cfg.GroupSize = 4
	cfg.MaxStaleness = 1
	cfg.SampleRetries = 1
	cfg.Advantage.GlobalNorm = false
	cfg.Advantage.RewardBias, cfg.Advantage.RewardScale = 0, 1
	cfg.Advantage.StdNorm = true
	cfg.Optim.LR = 2e-2
	cfg.Optim.Beta2 = 0.95
	cfg.CheckpointEvery = 2
	cfg.DumpSamples = 2
	cfg.DrainGraceMS = 5
	cfg.DrainTimeoutMS = 2000
	runDir := t.TempDir()
	var mixed atomic.Int64
	rollout := protoRollout{eos: fleet.EOS, wantBelow: 'a', vocab: fleet.Vocab, maxNew: 12, toolDelay: 400 * time.Millisecond, mixed: &mixed}

	type batchSeen struct {
		step      int
		served    []int // fleet versions when the batch was formed
		versions  map[int]int
		maxStale  int
		generated int
	}
	run := func(resume bool, steps int) (*Summary, *trainer.Tinker, *recordingPublisher, []batchSeen) {
		t.Helper()
		tr := fleet.NewTrainer(t)
		pub := &recordingPublisher{inner: &SGLangPublisher{Servers: fleet.URLs, Retries: 1, Timeout: 30 * time.Second}}
		c := cfg
		c.Steps = steps
		ctl, err := New(Options{Config: c, Dataset: banditDataset(30), Rollout: rollout, Sampler: fleet.NewPool(t),
			WrapSampler: func(s llm.Sampler) llm.Sampler { return &llm.Resumer{Sampler: s, Logger: testLogger(t)} },
			Trainer:     tr, Publisher: pub, RunDir: runDir, Resume: resume, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		var seen []batchSeen
		ctl.hooks.onBatch = func(step int, batch []*Group) {
			b := batchSeen{step: step, versions: map[int]int{}}
			for _, u := range fleet.URLs {
				v, err := servedVersion(context.Background(), u)
				if err != nil {
					v = -1
				}
				b.served = append(b.served, v)
			}
			for _, g := range batch {
				for _, s := range g.Samples {
					for _, sq := range s.Sequences {
						for i, m := range sq.LossMask {
							if m {
								b.versions[sq.Versions[i]]++
								b.generated++
								b.maxStale = max(b.maxStale, step-sq.Versions[i])
							}
						}
					}
				}
			}
			seen = append(seen, b)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		sum, err := ctl.Run(ctx)
		if err != nil {
			t.Fatalf("run (resume=%v): %v", resume, err)
		}
		return sum, tr, pub, seen
	}

	// Before training: what the base weights say about the probe.
	base := fleet.NewTrainer(t)
	before := probeLogprobs(t, base)

	sum, tr, pub, seen := run(false, cfg.Steps)
	if sum.Version != cfg.Steps || sum.Steps != cfg.Steps || len(seen) != cfg.Steps {
		t.Fatalf("ran %d steps to v%d with %d batches, want %d", sum.Steps, sum.Version, len(seen), cfg.Steps)
	}
	checkSeen := func(seen []batchSeen) {
		t.Helper()
		for _, b := range seen {
			for i, v := range b.served {
				// The batch of step s is trained on weights v_s, which
				// every server has served since the publish of step s-1.
				if v != b.step {
					t.Errorf("step %d: fleet server %d serves v%d, want v%d", b.step, i, v, b.step)
				}
			}
			if b.generated == 0 {
				t.Errorf("step %d: batch without generated tokens", b.step)
			}
			for v, n := range b.versions {
				if v < 0 || v > b.step {
					t.Errorf("step %d: %d tokens labelled v%d, not a version served before this step", b.step, n, v)
				}
			}
			if b.maxStale > cfg.MaxStaleness {
				t.Errorf("step %d: a token of staleness %d > η=%d was trained (versions %v)", b.step, b.maxStale, cfg.MaxStaleness, b.versions)
			}
			t.Logf("step %d: fleet at %v, token versions %v", b.step, b.served, b.versions)
		}
	}
	checkSeen(seen)
	t.Logf("%d replies were interrupted by a weight update and finished on the new weights", mixed.Load())
	for i, p := range pub.paths {
		if want := fmt.Sprintf("tinker://%s/sampler_weights/v%06d", tr.ModelID(), i+1); p != want {
			t.Errorf("publish %d went out with path %q, want %q", i, p, want)
		}
	}
	for i, s := range fleet.Servers {
		if s.Version() != cfg.Steps {
			t.Errorf("fleet server %d at v%d after %d steps", i, s.Version(), cfg.Steps)
		}
	}
	for _, r := range sum.Records {
		// With group-centred advantages and equal lengths the PPO loss at
		// ratio 1 is ~0, so the loss value proves nothing; the probe below
		// shows that the weights moved.
		if r.Train.TrainTokens == 0 || r.Train.Loss == nil || math.IsNaN(*r.Train.Loss) || math.IsInf(*r.Train.Loss, 0) {
			t.Errorf("step %d: %d train tokens, loss %v", r.Step, r.Train.TrainTokens, r.Train.Loss)
		}
	}

	// The weights moved, and the fleet serves exactly the trained ones.
	after := probeLogprobs(t, tr)
	moved := 0.0
	for i := range after {
		moved = max(moved, math.Abs(after[i]-before[i]))
	}
	if moved < 1e-3 {
		t.Errorf("probe logprobs moved by at most %.2g: training changed nothing", moved)
	}
	for i, u := range fleet.URLs {
		served, err := servedLogprobs(context.Background(), u, append(probeDatum().Input, probeDatum().Target[len(probeDatum().Target)-1]))
		if err != nil {
			t.Fatal(err)
		}
		for j := range after {
			if math.Abs(served[j]-after[j]) > 1e-3 {
				t.Fatalf("fleet server %d, token %d: serves logprob %.5f, trainer has %.5f", i, j, served[j], after[j])
			}
		}
	}

	// The checkpoint holds the trainer state as a Tinker path; a resume
	// with a new Tinker model continues from it.
	st, tp, err := LoadCheckpoint(runDir)
	if err != nil || st == nil {
		t.Fatalf("checkpoint: %v %v", st, err)
	}
	if st.Version != cfg.Steps || !strings.HasPrefix(tp, "tinker://"+tr.ModelID()+"/weights/") {
		t.Fatalf("checkpoint at v%d with trainer state %q", st.Version, tp)
	}
	sum2, tr2, pub2, seen2 := run(true, cfg.Steps+2)
	if sum2.ResumedAt != cfg.Steps || sum2.Version != cfg.Steps+2 {
		t.Fatalf("resumed at %d to v%d", sum2.ResumedAt, sum2.Version)
	}
	checkSeen(seen2)
	// The first publish after the resume republishes the checkpoint's
	// weights as the checkpoint's version.
	if len(pub2.paths) == 0 || !strings.HasSuffix(pub2.paths[0], fmt.Sprintf("/v%06d", cfg.Steps)) ||
		!strings.HasPrefix(pub2.paths[0], "tinker://"+tr2.ModelID()+"/") {
		t.Errorf("resume published %v first", pub2.paths)
	}
	for i, s := range fleet.Servers {
		if s.Version() != cfg.Steps+2 {
			t.Errorf("fleet server %d at v%d after the resumed run", i, s.Version())
		}
	}
}

// TestControllerOverTinkerSampling: the all-Tinker topology (the hosted
// service, or SkyRL tx serving its own samples). The trainer is the Tinker
// client, rollouts sample through Tinker's asample, and each version is
// published by save_weights_for_sampler → a new sampling session on the
// returned path (old requests finish on the old session). The steps
// complete, every sample respects η, and after the run the sampler draws
// from exactly the trained weights.
func TestControllerOverTinkerSampling(t *testing.T) {
	fleet := testfleet.Start(t, 0, 0)
	cfg := DefaultConfig()
	cfg.Steps = 3
	cfg.BatchGroups = 2
	cfg.GroupSize = 4
	cfg.MaxStaleness = 1
	cfg.Advantage.GlobalNorm = false
	cfg.Advantage.RewardBias, cfg.Advantage.RewardScale = 0, 1
	cfg.Optim.LR = 2e-2
	cfg.DumpSamples = 0
	tr := fleet.NewTrainer(t)
	before := probeLogprobs(t, tr)
	sm, err := llm.NewTinkerSampler(llm.TinkerSamplerConfig{BaseModel: "tiny",
		TinkerConfig: llm.TinkerConfig{BaseURL: fleet.TrainerURL, Heartbeat: -1, Logger: testLogger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sm.Close)
	var paths []string
	pub := SwapPublisher{Load: func(ctx context.Context, path string, _ int) error {
		paths = append(paths, path)
		return sm.SetModelPath(ctx, path)
	}}
	c, err := New(Options{Config: cfg, Dataset: banditDataset(30), Rollout: protoRollout{eos: fleet.EOS, wantBelow: 'a', vocab: fleet.Vocab},
		Sampler: sm, Trainer: tr, Publisher: pub, RunDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stale := map[int]int{}
	c.hooks.onBatch = func(step int, batch []*Group) {
		for _, g := range batch {
			for _, s := range g.Samples {
				for _, sq := range s.Sequences {
					for i, m := range sq.LossMask {
						if m {
							stale[step-sq.Versions[i]]++
						}
					}
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Version != cfg.Steps {
		t.Fatalf("v%d after %d steps", sum.Version, cfg.Steps)
	}
	for s, n := range stale {
		if s < 0 || s > cfg.MaxStaleness {
			t.Errorf("%d tokens of staleness %d trained with η=%d", n, s, cfg.MaxStaleness)
		}
	}
	t.Logf("token staleness %v, published %v", stale, paths)
	if len(paths) != cfg.Steps || paths[len(paths)-1] != fmt.Sprintf("tinker://%s/sampler_weights/v%06d", tr.ModelID(), cfg.Steps) {
		t.Fatalf("published %v", paths)
	}
	after := probeLogprobs(t, tr)
	moved := 0.0
	for i := range after {
		moved = max(moved, math.Abs(after[i]-before[i]))
	}
	if moved < 1e-3 {
		t.Errorf("probe logprobs moved by at most %.2g: training changed nothing", moved)
	}
	// The sampler now draws from the trained weights: its logprobs of what
	// it sampled are the trainer's.
	seed := int64(5)
	prompt := []int{'Q', 'z', ':'}
	resp, err := sm.Sample(ctx, &llm.Request{InputIDs: prompt, Params: llm.Params{MaxNewTokens: 6, Temperature: 1, Seed: &seed}})
	if err != nil {
		t.Fatal(err)
	}
	full := append(append([]int(nil), prompt...), resp.OutputIDs...)
	out, err := tr.Forward(ctx, []trainer.Datum{{Input: full[:len(full)-1], Target: full[1:], Weights: make([]float32, len(full)-1)}},
		trainer.CrossEntropy, trainer.LossConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i, lp := range resp.Logprobs {
		if want := out.Logprobs[0][len(prompt)-1+i]; math.Abs(float64(lp-want)) > 1e-3 {
			t.Fatalf("sampled token %d: logprob %.5f, trained weights give %.5f", i, lp, want)
		}
	}
}

// TestClusterDocConfig: the rl: block in docs/cluster.md decodes strictly
// into Config and validates, so the documented recipe stays in step with
// the code.
func TestClusterDocConfig(t *testing.T) {
	raw, err := os.ReadFile("../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "```yaml\nrl:\n")
	if !ok {
		t.Fatal("docs/cluster.md has no ```yaml block starting with rl:")
	}
	block, _, _ = strings.Cut(block, "```")
	var file struct {
		RL Config `yaml:"rl"`
	}
	file.RL = DefaultConfig()
	if err := DecodeYAML(strings.NewReader("rl:\n"+block), &file); err != nil {
		t.Fatalf("docs/cluster.md rl: block: %v", err)
	}
	if err := file.RL.Validate(); err != nil {
		t.Fatalf("docs/cluster.md rl: block: %v", err)
	}
	if file.RL.MaxStaleness != 4 || file.RL.GroupSize != 16 || file.RL.Loss.Kind != DecoupledPPO {
		t.Errorf("decoded %+v: not the documented values", file.RL)
	}
}
