package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/peft"
)

// ArchiveOptions say what to export from a Tinker checkpoint archive.
type ArchiveOptions struct {
	// Archive is a local .tar.gz, a tinker://MODEL/sampler_weights/NAME
	// path (downloaded from TinkerURL), or an http(s) URL of the archive
	// route or of the archive itself.
	Archive string
	// TinkerURL and APIKey reach the Tinker server for tinker:// paths.
	TinkerURL, APIKey string
	// HTTPClient downloads; nil uses a default one.
	HTTPClient *http.Client
	// Base is the base model directory the adapter was trained on (HF:
	// config.json, model.safetensors, tokenizer files). Needed for Out.
	Base string
	// Out receives the merged HF model directory; AdapterOut the PEFT
	// adapter directory with target_modules set. At least one is needed;
	// each must not exist or be empty.
	Out, AdapterOut string
	// DType of the merged weights [F32].
	DType engine.DType
	// Limits bound the download and the unpacking.
	Limits ArchiveLimits
}

// ArchiveResult describes an archive export.
type ArchiveResult struct {
	// Kind is "lora" (the archive held a PEFT adapter) or "full" (it held
	// a whole model directory).
	Kind       string   `json:"kind"`
	Out        string   `json:"out,omitempty"`
	AdapterOut string   `json:"adapter_out,omitempty"`
	Rank       int      `json:"rank,omitempty"`
	Alpha      float64  `json:"alpha,omitempty"`
	Targets    []string `json:"target_modules,omitempty"`
	Params     int      `json:"params,omitempty"`
	Files      []string `json:"files,omitempty"`
}

// IsArchive says whether an export source names a checkpoint archive
// rather than an embedded run, checkpoint or model directory.
func IsArchive(src string) bool {
	return strings.HasPrefix(src, "tinker://") || strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") ||
		strings.HasSuffix(src, ".tar.gz") || strings.HasSuffix(src, ".tgz")
}

// DimsOf are the shapes a LoRA adapter must match for a base config.
func DimsOf(c *engine.Config) peft.Dims {
	hd := c.HeadDim
	if hd == 0 && c.NumAttentionHeads > 0 {
		hd = c.HiddenSize / c.NumAttentionHeads
	}
	return peft.Dims{Layers: c.NumHiddenLayers, Hidden: c.HiddenSize, Intermediate: c.IntermediateSize,
		QDim: c.NumAttentionHeads * hd, KVDim: c.NumKeyValueHeads * hd, Vocab: c.VocabSize, TiedEmbeddings: c.TieWordEmbeddings}
}

// FromArchive exports a Tinker checkpoint archive. An archive holding a
// PEFT adapter (SkyRL, Tinker) becomes, with the base model, a merged HF
// directory (W += (alpha/r)·B·A) and/or a PEFT adapter directory whose
// target_modules name every module the tensors cover (SkyRL writes null,
// which PEFT would read as its default of q/v only). An archive holding a
// whole model directory (`asearcher serve model` training full weights)
// is exported as that model.
func FromArchive(ctx context.Context, o ArchiveOptions) (*ArchiveResult, error) {
	if o.Out == "" && o.AdapterOut == "" {
		return nil, errors.New("export: give an output directory for the merged model (--out) and/or the adapter (--adapter-out)")
	}
	if o.DType == "" {
		o.DType = engine.F32
	}
	for _, out := range []string{o.Out, o.AdapterOut} {
		if out != "" {
			if err := checkOut(out); err != nil {
				return nil, err
			}
		}
	}
	work, err := os.MkdirTemp("", "asearcher-archive-")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "x")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := fetchArchive(ctx, o, dir); err != nil {
		return nil, err
	}
	root, kind, err := findPayload(dir)
	if err != nil {
		return nil, err
	}
	if kind == "full" {
		if o.AdapterOut != "" {
			return nil, fmt.Errorf("export: %s holds full model weights, not a LoRA adapter; drop --adapter-out", o.Archive)
		}
		res, err := HF(Options{Source: root, Out: o.Out, DType: o.DType})
		if err != nil {
			return nil, err
		}
		return &ArchiveResult{Kind: "full", Out: res.Out, Params: res.Params, Files: res.Files}, nil
	}
	a, err := peft.Load(root)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	res := &ArchiveResult{Kind: "lora", Rank: a.Config.R, Alpha: a.Config.LoraAlpha, Targets: a.Targets()}
	var base *engine.Weights
	if o.Base != "" {
		if base, err = engine.LoadWeights(o.Base); err != nil {
			return nil, fmt.Errorf("export: base model: %w", err)
		}
		if err := a.Check(DimsOf(base.Config)); err != nil {
			return nil, fmt.Errorf("export: adapter %s does not fit base model %s: %w", o.Archive, o.Base, err)
		}
	} else if o.Out != "" {
		return nil, errors.New("export: merging an adapter needs the base model directory it was trained on (--base)")
	}
	if o.AdapterOut != "" {
		if a.Config.BaseModel == "" {
			a.Config.BaseModel = o.Base
		}
		if err := writeDir(o.AdapterOut, a.Save); err != nil {
			return nil, err
		}
		res.AdapterOut = o.AdapterOut
	}
	if o.Out != "" {
		if res.Params, res.Files, err = mergeInto(a, base, o.Base, o.Out, o.DType); err != nil {
			return nil, err
		}
		res.Out = o.Out
	}
	return res, nil
}

// MergeAdapter merges a into the base model directory base and writes the
// result, with base's tokenizer files, as the HF directory out (which must
// not exist or be empty).
func MergeAdapter(a *peft.Adapter, base, out string, dt engine.DType) (*ArchiveResult, error) {
	if err := checkOut(out); err != nil {
		return nil, err
	}
	w, err := engine.LoadWeights(base)
	if err != nil {
		return nil, fmt.Errorf("export: base model: %w", err)
	}
	res := &ArchiveResult{Kind: "lora", Out: out, Rank: a.Config.R, Alpha: a.Config.LoraAlpha, Targets: a.Targets()}
	if res.Params, res.Files, err = mergeInto(a, w, base, out, dt); err != nil {
		return nil, err
	}
	return res, nil
}

func mergeInto(a *peft.Adapter, w *engine.Weights, base, out string, dt engine.DType) (int, []string, error) {
	if dt == "" {
		dt = engine.F32
	}
	if err := a.Merge(w, DimsOf(w.Config)); err != nil {
		return 0, nil, fmt.Errorf("export: %w", err)
	}
	files, err := writeModel(out, base, w, dt)
	return len(w.Flat), files, err
}

// fetchArchive downloads (or opens) the archive and unpacks it into dir.
func fetchArchive(ctx context.Context, o ArchiveOptions, dir string) error {
	src := o.Archive
	var r io.Reader
	if strings.HasPrefix(src, "tinker://") || strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		urls := []string{src}
		if strings.HasPrefix(src, "tinker://") {
			if o.TinkerURL == "" {
				return fmt.Errorf("export: %s is on a Tinker server; give its address (--tinker-url or TINKER_BASE_URL)", src)
			}
			var err error
			if urls, err = ArchiveURLs(strings.TrimSuffix(strings.TrimRight(o.TinkerURL, "/"), "/api/v1"), src); err != nil {
				return fmt.Errorf("export: %w", err)
			}
		}
		f, err := os.CreateTemp(filepath.Dir(dir), "archive-*.tar.gz")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer f.Close()
		for i, u := range urls {
			err = Download(ctx, o.HTTPClient, u, o.APIKey, f, o.Limits.withDefaults().MaxBytes)
			var he *HTTPError
			if err == nil || i == len(urls)-1 || !errors.As(err, &he) || he.Status != http.StatusNotFound {
				break
			}
			// This server names the checkpoint the other way.
			if err := f.Truncate(0); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("export: %w", err)
			}
		}
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		r = f
	} else {
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer f.Close()
		r = f
	}
	if err := ExtractArchive(r, dir, o.Limits); err != nil {
		return fmt.Errorf("export %s: %w", src, err)
	}
	return nil
}

// findPayload locates the adapter or model directory in an unpacked
// archive: its root or a single directory chain below it.
func findPayload(dir string) (string, string, error) {
	for range 4 {
		switch {
		case exists(filepath.Join(dir, peft.ConfigFile)):
			return dir, "lora", nil
		case isModelDir(dir):
			return dir, "full", nil
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return "", "", fmt.Errorf("export: %w", err)
		}
		if len(entries) != 1 || !entries[0].IsDir() {
			break
		}
		dir = filepath.Join(dir, entries[0].Name())
	}
	return "", "", fmt.Errorf("export: the archive holds neither a PEFT adapter (%s) nor a model directory (config.json + model.safetensors)", peft.ConfigFile)
}

// writeModel writes w and the base's tokenizer files as an HF directory.
func writeModel(out, base string, w *engine.Weights, dt engine.DType) ([]string, error) {
	files := []string{"config.json", "model.safetensors"}
	err := writeDir(out, func(tmp string) error {
		if err := engine.SaveWeights(tmp, w, dt); err != nil {
			return err
		}
		for _, f := range tokenizerFiles {
			ok, err := copyFile(filepath.Join(base, f), filepath.Join(tmp, f))
			if err != nil {
				return err
			}
			if ok {
				files = append(files, f)
			}
		}
		return nil
	})
	return files, err
}

// writeDir fills a temporary directory beside out with fill and renames it
// into place, so out appears whole or not at all.
func writeDir(out string, fill func(tmp string) error) error {
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".export-")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := fill(tmp); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	done = true
	return atomicfile.SyncDir(parent)
}
