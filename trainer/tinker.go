package trainer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/wire/tinker"
)

// TinkerOptions configure a Tinker trainer client.
type TinkerOptions struct {
	// TinkerConfig says where the server is (TINKER_BASE_URL,
	// TINKER_API_KEY: llm.TinkerConfigFromEnv).
	llm.TinkerConfig
	// BaseModel is the model to train, as the server names it (its
	// get_server_capabilities lists them).
	BaseModel string
	// LoraRank is sent as lora_config.rank [32]: the server trains a LoRA
	// adapter of that rank (SkyRL tx, Tinker and `asearcher serve model`
	// alike).
	LoraRank int
	// Client reuses an open session (several trainers and samplers can
	// share one); nil opens a new one that Close ends.
	Client *llm.TinkerClient
}

// Tinker implements Trainer over the Tinker HTTP API: the Tinker service,
// SkyRL tx, or `asearcher serve model`. Every call is submitted with the
// model's next seq_id (so the server runs them in order) and an
// idempotency key (so a retried submission is not run twice), then its
// future is long-polled.
type Tinker struct {
	c       *llm.TinkerClient
	owns    bool
	modelID string

	// mu makes "take seq ids, submit" atomic, so concurrent calls reach
	// the server in the order of their seq ids.
	mu  sync.Mutex
	seq int64
}

var _ Trainer = (*Tinker)(nil)

// NewTinker opens a session (unless opts.Client is given) and creates a
// training model on the server.
func NewTinker(ctx context.Context, opts TinkerOptions) (*Tinker, error) {
	if opts.BaseModel == "" {
		return nil, errors.New("tinker trainer: no base model; set the model name the server serves")
	}
	if opts.LoraRank <= 0 {
		opts.LoraRank = 32
	}
	t := &Tinker{c: opts.Client}
	if t.c == nil {
		c, err := llm.NewTinkerClient(ctx, opts.TinkerConfig)
		if err != nil {
			return nil, err
		}
		t.c, t.owns = c, true
	}
	body := map[string]any{"type": "create_model", "session_id": t.c.SessionID(), "model_seq_id": t.c.NextModelSeqID(),
		"base_model": opts.BaseModel, "lora_config": map[string]any{"rank": opts.LoraRank, "train_unembed": true, "train_mlp": true, "train_attn": true}}
	f, err := t.c.Submit(ctx, "/api/v1/create_model", body)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("tinker create_model: %w", err)
	}
	var out struct {
		ModelID string `json:"model_id"`
	}
	if err := t.c.Wait(ctx, f, &out); err != nil {
		t.Close()
		return nil, fmt.Errorf("tinker create_model: %w", err)
	}
	if out.ModelID == "" {
		t.Close()
		return nil, errors.New("tinker create_model: the result has no model_id")
	}
	t.modelID = out.ModelID
	return t, nil
}

// ModelID is the server's id of the model being trained.
func (t *Tinker) ModelID() string { return t.modelID }

// Client is the session, for sharing with samplers.
func (t *Tinker) Client() *llm.TinkerClient { return t.c }

// Unload frees the model on the server (its saved weights stay).
func (t *Tinker) Unload(ctx context.Context) error {
	var out struct {
		ModelID string `json:"model_id"`
	}
	return t.call(ctx, "/api/v1/unload_model", map[string]any{"type": "unload_model"}, &out)
}

// Close ends the session's heartbeat if this trainer opened it. The model
// stays on the server until Unload (or, on the hosted service, until the
// session expires).
func (t *Tinker) Close() {
	if t.owns && t.c != nil {
		t.c.Close()
	}
}

// submitAll submits bodies with consecutive seq ids and returns their
// futures in order.
func (t *Tinker) submitAll(ctx context.Context, path string, bodies []map[string]any) ([]tinker.Future, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	futures := make([]tinker.Future, len(bodies))
	for i, b := range bodies {
		t.seq++
		b["model_id"] = t.modelID
		b["seq_id"] = t.seq
		f, err := t.c.Submit(ctx, path, b)
		if err != nil {
			return nil, fmt.Errorf("tinker %s: %w", strings.TrimPrefix(path, "/api/v1/"), err)
		}
		futures[i] = f
	}
	return futures, nil
}

// call submits one request and waits for its result.
func (t *Tinker) call(ctx context.Context, path string, body map[string]any, out any) error {
	fs, err := t.submitAll(ctx, path, []map[string]any{body})
	if err != nil {
		return err
	}
	if err := t.c.Wait(ctx, fs[0], out); err != nil {
		return fmt.Errorf("tinker %s: %w", strings.TrimPrefix(path, "/api/v1/"), err)
	}
	return nil
}

// Forward computes logprobs and the loss without touching gradients.
func (t *Tinker) Forward(ctx context.Context, data []Datum, loss LossFn, cfg LossConfig) (*Output, error) {
	return t.fwdBwd(ctx, "/api/v1/forward", "forward_input", data, loss, cfg)
}

// ForwardBackward accumulates the loss's gradient on the server.
func (t *Tinker) ForwardBackward(ctx context.Context, data []Datum, loss LossFn, cfg LossConfig) (*Output, error) {
	return t.fwdBwd(ctx, "/api/v1/forward_backward", "forward_backward_input", data, loss, cfg)
}

// CheckTinkerTemperature refuses a loss temperature other than 1: the
// Tinker API's forward and forward_backward take no temperature, so the
// server's logprobs are those of the untempered policy, and training them
// against samples drawn at T ≠ 1 would bias every importance weight.
func CheckTinkerTemperature(t float64) error {
	if t == 0 || t == 1 {
		return nil
	}
	return fmt.Errorf("tinker trainer: samples were drawn at temperature %g but the Tinker API computes training logprobs at temperature 1 only; sample at temperature 1 (cluster.temperature: 1) or train with the embedded trainer", t)
}

// tinkerData converts data, scaling weights or advantages by 1/active
// tokens when cfg.TokenMean asks for a mean: every Tinker loss is linear
// in them (ppo's min(r·A, clip(r)·A) too, for a positive scale), so the
// server's sum becomes the mean.
func tinkerData(data []Datum, loss LossFn, cfg LossConfig) ([]tinker.Datum, error) {
	scale := float32(1)
	if cfg.TokenMean {
		active := 0
		for _, d := range data {
			for i := range d.Target {
				switch {
				case loss == CrossEntropy && (d.Weights == nil || d.Weights[i] != 0):
					active++
				case loss != CrossEntropy && i < len(d.Advantages) && d.Advantages[i] != 0:
					active++
				}
			}
		}
		if active > 0 {
			scale = 1 / float32(active)
		}
	}
	out := make([]tinker.Datum, len(data))
	for i, d := range data {
		n := len(d.Target)
		if len(d.Input) != n {
			return nil, fmt.Errorf("datum %d: %d input tokens but %d targets", i, len(d.Input), n)
		}
		in := map[string]tinker.Tensor{"target_tokens": tinker.Int64Tensor(d.Target)}
		scaled := func(name string, v []float32) error {
			if len(v) != n {
				return fmt.Errorf("datum %d: %d %s for %d tokens", i, len(v), name, n)
			}
			s := make([]float32, n)
			for j, x := range v {
				s[j] = x * scale
			}
			in[name] = tinker.Float32Tensor(s)
			return nil
		}
		switch loss {
		case CrossEntropy:
			w := d.Weights
			if w == nil {
				w = make([]float32, n)
				for j := range w {
					w[j] = 1
				}
			}
			if err := scaled("weights", w); err != nil {
				return nil, err
			}
		case ImportanceSampling, PPO:
			if len(d.Logprobs) != n {
				return nil, fmt.Errorf("datum %d: %d logprobs for %d tokens", i, len(d.Logprobs), n)
			}
			in["logprobs"] = tinker.Float32Tensor(d.Logprobs)
			if err := scaled("advantages", d.Advantages); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown loss %q", loss)
		}
		out[i] = tinker.Datum{ModelInput: tinker.Input(d.Input), LossFnInputs: in}
	}
	return out, nil
}

// chunks splits data the way the server's client config asks: at most
// maxLen datums and about maxBytes of JSON per request.
func chunks(data []tinker.Datum, maxLen, maxBytes int) [][]tinker.Datum {
	var out [][]tinker.Datum
	start, size := 0, 0
	for i, d := range data {
		// ~12 bytes per token of input and per value of each tensor.
		b := 64 + 12*len(d.ModelInput.Chunks[0].Tokens)*(1+len(d.LossFnInputs))
		if i > start && (i-start >= maxLen || size+b > maxBytes) {
			out = append(out, data[start:i])
			start, size = i, 0
		}
		size += b
	}
	return append(out, data[start:])
}

func (t *Tinker) fwdBwd(ctx context.Context, path, key string, data []Datum, loss LossFn, cfg LossConfig) (*Output, error) {
	if len(data) == 0 {
		return nil, errors.New("tinker: no data")
	}
	if err := CheckTinkerTemperature(cfg.Temperature); err != nil {
		return nil, err
	}
	td, err := tinkerData(data, loss, cfg)
	if err != nil {
		return nil, err
	}
	lossCfg := map[string]float64{}
	if loss == PPO {
		if cfg.ClipLow != 0 {
			lossCfg["clip_low_threshold"] = cfg.ClipLow
		}
		if cfg.ClipHigh != 0 {
			lossCfg["clip_high_threshold"] = cfg.ClipHigh
		}
	}
	flags := t.c.Flags()
	parts := chunks(td, flags.FwdBwdMaxChunkLen, flags.FwdBwdMaxChunkBytes)
	bodies := make([]map[string]any, len(parts))
	for i, p := range parts {
		in := tinker.FwdBwdInput{Data: p, LossFn: string(loss)}
		if len(lossCfg) > 0 {
			in.LossFnConfig = lossCfg
		}
		bodies[i] = map[string]any{key: in}
	}
	// All chunks are submitted before any is awaited, so the server works
	// on one while the next is in transit.
	futures, err := t.submitAll(ctx, path, bodies)
	if err != nil {
		return nil, err
	}
	merged := map[string]float64{}
	weights := map[string]float64{}
	res := &Output{LossReported: true}
	for i, f := range futures {
		var o tinker.FwdBwdOutput
		if err := t.c.Wait(ctx, f, &o); err != nil {
			return nil, fmt.Errorf("tinker %s (chunk %d of %d): %w", strings.TrimPrefix(path, "/api/v1/"), i+1, len(futures), err)
		}
		if len(o.LossFnOutputs) != len(parts[i]) {
			return nil, fmt.Errorf("tinker %s: %d outputs for %d data", strings.TrimPrefix(path, "/api/v1/"), len(o.LossFnOutputs), len(parts[i]))
		}
		for j, lo := range o.LossFnOutputs {
			lp, ok := lo["logprobs"]
			if !ok {
				return nil, fmt.Errorf("tinker %s: output %d has no logprobs", strings.TrimPrefix(path, "/api/v1/"), j)
			}
			v := make([]float32, len(lp.Data))
			for k, x := range lp.Data {
				v[k] = float32(x)
			}
			res.Logprobs = append(res.Logprobs, v)
		}
		// A server that leaves out the loss (SkyRL's forward_backward
		// returns empty metrics) must not read as a loss of 0.
		if _, ok := o.Metrics["loss:sum"]; !ok {
			res.LossReported = false
		}
		mergeMetrics(merged, weights, o.Metrics, float64(len(parts[i])))
	}
	res.Loss = merged["loss:sum"]
	res.Metrics = make(map[string]float64, len(merged))
	for k, v := range merged {
		if w := weights[k]; w > 0 {
			v /= w
		}
		// Names as the embedded trainer reports them ("clip_fraction",
		// not "clip_fraction:mean"), so callers see one vocabulary.
		name, _, _ := strings.Cut(k, ":")
		res.Metrics[name] = v
	}
	return res, nil
}

// mergeMetrics folds one chunk's metrics in by the reduction after the
// colon, as the Python SDK does: ":sum" adds, ":max"/":min" keep the
// extreme, anything else is averaged weighted by the chunk's data count
// (weights collects the divisor).
func mergeMetrics(dst, weights, src map[string]float64, n float64) {
	for k, v := range src {
		old, seen := dst[k]
		switch {
		case strings.HasSuffix(k, ":sum"):
			dst[k] = old + v
		case strings.HasSuffix(k, ":max"):
			if !seen || v > old {
				dst[k] = v
			}
		case strings.HasSuffix(k, ":min"):
			if !seen || v < old {
				dst[k] = v
			}
		default:
			dst[k] = old + v*n
			weights[k] += n
		}
	}
}

// OptimStep applies Adam with the accumulated gradients.
func (t *Tinker) OptimStep(ctx context.Context, p AdamParams) (map[string]float64, error) {
	for _, x := range []float64{p.LearningRate, p.Beta1, p.Beta2, p.Eps, p.WeightDecay, p.GradClipNorm} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("tinker optim_step: adam params must be finite, got %+v", p)
		}
	}
	var out struct {
		Metrics map[string]float64 `json:"metrics"`
	}
	if err := t.call(ctx, "/api/v1/optim_step", map[string]any{"type": "optim_step", "adam_params": tinker.AdamParams(p)}, &out); err != nil {
		return nil, err
	}
	if out.Metrics == nil {
		out.Metrics = map[string]float64{}
	}
	return out.Metrics, nil
}

// SaveWeightsForSampler saves the weights under name and returns their
// tinker:// path, which TinkerSampler.SetModelPath (or an SGLang-style
// /update_weights_from_disk on `asearcher serve model`) loads.
func (t *Tinker) SaveWeightsForSampler(ctx context.Context, name string) (string, error) {
	var out struct {
		Path string `json:"path"`
	}
	if err := t.call(ctx, "/api/v1/save_weights_for_sampler", map[string]any{"type": "save_weights_for_sampler", "path": name}, &out); err != nil {
		return "", err
	}
	if out.Path == "" {
		return "", errors.New("tinker save_weights_for_sampler: the result has no path")
	}
	return out.Path, nil
}

// SaveState saves weights and optimiser state; the returned tinker://
// path is what LoadState takes. The state lives on the server, so a local
// directory given as name (the RL controller hands one inside its
// checkpoint) cannot be used as is: it becomes a plain name of its own that
// is new on every call, because a resumed run may save the same step again
// and Tinker refuses to overwrite a checkpoint.
func (t *Tinker) SaveState(ctx context.Context, name string) (string, error) {
	if strings.ContainsAny(name, `/\`) {
		name = tinkerStateName(name)
	}
	var out struct {
		Path string `json:"path"`
	}
	if err := t.call(ctx, "/api/v1/save_weights", map[string]any{"type": "save_weights", "path": name}, &out); err != nil {
		return "", err
	}
	if out.Path == "" {
		return "", errors.New("tinker save_weights: the result has no path")
	}
	return out.Path, nil
}

// LoadState restores weights, and with withOptimizer the Adam state, from
// a SaveState path.
func (t *Tinker) LoadState(ctx context.Context, path string, withOptimizer bool) error {
	var out struct {
		Path string `json:"path"`
	}
	return t.call(ctx, "/api/v1/load_weights", map[string]any{"type": "load_weights", "path": path, "optimizer": withOptimizer}, &out)
}

// tinkerStateName turns a local path into a Tinker checkpoint name: the
// step directory it names (for people reading the server's listing), a
// hash of the whole path, the time and a random part, in Tinker's
// [A-Za-z0-9._-] alphabet.
func tinkerStateName(path string) string {
	var parts []string
	for _, p := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '\\' }) {
		if strings.HasPrefix(p, "step_") {
			parts = append(parts, strings.TrimSuffix(p, ".tmp"))
		}
	}
	h := fnv.New32a()
	h.Write([]byte(path))
	// The clock orders the names; the random part keeps two saves in one
	// clock tick apart.
	parts = append(parts, fmt.Sprintf("%08x", h.Sum32()), strconv.FormatInt(time.Now().UnixNano(), 36),
		strconv.FormatUint(rand.Uint64()&0xffffff, 36))
	name := strings.Map(func(r rune) rune {
		if r < 128 && (r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, strings.Join(parts, "-"))
	return name[max(0, len(name)-128):]
}
