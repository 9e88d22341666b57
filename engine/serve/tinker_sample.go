package serve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/wire/tinker"
)

// Sampling calls of the Tinker API: sampling sessions and asample.

func (t *tinkerAPI) createSamplingSession(_ context.Context, _ *http.Request, body []byte) (any, error) {
	var req struct {
		SessionID            string `json:"session_id"`
		SamplingSessionSeqID int64  `json:"sampling_session_seq_id"`
		BaseModel            string `json:"base_model"`
		ModelPath            string `json:"model_path"`
		Type                 string `json:"type"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if req.ModelPath == "" && req.BaseModel == "" {
		return nil, userError(http.StatusBadRequest, "give base_model or model_path")
	}
	if err := t.checkBaseModel(req.BaseModel); err != nil {
		return nil, err
	}
	if req.ModelPath != "" {
		if _, ok := t.samplerCheckpoint(req.ModelPath); !ok {
			return nil, userError(http.StatusNotFound, "no sampler weights at %q on this server", req.ModelPath)
		}
	}
	id := t.newID("sampling")
	t.mu.Lock()
	t.sampling[id] = req.ModelPath
	t.mu.Unlock()
	return map[string]any{"type": "create_sampling_session", "sampling_session_id": id}, nil
}

// getSampler describes a sampling session (SDKs from ~0.30 ask for its
// base model when they create a sampling client).
func (t *tinkerAPI) getSampler(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t.mu.Lock()
	path, ok := t.sampling[id]
	t.mu.Unlock()
	if !ok {
		writeTinkerError(w, userError(http.StatusNotFound, "unknown sampling session %q", id))
		return
	}
	out := map[string]any{"sampler_id": id, "base_model": t.s.opts.ModelName}
	if path != "" {
		out["model_path"] = path
	}
	writeJSON(w, http.StatusOK, out)
}

// samplerFor returns the sampler for a model path: the served sampler for
// the base model and for LoRA adapters (returned with it; they batch with
// every other request there), else a sampler over the saved weights (a
// few are kept).
func (t *tinkerAPI) samplerFor(path string) (*engine.Sampler, *engine.Adapter, error) {
	if path == "" {
		return t.s.sampler, nil, nil
	}
	t.mu.Lock()
	for _, e := range t.samplers {
		if e.path == path {
			e.used = time.Now()
			t.mu.Unlock()
			return e.sampler, nil, nil
		}
	}
	t.mu.Unlock()
	ck, ok := t.samplerCheckpoint(path)
	if !ok {
		return nil, nil, userError(http.StatusNotFound, "no sampler weights at %q on this server", path)
	}
	if ck.ad != nil {
		return t.s.sampler, ck.ad, nil
	}
	w := ck.w
	sm := engine.NewSampler(w, 0, t.s.samplerOptions())
	t.mu.Lock()
	defer t.mu.Unlock()
	t.samplers = append(t.samplers, &samplerEntry{path: path, sampler: sm, used: time.Now()})
	if len(t.samplers) > t.maxSamplers {
		slices.SortFunc(t.samplers, func(a, b *samplerEntry) int { return a.used.Compare(b.used) })
		old := t.samplers[0]
		t.samplers = t.samplers[1:]
		// Close after in-flight requests on it are done: they hold no
		// reference the sampler needs after Close besides their results.
		go func() {
			time.Sleep(time.Minute)
			old.sampler.Close()
		}()
	}
	return sm, nil, nil
}

func (t *tinkerAPI) asample(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req tinker.SampleRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	path := req.ModelPath
	switch {
	case req.SamplingSessionID != "":
		t.mu.Lock()
		p, ok := t.sampling[req.SamplingSessionID]
		t.mu.Unlock()
		if !ok {
			return nil, userError(http.StatusNotFound, "unknown sampling_session_id %q", req.SamplingSessionID)
		}
		path = p
	case path == "":
		if req.BaseModel == "" {
			return nil, userError(http.StatusBadRequest, "give sampling_session_id, model_path or base_model")
		}
		if err := t.checkBaseModel(req.BaseModel); err != nil {
			return nil, err
		}
	}
	ids, err := req.Prompt.Tokens()
	if err != nil {
		return nil, userError(http.StatusBadRequest, "prompt: %v", err)
	}
	if err := t.s.checkPrompt(ids); err != nil {
		return nil, userError(http.StatusBadRequest, "prompt: %v", err)
	}
	if req.NumSamples == 0 {
		req.NumSamples = 1
	}
	if req.NumSamples < 0 || req.NumSamples > 64 {
		return nil, userError(http.StatusBadRequest, "num_samples must be in [1, 64], got %d", req.NumSamples)
	}
	if req.TopKPromptLogprobs != 0 {
		return nil, userError(http.StatusBadRequest, "topk_prompt_logprobs is not supported; use prompt_logprobs")
	}
	p, err := tinkerParams(req.SamplingParams)
	if err != nil {
		return nil, err
	}
	sm, ad, err := t.samplerFor(path)
	if err != nil {
		return nil, err
	}
	reply, err := t.submit(r, body, nil, nil, func(ctx context.Context) (any, error) {
		seqs := make([]tinker.Sequence, req.NumSamples)
		errs := make([]error, req.NumSamples)
		var wg sync.WaitGroup
		for i := range seqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pi := p
				if pi.Seed != nil {
					sd := *pi.Seed + int64(i)
					pi.Seed = &sd
				}
				seqs[i], errs[i] = t.sampleOne(ctx, sm, ad, ids, pi)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		out := &tinker.SampleResponse{Type: "sample", Sequences: seqs}
		if req.PromptLogprobs {
			var lps []float32
			var err error // not the handler's: this runs after it returned
			switch {
			case path == "":
				lps, _, err = t.s.promptLogprobs(ctx, ids)
			case ad != nil: // through the adapter over the served model, as sampled
				lps, err = t.s.promptLogprobsLoRA(ctx, ids, ad)
			default:
				if w, ok := t.samplerWeights(path); ok {
					lps, err = scoreWith(ctx, engine.NewModel(w, 0), ids)
				} else {
					err = userError(http.StatusNotFound, "the sampler weights at %q were dropped while sampling", path)
				}
			}
			if err != nil {
				return nil, err
			}
			out.PromptLogprobs = make([]*float32, len(lps))
			for i := range lps {
				if !math.IsNaN(float64(lps[i])) {
					out.PromptLogprobs[i] = &lps[i]
				}
			}
		}
		return out, nil
	})
	// Newer SDKs (0.3x) name each sample at submission.
	if fr, ok := reply.(map[string]any); ok {
		ids := make([]string, req.NumSamples)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%d", fr["request_id"], i)
		}
		fr["sample_sequence_ids"] = ids
	}
	return reply, err
}

// sampleOne generates one sequence; a request cut short by a pause is
// continued with its prompt plus partial output once generation resumes,
// since Tinker has no "abort" stop reason.
func (t *tinkerAPI) sampleOne(ctx context.Context, sm *engine.Sampler, ad *engine.Adapter, prompt []int, p llm.Params) (tinker.Sequence, error) {
	seq := tinker.Sequence{Tokens: []int{}, Logprobs: []float32{}}
	p.StopTokenIDs = append(slices.Clone(p.StopTokenIDs), t.s.eos...)
	ids := prompt
	for {
		resp, err := sm.SampleLoRA(ctx, &llm.Request{ID: t.newID("asample"), InputIDs: ids, Params: p}, ad, nil)
		if err != nil {
			return seq, err
		}
		seq.Tokens = append(seq.Tokens, resp.OutputIDs...)
		seq.Logprobs = append(seq.Logprobs, resp.Logprobs...)
		switch resp.Finish {
		case llm.FinishStop:
			seq.StopReason = "stop"
			return seq, nil
		case llm.FinishLength:
			seq.StopReason = "length"
			return seq, nil
		}
		if p.MaxNewTokens > 0 {
			p.MaxNewTokens -= len(resp.OutputIDs)
			if p.MaxNewTokens <= 0 {
				seq.StopReason = "length"
				return seq, nil
			}
		}
		ids = append(slices.Clone(prompt), seq.Tokens...)
		if len(ids) >= t.s.ctxLen {
			seq.StopReason = "length"
			return seq, nil
		}
	}
}

func scoreWith(ctx context.Context, m *engine.Model, ids []int) ([]float32, error) {
	logits, err := m.Logits(ctx, ids)
	if err != nil {
		return nil, err
	}
	return logprobsFromLogits(logits, ids, m.Config.VocabSize), nil
}

// tinkerParams converts SamplingParams, adding the model's stop tokens.
func tinkerParams(sp tinker.SamplingParams) (llm.Params, error) {
	p := llm.Params{Temperature: 1, Seed: sp.Seed}
	if sp.MaxTokens != nil {
		if *sp.MaxTokens < 1 {
			return p, userError(http.StatusBadRequest, "sampling_params.max_tokens must be at least 1, got %d", *sp.MaxTokens)
		}
		p.MaxNewTokens = *sp.MaxTokens
	}
	if sp.Temperature != nil {
		if *sp.Temperature < 0 || math.IsNaN(*sp.Temperature) {
			return p, userError(http.StatusBadRequest, "sampling_params.temperature must be ≥ 0, got %v", *sp.Temperature)
		}
		p.Temperature = *sp.Temperature
	}
	if sp.TopP != nil {
		if !(*sp.TopP > 0 && *sp.TopP <= 1) {
			return p, userError(http.StatusBadRequest, "sampling_params.top_p must be in (0, 1], got %v", *sp.TopP)
		}
		p.TopP = *sp.TopP
	}
	if sp.TopK != nil {
		if *sp.TopK < -1 || *sp.TopK == 0 {
			return p, userError(http.StatusBadRequest, "sampling_params.top_k must be -1 or at least 1, got %d", *sp.TopK)
		}
		p.TopK = *sp.TopK
	}
	strs, ids, err := sp.StopLists()
	if err != nil {
		return p, userError(http.StatusBadRequest, "sampling_params.%v", err)
	}
	p.Stop, p.StopTokenIDs = strs, ids
	return p, nil
}
