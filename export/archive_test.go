package export

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/peft"
)

type tarEntry struct {
	name, link string
	typ        byte
	body       []byte
}

func makeTarGz(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: size}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractArchive(t *testing.T) {
	ok := makeTarGz(t, []tarEntry{{name: "./", typ: tar.TypeDir}, {name: "a/", typ: tar.TypeDir},
		{name: "a/b.txt", typ: tar.TypeReg, body: []byte("hello")}, {name: "c/d/e.txt", typ: tar.TypeReg, body: []byte("x")}})
	dest := t.TempDir()
	if err := ExtractArchive(bytes.NewReader(ok), dest, ArchiveLimits{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "a", "b.txt")); string(b) != "hello" {
		t.Errorf("a/b.txt = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "c", "d", "e.txt")); string(b) != "x" {
		t.Errorf("c/d/e.txt = %q", b)
	}

	cases := []struct {
		name    string
		entries []tarEntry
		lim     ArchiveLimits
		want    string
	}{
		{"parent traversal", []tarEntry{{name: "../evil", typ: tar.TypeReg, body: []byte("x")}}, ArchiveLimits{}, "outside the archive"},
		{"hidden traversal", []tarEntry{{name: "a/../../evil", typ: tar.TypeReg, body: []byte("x")}}, ArchiveLimits{}, "outside the archive"},
		{"absolute", []tarEntry{{name: "/tmp/evil", typ: tar.TypeReg, body: []byte("x")}}, ArchiveLimits{}, "absolute"},
		{"absolute dir", []tarEntry{{name: "/etc/", typ: tar.TypeDir}}, ArchiveLimits{}, "absolute"},
		{"symlink", []tarEntry{{name: "l", link: "/etc/passwd", typ: tar.TypeSymlink}}, ArchiveLimits{}, "symbolic link"},
		{"hard link", []tarEntry{{name: "l", link: "/etc/passwd", typ: tar.TypeLink}}, ArchiveLimits{}, "hard link"},
		{"fifo", []tarEntry{{name: "f", typ: tar.TypeFifo}}, ArchiveLimits{}, "FIFO"},
		{"backslash", []tarEntry{{name: `..\evil`, typ: tar.TypeReg, body: []byte("x")}}, ArchiveLimits{}, "backslash"},
		{"too big", []tarEntry{{name: "a", typ: tar.TypeReg, body: make([]byte, 10)}, {name: "b", typ: tar.TypeReg, body: make([]byte, 10)}}, ArchiveLimits{MaxBytes: 15}, "limit"},
		{"too many", []tarEntry{{name: "a", typ: tar.TypeReg}, {name: "b", typ: tar.TypeReg}, {name: "c", typ: tar.TypeReg}}, ArchiveLimits{MaxFiles: 2}, "more than 2 entries"},
		{"duplicate file", []tarEntry{{name: "a", typ: tar.TypeReg, body: []byte("1")}, {name: "a", typ: tar.TypeReg, body: []byte("2")}}, ArchiveLimits{}, "exists"},
		{"file then dir", []tarEntry{{name: "a", typ: tar.TypeReg, body: []byte("1")}, {name: "a/b", typ: tar.TypeReg, body: []byte("2")}}, ArchiveLimits{}, "not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dest := filepath.Join(root, "dest")
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			err := ExtractArchive(bytes.NewReader(makeTarGz(t, tc.entries)), dest, tc.lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(root, "evil")); err == nil {
				t.Fatal("a file was written outside the destination")
			}
		})
	}
	if err := ExtractArchive(strings.NewReader("not gzip"), t.TempDir(), ArchiveLimits{}); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("garbage: %v", err)
	}
	trunc := ok[:len(ok)/2]
	if err := ExtractArchive(bytes.NewReader(trunc), t.TempDir(), ArchiveLimits{}); err == nil {
		t.Error("a truncated archive extracted without error")
	}
}

func FuzzExtractArchive(f *testing.F) {
	f.Add([]byte{})
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "a/b", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	gz.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		dest := filepath.Join(root, "d")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		ExtractArchive(bytes.NewReader(data), dest, ArchiveLimits{MaxBytes: 1 << 20, MaxFiles: 100})
		entries, _ := os.ReadDir(root)
		if len(entries) != 1 {
			t.Fatalf("extraction wrote beside its destination: %v", entries)
		}
	})
}

func TestParseTinkerPath(t *testing.T) {
	for _, tc := range []struct{ in, model, name string }{
		{"tinker://model-1/sampler_weights/s1", "model-1", "s1"},
		{"tinker://abc/weights/final", "abc", "final"},
		{"tinker://model_fbf11aee/v000001", "model_fbf11aee", "v000001"}, // SkyRL 0.3.0's save_weights_for_sampler path
		{"tinker://abc/", "", ""},
		{"tinker:///v1", "", ""},
		{"tinker://abc/..", "", ""},
		{"tinker://abc/sampler_weights/..", "", ""},
		{"tinker://abc/other/s1", "", ""},
		{"tinker://abc/sampler_weights/s1/x", "", ""},
		{"http://abc/sampler_weights/s1", "", ""},
		{"tinker://abc/sampler_weights/a?b", "", ""},
	} {
		m, n, err := ParseTinkerPath(tc.in)
		if (err == nil) != (tc.model != "") || m != tc.model || n != tc.name {
			t.Errorf("ParseTinkerPath(%q) = %q, %q, %v", tc.in, m, n, err)
		}
	}
	u, err := ArchiveURL("http://h:1/", "tinker://m/sampler_weights/s")
	if err != nil || u != "http://h:1/api/v1/training_runs/m/checkpoints/s/archive" {
		t.Errorf("ArchiveURL = %q, %v", u, err)
	}
}

// The archive route answers 302 to /download (SkyRL) or to another host
// (Tinker's signed URLs); the API key reaches only the Tinker host.
func TestDownloadFollowsRedirectAndKeepsKeyHome(t *testing.T) {
	payload := []byte("archive bytes")
	var storageKey string
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storageKey = r.Header.Get("X-API-Key")
		w.Write(payload)
	}))
	defer storage.Close()
	var apiKey, downloadKey string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/training_runs/m/checkpoints/s/archive":
			apiKey = r.Header.Get("X-API-Key")
			http.Redirect(w, r, "/api/v1/training_runs/m/checkpoints/s/download", http.StatusFound)
		case "/api/v1/training_runs/m/checkpoints/s/download":
			downloadKey = r.Header.Get("X-API-Key")
			w.Write(payload)
		case "/api/v1/training_runs/m/checkpoints/far/archive":
			http.Redirect(w, r, storage.URL+"/signed?sig=secret", http.StatusFound)
		default:
			http.Error(w, `{"detail":"Checkpoint not found"}`, http.StatusNotFound)
		}
	}))
	defer api.Close()
	ctx := context.Background()
	var got bytes.Buffer
	u, _ := ArchiveURL(api.URL, "tinker://m/sampler_weights/s")
	if err := Download(ctx, nil, u, "tml-k", &got, 0); err != nil {
		t.Fatal(err)
	}
	if got.String() != string(payload) || apiKey != "tml-k" || downloadKey != "tml-k" {
		t.Errorf("same-host download: %q, keys %q %q", got.String(), apiKey, downloadKey)
	}
	got.Reset()
	u, _ = ArchiveURL(api.URL, "tinker://m/sampler_weights/far")
	if err := Download(ctx, nil, u, "tml-k", &got, 0); err != nil {
		t.Fatal(err)
	}
	if got.String() != string(payload) || storageKey != "" {
		t.Errorf("cross-host download: %q, key sent to storage %q", got.String(), storageKey)
	}
	u, _ = ArchiveURL(api.URL, "tinker://m/sampler_weights/none")
	if err := Download(ctx, nil, u, "tml-k", &got, 0); err == nil || !strings.Contains(err.Error(), "HTTP 404") || strings.Contains(err.Error(), "tml-k") {
		t.Errorf("missing checkpoint: %v", err)
	}
	u, _ = ArchiveURL(api.URL, "tinker://m/sampler_weights/s")
	if err := Download(ctx, nil, u, "", &got, 4); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized download: %v", err)
	}
}

const (
	archiveFixture = "testdata/archive/sampler-s1.tar.gz" // a SkyRL-style sampler archive on hfFixture
	archiveOut     = "testdata/archive_out"               // its export: merged/ and adapter/, checked by check_peft.py
	peftCheck      = "testdata/peft_check"                // what PEFT and transformers computed (check_peft.py)
)

// skyrlAdapter is an adapter as SkyRL writes it: all seven projections,
// alpha 32, target_modules null. B is not zero (a trained adapter) so the
// merge visibly changes the logits.
func skyrlAdapter(t *testing.T, base *engine.Config, rank int) *peft.Adapter {
	t.Helper()
	d := DimsOf(base)
	rng := rand.New(rand.NewPCG(11, 12))
	a := &peft.Adapter{Config: peft.NewConfig("/tmp/skyrl/base", rank, 32), Modules: map[string]*peft.Module{}}
	for l := 0; l < d.Layers; l++ {
		for _, s := range peft.AllModules[:7] {
			group := "self_attn"
			if strings.HasSuffix(s, "gate_proj") || strings.HasSuffix(s, "up_proj") || strings.HasSuffix(s, "down_proj") {
				group = "mlp"
			}
			name := fmt.Sprintf("model.layers.%d.%s.%s", l, group, s)
			out, in, err := d.Shape(name)
			if err != nil {
				t.Fatal(err)
			}
			m := &peft.Module{Rank: rank, In: in, Out: out, A: make([]float32, rank*in), B: make([]float32, out*rank)}
			for i := range m.A {
				m.A[i] = float32(rng.NormFloat64() * 0.1)
			}
			for i := range m.B {
				m.B[i] = float32(rng.NormFloat64() * 0.01)
			}
			a.Modules[name] = m
		}
	}
	return a
}

// archiveOf packs an adapter as SkyRL does: adapter_config.json with
// target_modules null and adapter_model.safetensors at the archive root.
func archiveOf(t *testing.T, a *peft.Adapter) []byte {
	t.Helper()
	cfg, w, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		t.Fatal(err)
	}
	m["target_modules"] = nil
	if cfg, err = json.MarshalIndent(m, "", "  "); err != nil {
		t.Fatal(err)
	}
	return makeTarGz(t, []tarEntry{{name: peft.ConfigFile, typ: tar.TypeReg, body: cfg}, {name: peft.WeightsFile, typ: tar.TypeReg, body: w}})
}

// A Tinker sampler archive (a PEFT adapter with target_modules null) plus
// its base model exports to a merged HF directory and an adapter
// directory. check_peft.py loaded the committed exports: PEFT loaded the
// adapter with all seven target modules on the base, transformers loaded
// the merged directory, and both computed the logits the engine computes
// on the merged weights.
//
// EXPORT_WRITE_FIXTURES=1 regenerates the archive and the exports; then run
// ~/.cache/asearcher/venv-gguf/bin/python export/testdata/check_peft.py.
func TestArchiveExportLoadsInPEFTAndTransformers(t *testing.T) {
	if os.Getenv("EXPORT_WRITE_FIXTURES") == "1" {
		base, err := engine.LoadConfig(hfFixture)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(archiveFixture), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(archiveFixture, archiveOf(t, skyrlAdapter(t, base, 4)), 0o644); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(archiveOut)
		if _, err := FromArchive(context.Background(), ArchiveOptions{Archive: archiveFixture, Base: hfFixture,
			Out: filepath.Join(archiveOut, "merged"), AdapterOut: filepath.Join(archiveOut, "adapter")}); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	res, err := FromArchive(context.Background(), ArchiveOptions{Archive: archiveFixture, Base: hfFixture,
		Out: filepath.Join(out, "merged"), AdapterOut: filepath.Join(out, "adapter")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != "lora" || res.Rank != 4 || res.Alpha != 32 || len(res.Targets) != 7 {
		t.Errorf("result %+v", res)
	}
	for _, sub := range []string{"merged", "adapter"} {
		want, err := os.ReadDir(filepath.Join(archiveOut, sub))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadDir(filepath.Join(out, sub))
		if len(got) != len(want) {
			t.Errorf("%s: %d files, the checked export has %d", sub, len(got), len(want))
		}
		for _, e := range want {
			a, _ := os.ReadFile(filepath.Join(archiveOut, sub, e.Name()))
			b, err := os.ReadFile(filepath.Join(out, sub, e.Name()))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s/%s differs from the one PEFT/transformers were checked on (%v)", sub, e.Name(), err)
			}
		}
	}
	a, err := peft.Load(filepath.Join(out, "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}; !slices.Equal(a.Config.TargetModules, want) {
		t.Errorf("adapter target_modules %v, want %v", a.Config.TargetModules, want)
	}

	var check struct {
		Wrapped []string `json:"lora_modules"`
	}
	raw, err := os.ReadFile(filepath.Join(peftCheck, "modules.json"))
	if err != nil {
		t.Fatalf("%v (run: ~/.cache/asearcher/venv-gguf/bin/python export/testdata/check_peft.py)", err)
	}
	if err := json.Unmarshal(raw, &check); err != nil {
		t.Fatal(err)
	}
	if len(check.Wrapped) != 7*2 {
		t.Errorf("PEFT wrapped %d modules of the 2-layer base, want 14 (7 per layer): %v", len(check.Wrapped), check.Wrapped)
	}
	buf, err := os.ReadFile(filepath.Join(peftCheck, "logits.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := engine.DecodeSafetensors(buf)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := engine.LoadWeights(filepath.Join(out, "merged"))
	if err != nil {
		t.Fatal(err)
	}
	baseW, err := engine.LoadWeights(hfFixture)
	if err != nil {
		t.Fatal(err)
	}
	m, b := engine.NewModel(merged, 0), engine.NewModel(baseW, 0)
	for i, s := range checkSeqs {
		l, err := m.Logits(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"peft", "merged"} {
			if d := maxAbsDiff(l, ref[k+"."+strconv.Itoa(i)].Data); d > 1e-4 {
				t.Errorf("sequence %d: engine on the merged export vs %s logits: %.3g", i, k, d)
			}
		}
		lb, _ := b.Logits(context.Background(), s)
		if d := maxAbsDiff(l, lb); d < 1e-3 {
			t.Errorf("sequence %d: the adapter moved the logits by only %.3g; the check would not see a lost merge", i, d)
		}
	}
}

func TestFromArchiveCases(t *testing.T) {
	base, err := engine.LoadConfig(hfFixture)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	adapter := skyrlAdapter(t, base, 2)
	cfg, w, err := adapter.Encode()
	if err != nil {
		t.Fatal(err)
	}
	nested := write("nested.tar.gz", makeTarGz(t, []tarEntry{{name: "s1/", typ: tar.TypeDir},
		{name: "s1/" + peft.ConfigFile, typ: tar.TypeReg, body: cfg}, {name: "s1/" + peft.WeightsFile, typ: tar.TypeReg, body: w}}))
	res, err := FromArchive(ctx, ArchiveOptions{Archive: nested, AdapterOut: filepath.Join(dir, "only-adapter")})
	if err != nil || res.Kind != "lora" || res.AdapterOut == "" {
		t.Fatalf("adapter-only export of a nested archive: %+v, %v", res, err)
	}

	// An adapter trained on another base (hidden 64) is refused.
	other := *base
	other.HiddenSize, other.IntermediateSize = 64, 96
	wrong := write("wrong.tar.gz", archiveOf(t, skyrlAdapter(t, &other, 2)))
	if _, err := FromArchive(ctx, ArchiveOptions{Archive: wrong, Base: hfFixture, Out: filepath.Join(dir, "w")}); err == nil || !strings.Contains(err.Error(), "another base model") {
		t.Errorf("mismatched base: %v", err)
	}
	if _, err := FromArchive(ctx, ArchiveOptions{Archive: nested, Out: filepath.Join(dir, "nobase")}); err == nil || !strings.Contains(err.Error(), "--base") {
		t.Errorf("merge without base: %v", err)
	}
	if _, err := FromArchive(ctx, ArchiveOptions{Archive: nested}); err == nil || !strings.Contains(err.Error(), "--out") {
		t.Errorf("no outputs: %v", err)
	}
	empty := write("empty.tar.gz", makeTarGz(t, []tarEntry{{name: "readme", typ: tar.TypeReg, body: []byte("hi")}}))
	if _, err := FromArchive(ctx, ArchiveOptions{Archive: empty, AdapterOut: filepath.Join(dir, "e")}); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("empty archive: %v", err)
	}
	if _, err := FromArchive(ctx, ArchiveOptions{Archive: "tinker://m/sampler_weights/s", AdapterOut: filepath.Join(dir, "t")}); err == nil || !strings.Contains(err.Error(), "TINKER_BASE_URL") {
		t.Errorf("tinker path without server: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "w")); err == nil {
		t.Error("a failed export left its output directory")
	}

	// A full-weights archive (serve model without LoRA) exports as that model.
	files := []tarEntry{}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		b, err := os.ReadFile(filepath.Join(hfFixture, f))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, tarEntry{name: f, typ: tar.TypeReg, body: b})
	}
	full := write("full.tar.gz", makeTarGz(t, files))
	res, err = FromArchive(ctx, ArchiveOptions{Archive: full, Out: filepath.Join(dir, "full")})
	if err != nil || res.Kind != "full" {
		t.Fatalf("full archive: %+v, %v", res, err)
	}
	a, _ := os.ReadFile(filepath.Join(hfFixture, "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(dir, "full", "model.safetensors"))
	if !bytes.Equal(a, b) {
		t.Error("a full-weights archive did not export to the same weights")
	}

	// A server that names sampler checkpoints as the official SDK sends
	// them (sampler_weights/NAME) is found on the second route.
	sdkStyle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/training_runs/m/checkpoints/sampler_weights/s1/archive" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		b, _ := os.ReadFile(nested)
		w.Write(b)
	}))
	defer sdkStyle.Close()
	if _, err := FromArchive(ctx, ArchiveOptions{Archive: "tinker://m/sampler_weights/s1", TinkerURL: sdkStyle.URL,
		AdapterOut: filepath.Join(dir, "sdk-style")}); err != nil {
		t.Errorf("SDK-style archive route: %v", err)
	}
	if _, err := FromArchive(ctx, ArchiveOptions{Archive: "tinker://m/sampler_weights/none", TinkerURL: sdkStyle.URL,
		AdapterOut: filepath.Join(dir, "none")}); err == nil || !strings.Contains(err.Error(), "sampler_weights/none/archive: HTTP 404") {
		t.Errorf("missing checkpoint: %v", err)
	}

	// Over HTTP from a Tinker server.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/training_runs/m/checkpoints/s1/archive" {
			http.Redirect(w, r, "/api/v1/training_runs/m/checkpoints/s1/download", http.StatusFound)
			return
		}
		b, _ := os.ReadFile(nested)
		w.Write(b)
	}))
	defer srv.Close()
	res, err = FromArchive(ctx, ArchiveOptions{Archive: "tinker://m/sampler_weights/s1", TinkerURL: srv.URL + "/api/v1",
		Base: hfFixture, Out: filepath.Join(dir, "http")})
	if err != nil || res.Out == "" {
		t.Fatalf("tinker:// export: %+v, %v", res, err)
	}
}

// A LoRA learner's state or sampler directory (a PEFT adapter) exports as
// its base model with the adapter merged; the base comes from --base or
// the adapter's base_model_name_or_path.
func TestHFFromLoRASource(t *testing.T) {
	base, err := engine.LoadConfig(hfFixture)
	if err != nil {
		t.Fatal(err)
	}
	absBase, _ := filepath.Abs(hfFixture)
	a := skyrlAdapter(t, base, 2)
	a.Config.BaseModel = absBase
	dir := t.TempDir()
	src := filepath.Join(dir, "sampler")
	if err := a.Save(src); err != nil {
		t.Fatal(err)
	}
	res, err := HF(Options{Source: src, Out: filepath.Join(dir, "merged"), AdapterOut: filepath.Join(dir, "adapter")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := engine.LoadWeights(res.Out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := engine.LoadWeights(hfFixture)
	if err := a.Merge(want, DimsOf(want.Config)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Flat, want.Flat) {
		t.Error("the export is not the base with the adapter merged")
	}
	if _, err := peft.Load(filepath.Join(dir, "adapter")); err != nil {
		t.Errorf("adapter-out: %v", err)
	}
	a.Config.BaseModel = "Qwen/Qwen3-0.6B"
	remote := filepath.Join(dir, "remote")
	if err := a.Save(remote); err != nil {
		t.Fatal(err)
	}
	if _, err := HF(Options{Source: remote, Out: filepath.Join(dir, "m2")}); err == nil || !strings.Contains(err.Error(), "--base") {
		t.Errorf("hub base without --base: %v", err)
	}
	if _, err := HF(Options{Source: remote, Out: filepath.Join(dir, "m3"), Base: hfFixture}); err != nil {
		t.Errorf("with --base: %v", err)
	}
	if _, err := HF(Options{Source: hfFixture, Out: filepath.Join(dir, "m4"), AdapterOut: filepath.Join(dir, "a4")}); err == nil || !strings.Contains(err.Error(), "full weights") {
		t.Errorf("adapter-out of a full model: %v", err)
	}
}
