package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/peft"
)

// LoRA serving, as the stock servers expose it: SGLang's
// /load_lora_adapter and /unload_lora_adapter (requests pick an adapter
// with lora_path on /generate) and vLLM's /v1/load_lora_adapter and
// /v1/unload_lora_adapter (requests pick one with model: NAME on the
// OpenAI endpoints; /v1/models lists them).
//
// A request resolves its adapter name once, when it arrives, and holds
// that adapter until it ends: unloading or replacing the name changes only
// what later requests get. Batches mix adapters (each sequence adds its
// own low-rank terms), so loaded adapters cost only their factors.

// loraEntry is one loaded adapter.
type loraEntry struct {
	name, path string
	ad         *engine.Adapter
}

// loraRegistry holds the adapters by name, in load order.
type loraRegistry struct {
	mu      sync.Mutex
	max     int
	entries []*loraEntry
}

func (r *loraRegistry) get(name string) (*engine.Adapter, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		if e.name == name {
			return e.ad, true
		}
	}
	return nil, false
}

func (r *loraRegistry) list() []*loraEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.entries)
}

func (r *loraRegistry) names() []string {
	var out []string
	for _, e := range r.list() {
		out = append(out, e.name)
	}
	return out
}

// add registers an adapter; with replace an existing name is swapped in
// place (vLLM's load_inplace).
func (r *loraRegistry) add(e *loraEntry, replace bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, old := range r.entries {
		if old.name == e.name {
			if !replace {
				return &loraError{http.StatusBadRequest, "InvalidUserInput", fmt.Sprintf("The lora adapter '%s' has already been loaded.", e.name)}
			}
			r.entries[i] = e
			return nil
		}
	}
	if len(r.entries) >= r.max {
		return &loraError{http.StatusBadRequest, "BadRequestError", fmt.Sprintf("Failed to load LoRA adapter %s: %d adapters are loaded, the maximum (--max-loaded-loras); unload one first", e.name, r.max)}
	}
	r.entries = append(r.entries, e)
	return nil
}

func (r *loraRegistry) remove(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.entries {
		if e.name == name {
			r.entries = slices.Delete(r.entries, i, i+1)
			return nil
		}
	}
	return &loraError{http.StatusNotFound, "NotFoundError", fmt.Sprintf("The lora adapter '%s' cannot be found.", name)}
}

// sglangMessage is an error worded as SGLang words it (capitalised,
// punctuated), which clients may match on.
type sglangMessage string

func (m sglangMessage) Error() string { return string(m) }

// loraError is a failed load or unload with its HTTP status and vLLM's
// error type.
type loraError struct {
	status int
	typ    string
	msg    string
}

func (e *loraError) Error() string { return e.msg }

// loadAdapterFrom reads an adapter for the served model: a PEFT adapter
// directory, or a tinker:// sampler path this server's Tinker API saved
// from a LoRA model.
func (s *Server) loadAdapterFrom(path string) (*engine.Adapter, error) {
	if strings.HasPrefix(path, "tinker://") {
		ck, ok := s.tinker.samplerCheckpoint(path)
		if !ok {
			return nil, &loraError{http.StatusNotFound, "NotFoundError", fmt.Sprintf("No adapter found at %s on this server", path)}
		}
		if ck.ad == nil {
			return nil, &loraError{http.StatusBadRequest, "BadRequestError", fmt.Sprintf("%s holds full weights, not a LoRA adapter; load it with /update_weights_from_disk", path)}
		}
		return ck.ad, nil
	}
	if _, err := os.Stat(filepath.Join(path, peft.ConfigFile)); err != nil {
		return nil, &loraError{http.StatusNotFound, "NotFoundError", fmt.Sprintf("No adapter found for %s: %s is missing", path, peft.ConfigFile)}
	}
	ad, err := engine.LoadAdapter(path, s.opts.Weights.Config)
	if err != nil {
		return nil, &loraError{http.StatusBadRequest, "BadRequestError", err.Error()}
	}
	return ad, nil
}

// loadLoRA loads and registers an adapter under name.
func (s *Server) loadLoRA(name, path string, replace bool) error {
	if name == "" || path == "" {
		return &loraError{http.StatusBadRequest, "InvalidUserInput", "Both 'lora_name' and 'lora_path' must be provided."}
	}
	if name == s.opts.ModelName {
		return &loraError{http.StatusBadRequest, "InvalidUserInput", fmt.Sprintf("lora_name %q is the base model's name; choose another", name)}
	}
	if _, ok := s.loras.get(name); ok && !replace {
		return &loraError{http.StatusBadRequest, "InvalidUserInput", fmt.Sprintf("The lora adapter '%s' has already been loaded.", name)}
	}
	ad, err := s.loadAdapterFrom(path)
	if err != nil {
		return err
	}
	if err := s.loras.add(&loraEntry{name: name, path: path, ad: ad}, replace); err != nil {
		return err
	}
	s.log.Info("lora adapter loaded", "name", name, "path", path, "rank", ad.Rank, "targets", ad.Targets)
	return nil
}

// loraFields decodes a load/unload body: the named fields, others refused.
func loraFields(r *http.Request, dst map[string]any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(body, &f); err != nil {
		return &loraError{http.StatusBadRequest, "BadRequestError", "the body must be a JSON object"}
	}
	for k := range f {
		if _, ok := dst[k]; !ok {
			return &loraError{http.StatusBadRequest, "BadRequestError", fmt.Sprintf("unknown field %q", k)}
		}
	}
	for k, v := range dst {
		if err := field(f, k, v); err != nil {
			return &loraError{http.StatusBadRequest, "BadRequestError", err.Error()}
		}
	}
	return nil
}

func (s *Server) routeLoRA() {
	s.mux.HandleFunc("/load_lora_adapter", s.handleSGLangLoadLoRA)
	s.mux.HandleFunc("/unload_lora_adapter", s.handleSGLangUnloadLoRA)
	s.mux.HandleFunc("/v1/load_lora_adapter", s.handleVLLMLoadLoRA)
	s.mux.HandleFunc("/v1/unload_lora_adapter", s.handleVLLMUnloadLoRA)
}

// sglangLoRAReply is SGLang's LoadLoRAAdapterReqOutput.
func (s *Server) sglangLoRAReply(w http.ResponseWriter, err error) {
	loaded := map[string]string{}
	for _, e := range s.loras.list() {
		loaded[e.name] = e.path
	}
	status, msg := http.StatusOK, ""
	if err != nil {
		status, msg = http.StatusBadRequest, err.Error()
		var be *bodyError
		if errors.As(err, &be) {
			status = be.status
		}
	}
	writeJSON(w, status, map[string]any{"success": err == nil, "error_message": msg, "loaded_adapters": loaded})
}

func (s *Server) handleSGLangLoadLoRA(w http.ResponseWriter, r *http.Request) {
	if !requireMethod(w, r, http.MethodPost) {
		return
	}
	var name, path string
	var pinned bool
	err := loraFields(r, map[string]any{"lora_name": &name, "lora_path": &path, "pinned": &pinned, "lora_id": new(string)})
	if err == nil {
		err = s.loadLoRA(name, path, false)
	}
	var le *loraError
	if errors.As(err, &le) && le.typ == "InvalidUserInput" && strings.Contains(le.msg, "already been loaded") {
		err = sglangMessage(fmt.Sprintf("Failed to load LoRA adapter %s because it is already loaded", name))
	}
	s.sglangLoRAReply(w, err)
}

func (s *Server) handleSGLangUnloadLoRA(w http.ResponseWriter, r *http.Request) {
	if !requireMethod(w, r, http.MethodPost) {
		return
	}
	var name string
	err := loraFields(r, map[string]any{"lora_name": &name, "lora_id": new(string)})
	if err == nil {
		if err = s.loras.remove(name); err != nil {
			err = sglangMessage(fmt.Sprintf("LoRA with name %s does not exist. Loaded LoRAs: %v", name, s.loras.names()))
		}
	}
	s.sglangLoRAReply(w, err)
}

// vllmLoRAError writes vLLM's ErrorResponse.
func vllmLoRAError(w http.ResponseWriter, err error) {
	le := &loraError{http.StatusBadRequest, "BadRequestError", err.Error()}
	var be *bodyError
	if errors.As(err, &be) {
		le.status = be.status
	}
	errors.As(err, &le)
	writeJSON(w, le.status, map[string]any{"error": map[string]any{"message": le.msg, "type": le.typ, "param": nil, "code": le.status}})
}

func (s *Server) handleVLLMLoadLoRA(w http.ResponseWriter, r *http.Request) {
	if !requireOpenAIMethod(w, r, http.MethodPost) {
		return
	}
	var name, path string
	var inplace bool
	if err := loraFields(r, map[string]any{"lora_name": &name, "lora_path": &path, "load_inplace": &inplace}); err != nil {
		vllmLoRAError(w, err)
		return
	}
	if err := s.loadLoRA(name, path, inplace); err != nil {
		vllmLoRAError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "Success: LoRA adapter '%s' added successfully.", name)
}

func (s *Server) handleVLLMUnloadLoRA(w http.ResponseWriter, r *http.Request) {
	if !requireOpenAIMethod(w, r, http.MethodPost) {
		return
	}
	var name string
	var id *int
	if err := loraFields(r, map[string]any{"lora_name": &name, "lora_int_id": &id}); err != nil {
		vllmLoRAError(w, err)
		return
	}
	if name == "" {
		vllmLoRAError(w, &loraError{http.StatusBadRequest, "InvalidUserInput", "either 'lora_name' and 'lora_int_id' needs to be provided."})
		return
	}
	if err := s.loras.remove(name); err != nil {
		vllmLoRAError(w, err)
		return
	}
	s.log.Info("lora adapter unloaded", "name", name)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "Success: LoRA adapter '%s' removed successfully.", name)
}

// sglangAdapters resolves /generate's lora_path (one name, or a list with
// one name or null per prompt) to adapters, in SGLang's words when a name
// is not loaded.
func (s *Server) sglangAdapters(raw json.RawMessage, prompts int) ([]*engine.Adapter, error) {
	if isNull(raw) {
		return make([]*engine.Adapter, prompts), nil
	}
	var names []*string
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		names = make([]*string, prompts)
		for i := range names {
			names[i] = &one
		}
	} else if err := json.Unmarshal(raw, &names); err != nil {
		return nil, errors.New("lora_path must be a string or a list of strings")
	} else if len(names) != prompts {
		return nil, fmt.Errorf("%d lora_path entries for %d prompts", len(names), prompts)
	}
	out := make([]*engine.Adapter, prompts)
	for i, n := range names {
		if n == nil || *n == "" {
			continue
		}
		ad, ok := s.loras.get(*n)
		if !ok {
			loaded := s.loras.names()
			sort.Strings(loaded)
			return nil, sglangMessage(fmt.Sprintf("The following requested LoRA adapters are not loaded: %s\nLoaded adapters: %v.", *n, loaded))
		}
		out[i] = ad
	}
	return out, nil
}

// loraCards are the loaded adapters as vLLM lists them in /v1/models.
func (s *Server) loraCards() []any {
	var out []any
	for _, e := range s.loras.list() {
		out = append(out, map[string]any{"id": e.name, "object": "model", "created": 0, "owned_by": "asearcher",
			"root": e.path, "parent": s.opts.ModelName, "max_model_len": s.ctxLen})
	}
	return out
}

// scoreWithAdapter is promptLogprobs through an adapter (nil: the base).
func (s *Server) promptLogprobsLoRA(ctx context.Context, ids []int, ad *engine.Adapter) ([]float32, error) {
	if ad == nil {
		lps, _, err := s.promptLogprobs(ctx, ids)
		return lps, err
	}
	logits, release, err := s.scoreLogitsLoRA(ctx, s.current(), ids, ad)
	if err != nil {
		return nil, err
	}
	defer release()
	return logprobsFromLogits(logits, ids, s.opts.Weights.Config.VocabSize), nil
}
