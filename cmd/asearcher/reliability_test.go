package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/testindex"
)

// The reliability suite runs the asearcher command as a child process (the
// test binary re-executes itself into main, so the child is the real
// command with its signal handling and exit codes), kills it with SIGKILL
// at random moments, resumes it, and checks that no work was lost or done
// twice; then it damages every file each command keeps and checks that
// each is either repaired (a torn last record) or refused with an error
// naming the file and offset, with nothing changed, and that --repair then
// completes the run. docs/reliability.md has the outcome table.
//
//	go test -run Reliability ./cmd/asearcher          a few kill points (CI)
//	ASEARCHER_RELIABILITY=1 go test -run Reliability   more kill points
//	ASEARCHER_RELIABILITY_SEED=N                      replay one schedule

func TestMain(m *testing.M) {
	if os.Getenv("ASEARCHER_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// killRounds is how many kill -9 points each scenario gets.
func killRounds() int {
	if os.Getenv("ASEARCHER_RELIABILITY") == "1" {
		return 8
	}
	return 2
}

func reliabilityRNG(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ASEARCHER_RELIABILITY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("kill schedule seed %d (ASEARCHER_RELIABILITY_SEED=%d replays it)", seed, seed)
	return rand.New(rand.NewPCG(seed, 7))
}

// child is one asearcher process.
type child struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

// startCLI starts asearcher with args in the working directory dir.
func startCLI(t *testing.T, dir string, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], args...), done: make(chan error, 1)}
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), "ASEARCHER_RUN_MAIN=1")
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	return c
}

// execCLI runs asearcher to completion (at most two minutes).
func execCLI(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	c := startCLI(t, dir, args...)
	select {
	case err := <-c.done:
		return c.out.String(), err
	case <-time.After(2 * time.Minute):
		c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("asearcher %v did not finish in 2 minutes:\n%s", args, c.out.String())
		return "", nil
	}
}

// killDuring runs asearcher and kills it with SIGKILL after wait; it
// reports whether the kill happened (false: the run ended first, and must
// have succeeded).
func killDuring(t *testing.T, dir string, wait time.Duration, args ...string) bool {
	t.Helper()
	c := startCLI(t, dir, args...)
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("asearcher %v failed before its kill: %v\n%s", args, err, c.out.String())
		}
		return false
	case <-time.After(wait):
		c.cmd.Process.Kill()
		<-c.done
		return true
	}
}

// pathCases runs f with a relative and an absolute output path: base is a
// fresh working directory, out the path to pass.
func pathCases(t *testing.T, name string, f func(t *testing.T, base, out string)) {
	for _, abs := range []bool{false, true} {
		kind := "relative"
		if abs {
			kind = "absolute"
		}
		t.Run(kind, func(t *testing.T) {
			base := t.TempDir()
			out := filepath.Join("runs", name)
			if abs {
				out = filepath.Join(base, out)
			}
			f(t, base, out)
		})
	}
}

// inDir resolves a path given to a child that runs in base.
func inDir(base, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// ---- eval ----

func evalModel(t *testing.T, delay time.Duration) *fakellm.Server {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		return fakellm.Reply{Text: "<think>I know this</think>\n<answer> Hollywood </answer>", Delay: delay}
	}})
	t.Cleanup(srv.Close)
	return srv
}

const evalLimit, evalK = 8, 2

func evalArgs(model, out string, extra ...string) []string {
	return append([]string{"eval", "--data", "hotpotqa-hipporag-100", "--limit", strconv.Itoa(evalLimit), "--k", strconv.Itoa(evalK),
		"--agent", "search-r1", "--concurrency", "2", "--max-attempts", "1", "--model", model, "--out", out,
		"--no-progress", "--log-level", "warn"}, extra...)
}

// checkEvalRun: every (question, sample) has exactly one result and one
// readable trajectory.
func checkEvalRun(t *testing.T, dir string) {
	t.Helper()
	keys := map[string]int{}
	f, err := os.Open(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var r struct {
			Dataset, ID string
			Sample      int
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("results.jsonl holds a bad line: %v", err)
		}
		keys[fmt.Sprintf("%s/%s#%d", r.Dataset, r.ID, r.Sample)]++
	}
	if len(keys) != evalLimit*evalK {
		t.Errorf("%d samples with results, want %d (work lost)", len(keys), evalLimit*evalK)
	}
	for k, n := range keys {
		if n != 1 {
			t.Errorf("sample %s has %d results (work done twice)", k, n)
		}
	}
	trajs, err := agent.ReadFile(filepath.Join(dir, "trajectories.jsonl.zst"))
	if err != nil {
		t.Fatalf("trajectories: %v", err)
	}
	seen := map[string]bool{}
	for _, tr := range trajs {
		k := fmt.Sprintf("%v/%s#%d", tr.Extra["dataset"], tr.TaskID, tr.Sample)
		if seen[k] {
			t.Errorf("trajectory %s stored twice", k)
		}
		seen[k] = true
	}
	if len(seen) != len(keys) {
		t.Errorf("%d trajectories for %d results", len(seen), len(keys))
	}
}

// TestReliabilityEvalKill: eval killed at random points and rerun ends
// with every sample once.
func TestReliabilityEvalKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	model := evalModel(t, 120*time.Millisecond)
	rng := reliabilityRNG(t)
	pathCases(t, "eval", func(t *testing.T, base, out string) {
		kills := 0
		for range killRounds() {
			if killDuring(t, base, time.Duration(150+rng.IntN(900))*time.Millisecond, evalArgs(model.OpenAIURL(), out)...) {
				kills++
			}
		}
		if out, err := execCLI(t, base, evalArgs(model.OpenAIURL(), out)...); err != nil {
			t.Fatalf("final run: %v\n%s", err, out)
		}
		t.Logf("%d kills", kills)
		checkEvalRun(t, inDir(base, out))
	})
}

// ---- synth ----

func synthServer(t *testing.T, delay time.Duration) *fakellm.Server {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		r := synthModel(c)
		r.Delay = delay
		return r
	}})
	t.Cleanup(srv.Close)
	return srv
}

const synthSeeds = 6

func synthArgs(index, model, out string, extra ...string) []string {
	return append([]string{"synth", "--index", index, "--model", model, "--n", strconv.Itoa(synthSeeds), "--out", out,
		"--attempts", "2", "--max-turns", "2", "--concurrency", "2", "--no-progress", "--log-level", "warn"}, extra...)
}

// checkSynthRun: the journal names each seed once, every QA line is a
// whole record of a journaled seed, no record appears twice, and each
// journaled seed has as many records as it accepted.
func checkSynthRun(t *testing.T, out string) {
	t.Helper()
	journal, err := os.ReadFile(out + ".seeds.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	accepted := map[string]int{}
	for i, line := range strings.Split(strings.TrimSuffix(string(journal), "\n"), "\n") {
		var r struct {
			SeedID   string `json:"seed_id"`
			Accepted int    `json:"accepted"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("journal line %d: %v", i+1, err)
		}
		if _, dup := accepted[r.SeedID]; dup {
			t.Errorf("seed %s journaled twice", r.SeedID)
		}
		accepted[r.SeedID] = r.Accepted
	}
	if len(accepted) != synthSeeds {
		t.Errorf("%d seeds finished, want %d", len(accepted), synthSeeds)
	}
	qa, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	per := map[string]int{}
	for i, line := range strings.Split(strings.TrimSuffix(string(qa), "\n"), "\n") {
		if line == "" {
			continue
		}
		var r struct {
			ID     string `json:"id"`
			SeedID string `json:"seed_id"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("QA line %d is not valid JSON: %v", i+1, err)
		}
		if ids[r.ID] {
			t.Errorf("record %s written twice", r.ID)
		}
		ids[r.ID] = true
		per[r.SeedID]++
	}
	for s, n := range accepted {
		if per[s] != n {
			t.Errorf("seed %s: %d records, journal says %d", s, per[s], n)
		}
	}
}

// TestReliabilitySynthKill: synth killed at random points and rerun ends
// with every seed once and a valid output.
func TestReliabilitySynthKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	index := testindex.Dir(t)
	model := synthServer(t, 25*time.Millisecond)
	rng := reliabilityRNG(t)
	pathCases(t, "qa.jsonl", func(t *testing.T, base, out string) {
		if err := os.MkdirAll(filepath.Dir(inDir(base, out)), 0o755); err != nil {
			t.Fatal(err)
		}
		kills := 0
		for range killRounds() {
			if killDuring(t, base, time.Duration(150+rng.IntN(900))*time.Millisecond, synthArgs(index, model.OpenAIURL(), out)...) {
				kills++
			}
		}
		if o, err := execCLI(t, base, synthArgs(index, model.OpenAIURL(), out)...); err != nil {
			t.Fatalf("final run: %v\n%s", err, o)
		}
		t.Logf("%d kills", kills)
		checkSynthRun(t, inDir(base, out))
	})
}

// TestReliabilitySynthConcurrent: two synth runs on one --out. Before the
// lock both exited 0 and left interleaved, invalid lines; now the second
// is refused and the output stays valid.
func TestReliabilitySynthConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	index := testindex.Dir(t)
	// The model holds every reply until the second run has been tried, so
	// the first is certainly running (and holding its lock) meanwhile.
	hold := make(chan struct{})
	waiting := make(chan struct{}, 1)
	model := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		select {
		case waiting <- struct{}{}:
		default:
		}
		select {
		case <-hold:
		case <-time.After(time.Minute):
		}
		return synthModel(c)
	}})
	t.Cleanup(model.Close)
	base := t.TempDir()
	out := filepath.Join(base, "qa.jsonl")
	a := startCLI(t, base, synthArgs(index, model.OpenAIURL(), out)...)
	select {
	case <-waiting: // the first run is calling the model
	case err := <-a.done:
		t.Fatalf("first synth ended before calling the model: %v\n%s", err, a.out.String())
	}
	o, err := execCLI(t, base, synthArgs(index, model.OpenAIURL(), out)...)
	close(hold)
	if err == nil || !strings.Contains(o, "another synth is running") {
		t.Fatalf("second synth on the same --out: %v\n%s", err, o)
	}
	if err := <-a.done; err != nil {
		t.Fatalf("first synth: %v\n%s", err, a.out.String())
	}
	checkSynthRun(t, out)
}

// ---- train ----

// killTrainConfig is the CLI test's miniature demo with more RL steps, so
// kills land in every phase.
const killTrainConfig = `world: {people: 6, train_worlds: 2, eval_worlds: 1}
model: {vocab: 320}
agent: {max_turns: 2}
warmup: {steps: 12, batch_size: 4, worlds: 0}
eval: {samples: 1, bootstrap: 200, concurrency: 4}
rl: {steps: 6, batch_groups: 2, group_size: 2, filter_zero_variance: false, checkpoint_every: 1}
`

const killTrainSteps = 6

// checkTrainRun: the report counts every RL step and metrics.jsonl holds
// each step exactly once.
func checkTrainRun(t *testing.T, dir string) {
	t.Helper()
	var rep struct {
		Steps int `json:"rl_steps"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || json.Unmarshal(raw, &rep) != nil {
		t.Fatalf("report.json: %v", err)
	}
	if rep.Steps != killTrainSteps {
		t.Errorf("report counts %d RL steps, want %d", rep.Steps, killTrainSteps)
	}
	metrics, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	steps := map[int]int{}
	for i, line := range strings.Split(strings.TrimSuffix(string(metrics), "\n"), "\n") {
		var r struct {
			Step int `json:"step"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("metrics.jsonl line %d: %v", i+1, err)
		}
		steps[r.Step]++
	}
	for s := range killTrainSteps {
		if steps[s] != 1 {
			t.Errorf("step %d has %d metrics records, want 1", s, steps[s])
		}
	}
	if len(steps) != killTrainSteps {
		t.Errorf("metrics for %d steps, want %d", len(steps), killTrainSteps)
	}
}

// trainRunDir finds the run directory a default `asearcher train` made
// under base/runs (the one holding config.yaml), or "".
func trainRunDir(base string) string {
	dirs, _ := filepath.Glob(filepath.Join(base, "runs", "train-*", "config.yaml"))
	if len(dirs) == 0 {
		return ""
	}
	return filepath.Dir(dirs[len(dirs)-1])
}

// TestReliabilityTrainKill follows the README: `asearcher train` (default
// run directory, relative: runs/train-<time>), kill -9, `asearcher train
// --resume runs/train-<time>` — and the same with an absolute --out.
// Before the fix every relative resume failed with "load trainer state …
// no such file".
func TestReliabilityTrainKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	rng := reliabilityRNG(t)
	for _, abs := range []bool{false, true} {
		name := "relative_default_out"
		if abs {
			name = "absolute"
		}
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			if err := os.WriteFile(filepath.Join(base, "mini.yaml"), []byte(killTrainConfig), 0o644); err != nil {
				t.Fatal(err)
			}
			absOut := filepath.Join(base, "abs-run")
			// args starts the run, or resumes it once its directory
			// holds a config.
			args := func() []string {
				if abs {
					if _, err := os.Stat(filepath.Join(absOut, "config.yaml")); err == nil {
						return []string{"train", "--resume", absOut, "--no-progress", "--log-level", "warn"}
					}
					return []string{"train", "--preset", "quick", "--config", "mini.yaml", "--out", absOut, "--no-progress", "--log-level", "warn"}
				}
				if d := trainRunDir(base); d != "" {
					rel, _ := filepath.Rel(base, d)
					return []string{"train", "--resume", rel, "--no-progress", "--log-level", "warn"}
				}
				return []string{"train", "--preset", "quick", "--config", "mini.yaml", "--no-progress", "--log-level", "warn"}
			}
			// The first kill lands once RL has checkpointed, so a resume
			// from a checkpoint is always exercised; the others anywhere.
			first := startCLI(t, base, args()...)
			deadline := time.Now().Add(90 * time.Second)
			for {
				dir := absOut
				if !abs {
					dir = trainRunDir(base)
				}
				if dir != "" {
					if _, err := os.Stat(filepath.Join(dir, "checkpoints", "latest")); err == nil {
						break
					}
				}
				select {
				case err := <-first.done:
					t.Fatalf("train ended before its first checkpoint: %v\n%s", err, first.out.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("no checkpoint after 90 s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			first.cmd.Process.Kill()
			<-first.done
			kills := 1
			for range killRounds() - 1 {
				if killDuring(t, base, time.Duration(200+rng.IntN(1500))*time.Millisecond, args()...) {
					kills++
				}
			}
			a := args()
			if a[1] != "--resume" {
				t.Fatalf("no run directory to resume after %d kills", kills)
			}
			if o, err := execCLI(t, base, a...); err != nil {
				t.Fatalf("asearcher %v: %v\n%s", a, err, o)
			}
			t.Logf("%d kills, resumed with %v", kills, a)
			dir := absOut
			if !abs {
				dir = trainRunDir(base)
			}
			checkTrainRun(t, dir)
		})
	}
}

// ---- corruption of every file each command keeps ----

// copyTree copies the regular files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// damage kinds.
const (
	tornTail   = "torn last record"
	middleLine = "damaged middle record"
	garbage    = "garbage"
	missing    = "missing"
)

// applyDamage damages path: tornTail cuts its last 7 bytes, middleLine
// flips bytes in the middle record (the middle zstd frame of a .zst file,
// the first byte of the middle line otherwise), garbage replaces it,
// missing deletes it.
func applyDamage(t *testing.T, path, kind string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	switch kind {
	case tornTail:
		data = data[:len(data)-7]
	case middleLine:
		if strings.HasSuffix(path, ".zst") {
			var starts []int
			for i := 0; i+4 <= len(data); i++ {
				if bytes.Equal(data[i:i+4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
					starts = append(starts, i)
				}
			}
			m := len(starts) / 2
			mid := (starts[m] + starts[m+1]) / 2
			data[mid] ^= 0xff
			data[mid+1] ^= 0xff
		} else {
			lines := bytes.SplitAfter(data, []byte("\n"))
			lines[len(lines)/2][0] = '#'
			data = bytes.Join(lines, nil)
		}
	case garbage:
		data = []byte("garbage\n")
	case missing:
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// corruptCase is one damaged file and what must happen on resume.
type corruptCase struct {
	file, kind string
	// refused: the resume must fail naming the file (and "byte offset"
	// when offset is set) and leave the file as it was; repairable: then
	// --repair must complete the run.
	refused, offset, repairable bool
}

// runCorruptCases copies a finished run for every case, damages one file
// and resumes it with args(dir) (extra flags appended).
func runCorruptCases(t *testing.T, finished string, cases []corruptCase, args func(dir string, extra ...string) []string, check func(t *testing.T, dir string)) {
	for _, c := range cases {
		t.Run(c.file+"/"+c.kind, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "run")
			copyTree(t, finished, dir)
			target := filepath.Join(dir, c.file)
			applyDamage(t, target, c.kind)
			before, _ := os.ReadFile(target)
			out, err := execCLI(t, base, args(dir)...)
			if !c.refused {
				if err != nil {
					t.Fatalf("resume after a %s of %s: %v\n%s", c.kind, c.file, err, out)
				}
				check(t, dir)
				return
			}
			if err == nil {
				t.Fatalf("a %s of %s was accepted silently:\n%s", c.kind, c.file, out)
			}
			if !strings.Contains(out, filepath.Base(c.file)) || (c.offset && !strings.Contains(out, "byte offset")) {
				t.Errorf("the error does not name the file (and offset):\n%s", out)
			}
			if after, _ := os.ReadFile(target); !bytes.Equal(after, before) {
				t.Errorf("the refused resume changed %s", c.file)
			}
			if !c.repairable {
				return
			}
			if !strings.Contains(out, "--repair") {
				t.Errorf("the error does not offer --repair:\n%s", out)
			}
			if out, err := execCLI(t, base, args(dir, "--repair")...); err != nil {
				t.Fatalf("--repair: %v\n%s", err, out)
			}
			check(t, dir)
		})
	}
}

// TestReliabilityCorruption damages every file eval, synth and train keep
// in a finished run and resumes it.
func TestReliabilityCorruption(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	t.Run("eval", func(t *testing.T) {
		model := evalModel(t, 0)
		finished := filepath.Join(t.TempDir(), "run")
		if out, err := execCLI(t, ".", evalArgs(model.OpenAIURL(), finished)...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		runCorruptCases(t, finished, []corruptCase{
			{file: "results.jsonl", kind: tornTail},
			{file: "results.jsonl", kind: middleLine, refused: true, offset: true, repairable: true},
			{file: "trajectories.jsonl.zst", kind: tornTail},
			{file: "trajectories.jsonl.zst", kind: middleLine, refused: true, offset: true, repairable: true},
			{file: "run.json", kind: garbage, refused: true, repairable: true},
		}, func(dir string, extra ...string) []string { return evalArgs(model.OpenAIURL(), dir, extra...) }, checkEvalRun)
	})
	t.Run("synth", func(t *testing.T) {
		index := testindex.Dir(t)
		model := synthServer(t, 0)
		finishedDir := t.TempDir()
		if out, err := execCLI(t, finishedDir, synthArgs(index, model.OpenAIURL(), filepath.Join(finishedDir, "qa.jsonl"))...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		runCorruptCases(t, finishedDir, []corruptCase{
			{file: "qa.jsonl", kind: tornTail},
			{file: "qa.jsonl", kind: middleLine, refused: true, offset: true, repairable: true},
			{file: "qa.jsonl.seeds.jsonl", kind: tornTail},
			{file: "qa.jsonl.seeds.jsonl", kind: middleLine, refused: true, offset: true, repairable: true},
		}, func(dir string, extra ...string) []string {
			return synthArgs(index, model.OpenAIURL(), filepath.Join(dir, "qa.jsonl"), extra...)
		}, func(t *testing.T, dir string) { checkSynthRun(t, filepath.Join(dir, "qa.jsonl")) })
	})
	t.Run("train", func(t *testing.T) {
		base := t.TempDir()
		if err := os.WriteFile(filepath.Join(base, "mini.yaml"), []byte(killTrainConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		finished := filepath.Join(base, "run")
		if out, err := execCLI(t, base, "train", "--preset", "quick", "--config", "mini.yaml", "--out", finished, "--no-progress", "--log-level", "warn"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		last := fmt.Sprintf("checkpoints/step_%06d", killTrainSteps)
		metricsRepaired := func(t *testing.T, dir string) {
			// One step's record was dropped by --repair (its backup is
			// kept); training itself was not affected.
			raw, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
			if n := bytes.Count(raw, []byte("\n")); n != killTrainSteps && n != killTrainSteps-1 {
				t.Errorf("metrics.jsonl has %d lines", n)
			}
			if b, _ := filepath.Glob(filepath.Join(dir, "metrics.jsonl.bak-*")); len(b) == 0 {
				checkTrainRun(t, dir)
			}
		}
		trainArgs := func(dir string, extra ...string) []string {
			return append([]string{"train", "--resume", dir, "--no-progress", "--log-level", "warn"}, extra...)
		}
		runCorruptCases(t, finished, []corruptCase{
			{file: "metrics.jsonl", kind: middleLine, refused: true, offset: true, repairable: true},
			{file: "checkpoints/latest", kind: garbage, refused: true},
			{file: last + "/controller.json", kind: garbage, refused: true},
			{file: last + "/trainer/optimizer.safetensors", kind: missing, refused: true},
			{file: last + "/trainer/model.safetensors", kind: garbage, refused: true},
			{file: "config.yaml", kind: garbage, refused: true},
			// Derived files: recomputed (with a warning), nothing lost.
			{file: "eval_before.json", kind: garbage},
			{file: "warmup/warmup.json", kind: garbage},
		}, trainArgs, metricsRepaired)
	})
}
