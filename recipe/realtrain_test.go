package recipe

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/eval"
	"github.com/asearcher/asearcher/internal/testindex"
	"github.com/asearcher/asearcher/reward"
	"github.com/asearcher/asearcher/rl"
	"github.com/asearcher/asearcher/synth"
)

func hotpot(t *testing.T) []dataset.Item {
	t.Helper()
	set, err := dataset.Load("hotpotqa-hipporag-100", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return set.Items
}

// TestSplitQuestionsHeldOutNeverTrained: for several seeds and sizes, no
// held-out question (by id or by normalised text) is a training question,
// the split is the same every time for a seed, and a duplicate of a
// held-out question under another id stays out of training.
func TestSplitQuestionsHeldOutNeverTrained(t *testing.T) {
	items := hotpot(t)
	dup := items[7]
	dup.ID, dup.Question = "dup-of-7", "  "+strings.ToUpper(dup.Question)+"  "
	withDup := append(append([]dataset.Item(nil), items...), dup)
	for _, tc := range []struct {
		name           string
		items          []dataset.Item
		seed           int64
		train, heldOut int
	}{
		{"default", items, 1, 0, 20},
		{"capped train", items, 2, 10, 5},
		{"one held out", items, 3, 0, 1},
		{"duplicate text", withDup, 1, 0, 99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, ho, err := SplitQuestions(tc.items, tc.seed, tc.train, tc.heldOut)
			if err != nil {
				t.Fatal(err)
			}
			if len(ho) != tc.heldOut {
				t.Errorf("held out %d, want %d", len(ho), tc.heldOut)
			}
			if tc.train > 0 && len(tr) != tc.train {
				t.Errorf("train %d, want %d", len(tr), tc.train)
			}
			heldID, heldText := map[string]bool{}, map[string]bool{}
			for _, it := range ho {
				heldID[it.ID], heldText[reward.NormalizeAnswer(it.Question)] = true, true
			}
			for _, it := range tr {
				if heldID[it.ID] || heldText[reward.NormalizeAnswer(it.Question)] {
					t.Errorf("held-out question %s (%q) is in the training set", it.ID, it.Question)
				}
			}
			tr2, ho2, _ := SplitQuestions(tc.items, tc.seed, tc.train, tc.heldOut)
			if ids(tr2) != ids(tr) || ids(ho2) != ids(ho) {
				t.Error("the split differs between two calls with one seed")
			}
		})
	}
	if _, _, err := SplitQuestions(items, 1, 0, len(items)); err == nil {
		t.Error("holding out every question: want an error")
	}
}

func ids(items []dataset.Item) string {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(it.ID + ",")
	}
	return b.String()
}

// tinyLlamaDir is a randomly initialised two-layer Llama (the engine's
// tiny sizes with the Llama architecture) and a byte-level ChatML
// tokenizer.
func tinyLlamaDir(t *testing.T) string {
	t.Helper()
	cfg, err := engine.Preset("tiny", 16)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Architectures, cfg.ModelType = []string{"LlamaForCausalLM"}, "llama"
	cfg.MaxPositionEmbeddings = 4096
	dir := filepath.Join(t.TempDir(), "tiny-llama")
	if _, err := engine.InitModelDir(context.Background(), dir, engine.InitOptions{Config: cfg, Seed: 7, DType: engine.F32}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func tinyRealConfig(modelDir string) RealConfig {
	c := DefaultRealConfig(modelDir)
	c.Real.HeldOut, c.Real.Train = 2, 4
	c.Agent.DocChars, c.Agent.MaxContext, c.Agent.MaxCallToken = 80, 1500, 64
	c.Warmup.Steps, c.Warmup.BatchSize = 2, 2
	c.Eval.Concurrency = 2
	c.RL.Steps, c.RL.BatchGroups, c.RL.GroupSize = 1, 1, 2
	c.RL.MaxConcurrentGroups = 2
	c.RL.FilterZeroVariance = false // a random model's rewards are all 0
	c.RL.CheckpointEvery = 1
	c.RL.Optim.LR = 2e-5
	c.LoRA = RealLoRAConfig{} // full weights; TestRunRealTinyLlamaLoRAKilled trains LoRA
	return c
}

// TestRealDemonstrationIsTheAgentsTokenStream: a warm-up demonstration is
// the chat-template prompt, then the replies as trained tokens and the
// search results as untrained ones, exactly as a rollout would be.
func TestRealDemonstrationIsTheAgentsTokenStream(t *testing.T) {
	dir := tinyLlamaDir(t)
	w, tok, err := engine.OpenModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyRealConfig(dir)
	cfg.Agent.MaxTurns = 3 // two searches, then the answer
	ix := testindex.Open(t)
	ra, err := newRealAgent(&cfg, tok, engine.StopTokens(dir, w.Config, tok), synth.IndexTools{Index: ix})
	if err != nil {
		t.Fatal(err)
	}
	it := hotpot(t)[0] // "If Gallu is a demon Lilu is what?", supporting Alû and Lilu (mythology)
	replies := realReplies(it, cfg.Agent.MaxTurns)
	want := []string{"<search> Alû </search>", "<search> Lilu (mythology) </search>", "<answer> a spirit </answer>"}
	if strings.Join(replies, "|") != strings.Join(want, "|") {
		t.Fatalf("replies %q, want %q", replies, want)
	}
	if one := realReplies(it, 2); strings.Join(one, "|") != want[0]+"|"+want[2] {
		t.Errorf("with max_turns 2: replies %q, want the first search and the answer", one)
	}
	traj, err := agent.Demonstrate(context.Background(), ra.wf, ra.envFor(nil, 0), itemTask(it), replies)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := traj.Sequences()
	if err != nil || len(seqs) != 1 {
		t.Fatalf("%d sequences, %v", len(seqs), err)
	}
	s := seqs[0]
	var trained, context []int
	for i, id := range s.Tokens {
		if s.LossMask[i] == 1 {
			trained = append(trained, id)
		} else {
			context = append(context, id)
		}
	}
	if got := tok.Decode(trained); got != strings.Join(want, "") {
		t.Errorf("trained tokens decode to %q, want the replies %q", got, strings.Join(want, ""))
	}
	ctx := tok.Decode(context)
	if !strings.HasPrefix(ctx, "<|im_start|>") || !strings.Contains(ctx, "<|im_start|>assistant\n") ||
		!strings.Contains(ctx, "Question: "+it.Question) {
		t.Errorf("the prompt is not the chat-template user turn with the question: %q", ctx)
	}
	if strings.Count(ctx, "\n<information>\"") != 2 || !strings.Contains(ctx, "Lilu") {
		t.Errorf("want two search results in the untrained context: %q", ctx)
	}
}

// TestRunRealTinyLlama runs the whole real-model recipe (index, split,
// warm-up, evaluation, one RL step, evaluation, report) on a tiny random
// Llama, then resumes the finished run, which redoes nothing but the
// report.
func TestRunRealTinyLlama(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	cfg := tinyRealConfig(tinyLlamaDir(t))
	out := filepath.Join(t.TempDir(), "run")
	rep, err := RunReal(context.Background(), RealOptions{Config: cfg, Out: out, Progress: ProgressOff})
	if err != nil {
		t.Fatal(err)
	}
	if rep.HeldOutQuestions != 2 || rep.RLSteps != 1 || rep.Warmup == nil || rep.Warmup.Demonstrations == 0 || rep.Warmup.Steps != 2 {
		t.Errorf("report: %+v warm-up %+v", rep, rep.Warmup)
	}
	for _, f := range []string{demoConfigFile, realSplitFile, demoReportJSON, demoReportMD, demoBeforeFile, demoAfterFile,
		"metrics.jsonl", demoWarmupModel + "/model.safetensors", demoEvalBeforeDir + "/" + eval.ResultsFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
	before, err := os.ReadFile(filepath.Join(out, demoBeforeFile))
	if err != nil {
		t.Fatal(err)
	}
	// Resume: every phase is done, so only the after-evaluation (read back
	// from eval-after's results) and the report are redone.
	if err := os.Remove(filepath.Join(out, demoReportJSON)); err != nil {
		t.Fatal(err)
	}
	rep2, err := RunReal(context.Background(), RealOptions{Out: out, Resume: true, Progress: ProgressOff})
	if err != nil {
		t.Fatal(err)
	}
	if rep2.F1After != rep.F1After || rep2.EMBefore != rep.EMBefore {
		t.Errorf("resumed report %+v differs from %+v", rep2, rep)
	}
	if b, _ := os.ReadFile(filepath.Join(out, demoBeforeFile)); string(b) != string(before) {
		t.Error("resume re-evaluated before RL")
	}
	// A second run into the same directory is refused.
	if _, err := RunReal(context.Background(), RealOptions{Config: cfg, Out: out, Progress: ProgressOff}); err == nil ||
		!strings.Contains(err.Error(), "--resume") {
		t.Errorf("second run into a used directory: %v", err)
	}
}

// TestRunRealTinyLlamaLoRAKilled: with lora.rank set (and the warm-up as
// an adapter too), a run cancelled after RL step 1 keeps an adapter-sized
// checkpoint, and resuming it continues RL from that checkpoint to the
// end without redoing the warm-up or the first evaluation.
func TestRunRealTinyLlamaLoRAKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	cfg := tinyRealConfig(tinyLlamaDir(t))
	cfg.LoRA = RealLoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj", "down_proj"}, Warmup: true}
	cfg.RL.Steps = 3
	cfg.Real.Train = 0 // all 98 that are not held out
	out := filepath.Join(t.TempDir(), "run")
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := RunReal(ctx, RealOptions{Config: cfg, Out: out, Progress: ProgressOff, Logger: log,
		OnStep: func(r *rl.StepRecord) {
			if r.Step == 1 {
				cancel()
			}
		}})
	if err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("interrupted run: %v", err)
	}
	// The checkpoint is the adapter and its moments, not a model.
	ckpt, err := filepath.Glob(filepath.Join(out, "checkpoints", "step_*"))
	if err != nil || len(ckpt) == 0 {
		t.Fatalf("no RL checkpoint: %v", err)
	}
	model, err := os.Stat(filepath.Join(out, demoWarmupModel, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var ckptBytes int64
	filepath.Walk(ckpt[len(ckpt)-1], func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			ckptBytes += fi.Size()
			if fi.Name() == "model.safetensors" {
				t.Errorf("LoRA checkpoint holds full weights: %s", path)
			}
		}
		return nil
	})
	if ckptBytes == 0 || ckptBytes > model.Size()/4 {
		t.Errorf("LoRA checkpoint %d bytes against a %d-byte model", ckptBytes, model.Size())
	}
	before, err := os.ReadFile(filepath.Join(out, demoBeforeFile))
	if err != nil {
		t.Fatal(err)
	}
	warm, _ := os.Stat(filepath.Join(out, demoWarmupModel, "model.safetensors"))
	resumedAt := -1
	rep, err := RunReal(context.Background(), RealOptions{Out: out, Resume: true, Progress: ProgressOff, Logger: log,
		OnStep: func(r *rl.StepRecord) {
			if resumedAt < 0 {
				resumedAt = r.Step
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if resumedAt != 2 || rep.RLSteps != 3 || rep.LoRARank != 2 || rep.TrainQuestions != 98 {
		t.Errorf("resumed at step %d, %d steps, LoRA rank %d, %d training questions; want 2, 3, 2, 98",
			resumedAt, rep.RLSteps, rep.LoRARank, rep.TrainQuestions)
	}
	if b, _ := os.ReadFile(filepath.Join(out, demoBeforeFile)); string(b) != string(before) {
		t.Error("resume re-evaluated before RL")
	}
	if w2, _ := os.Stat(filepath.Join(out, demoWarmupModel, "model.safetensors")); !w2.ModTime().Equal(warm.ModTime()) {
		t.Error("resume redid the warm-up")
	}
}

func TestDecodeRealTrainConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{"preset defaults", "real:\n  model_dir: models/smollm2-135m\n", ""},
		{"overrides", "real:\n  model_dir: m\n  held_out: 10\n  reward: em\nagent:\n  topk: 2\nrl:\n  steps: 3\n", ""},
		{"no model", "real:\n  held_out: 10\n", "model_dir"},
		{"bad reward", "real:\n  model_dir: m\n  reward: bleu\n", "real.reward"},
		{"unknown field", "real:\n  model_dir: m\nworld:\n  people: 3\n", "world"},
		{"lora", "real:\n  model_dir: m\nlora:\n  rank: 8\n  alpha: 16\n  targets: [q_proj, v_proj]\n  warmup: true\n", ""},
		{"lora bad target", "real:\n  model_dir: m\nlora:\n  rank: 8\n  targets: [lm_head]\n", "lora.targets"},
		{"lora warm-up without rank", "real:\n  model_dir: m\nlora:\n  rank: 0\n  warmup: true\n", "lora.rank"},
		{"lora negative rank", "real:\n  model_dir: m\nlora:\n  rank: -1\n", "lora.rank"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeTrainConfig([]byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != ModeReal || c.Real.Real.Questions != "hotpotqa-hipporag-100" || c.Real.Real.ModelDir == "" {
				t.Errorf("decoded %+v", c)
			}
		})
	}
}

// TestRealConfigDocumented: the block in docs/configuration.md is the
// preset's default.
func TestRealConfigDocumented(t *testing.T) {
	raw, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i := strings.Index(doc, "## Training a real model (`asearcher train")
	if i < 0 {
		t.Fatal("docs/configuration.md has no real-model training section")
	}
	doc = doc[i:]
	start := strings.Index(doc, "```yaml\n")
	end := strings.Index(doc[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no yaml block in the real-model training section")
	}
	c, err := DecodeTrainConfig([]byte(doc[start+8 : start+8+end]))
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultRealConfig("models/smollm2-135m"); !reflect.DeepEqual(c.Real, want) {
		t.Fatalf("documented config\n%+v\ndiffers from the default\n%+v", c.Real, want)
	}
}

func TestAnswerReward(t *testing.T) {
	task := agent.Task{Answers: []string{"Nicholas Lofton Hexum", "Nick Hexum"}}
	for _, tc := range []struct {
		metric, answer string
		answered       bool
		want           float64
	}{
		{"em", "Nick Hexum", true, 1},
		{"em", "Hexum", true, 0},
		{"f1", "Hexum", true, 2.0 / 3},
		{"f1", "Nick Hexum", false, 0}, // text without an <answer> scores nothing
		{"em", "", true, 0},
	} {
		got := answerReward(tc.metric, task, &agent.Trajectory{Answered: tc.answered, Answer: tc.answer})
		if d := got - tc.want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s(%q, answered %v) = %v, want %v", tc.metric, tc.answer, tc.answered, got, tc.want)
		}
	}
	if answerReward("f1", task, nil) != 0 {
		t.Error("a missing trajectory must score 0")
	}
}

// TestRealEvalResult: per-question means over k samples; a missing or
// foreign record is an error, not a silent zero.
func TestRealEvalResult(t *testing.T) {
	held := []dataset.Item{{ID: "a"}, {ID: "b"}}
	rec := func(id string, sample int, answered bool, em, f1 float64) eval.Record {
		return eval.Record{ID: id, Sample: sample, Answered: answered, Scores: reward.Scores{"em": em, "f1": f1}}
	}
	full := []eval.Record{rec("a", 0, true, 1, 1), rec("a", 1, true, 0, 0.5), rec("b", 0, false, 1, 1), rec("b", 1, true, 0, 0)}
	r, err := realEvalResult(held, 2, full)
	if err != nil {
		t.Fatal(err)
	}
	if r.EMs[0] != 0.5 || r.F1s[0] != 0.75 || r.EMs[1] != 0 || r.EM != 0.25 || r.AnsweredRate != 0.75 {
		t.Errorf("got %+v", r)
	}
	for name, recs := range map[string][]eval.Record{
		"missing": full[:3],
		"foreign": append(full[:3:3], rec("z", 1, true, 1, 1)),
		"repeat":  append(full[:3:3], full[0]),
	} {
		if _, err := realEvalResult(held, 2, recs); err == nil {
			t.Errorf("%s record accepted", name)
		}
	}
}
