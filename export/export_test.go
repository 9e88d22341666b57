package export

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/tokenizer"
)

const (
	srcFixture = "testdata/model"    // an embedded model directory (init + a few training steps)
	hfFixture  = "testdata/hf"       // its export, the directory transformers was checked on
	hfCheck    = "testdata/hf_check" // what transformers computed on hfFixture (check_hf.py)
)

// The sequences and strings check_hf.py feeds transformers.
var (
	checkSeqs    = [][]int{{5, 17, 42, 9, 100, 3, 77}, {260, 12, 12, 201, 8, 64, 33, 150, 2, 90, 11}}
	checkStrings = []string{"Favok lives in Mipa.", "<search> Favok </search>\n<answer> Mipa </answer>"}
)

// An exported embedded model loads in transformers with the engine's logits
// and tokenizer ids. check_hf.py loaded the committed export in transformers
// and stored its logits and token ids; here the export of the committed
// source must be that directory byte for byte, and the engine's logits on
// it must match transformers'.
//
// EXPORT_WRITE_FIXTURES=1 regenerates the source and the export; then run
// python export/testdata/check_hf.py (needs torch and transformers).
func TestExportLoadsInTransformers(t *testing.T) {
	if os.Getenv("EXPORT_WRITE_FIXTURES") == "1" {
		writeFixtures(t)
	}
	out := filepath.Join(t.TempDir(), "hf")
	res, err := HF(Options{Source: srcFixture, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadDir(hfFixture)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != len(want) {
		t.Fatalf("exported %v, the checked directory has %d files", res.Files, len(want))
	}
	for _, f := range res.Files {
		a, _ := os.ReadFile(filepath.Join(hfFixture, f))
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the one transformers was checked on (%v)", f, err)
		}
	}
	buf, err := os.ReadFile(filepath.Join(hfCheck, "logits.safetensors"))
	if err != nil {
		t.Fatalf("%v (run: python export/testdata/check_hf.py)", err)
	}
	hf, err := engine.DecodeSafetensors(buf)
	if err != nil {
		t.Fatal(err)
	}
	w, err := engine.LoadWeights(out)
	if err != nil {
		t.Fatal(err)
	}
	m := engine.NewModel(w, 0)
	for i, s := range checkSeqs {
		l, err := m.Logits(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(l, hf["logits."+strconv.Itoa(i)].Data); d > 1e-4 {
			t.Errorf("sequence %d: engine vs transformers logits on the export: %.3g", i, d)
		}
	}
	var ids struct {
		Strings []string `json:"strings"`
		IDs     [][]int  `json:"ids"`
	}
	raw, err := os.ReadFile(filepath.Join(hfCheck, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ids); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(filepath.Join(out, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range checkStrings {
		if got := tok.Encode(s); i >= len(ids.IDs) || ids.Strings[i] != s || !equalInts(got, ids.IDs[i]) {
			t.Errorf("%q: our ids %v, transformers' %v", s, got, ids.IDs)
		}
	}
}

// A run directory and a checkpoint directory resolve to the checkpoint's
// trainer state; optimiser state is left behind; bf16 halves the weights.
func TestExportSources(t *testing.T) {
	run := t.TempDir()
	step := filepath.Join(run, "checkpoints", "step_000002")
	trainerDir := filepath.Join(step, "trainer")
	copyDir(t, srcFixture, trainerDir)
	mustWrite(t, filepath.Join(trainerDir, "optimizer.safetensors"), []byte("not a model file"))
	mustWrite(t, filepath.Join(step, "controller.json"), []byte(`{"version":2,"stream_next":4,"trainer_state":"trainer","seed":1}`))
	mustWrite(t, filepath.Join(run, "checkpoints", "latest"), []byte("step_000002\n"))
	for _, src := range []string{run, step, trainerDir} {
		got, err := ResolveSource(src)
		if err != nil || got != trainerDir {
			t.Fatalf("ResolveSource(%s) = %s, %v; want %s", src, got, err, trainerDir)
		}
	}
	out := filepath.Join(t.TempDir(), "bf16")
	res, err := HF(Options{Source: run, Out: out, DType: engine.BF16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "optimizer.safetensors")); err == nil {
		t.Error("optimizer state was exported")
	}
	f32, _ := os.Stat(filepath.Join(srcFixture, "model.safetensors"))
	bf, _ := os.Stat(filepath.Join(out, "model.safetensors"))
	if bf.Size() > f32.Size()/2+4096 {
		t.Errorf("bf16 weights %d bytes, f32 %d", bf.Size(), f32.Size())
	}
	cfg, _ := os.ReadFile(filepath.Join(out, "config.json"))
	if !strings.Contains(string(cfg), `"torch_dtype": "bfloat16"`) {
		t.Errorf("config.json does not say bfloat16: %s", cfg)
	}
	if res.Model != trainerDir || res.Params == 0 {
		t.Errorf("result %+v", res)
	}
	// The bf16 model computes nearly the same logits.
	a, _ := engine.LoadWeights(srcFixture)
	b, _ := engine.LoadWeights(out)
	la, _ := engine.NewModel(a, 0).Logits(context.Background(), checkSeqs[0])
	lb, _ := engine.NewModel(b, 0).Logits(context.Background(), checkSeqs[0])
	if d := maxAbsDiff(la, lb); d > 0.05 {
		t.Errorf("bf16 export moved logits by %.3g", d)
	}
}

func TestExportRefuses(t *testing.T) {
	full := t.TempDir()
	mustWrite(t, filepath.Join(full, "keep.txt"), []byte("x"))
	noTok := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		data, _ := os.ReadFile(filepath.Join(srcFixture, f))
		mustWrite(t, filepath.Join(noTok, f), data)
	}
	badModel := t.TempDir()
	copyDir(t, srcFixture, badModel)
	mustWrite(t, filepath.Join(badModel, "model.safetensors"), []byte("garbage"))
	tinkerRun := t.TempDir()
	mustWrite(t, filepath.Join(tinkerRun, "checkpoints", "step_000001", "controller.json"),
		[]byte(`{"version":1,"stream_next":1,"trainer_state":"tinker://m/state/1","seed":1}`))
	mustWrite(t, filepath.Join(tinkerRun, "checkpoints", "latest"), []byte("step_000001\n"))
	for _, tc := range []struct {
		name, src, out, want string
	}{
		{"missing source", filepath.Join(t.TempDir(), "nope"), "", "export source"},
		{"not a model", t.TempDir(), "", "is not a run directory"},
		{"output not empty", srcFixture, full, "not empty"},
		{"no tokenizer", noTok, "", "tokenizer.json"},
		{"corrupt weights", badModel, "", "read"},
		{"tinker checkpoint", tinkerRun, "", "Tinker server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.out
			if out == "" {
				out = filepath.Join(t.TempDir(), "out")
			}
			_, err := HF(Options{Source: tc.src, Out: out})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if tc.out == "" {
				if _, err := os.Stat(out); err == nil {
					t.Error("a failed export left its output behind")
				}
			}
			entries, _ := os.ReadDir(filepath.Dir(out))
			for _, e := range entries {
				if strings.Contains(e.Name(), ".export-") {
					t.Errorf("temporary %s left behind", e.Name())
				}
			}
		})
	}
}

// writeFixtures makes the source model (a small tied Qwen3 trained a few
// cross-entropy steps so its logits are far from uniform) and its export.
func writeFixtures(t *testing.T) {
	ctx := context.Background()
	cfg, err := engine.Preset("tiny", 16)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HiddenSize, cfg.IntermediateSize, cfg.HeadDim = 32, 48, 8
	texts := []string{"Favok lives in Mipa. Dorel works at Quanta. <search> Favok </search>\n<answer> Mipa </answer>"}
	os.RemoveAll(srcFixture)
	os.RemoveAll(hfFixture)
	if _, err := engine.InitModelDir(ctx, srcFixture, engine.InitOptions{Config: cfg, Seed: 7, DType: engine.F32, TrainTexts: texts, TrainVocab: 300}); err != nil {
		t.Fatal(err)
	}
	w, err := engine.LoadWeights(srcFixture)
	if err != nil {
		t.Fatal(err)
	}
	l := engine.NewLearner(w)
	V := w.Config.VocabSize
	for step := range 5 {
		var ex []engine.Example
		for k := range 4 {
			var s []int
			for i := range 24 {
				s = append(s, (i*(7+k)+step*13+k)%V)
			}
			ex = append(ex, engine.Example{Input: s[:len(s)-1], Target: s[1:]})
		}
		if _, err := l.ForwardBackward(ctx, ex, engine.Loss{Fn: engine.CrossEntropy, TokenMean: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.OptimStep(ctx, engine.AdamW{LR: 0.05, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}); err != nil {
			t.Fatal(err)
		}
	}
	if err := engine.SaveWeights(srcFixture, l.Snapshot(), engine.F32); err != nil {
		t.Fatal(err)
	}
	if _, err := HF(Options{Source: srcFixture, Out: hfFixture}); err != nil {
		t.Fatal(err)
	}
	t.Log("fixtures written; now run: python export/testdata/check_hf.py")
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
	}
	return worst
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, filepath.Join(dst, e.Name()), data)
	}
}
