package serve

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"

	"github.com/asearcher/asearcher/engine"
)

// Checkpoint archives, as SkyRL serves them: GET
// /api/v1/training_runs/{model}/checkpoints/{name}/archive answers 302 to
// …/download, which streams a tar.gz of the sampler checkpoint's files at
// the archive root. A checkpoint saved to the checkpoint directory is
// archived as it is on disk (a LoRA trainer's PEFT adapter, or a model
// directory); one held only in memory is written as a model directory
// (config.json, model.safetensors in F32) with the served model's
// tokenizer files.

func (t *tinkerAPI) routeArchive(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/training_runs/{model}/checkpoints/{name}/archive", func(w http.ResponseWriter, r *http.Request) {
		model, name := r.PathValue("model"), r.PathValue("name")
		if !t.hasSamplerCheckpoint(model, name) {
			writeTinkerError(w, userError(http.StatusNotFound, "checkpoint not found: %s/%s", model, name))
			return
		}
		loc := "/api/v1/training_runs/" + url.PathEscape(model) + "/checkpoints/" + url.PathEscape(name) + "/download"
		http.Redirect(w, r, loc, http.StatusFound)
	})
	mux.HandleFunc("GET /api/v1/training_runs/{model}/checkpoints/{name}/download", t.downloadArchive)
}

// samplerDir is where a sampler checkpoint lives on disk ("" without a
// checkpoint directory or for a bad name).
func (t *tinkerAPI) samplerDir(model, name string) string {
	if t.s.opts.CheckpointDir == "" || !checkpointName(model) || !checkpointName(name) {
		return ""
	}
	return filepath.Join(t.s.opts.CheckpointDir, model, "sampler_weights", name)
}

func (t *tinkerAPI) hasSamplerCheckpoint(model, name string) bool {
	if !checkpointName(model) || !checkpointName(name) {
		return false
	}
	if dir := t.samplerDir(model, name); dir != "" {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return true
		}
	}
	_, ok := t.samplerWeights("tinker://" + model + "/sampler_weights/" + name)
	return ok
}

func (t *tinkerAPI) downloadArchive(w http.ResponseWriter, r *http.Request) {
	model, name := r.PathValue("model"), r.PathValue("name")
	if !t.hasSamplerCheckpoint(model, name) {
		writeTinkerError(w, userError(http.StatusNotFound, "checkpoint not found: %s/%s", model, name))
		return
	}
	dir := t.samplerDir(model, name)
	if st, err := os.Stat(dir); dir == "" || err != nil || !st.IsDir() {
		wts, ok := t.samplerWeights("tinker://" + model + "/sampler_weights/" + name)
		if !ok {
			writeTinkerError(w, userError(http.StatusNotFound, "checkpoint not found: %s/%s", model, name))
			return
		}
		tmp, err := os.MkdirTemp("", "asearcher-archive-")
		if err != nil {
			writeTinkerError(w, err)
			return
		}
		defer os.RemoveAll(tmp)
		if err := engine.SaveWeights(tmp, wts, engine.F32); err != nil {
			writeTinkerError(w, err)
			return
		}
		if md := t.s.opts.ModelDir; md != "" {
			for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"} {
				if b, err := os.ReadFile(filepath.Join(md, f)); err == nil {
					if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
						writeTinkerError(w, err)
						return
					}
				}
			}
		}
		dir = tmp
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		writeTinkerError(w, err)
		return
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.tar.gz"`)
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := addFile(tw, dir, f); err != nil {
			// The status is sent; a cut stream fails the client's gzip
			// or tar check.
			t.log.Warn("tinker: archive", "checkpoint", model+"/"+name, "err", err)
			return
		}
	}
	if err := tw.Close(); err != nil {
		return
	}
	gz.Close()
}

func addFile(tw *tar.Writer, dir, name string) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: st.Size(), ModTime: st.ModTime()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
