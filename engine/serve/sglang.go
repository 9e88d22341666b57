package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/wire/sglang"
)

// The SGLang-compatible API: request and reply bodies follow SGLang's
// GenerateReqInput and the dicts its tokenizer manager returns
// (python/sglang/srt/managers/io_struct.py, entrypoints/http_server.py).
// Golden files in testdata/sglang pin the shapes.

func (s *Server) routeSGLang() {
	s.mux.HandleFunc("/generate", s.handleGenerate)
	s.mux.HandleFunc("/abort_request", s.handleAbort)
	s.mux.HandleFunc("/pause_generation", s.handlePause)
	s.mux.HandleFunc("/continue_generation", s.handleContinue)
	s.mux.HandleFunc("/update_weights_from_disk", s.handleUpdateWeights)
	s.mux.HandleFunc("/update_weight_version", s.handleUpdateVersion)
	s.mux.HandleFunc("/get_model_info", s.handleModelInfo)
	s.mux.HandleFunc("/model_info", s.handleModelInfo) // newer SGLang's name
	s.mux.HandleFunc("/get_weight_version", s.handleWeightVersion)
	s.mux.HandleFunc("/get_server_info", s.handleServerInfo)
	s.mux.HandleFunc("/server_info", s.handleServerInfo) // newer SGLang's name
	s.mux.HandleFunc("/flush_cache", s.handleFlushCache)
	s.mux.HandleFunc("/health", s.handleHealth)
	s.mux.HandleFunc("/health_generate", s.handleHealth)
}

// sglangError is SGLang's error body for a rejected request.
func sglangError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg}})
}

func sglangBodyError(w http.ResponseWriter, err error) {
	var be *bodyError
	if errors.As(err, &be) {
		sglangError(w, be.status, be.msg)
		return
	}
	sglangError(w, http.StatusBadRequest, err.Error())
}

// sglangFields checks the method and decodes the body's top-level fields,
// answering the client itself (SGLang's error shape) when either fails.
func sglangFields(w http.ResponseWriter, r *http.Request, methods ...string) (map[string]json.RawMessage, bool) {
	if !requireMethod(w, r, methods...) {
		return nil, false
	}
	_, f, err := decodeFields(r)
	if err != nil {
		sglangBodyError(w, err)
		return nil, false
	}
	return f, true
}

func requireMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	sglangError(w, http.StatusMethodNotAllowed, "use "+strings.Join(methods, " or "))
	return false
}

// generateKeys are GenerateReqInput fields; zeroOnly ones are accepted
// only with their default (empty) value because the engine has no such
// feature.
var (
	generateKeys = map[string]bool{
		"text": true, "input_ids": true, "sampling_params": true, "rid": true, "return_logprob": true,
		"logprob_start_len": true, "top_logprobs_num": true, "return_text_in_logprobs": true, "stream": true,
		"log_metrics": true, "return_hidden_states": true, "return_routed_experts": true, "image_data": true,
		"lora_path": true, "modalities": true, "session_params": true, "custom_logit_processor": true,
		"token_ids_logprob": true, "input_embeds": true, "priority": true, "no_logs": true, "data_parallel_rank": true,
		"bootstrap_host": true, "bootstrap_port": true, "bootstrap_room": true, "extra_key": true,
	}
	generateZeroOnly = []string{"return_hidden_states", "return_routed_experts", "image_data",
		"modalities", "session_params", "custom_logit_processor", "input_embeds",
		"bootstrap_host", "bootstrap_port", "bootstrap_room"}
	samplingKeys = map[string]bool{
		"max_new_tokens": true, "stop": true, "stop_token_ids": true, "temperature": true, "top_p": true,
		"top_k": true, "min_p": true, "frequency_penalty": true, "presence_penalty": true,
		"repetition_penalty": true, "min_new_tokens": true, "n": true, "ignore_eos": true,
		"skip_special_tokens": true, "spaces_between_special_tokens": true, "no_stop_trim": true,
		"sampling_seed": true, "json_schema": true, "regex": true, "ebnf": true, "structural_tag": true,
		"custom_params": true, "stream_interval": true, "logit_bias": true, "stop_regex": true,
	}
)

// sglangParams is a decoded sampling_params object.
type sglangParams struct {
	p          llm.Params
	maxNew     *int // nil: the default; 0: score only
	ignoreEOS  bool
	noStopTrim bool
	n          int
}

func parseSGLangSampling(raw json.RawMessage) (*sglangParams, error) {
	sp := &sglangParams{n: 1}
	sp.p.Temperature = 1 // SGLang's default
	if isNull(raw) {
		return sp, nil
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, errors.New("sampling_params must be a JSON object")
	}
	for k := range f {
		if !samplingKeys[k] {
			return nil, fmt.Errorf("SamplingParams.__init__() got an unexpected keyword argument '%s'", k)
		}
	}
	if err := field(f, "max_new_tokens", &sp.maxNew); err != nil {
		return nil, err
	}
	if sp.maxNew != nil && *sp.maxNew < 0 {
		return nil, fmt.Errorf("max_new_tokens must be at least 0, got %d", *sp.maxNew)
	}
	var temp *float64
	if err := field(f, "temperature", &temp); err != nil {
		return nil, err
	}
	if temp != nil {
		if *temp < 0 || math.IsNaN(*temp) {
			return nil, fmt.Errorf("temperature must be non-negative, got %v", *temp)
		}
		sp.p.Temperature = *temp
	}
	if err := field(f, "top_p", &sp.p.TopP); err != nil {
		return nil, err
	}
	if sp.p.TopP < 0 || sp.p.TopP > 1 {
		return nil, fmt.Errorf("top_p must be in (0, 1], got %v", sp.p.TopP)
	}
	if err := field(f, "top_k", &sp.p.TopK); err != nil {
		return nil, err
	}
	if sp.p.TopK < -1 || sp.p.TopK == 0 && f["top_k"] != nil && !isNull(f["top_k"]) {
		return nil, fmt.Errorf("top_k must be -1 (disable) or at least 1, got %d", sp.p.TopK)
	}
	stop, err := stringOrList(f["stop"])
	if err != nil {
		return nil, fmt.Errorf("stop: %v", err)
	}
	sp.p.Stop = stop
	if err := field(f, "stop_token_ids", &sp.p.StopTokenIDs); err != nil {
		return nil, err
	}
	if err := field(f, "sampling_seed", &sp.p.Seed); err != nil {
		return nil, err
	}
	if err := field(f, "ignore_eos", &sp.ignoreEOS); err != nil {
		return nil, err
	}
	if err := field(f, "no_stop_trim", &sp.noStopTrim); err != nil {
		return nil, err
	}
	if err := field(f, "n", &sp.n); err != nil {
		return nil, err
	}
	if sp.n < 1 || sp.n > 64 {
		return nil, fmt.Errorf("n must be in [1, 64], got %d", sp.n)
	}
	// Penalties and constrained decoding are not implemented; their
	// neutral values are accepted so clients that always send them work.
	for key, neutral := range map[string]float64{"min_p": 0, "frequency_penalty": 0, "presence_penalty": 0, "repetition_penalty": 1, "min_new_tokens": 0} {
		var v *float64
		if err := field(f, key, &v); err != nil {
			return nil, err
		}
		if v != nil && *v != neutral {
			return nil, fmt.Errorf("%s=%v is not supported by the embedded engine (only %v)", key, *v, neutral)
		}
	}
	for _, key := range []string{"json_schema", "regex", "ebnf", "structural_tag", "stop_regex", "logit_bias", "custom_params"} {
		if raw, ok := f[key]; ok && !isNull(raw) && string(raw) != "{}" && string(raw) != "[]" {
			return nil, fmt.Errorf("%s is not supported by the embedded engine", key)
		}
	}
	return sp, nil
}

// generateInput is one prompt of a possibly batched /generate.
type generateInput struct {
	ids  []int
	rid  string
	sp   *sglangParams
	lora *engine.Adapter // from lora_path; nil: the base model
}

func (s *Server) parseGenerateInputs(f map[string]json.RawMessage) ([]generateInput, bool, error) {
	text, hasText := f["text"]
	idsRaw, hasIDs := f["input_ids"]
	hasText, hasIDs = hasText && !isNull(text), hasIDs && !isNull(idsRaw)
	if hasText == hasIDs {
		return nil, false, errors.New("give either text or input_ids, not both")
	}
	var prompts [][]int
	batch := false
	if hasIDs {
		if err := s.guardTokenIDs(idsRaw); err != nil {
			return nil, false, err
		}
		var one []int
		if err := json.Unmarshal(idsRaw, &one); err == nil {
			prompts = [][]int{one}
		} else if err := json.Unmarshal(idsRaw, &prompts); err != nil {
			return nil, false, errors.New("input_ids must be a list of token ids or a list of such lists")
		} else {
			batch = true
		}
	} else {
		texts, err := stringOrList(text)
		if err != nil {
			return nil, false, fmt.Errorf("text: %v", err)
		}
		if len(texts) > s.opts.MaxPrompts {
			return nil, false, s.tooMany(len(texts)) // before tokenising them all
		}
		var one string
		batch = json.Unmarshal(text, &one) != nil
		for _, t := range texts {
			ids, err := s.encode(t)
			if err != nil {
				return nil, false, err
			}
			prompts = append(prompts, ids)
		}
	}
	if len(prompts) == 0 {
		return nil, false, errors.New("the batch is empty")
	}
	var rids []string
	if raw, ok := f["rid"]; ok && !isNull(raw) {
		var one string
		if err := json.Unmarshal(raw, &one); err == nil {
			rids = []string{one}
		} else if err := json.Unmarshal(raw, &rids); err != nil {
			return nil, false, errors.New("rid must be a string or a list of strings")
		}
		if len(rids) != len(prompts) {
			return nil, false, fmt.Errorf("%d rids for %d prompts", len(rids), len(prompts))
		}
	}
	in := make([]generateInput, len(prompts))
	for i, p := range prompts {
		if err := s.checkPrompt(p); err != nil {
			return nil, false, err
		}
		in[i].ids = p
		if rids != nil {
			in[i].rid = rids[i]
		}
	}
	return in, batch, nil
}

type generateOptions struct {
	returnLogprob  bool
	logprobStart   int
	returnText     bool
	stream         bool
	topLogprobsNum int
	tokenIDs       []int // token_ids_logprob
}

// maxTopLogprobsNum caps top_logprobs_num and token_ids_logprob (each
// listed token costs a reply entry per position).
const maxTopLogprobsNum = 1000

// parseSGLangSamplingList reads sampling_params: one object for every
// prompt, or a list of one object per prompt (SGLang's batch form).
func parseSGLangSamplingList(raw json.RawMessage, prompts int) ([]*sglangParams, error) {
	if t := strings.TrimSpace(string(raw)); strings.HasPrefix(t, "[") {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, errors.New("sampling_params must be an object or a list of objects")
		}
		if len(list) != prompts {
			return nil, fmt.Errorf("%d sampling_params for %d prompts", len(list), prompts)
		}
		out := make([]*sglangParams, len(list))
		for i, r := range list {
			sp, err := parseSGLangSampling(r)
			if err != nil {
				return nil, fmt.Errorf("sampling_params[%d]: %w", i, err)
			}
			out[i] = sp
		}
		return out, nil
	}
	sp, err := parseSGLangSampling(raw)
	if err != nil {
		return nil, err
	}
	out := make([]*sglangParams, prompts)
	for i := range out {
		out[i] = sp
	}
	return out, nil
}

func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	f, ok := sglangFields(w, r, http.MethodPost, http.MethodPut)
	if !ok {
		return
	}
	for k := range f {
		if !generateKeys[k] {
			sglangError(w, http.StatusBadRequest, fmt.Sprintf("GenerateReqInput.__init__() got an unexpected keyword argument '%s'", k))
			return
		}
	}
	for _, k := range generateZeroOnly {
		if raw, ok := f[k]; ok && !isNull(raw) && string(raw) != "false" && string(raw) != "[]" && string(raw) != "{}" {
			sglangError(w, http.StatusBadRequest, fmt.Sprintf("%s is not supported by the embedded engine", k))
			return
		}
	}
	inputs, batch, err := s.parseGenerateInputs(f)
	if err != nil {
		sglangBodyError(w, err)
		return
	}
	sps, err := parseSGLangSamplingList(f["sampling_params"], len(inputs))
	if err != nil {
		sglangError(w, http.StatusBadRequest, err.Error())
		return
	}
	adapters, err := s.sglangAdapters(f["lora_path"], len(inputs))
	if err != nil {
		sglangError(w, http.StatusBadRequest, err.Error())
		return
	}
	for i := range inputs {
		inputs[i].lora = adapters[i]
	}
	o := generateOptions{logprobStart: -1}
	for key, dst := range map[string]any{"return_logprob": &o.returnLogprob, "logprob_start_len": &o.logprobStart,
		"return_text_in_logprobs": &o.returnText, "stream": &o.stream, "top_logprobs_num": &o.topLogprobsNum,
		"token_ids_logprob": &o.tokenIDs} {
		if err := field(f, key, dst); err != nil {
			sglangError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if o.topLogprobsNum < 0 || o.topLogprobsNum > maxTopLogprobsNum || len(o.tokenIDs) > maxTopLogprobsNum {
		sglangError(w, http.StatusBadRequest, fmt.Sprintf("top_logprobs_num and token_ids_logprob take at most %d tokens", maxTopLogprobsNum))
		return
	}
	for _, id := range o.tokenIDs {
		if id < 0 || id >= s.opts.Weights.Config.VocabSize {
			sglangError(w, http.StatusBadRequest, fmt.Sprintf("token_ids_logprob: token id %d is outside the vocabulary [0, %d)", id, s.opts.Weights.Config.VocabSize))
			return
		}
	}
	if o.returnLogprob && o.logprobStart >= 0 {
		for _, in := range inputs {
			if o.logprobStart >= len(in.ids) {
				sglangError(w, http.StatusBadRequest, fmt.Sprintf("logprob_start_len (%d) must be less than the prompt length (%d)", o.logprobStart, len(in.ids)))
				return
			}
		}
	}
	if o.returnLogprob {
		var entries int64
		for i, in := range inputs {
			positions := s.opts.DefaultMaxNewTokens
			if sps[i].maxNew != nil {
				positions = max(*sps[i].maxNew, 1)
			}
			if o.logprobStart >= 0 {
				positions += len(in.ids) - o.logprobStart
			}
			entries += int64(sps[i].n) * int64(positions) * int64(1+o.topLogprobsNum+len(o.tokenIDs))
		}
		if err := logprobBudget(entries); err != nil {
			sglangBodyError(w, err)
			return
		}
	}
	total := 0
	for i, in := range inputs {
		sp := sps[i]
		inputs[i].sp = sp
		total += sp.n
		// SGLang's tokenizer manager refuses (rather than clamps) an
		// explicit max_new_tokens that does not fit, with these words.
		if sp.maxNew != nil && *sp.maxNew > 0 && len(in.ids)+*sp.maxNew >= s.ctxLen {
			sglangError(w, http.StatusBadRequest, fmt.Sprintf("Requested token count exceeds the model's maximum context length of %d tokens. You requested a total of %d tokens: %d tokens from the input messages and %d tokens for the completion. Please reduce the number of tokens in the input messages or the completion to fit within the limit.", s.ctxLen, len(in.ids)+*sp.maxNew, len(in.ids), *sp.maxNew))
			return
		}
	}
	if total > s.opts.MaxPrompts {
		sglangBodyError(w, s.tooMany(total))
		return
	}
	// n > 1 repeats a prompt, as SGLang does.
	if total > len(inputs) {
		var rep []generateInput
		for _, in := range inputs {
			for j := 0; j < in.sp.n; j++ {
				c := in
				if c.rid != "" {
					c.rid = c.rid + "-" + strconv.Itoa(j)
				}
				rep = append(rep, c)
			}
		}
		inputs, batch = rep, true
	}
	if o.stream {
		if batch {
			sglangError(w, http.StatusBadRequest, "streaming takes one prompt")
			return
		}
		s.streamGenerate(w, r, inputs[0], o)
		return
	}
	results := make([]any, len(inputs))
	errs := make([]error, len(inputs))
	var wg sync.WaitGroup
	for i := range inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.generateOne(r.Context(), inputs[i], o, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			if r.Context().Err() != nil {
				return // the client is gone
			}
			sglangError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if batch {
		writeJSON(w, http.StatusOK, results)
		return
	}
	writeJSON(w, http.StatusOK, results[0])
}

// generateOne runs one prompt and builds its SGLang reply.
func (s *Server) generateOne(ctx context.Context, in generateInput, o generateOptions, onToken func(engine.StreamEvent)) (*sglang.Reply, error) {
	sp := in.sp
	start := time.Now()
	rid := in.rid
	if rid == "" {
		rid = s.newID("sgl")
	}
	meta := sglang.Meta{ID: rid, PromptTokens: len(in.ids), OutputTokenWeightVersions: []int{}}
	if o.returnLogprob && o.logprobStart >= 0 {
		lps, err := s.promptLogprobsLoRA(ctx, in.ids, in.lora)
		if err != nil {
			return nil, err
		}
		meta.InputTokenLogprobs = make([]any, 0, len(in.ids)-o.logprobStart)
		for i := o.logprobStart; i < len(in.ids); i++ {
			meta.InputTokenLogprobs = append(meta.InputTokenLogprobs, s.logprobEntry(lps[i], in.ids[i], o.returnText))
		}
	}
	var resp *llm.Response
	if sp.maxNew != nil && *sp.maxNew == 0 {
		// Scoring only: nothing is generated, the prompt is "finished" by
		// length, as SGLang reports it.
		resp = &llm.Response{OutputIDs: []int{}, Logprobs: []float32{}, Versions: []int{}, Finish: llm.FinishLength}
	} else {
		p := sp.p
		if sp.maxNew != nil {
			p.MaxNewTokens = *sp.maxNew
		}
		var err error
		resp, err = s.generate(ctx, &genRequest{rid: rid, ids: in.ids, params: p, ignoreEOS: sp.ignoreEOS, onToken: onToken, lora: in.lora})
		if err != nil {
			return nil, err
		}
	}
	meta.CompletionTokens = len(resp.OutputIDs)
	meta.FinishReason = s.sglangFinish(resp, sp)
	meta.OutputTokenWeightVersions = resp.Versions
	if meta.OutputTokenWeightVersions == nil {
		meta.OutputTokenWeightVersions = []int{}
	}
	v := s.Version()
	if n := len(resp.Versions); n > 0 {
		v = resp.Versions[n-1]
	}
	version := strconv.Itoa(v)
	meta.WeightVersion = &version
	if o.returnLogprob {
		meta.OutputTokenLogprobs = make([]any, len(resp.OutputIDs))
		for i, id := range resp.OutputIDs {
			meta.OutputTokenLogprobs[i] = s.logprobEntry(resp.Logprobs[i], id, o.returnText)
		}
	}
	if o.returnLogprob && (o.topLogprobsNum > 0 || len(o.tokenIDs) > 0) {
		if err := s.sglangTopLogprobs(ctx, &meta, in.ids, resp.OutputIDs, o, in.lora); err != nil {
			return nil, err
		}
	}
	meta.E2ELatency = time.Since(start).Seconds()
	text := resp.Text
	if resp.StopMatched != "" && !sp.noStopTrim {
		if i := strings.LastIndex(text, resp.StopMatched); i >= 0 {
			text = text[:i]
		}
	}
	return &sglang.Reply{Text: text, OutputIDs: resp.OutputIDs, MetaInfo: meta}, nil
}

// sglangTopLogprobs fills the top_logprobs_num and token_ids_logprob
// lists from one scoring pass over prompt + output.
func (s *Server) sglangTopLogprobs(ctx context.Context, meta *sglang.Meta, prompt, output []int, o generateOptions, lora *engine.Adapter) error {
	full := append(append([]int(nil), prompt...), output...)
	logits, release, err := s.scoreLogitsLoRA(ctx, s.current(), full, lora)
	if err != nil {
		return err
	}
	defer release()
	V := s.opts.Weights.Config.VocabSize
	// at lists the alternatives for the token at position i (row i-1).
	at := func(i int) (top, ids any) {
		if i == 0 {
			return nil, nil
		}
		row := logits[(i-1)*V : i*V]
		lse := logSumExp(row)
		if o.topLogprobsNum > 0 {
			var list []any
			for _, a := range topK(row, lse, o.topLogprobsNum) {
				list = append(list, s.logprobEntry(float32(a.lp), a.id, o.returnText))
			}
			top = list
		}
		if len(o.tokenIDs) > 0 {
			list := make([]any, len(o.tokenIDs))
			for j, id := range o.tokenIDs {
				list[j] = s.logprobEntry(row[id]-lse, id, o.returnText)
			}
			ids = list
		}
		return top, ids
	}
	add := func(tops, idss *[]any, i int) {
		top, ids := at(i)
		if o.topLogprobsNum > 0 {
			*tops = append(*tops, top)
		}
		if len(o.tokenIDs) > 0 {
			*idss = append(*idss, ids)
		}
	}
	if o.logprobStart >= 0 {
		for i := o.logprobStart; i < len(prompt); i++ {
			add(&meta.InputTopLogprobs, &meta.InputTokenIDsLogprobs, i)
		}
	}
	n := len(output)
	if n == 0 {
		n = 1 // scoring: the distribution after the prompt
	}
	for j := range n {
		add(&meta.OutputTopLogprobs, &meta.OutputTokenIDsLogprobs, len(prompt)+j)
	}
	return nil
}

// logprobEntry is SGLang's [logprob, token_id, text_or_null]; a missing
// logprob (the first prompt token) is null.
func (s *Server) logprobEntry(lp float32, id int, withText bool) []any {
	var lv any
	if !math.IsNaN(float64(lp)) && !math.IsInf(float64(lp), 0) {
		lv = float64(lp)
	}
	var text any
	if withText {
		text = s.tokenText(id)
	}
	return []any{lv, id, text}
}

// sglangFinish renders finish_reason the way SGLang does.
func (s *Server) sglangFinish(resp *llm.Response, sp *sglangParams) any {
	switch resp.Finish {
	case llm.FinishStop:
		if resp.StopMatched != "" {
			return map[string]any{"type": "stop", "matched": resp.StopMatched}
		}
		var matched any
		if n := len(resp.OutputIDs); n > 0 {
			matched = resp.OutputIDs[n-1]
		}
		return map[string]any{"type": "stop", "matched": matched}
	case llm.FinishLength:
		return map[string]any{"type": "length", "length": len(resp.OutputIDs)}
	default:
		msg := "Abort in running batch"
		if len(resp.OutputIDs) == 0 {
			msg = "Abort before prefill"
		}
		return map[string]any{"type": "abort", "message": msg, "status_code": nil, "err_type": nil}
	}
}

// streamGenerate answers stream:true with SSE events carrying the text so
// far (SGLang's cumulative form) and ends with data: [DONE].
func (s *Server) streamGenerate(w http.ResponseWriter, r *http.Request, in generateInput, o generateOptions) {
	fl, ok := w.(http.Flusher)
	if !ok {
		sglangError(w, http.StatusInternalServerError, "streaming is not available on this connection")
		return
	}
	if in.rid == "" {
		in.rid = s.newID("sgl") // every event carries the id, the first included
	}
	// Intermediate events carry what SGLang's do: cumulative text, ids and
	// (with return_logprob) output logprobs, plus the prompt's logprobs.
	var inputLPs []any
	if o.returnLogprob && o.logprobStart >= 0 {
		lps, err := s.promptLogprobsLoRA(r.Context(), in.ids, in.lora)
		if err != nil {
			sglangError(w, http.StatusInternalServerError, err.Error())
			return
		}
		for i := o.logprobStart; i < len(in.ids); i++ {
			inputLPs = append(inputLPs, s.logprobEntry(lps[i], in.ids[i], o.returnText))
		}
	}
	q := newTokenQueue()
	done := make(chan struct{})
	var reply *sglang.Reply
	var err error
	go func() {
		defer close(done)
		reply, err = s.generateOne(r.Context(), in, o, q.push)
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	var text strings.Builder
	ids := []int{}
	var outLPs []any
	for finished := false; !finished; {
		select {
		case <-q.ready:
		case <-done:
			finished = true
		}
		evs := q.take()
		if finished || len(evs) == 0 {
			continue // the last reply carries everything
		}
		for _, ev := range evs {
			text.WriteString(ev.Text)
			ids = append(ids, ev.ID)
			if o.returnLogprob {
				outLPs = append(outLPs, s.logprobEntry(ev.Logprob, ev.ID, o.returnText))
			}
		}
		meta := map[string]any{"id": in.rid, "finish_reason": nil, "prompt_tokens": len(in.ids), "completion_tokens": len(ids)}
		if o.returnLogprob {
			meta["output_token_logprobs"] = outLPs
			if inputLPs != nil {
				meta["input_token_logprobs"] = inputLPs
			}
		}
		writeSSE(w, map[string]any{"text": text.String(), "output_ids": ids, "meta_info": meta})
		fl.Flush()
	}
	if err != nil {
		writeSSE(w, map[string]any{"error": map[string]any{"message": err.Error()}})
	} else {
		writeSSE(w, reply)
	}
	_, _ = w.Write([]byte("data: [DONE]\n\n"))
	fl.Flush()
}

// tokenQueue hands stream events from the scheduler goroutine to an HTTP
// writer without ever blocking it: a slow client must not stall the batch.
type tokenQueue struct {
	mu    sync.Mutex
	evs   []engine.StreamEvent
	ready chan struct{}
}

func newTokenQueue() *tokenQueue { return &tokenQueue{ready: make(chan struct{}, 1)} }

func (q *tokenQueue) push(ev engine.StreamEvent) {
	q.mu.Lock()
	q.evs = append(q.evs, ev)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *tokenQueue) take() []engine.StreamEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.evs
	q.evs = nil
	return out
}

func writeSSE(w http.ResponseWriter, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	_, _ = w.Write([]byte("data: "))
	_, _ = w.Write(data)
	_, _ = w.Write([]byte("\n\n"))
}

func (s *Server) handleAbort(w http.ResponseWriter, r *http.Request) {
	f, ok := sglangFields(w, r, http.MethodPost)
	if !ok {
		return
	}
	var rid string
	var all bool
	if err := field(f, "rid", &rid); err != nil {
		sglangError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := field(f, "abort_all", &all); err != nil {
		sglangError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case all:
		s.abortAll(r.Context())
	case rid != "":
		_ = s.sampler.Abort(r.Context(), rid)
	default:
		sglangError(w, http.StatusBadRequest, "give rid or abort_all: true")
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handlePause(w http.ResponseWriter, r *http.Request) {
	f, ok := sglangFields(w, r, http.MethodPost)
	if !ok {
		return
	}
	mode := "abort"
	if err := field(f, "mode", &mode); err != nil {
		sglangError(w, http.StatusBadRequest, err.Error())
		return
	}
	if mode != "abort" {
		sglangError(w, http.StatusBadRequest, fmt.Sprintf("pause mode %q is not supported; use \"abort\" (in-flight requests end with their partial output)", mode))
		return
	}
	s.mu.Lock()
	s.paused = true
	s.mu.Unlock()
	s.sampler.Pause()
	writeJSON(w, http.StatusOK, map[string]any{"message": "Generation paused successfully.", "status": "ok"})
}

func (s *Server) handleContinue(w http.ResponseWriter, r *http.Request) {
	if !requireMethod(w, r, http.MethodPost) {
		return
	}
	if _, _, err := decodeFields(r); err != nil {
		sglangBodyError(w, err)
		return
	}
	s.mu.Lock()
	s.paused = false
	s.mu.Unlock()
	s.sampler.Continue()
	writeJSON(w, http.StatusOK, map[string]any{"message": "Generation continued successfully.", "status": "ok"})
}

// parseVersionLabel reads a weight_version label ("7", "v7" or a number).
func parseVersionLabel(raw json.RawMessage) (int, bool, error) {
	if isNull(raw) {
		return 0, false, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, true, nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return 0, false, errors.New("weight_version must be a number or a numeric string")
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(str), "v"))
	if err != nil {
		return 0, false, fmt.Errorf("weight_version %q is not numeric; this server versions weights with integers", str)
	}
	return n, true, nil
}

func (s *Server) handleUpdateWeights(w http.ResponseWriter, r *http.Request) {
	f, ok := sglangFields(w, r, http.MethodPost)
	if !ok {
		return
	}
	var path, format string
	var abortAll bool
	for key, dst := range map[string]any{"model_path": &path, "load_format": &format, "abort_all_requests": &abortAll} {
		if err := field(f, key, dst); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": err.Error(), "num_paused_requests": 0})
			return
		}
	}
	version, hasVersion, err := parseVersionLabel(f["weight_version"])
	fail := func(msg string) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": msg, "num_paused_requests": 0})
	}
	if err != nil {
		fail(err.Error())
		return
	}
	if path == "" {
		fail("model_path is required")
		return
	}
	if format != "" && format != "auto" && format != "safetensors" {
		fail(fmt.Sprintf("load_format %q is not supported; use safetensors", format))
		return
	}
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	wts, err := s.loadWeights(path)
	if err != nil {
		fail("Failed to update weights: " + err.Error())
		return
	}
	if !hasVersion {
		version = s.Version() + 1
	}
	aborted := 0
	if abortAll {
		aborted = s.abortAll(r.Context())
	}
	if err := s.SetWeights(wts, version); err != nil {
		fail("Failed to update weights: " + err.Error())
		return
	}
	s.log.Info("weights updated", "path", path, "version", version, "aborted", aborted)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Succeeded to update model weights.", "num_paused_requests": aborted})
}

func (s *Server) handleUpdateVersion(w http.ResponseWriter, r *http.Request) {
	f, ok := sglangFields(w, r, http.MethodPost)
	if !ok {
		return
	}
	v, ok, err := parseVersionLabel(f["new_version"])
	if err != nil || !ok {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": "new_version must be a number or a numeric string"})
		return
	}
	var abortAll bool
	if err := field(f, "abort_all_requests", &abortAll); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": err.Error()})
		return
	}
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	if abortAll {
		s.abortAll(r.Context())
	}
	if err := s.SetWeights(s.current().w, v); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"success": false, "message": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Weight version updated", "new_version": strconv.Itoa(v)})
}

func (s *Server) handleModelInfo(w http.ResponseWriter, r *http.Request) {
	if !requireMethod(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	cfg := s.opts.Weights.Config
	path := s.opts.ModelDir
	if path == "" {
		path = s.opts.ModelName
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"model_path": path, "tokenizer_path": path, "is_generation": true,
		"preferred_sampling_params": nil, "weight_version": strconv.Itoa(s.Version()),
		"model_type": cfg.ModelType, "architectures": cfg.Architectures, "served_model_name": s.opts.ModelName,
		"context_length": s.ctxLen,
	})
}

func (s *Server) handleWeightVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"weight_version": strconv.Itoa(s.Version())})
}

func (s *Server) handleServerInfo(w http.ResponseWriter, r *http.Request) {
	st := s.sampler.Stats()
	s.mu.Lock()
	paused := s.paused
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"version": "asearcher-embedded", "model_path": s.opts.ModelDir, "served_model_name": s.opts.ModelName,
		"context_length": s.ctxLen, "max_running_requests": s.opts.MaxBatch, "weight_version": strconv.Itoa(s.Version()),
		"paused": paused, "internal_states": []any{map[string]any{"active": st.Active, "steps": st.Steps, "generated_tokens": st.Generated}},
	})
}

// handleFlushCache always succeeds: the prefix cache is dropped on every
// weight swap anyway, and it never serves another weight version.
func (s *Server) handleFlushCache(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting requests, the operation will not be performed.)\n"))
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.closed.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}
