package serve

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/peft"
	"github.com/asearcher/asearcher/trainer"
	"github.com/asearcher/asearcher/wire/tinker"
)

// Training calls of the Tinker API: forward, forward_backward, optim_step
// and the weight checkpoints, each run by its model's worker in seq_id
// order.

// fwdBwdRequest is forward_backward's and forward's body.
type fwdBwdRequest struct {
	ModelID      string              `json:"model_id"`
	SeqID        *int64              `json:"seq_id"`
	FwdBwdInput  *tinker.FwdBwdInput `json:"forward_backward_input"`
	ForwardInput *tinker.FwdBwdInput `json:"forward_input"`
	Type         string              `json:"type"`
}

// lossInputs lists, per loss, the loss_fn_inputs it needs and their dtype;
// target_tokens is always int64.
var lossInputs = map[string][]string{
	"cross_entropy":       {"weights"},
	"importance_sampling": {"logprobs", "advantages"},
	"ppo":                 {"logprobs", "advantages"},
}

// toData checks a forward(_backward) input and converts it.
func (t *tinkerAPI) toData(in *tinker.FwdBwdInput) ([]trainer.Datum, trainer.LossFn, trainer.LossConfig, error) {
	var cfg trainer.LossConfig
	if in == nil {
		return nil, "", cfg, userError(http.StatusBadRequest, "the request has no input (forward_backward_input or forward_input)")
	}
	need, ok := lossInputs[in.LossFn]
	if !ok {
		return nil, "", cfg, userError(http.StatusBadRequest, "unknown loss_fn %q; this server implements cross_entropy, importance_sampling and ppo", in.LossFn)
	}
	for k, v := range in.LossFnConfig {
		switch {
		case in.LossFn == "ppo" && k == "clip_low_threshold":
			cfg.ClipLow = v
		case in.LossFn == "ppo" && k == "clip_high_threshold":
			cfg.ClipHigh = v
		default:
			return nil, "", cfg, userError(http.StatusBadRequest, "loss_fn_config key %q does not apply to %s", k, in.LossFn)
		}
	}
	if lo, hi := cmp.Or(cfg.ClipLow, 0.8), cmp.Or(cfg.ClipHigh, 1.2); !(lo > 0 && lo <= 1 && hi >= 1) {
		return nil, "", cfg, userError(http.StatusBadRequest, "ppo needs 0 < clip_low_threshold <= 1 <= clip_high_threshold, got %v and %v", lo, hi)
	}
	if len(in.Data) == 0 {
		return nil, "", cfg, userError(http.StatusBadRequest, "data is empty")
	}
	vocab := t.s.opts.Weights.Config.VocabSize
	out := make([]trainer.Datum, len(in.Data))
	for i, d := range in.Data {
		ids, err := d.ModelInput.Tokens()
		if err != nil {
			return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: %v", i, err)
		}
		n := len(ids)
		if n == 0 {
			return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: model_input is empty", i)
		}
		if n > t.s.ctxLen {
			return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: %d tokens exceed the context length %d", i, n, t.s.ctxLen)
		}
		for j, id := range ids {
			if id < 0 || id >= vocab {
				return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: token %d at position %d is outside the vocabulary [0, %d)", i, id, j, vocab)
			}
		}
		for k := range d.LossFnInputs {
			if k != "target_tokens" && !slices.Contains(need, k) && !(in.LossFn == "cross_entropy" && k == "mask") {
				return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: loss_fn_inputs[%q] is not an input of %s (want target_tokens, %s)", i, k, in.LossFn, strings.Join(need, ", "))
			}
		}
		tt, ok := d.LossFnInputs["target_tokens"]
		if !ok {
			return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: loss_fn_inputs has no target_tokens", i)
		}
		tv, err := tt.Vector(fmt.Sprintf("data[%d].target_tokens", i), "int64", n)
		if err != nil {
			return nil, "", cfg, userError(http.StatusBadRequest, "%v", err)
		}
		dt := trainer.Datum{Input: ids, Target: make([]int, n)}
		for j, x := range tv {
			if x < 0 || int(x) >= vocab {
				return nil, "", cfg, userError(http.StatusBadRequest, "data[%d].target_tokens[%d] = %v is outside the vocabulary [0, %d)", i, j, x, vocab)
			}
			dt.Target[j] = int(x)
		}
		floats := func(key string) ([]float32, error) {
			tv, ok := d.LossFnInputs[key]
			if !ok {
				return nil, userError(http.StatusBadRequest, "data[%d]: %s needs loss_fn_inputs[%q]", i, in.LossFn, key)
			}
			v, err := tv.Vector(fmt.Sprintf("data[%d].%s", i, key), "float32", n)
			if err != nil {
				return nil, userError(http.StatusBadRequest, "%v", err)
			}
			f := make([]float32, n)
			for j, x := range v {
				f[j] = float32(x)
			}
			return f, nil
		}
		if in.LossFn == "cross_entropy" {
			if _, ok := d.LossFnInputs["weights"]; ok {
				if dt.Weights, err = floats("weights"); err != nil {
					return nil, "", cfg, err
				}
			} else {
				dt.Weights = make([]float32, n)
				for j := range dt.Weights {
					dt.Weights[j] = 1
				}
			}
		} else {
			if dt.Logprobs, err = floats("logprobs"); err != nil {
				return nil, "", cfg, err
			}
			if dt.Advantages, err = floats("advantages"); err != nil {
				return nil, "", cfg, err
			}
		}
		out[i] = dt
	}
	return out, trainer.LossFn(in.LossFn), cfg, nil
}

// fwdBwdOutput is ForwardBackwardOutput: per datum the target logprobs
// and the per-token loss, and the summed loss as metrics["loss:sum"].
func fwdBwdOutput(data []trainer.Datum, fn trainer.LossFn, cfg trainer.LossConfig, o *trainer.Output) *tinker.FwdBwdOutput {
	res := &tinker.FwdBwdOutput{LossFnOutputType: "ArrayRecord", Metrics: map[string]float64{}}
	// The SDK folds chunked results by the reduction named after the
	// colon, and fails on a key without one.
	for k, v := range o.Metrics {
		switch {
		case strings.Contains(k, ":"):
		case k == "tokens" || k == "active_tokens":
			k += ":sum"
		default:
			k += ":mean"
		}
		res.Metrics[k] = v
	}
	res.Metrics["loss:sum"] = o.Loss
	for i, d := range data {
		lp := o.Logprobs[i]
		res.LossFnOutputs = append(res.LossFnOutputs, map[string]tinker.Tensor{
			"logprobs":         tinker.Float32Tensor(lp),
			"elementwise_loss": tinker.Float32Tensor(elementwiseLoss(d, fn, cfg, lp)),
		})
	}
	return res
}

// elementwiseLoss is each token's term of the summed loss.
func elementwiseLoss(d trainer.Datum, fn trainer.LossFn, cfg trainer.LossConfig, lp []float32) []float32 {
	out := make([]float32, len(lp))
	lo, hi := cfg.ClipLow, cfg.ClipHigh
	if lo == 0 {
		lo = 0.8
	}
	if hi == 0 {
		hi = 1.2
	}
	for i, l := range lp {
		switch fn {
		case trainer.CrossEntropy:
			out[i] = -d.Weights[i] * l
		case trainer.ImportanceSampling:
			out[i] = -float32(math.Exp(float64(l-d.Logprobs[i]))) * d.Advantages[i]
		case trainer.PPO:
			r := math.Exp(float64(l - d.Logprobs[i]))
			a := float64(d.Advantages[i])
			out[i] = -float32(min(r*a, math.Min(math.Max(r, lo), hi)*a))
		}
	}
	return out
}

func (t *tinkerAPI) forward(ctx context.Context, r *http.Request, body []byte) (any, error) {
	return t.fwdBwd(ctx, r, body, false)
}

func (t *tinkerAPI) forwardBackward(ctx context.Context, r *http.Request, body []byte) (any, error) {
	return t.fwdBwd(ctx, r, body, true)
}

func (t *tinkerAPI) fwdBwd(_ context.Context, r *http.Request, body []byte, backward bool) (any, error) {
	var req fwdBwdRequest
	size := int64(len(body)) // charged to the queue bound: the decoded body when compressed
	if isProto(r) {
		raw, err := protoBody(r, body, t.s.opts.MaxBodyBytes)
		if err != nil {
			return nil, err
		}
		size = max(size, int64(len(raw)))
		p, err := decodeFwdBwdProto(raw)
		if err != nil {
			return nil, userError(http.StatusBadRequest, "protobuf ForwardBackwardRequest: %v", err)
		}
		req = *p
		backward = req.FwdBwdInput != nil
	} else if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	m, err := t.model(req.ModelID)
	if err != nil {
		return nil, err
	}
	in := req.FwdBwdInput
	if !backward || in == nil {
		if req.ForwardInput != nil {
			in = req.ForwardInput
		}
	}
	data, fn, cfg, err := t.toData(in)
	if err != nil {
		return nil, err
	}
	return t.submitSized(r, body, size, nil, m, req.SeqID, func(ctx context.Context) (any, error) {
		var o *trainer.Output
		var err error
		if backward {
			o, err = m.tr.ForwardBackward(ctx, data, fn, cfg)
		} else {
			o, err = m.tr.Forward(ctx, data, fn, cfg)
		}
		if err != nil {
			return nil, err
		}
		return fwdBwdOutput(data, fn, cfg, o), nil
	})
}

func (t *tinkerAPI) optimStep(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req struct {
		ModelID    string             `json:"model_id"`
		SeqID      *int64             `json:"seq_id"`
		AdamParams *tinker.AdamParams `json:"adam_params"`
		Type       string             `json:"type"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	m, err := t.model(req.ModelID)
	if err != nil {
		return nil, err
	}
	if req.AdamParams == nil {
		return nil, userError(http.StatusBadRequest, "adam_params is required")
	}
	p := trainer.AdamParams(*req.AdamParams)
	switch {
	case !(p.LearningRate >= 0) || math.IsInf(p.LearningRate, 0):
		return nil, userError(http.StatusBadRequest, "adam_params.learning_rate must be ≥ 0, got %v", p.LearningRate)
	case !(p.Beta1 >= 0 && p.Beta1 < 1) || !(p.Beta2 >= 0 && p.Beta2 < 1):
		return nil, userError(http.StatusBadRequest, "adam_params betas must be in [0, 1), got %v and %v", p.Beta1, p.Beta2)
	case !(p.Eps >= 0) || !(p.WeightDecay >= 0) || !(p.GradClipNorm >= 0):
		return nil, userError(http.StatusBadRequest, "adam_params eps, weight_decay and grad_clip_norm must be ≥ 0")
	}
	return t.submit(r, body, m, req.SeqID, func(ctx context.Context) (any, error) {
		metrics, err := m.tr.OptimStep(ctx, p)
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "optim_step", "metrics": metrics}, nil
	})
}

var checkpointName = func(s string) bool {
	if s == "" || len(s) > 128 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (t *tinkerAPI) saveForSampler(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req struct {
		ModelID              string `json:"model_id"`
		Path                 string `json:"path"`
		SamplingSessionSeqID *int64 `json:"sampling_session_seq_id"`
		SeqID                *int64 `json:"seq_id"`
		TTLSeconds           *int64 `json:"ttl_seconds"`
		Type                 string `json:"type"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	m, err := t.model(req.ModelID)
	if err != nil {
		return nil, err
	}
	if req.Path != "" && !checkpointName(req.Path) {
		return nil, userError(http.StatusBadRequest, "path %q: use letters, digits, '.', '_' and '-' only", req.Path)
	}
	return t.submit(r, body, m, req.SeqID, func(ctx context.Context) (any, error) {
		name := req.Path
		if name == "" {
			m.saved++
			name = fmt.Sprintf("sampler-%04d", m.saved)
		}
		if _, err := m.tr.SaveWeightsForSampler(ctx, name); err != nil {
			return nil, err
		}
		ck, version := m.sink.last()
		path := "tinker://" + m.id + "/sampler_weights/" + name
		t.storeWeights(path, ck)
		out := map[string]any{"type": "save_weights_for_sampler", "path": path}
		if req.SamplingSessionSeqID != nil {
			id := t.newID("sampling")
			t.mu.Lock()
			t.sampling[id] = path
			t.mu.Unlock()
			out["sampling_session_id"] = id
		}
		t.log.Info("tinker: sampler weights saved", "path", path, "version", version)
		return out, nil
	})
}

// storeWeights keeps sampler weights in memory, evicting the oldest past
// keepInMemory (those saved to a checkpoint directory reload from disk).
func (t *tinkerAPI) storeWeights(path string, w samplerCkpt) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.weights[path]; !ok {
		t.weightOrder = append(t.weightOrder, path)
	}
	t.weights[path] = w
	for len(t.weightOrder) > t.keepInMemory {
		delete(t.weights, t.weightOrder[0])
		t.weightOrder = t.weightOrder[1:]
	}
}

// parseTinkerPath splits tinker://MODEL/KIND/NAME.
func parseTinkerPath(p string) (model, kind, name string, ok bool) {
	rest, ok := strings.CutPrefix(p, "tinker://")
	if !ok {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	// Every part is a plain name (no "..", no separators), so the path
	// cannot reach outside the checkpoint directory.
	if len(parts) != 3 || !checkpointName(parts[0]) || !checkpointName(parts[2]) || (parts[1] != "sampler_weights" && parts[1] != "weights") {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// samplerWeights resolves a tinker:// sampler path to full weights; a
// LoRA adapter is merged into the base model the server started with.
func (t *tinkerAPI) samplerWeights(path string) (*engine.Weights, bool) {
	ck, ok := t.samplerCheckpoint(path)
	if !ok {
		return nil, false
	}
	if ck.ad == nil {
		return ck.w, true
	}
	w, err := ck.ad.MergeInto(t.s.opts.Weights)
	if err != nil {
		t.log.Warn("tinker: merge adapter", "path", path, "err", err)
		return nil, false
	}
	return w, true
}

// samplerCheckpoint resolves a tinker:// sampler path from memory or, with
// a checkpoint directory, from disk (a model directory or a PEFT adapter).
func (t *tinkerAPI) samplerCheckpoint(path string) (samplerCkpt, bool) {
	t.mu.Lock()
	ck, ok := t.weights[path]
	t.mu.Unlock()
	if ok {
		return ck, true
	}
	model, kind, name, ok := parseTinkerPath(path)
	if !ok || kind != "sampler_weights" || t.s.opts.CheckpointDir == "" {
		return samplerCkpt{}, false
	}
	dir := filepath.Join(t.s.opts.CheckpointDir, model, "sampler_weights", name)
	if _, err := os.Stat(filepath.Join(dir, peft.ConfigFile)); err == nil {
		ad, err := engine.LoadAdapter(dir, t.s.opts.Weights.Config)
		if err != nil {
			t.log.Warn("tinker: load sampler adapter", "path", path, "err", err)
			return samplerCkpt{}, false
		}
		return samplerCkpt{ad: ad}, true
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		return samplerCkpt{}, false
	}
	w, err := engine.LoadWeights(dir)
	if err != nil {
		t.log.Warn("tinker: load sampler weights", "path", path, "err", err)
		return samplerCkpt{}, false
	}
	return samplerCkpt{w: w}, true
}

func (t *tinkerAPI) saveWeights(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req struct {
		ModelID    string `json:"model_id"`
		Path       string `json:"path"`
		SeqID      *int64 `json:"seq_id"`
		TTLSeconds *int64 `json:"ttl_seconds"`
		Overwrite  bool   `json:"overwrite"`
		Type       string `json:"type"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	m, err := t.model(req.ModelID)
	if err != nil {
		return nil, err
	}
	if m.dir == "" {
		return nil, userError(http.StatusBadRequest, "save_weights needs a checkpoint directory; start the server with --checkpoint-dir")
	}
	if req.Path != "" && !checkpointName(req.Path) {
		return nil, userError(http.StatusBadRequest, "path %q: use letters, digits, '.', '_' and '-' only", req.Path)
	}
	return t.submit(r, body, m, req.SeqID, func(ctx context.Context) (any, error) {
		name := req.Path
		if name == "" {
			m.saved++
			name = fmt.Sprintf("state-%04d", m.saved)
		}
		if _, err := os.Stat(filepath.Join(m.dir, "state", name)); err == nil && !req.Overwrite {
			return nil, &tinkerFailure{category: "user", msg: fmt.Sprintf("checkpoint %q exists; pass overwrite=true", name)}
		}
		if _, err := m.tr.SaveState(ctx, name); err != nil {
			return nil, err
		}
		return map[string]any{"type": "save_weights", "path": "tinker://" + m.id + "/weights/" + name}, nil
	})
}

// stateDir resolves a tinker:// weights path to its directory.
func (t *tinkerAPI) stateDir(path string) (string, error) {
	model, kind, name, ok := parseTinkerPath(path)
	if !ok || kind != "weights" {
		return "", userError(http.StatusBadRequest, "path %q is not a tinker://MODEL_ID/weights/NAME path from save_weights", path)
	}
	if t.s.opts.CheckpointDir == "" {
		return "", userError(http.StatusBadRequest, "this server has no checkpoint directory")
	}
	dir := filepath.Join(t.s.opts.CheckpointDir, model, "state", name)
	if _, err := os.Stat(dir); err != nil {
		return "", userError(http.StatusNotFound, "no checkpoint at %s", path)
	}
	return dir, nil
}

func (t *tinkerAPI) loadWeights(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req struct {
		ModelID            string          `json:"model_id"`
		SeqID              *int64          `json:"seq_id"`
		SessionID          string          `json:"session_id"`
		ModelSeqID         *int64          `json:"model_seq_id"`
		BaseModel          string          `json:"base_model"`
		Metadata           json.RawMessage `json:"user_metadata"`
		Path               string          `json:"path"`
		Optimizer          bool            `json:"optimizer"`
		WeightsAccessToken string          `json:"weights_access_token"`
		Type               string          `json:"type"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if req.ModelID == "" {
		return nil, userError(http.StatusBadRequest, "load_weights needs model_id (this server answers create_model_via_load_weights=false)")
	}
	m, err := t.model(req.ModelID)
	if err != nil {
		return nil, err
	}
	dir, err := t.stateDir(req.Path)
	if err != nil {
		return nil, err
	}
	return t.submit(r, body, m, req.SeqID, func(ctx context.Context) (any, error) {
		if err := m.tr.LoadState(ctx, dir, req.Optimizer); err != nil {
			return nil, err
		}
		return map[string]any{"type": "load_weights", "path": req.Path, "model_id": m.id}, nil
	})
}

func (t *tinkerAPI) weightsInfo(_ context.Context, _ *http.Request, body []byte) (any, error) {
	var req struct {
		TinkerPath string `json:"tinker_path"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if _, _, _, ok := parseTinkerPath(req.TinkerPath); !ok {
		return nil, userError(http.StatusBadRequest, "tinker_path %q is not a tinker:// path", req.TinkerPath)
	}
	out := map[string]any{"base_model": t.s.opts.ModelName, "is_lora": false}
	if model, _, _, _ := parseTinkerPath(req.TinkerPath); model != "" {
		if m, err := t.model(model); err == nil && m.loraRank > 0 {
			out["is_lora"], out["lora_rank"] = true, m.loraRank
		}
	}
	return out, nil
}
