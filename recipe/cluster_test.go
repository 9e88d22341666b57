package recipe

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/eval"
	"github.com/asearcher/asearcher/internal/testfleet"
	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/retrieval/server"
	"github.com/asearcher/asearcher/rl"
)

// clusterBackends are the servers a cluster.yaml points at: the Tinker
// trainer and a two-server SGLang fleet (engine/serve, sharing a
// checkpoint directory) and a retrieval server over a tiny corpus.
type clusterBackends struct {
	fleet     *testfleet.Fleet
	retrieval string
	data      string
}

func startClusterBackends(t *testing.T) *clusterBackends {
	t.Helper()
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.jsonl")
	var b strings.Builder
	for i, p := range []string{
		"Ada Lovelace was born in London and wrote the first program.",
		"Alan Turing worked at Bletchley Park during the war.",
		"Grace Hopper created the first compiler at Remington Rand.",
		"Edsger Dijkstra lived in Nuenen and wrote about structured programming.",
	} {
		fmt.Fprintf(&b, `{"id":"%d","contents":%q}`+"\n", i, p)
	}
	if err := os.WriteFile(corpus, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ixDir := filepath.Join(dir, "index")
	if _, err := retrieval.Build(context.Background(), retrieval.BuildOptions{Corpus: corpus, Out: ixDir,
		Progress: retrieval.ProgressOff, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	ix, err := retrieval.Open(ixDir, retrieval.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	srv, err := server.New(ix, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	data := filepath.Join(dir, "train.jsonl")
	rows := `{"id":"a","question":"Where was Ada Lovelace born?","answers":["London"]}
{"id":"b","question":"Where did Alan Turing work?","answers":["Bletchley Park"]}
{"id":"c","question":"Who created the first compiler?","answers":["Grace Hopper"]}
{"id":"d","question":"Where did Dijkstra live?","answers":["Nuenen"]}
`
	if err := os.WriteFile(data, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	return &clusterBackends{fleet: testfleet.Start(t, 2, 0), retrieval: hs.URL, data: data}
}

// yaml renders a cluster.yaml for these backends; edit replaces lines.
func (cb *clusterBackends) yaml(edit ...string) string {
	y := fmt.Sprintf(`cluster:
  data: %s
  search: %s
  agent: tiny
  tokenizer: %s
  sampler: sglang:%s
  publisher: sglang
  trainer:
    base_url: %s
    base_model: tiny
  reward:
    metric: em
  temperature: 1
  limits:
    max_turns: 2
    max_call_tokens: 8
    min_call_tokens: 4
    max_context_tokens: 2048
  health_timeout_s: 5
rl:
  steps: 2
  batch_groups: 2
  group_size: 2
  max_staleness: 1
  filter_zero_variance: false
  sample_retries: 1
  advantage:
    global_norm: false
  optim:
    lr: 1.0e-2
  checkpoint_every: 1
  dump_samples: 1
  drain_grace_ms: 5
  drain_timeout_ms: 2000
`, cb.data, cb.retrieval, cb.fleet.ModelDir, strings.Join(cb.fleet.URLs, ","), cb.fleet.TrainerURL)
	for i := 0; i+1 < len(edit); i += 2 {
		y = strings.Replace(y, edit[i], edit[i+1], 1)
	}
	return y
}

func writeClusterYAML(t *testing.T, y string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunClusterEndToEnd: a cluster.yaml with a Tinker trainer, an SGLang
// fleet of two and a retrieval server runs the real agent for two steps.
// The run is cut after its first step, as a kill would; --resume finishes
// it from the checkpoint. Every step lands in metrics.jsonl and the
// fleet serves the final version.
func TestRunClusterEndToEnd(t *testing.T) {
	cb := startClusterBackends(t)
	path := writeClusterYAML(t, cb.yaml())
	if tc, err := LoadTrainConfig(path); err != nil || tc.Mode != ModeCluster {
		t.Fatalf("LoadTrainConfig mode = %q, %v; want cluster", tc.Mode, err)
	}
	file, err := LoadClusterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	first, stop := context.WithCancel(ctx)
	defer stop()
	_, err = RunCluster(first, ClusterOptions{File: file, Out: out, Progress: ProgressOff, Logger: testLogger(t),
		OnStep: func(r *rl.StepRecord) {
			if r.Step == 0 {
				stop()
			}
		}})
	if err == nil || !strings.Contains(err.Error(), "--resume "+out) {
		t.Fatalf("interrupted run: %v, want an error that says --resume %s", err, out)
	}
	// A second start in the same directory is refused.
	if _, err := RunCluster(ctx, ClusterOptions{File: file, Out: out, Progress: ProgressOff, Logger: testLogger(t)}); err == nil ||
		!strings.Contains(err.Error(), "already holds a run") {
		t.Fatalf("second start: %v", err)
	}

	sum, err := RunCluster(ctx, ClusterOptions{Out: out, Resume: true, Progress: ProgressOff, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if sum.ResumedAt != 1 || sum.Version != 2 {
		t.Fatalf("resumed at %d, ended at v%d; want 1 and 2", sum.ResumedAt, sum.Version)
	}
	for i, s := range cb.fleet.Servers {
		if s.Version() != 2 {
			t.Errorf("fleet server %d serves v%d after 2 steps", i, s.Version())
		}
	}
	// The refused and the resumed run unloaded their training models (the
	// cut one leaves its own, see RunCluster): 3 of the trainer's 4 slots
	// are free.
	for range 3 {
		cb.fleet.NewTrainer(t)
	}
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []int
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r rl.StepRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("metrics.jsonl: %v", err)
		}
		if r.Finished == 0 || r.GenTokens == 0 || r.Train == nil || r.Train.TrainTokens == 0 {
			t.Errorf("step %d: %d trajectories, %d generated tokens, train stats %+v", r.Step, r.Finished, r.GenTokens, r.Train)
		}
		steps = append(steps, r.Step)
	}
	if fmt.Sprint(steps) != "[0 1]" {
		t.Fatalf("metrics.jsonl has steps %v, want [0 1]", steps)
	}
}

// TestRunClusterTinkerSampling: the all-Tinker topology from the same
// file, with sampler: tinker and the tinker publisher, runs its steps.
func TestRunClusterTinkerSampling(t *testing.T) {
	cb := startClusterBackends(t)
	y := cb.yaml("  sampler: sglang:"+strings.Join(cb.fleet.URLs, ","), "  sampler: tinker", "  publisher: sglang\n", "")
	file, err := LoadClusterFile(writeClusterYAML(t, y))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := RunCluster(ctx, ClusterOptions{File: file, Out: t.TempDir(), Progress: ProgressOff, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Version != 2 || len(sum.Records) != 2 {
		t.Fatalf("v%d with %d records after 2 steps", sum.Version, len(sum.Records))
	}
	// The SGLang fleet was not part of this run.
	for i, s := range cb.fleet.Servers {
		if s.Version() != 0 {
			t.Errorf("fleet server %d moved to v%d", i, s.Version())
		}
	}
}

// TestRunClusterGroupBy: with group_by, every step record splits the
// step's rollouts by that field of the data's records (questions without
// it in eval's NoGroup); a field no question has stops the run before it
// starts.
func TestRunClusterGroupBy(t *testing.T) {
	cb := startClusterBackends(t)
	typed := filepath.Join(t.TempDir(), "typed.jsonl")
	rows := `{"id":"a","question":"Where was Ada Lovelace born?","answers":["London"],"type":"bridge"}
{"id":"b","question":"Where did Alan Turing work?","answers":["Bletchley Park"],"type":"bridge"}
{"id":"c","question":"Who created the first compiler?","answers":["Grace Hopper"],"type":"comparison"}
{"id":"d","question":"Where did Dijkstra live?","answers":["Nuenen"]}
`
	if err := os.WriteFile(typed, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := filepath.Join(t.TempDir(), "run")
	file, err := LoadClusterFile(writeClusterYAML(t, cb.yaml(cb.data, typed, "  temperature: 1\n", "  temperature: 1\n  group_by: type\n")))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := RunCluster(ctx, ClusterOptions{File: file, Out: out, Progress: ProgressOff, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := rl.ReadStepRecords(filepath.Join(out, "metrics.jsonl"))
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d records: %v", len(recs), err)
	}
	finished, grouped := 0, 0
	for _, r := range recs {
		if r.GroupBy != "type" {
			t.Errorf("step %d: group_by %q", r.Step, r.GroupBy)
		}
		finished += r.Finished
		for g, st := range r.ByGroup {
			if g != "bridge" && g != "comparison" && g != eval.NoGroup {
				t.Errorf("step %d: group %q", r.Step, g)
			}
			grouped += st.Trajectories
		}
	}
	if finished == 0 || grouped != finished || sum.Version != 2 {
		t.Errorf("by_group counts %d trajectories of %d (v%d)", grouped, finished, sum.Version)
	}

	file, err = LoadClusterFile(writeClusterYAML(t, cb.yaml(cb.data, typed, "  temperature: 1\n", "  temperature: 1\n  group_by: hops\n")))
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "run")
	if _, err := RunCluster(ctx, ClusterOptions{File: file, Out: bad, Progress: ProgressOff, Logger: testLogger(t)}); err == nil ||
		!strings.Contains(err.Error(), "cluster.group_by") || !strings.Contains(err.Error(), "fields present: type") {
		t.Fatalf("group_by hops: %v", err)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused start left %s behind", bad)
	}
}

// TestRunClusterSGLangFull: with publish.kind sglang-full, every version
// goes from the Tinker trainer's checkpoint archive (the /archive route,
// not the shared checkpoint directory) to a model directory under
// publish.dir that the fleet loads with update_weights_from_disk; the
// previous version's directory is deleted once the new one is served.
func TestRunClusterSGLangFull(t *testing.T) {
	cb := startClusterBackends(t)
	dir := filepath.Join(t.TempDir(), "published")
	y := cb.yaml("  publisher: sglang\n", "  publish:\n    kind: sglang-full\n    dir: "+dir+"\n    base: "+cb.fleet.ModelDir+"\n")
	file, err := LoadClusterFile(writeClusterYAML(t, y))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := RunCluster(ctx, ClusterOptions{File: file, Out: t.TempDir(), Progress: ProgressOff, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Version != 2 {
		t.Fatalf("ended at v%d, want 2", sum.Version)
	}
	for i, s := range cb.fleet.Servers {
		if s.Version() != 2 {
			t.Errorf("fleet server %d serves v%d after 2 steps", i, s.Version())
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[v000002]" {
		t.Errorf("publish.dir holds %v, want only the served version [v000002]", names)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(dir, "v000002", f)); err != nil {
			t.Errorf("published model directory: %v", err)
		}
	}
}

// TestRunClusterLoRA: the LoRA path end to end on CPU. The Tinker
// trainer (serve model) trains a LoRA adapter; each version's sampler
// checkpoint is downloaded through the archive route, written under
// publish.dir and hot-loaded on the SGLang fleet (serve model's
// /load_lora_adapter) as policy-vN; requests name their adapter and the
// old adapter is unloaded. After 2 steps the fleet holds policy-v2 only,
// its base weights never changed, and publish.dir holds policy-v2 only.
//
// With publish.kind vllm-lora the same fleet is driven through its vLLM
// face: /v1/completions with the adapter in model, /v1/load_lora_adapter.
func TestRunClusterLoRA(t *testing.T) {
	for _, kind := range []string{PublishSGLangLoRA, PublishVLLMLoRA} {
		t.Run(kind, func(t *testing.T) { runClusterLoRA(t, kind) })
	}
}

func runClusterLoRA(t *testing.T, kind string) {
	cb := startClusterBackends(t)
	dir := filepath.Join(t.TempDir(), "adapters")
	edits := []string{"  publisher: sglang\n", "  publish:\n    kind: " + kind + "\n    dir: " + dir + "\n    base: " + cb.fleet.ModelDir + "\n"}
	if kind == PublishVLLMLoRA {
		edits = append(edits, "  sampler: sglang:"+strings.Join(cb.fleet.URLs, ","), "  sampler: vllm:"+strings.Join(cb.fleet.URLs, "/v1,")+"/v1")
	}
	y := cb.yaml(edits...)
	file, err := LoadClusterFile(writeClusterYAML(t, y))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var minVersions []int
	sum, err := RunCluster(ctx, ClusterOptions{File: file, Out: t.TempDir(), Progress: ProgressOff, Logger: testLogger(t),
		OnStep: func(r *rl.StepRecord) { minVersions = append(minVersions, r.Step) }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Version != 2 || len(minVersions) != 2 {
		t.Fatalf("ended at v%d after %d steps, want v2 after 2", sum.Version, len(minVersions))
	}
	for i, u := range cb.fleet.URLs {
		if v := cb.fleet.Servers[i].Version(); v != 0 {
			t.Errorf("fleet server %d: base weights moved to v%d; LoRA publishing must leave them", i, v)
		}
		resp, err := http.Get(u + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		var models struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&models)
		resp.Body.Close()
		var ids []string
		for _, m := range models.Data {
			ids = append(ids, m.ID)
		}
		if !slices.Contains(ids, "policy-v2") || slices.Contains(ids, "policy-v1") {
			t.Errorf("fleet server %d lists %v; want policy-v2 loaded and policy-v1 unloaded", i, ids)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[policy-v2]" {
		t.Errorf("publish.dir holds %v, want [policy-v2]", names)
	}
}

// TestValidInstruction: the share of valid-instruction prompts follows
// the ratio (it is a pure function of the question's index, so a group
// and a resumed run see the same prompt).
func TestValidInstruction(t *testing.T) {
	for _, ratio := range []float64{0, 0.3, 1} {
		n := 0
		for i := range int64(20000) {
			if validInstruction(i, ratio) {
				n++
			}
		}
		if got := float64(n) / 20000; got < ratio-0.02 || got > ratio+0.02 {
			t.Errorf("ratio %g: %.3f of prompts valid", ratio, got)
		}
	}
}

// TestRunClusterErrors: a wrong config or a dead server stops the run
// before anything starts, with one line that names what to fix, and
// leaves no run directory behind.
func TestRunClusterErrors(t *testing.T) {
	cb := startClusterBackends(t)
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	cases := []struct {
		name string
		edit []string
		want string
	}{
		{"unknown field", []string{"  agent: tiny\n", "  agent: tiny\n  agnet: x\n"}, "field agnet not found"},
		{"unknown rl field", []string{"  steps: 2\n", "  steps: 2\n  stpes: 3\n"}, "field stpes not found"},
		{"no data", []string{"  data: " + cb.data + "\n", ""}, "cluster.data is empty"},
		{"no search", []string{"  search: " + cb.retrieval + "\n", ""}, "cluster.search is empty"},
		{"no tokenizer", []string{"  tokenizer: " + cb.fleet.ModelDir + "\n", ""}, "cluster.tokenizer is empty"},
		{"no sampler", []string{"  sampler: sglang:", "  sampler_was: "}, "field sampler_was not found"},
		{"no trainer", []string{"    base_url: " + cb.fleet.TrainerURL + "\n", ""}, "cluster.trainer.base_url is empty"},
		{"no base model", []string{"    base_model: tiny\n", ""}, "cluster.trainer.base_model is empty"},
		{"publisher mismatch", []string{"  publisher: sglang\n", "  publisher: tinker\n"}, "cluster.publish.kind tinker needs cluster.sampler: tinker"},
		{"publisher and publish.kind", []string{"  publisher: sglang\n", "  publisher: sglang\n  publish:\n    kind: sglang-lora\n    dir: /tmp/x\n"}, "both set"},
		{"publish kind unknown", []string{"  publisher: sglang\n", "  publish:\n    kind: nccl\n"}, `cluster.publish.kind "nccl"`},
		{"publish field unknown", []string{"  publisher: sglang\n", "  publish:\n    kind: sglang-lora\n    dirr: /tmp/x\n"}, "field dirr not found"},
		{"lora publish without dir", []string{"  publisher: sglang\n", "  publish:\n    kind: sglang-lora\n"}, "cluster.publish.dir is empty"},
		{"vllm publish on sglang fleet", []string{"  publisher: sglang\n", "  publish:\n    kind: vllm-lora\n    dir: /tmp/x\n"}, "needs cluster.sampler: vllm:"},
		{"vllm fleet without publish kind", []string{"  sampler: sglang:", "  sampler: vllm:", "  publisher: sglang\n", ""}, "set cluster.publish.kind: vllm-lora"},
		{"bad adapter prefix", []string{"  publisher: sglang\n", "  publish:\n    kind: sglang-lora\n    dir: /tmp/x\n    adapter_prefix: a/b\n"}, "adapter_prefix"},
		{"dead vllm server", []string{"  sampler: sglang:" + strings.Join(cb.fleet.URLs, ","), "  sampler: vllm:" + deadURL + "/v1", "  publisher: sglang\n", "  publish:\n    kind: vllm-lora\n    dir: /tmp/x\n"}, "vLLM server " + deadURL + " is not healthy"},
		{"bad publisher", []string{"  publisher: sglang\n", "  publisher: nccl\n"}, `cluster.publisher "nccl"`},
		{"bad ratio", []string{"  temperature: 1\n", "  temperature: 1\n  valid_instruction_ratio: 2\n"}, "valid_instruction_ratio"},
		{"temperature the trainer cannot train at", []string{"  temperature: 1\n", "  temperature: 0.7\n"}, "set cluster.temperature: 1"},
		{"bad lora rank", []string{"    base_model: tiny\n", "    base_model: tiny\n    lora_rank: -1\n"}, "cluster.trainer.lora_rank"},
		{"bad missing_logprobs", []string{"  group_size: 2\n", "  group_size: 2\n  loss:\n    missing_logprobs: zero\n"}, "missing_logprobs"},
		{"bad reward", []string{"    metric: em\n", "    metric: bleu\n"}, `reward metric "bleu"`},
		{"bad rl", []string{"  group_size: 2\n", "  group_size: 0\n"}, "group_size"},
		{"missing data file", []string{cb.data, cb.data + ".missing"}, "cluster.data"},
		{"unknown agent", []string{"  agent: tiny\n", "  agent: nobody\n"}, `unknown agent "nobody"`},
		{"bad tokenizer", []string{"  tokenizer: " + cb.fleet.ModelDir, "  tokenizer: " + cb.data}, "cluster.tokenizer"},
		{"not sglang", []string{"  sampler: sglang:" + strings.Join(cb.fleet.URLs, ","), "  sampler: http://127.0.0.1:1/v1"}, "must be SGLang servers"},
		{"dead retrieval", []string{"  search: " + cb.retrieval, "  search: " + deadURL}, "retrieval server " + deadURL + " does not answer"},
		{"dead trainer", []string{"    base_url: " + cb.fleet.TrainerURL, "    base_url: " + deadURL}, "trainer " + deadURL + " does not answer"},
		{"dead fleet server", []string{"  sampler: sglang:", "  sampler: sglang:" + deadURL + ","}, "SGLang server " + deadURL + " is not healthy"},
		{"wrong base model", []string{"    base_model: tiny\n", "    base_model: huge\n"}, "is not usable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.edit) > 0 && !strings.Contains(cb.yaml(), tc.edit[0]) {
				t.Fatalf("edit %q matches nothing", tc.edit[0])
			}
			path := writeClusterYAML(t, cb.yaml(tc.edit...))
			out := filepath.Join(t.TempDir(), "run")
			file, err := LoadClusterFile(path)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, err = RunCluster(ctx, ClusterOptions{File: file, Out: out, Progress: ProgressOff, Logger: testLogger(t)})
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("a failed start left %s behind", out)
			}
		})
	}
}

// TestClusterDocYAML: the cluster.yaml in docs/cluster.md decodes strictly
// and validates, so the documented file is one `asearcher train --config`
// accepts.
func TestClusterDocYAML(t *testing.T) {
	raw, err := os.ReadFile("../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "```yaml\ncluster:\n")
	if !ok {
		t.Fatal("docs/cluster.md has no ```yaml block starting with cluster:")
	}
	block, _, _ = strings.Cut(block, "```")
	f, err := DecodeClusterFile([]byte("cluster:\n" + block))
	if err != nil {
		t.Fatalf("docs/cluster.md cluster.yaml: %v", err)
	}
	if f.Cluster.Sampler == "" || f.Cluster.Trainer.BaseModel == "" || f.RL.Steps == 0 {
		t.Errorf("decoded %+v: not the documented values", f.Cluster)
	}
}

// TestBearerClient: with a key, weight-update calls carry SGLang's bearer
// header; without one, the default client is used.
func TestBearerClient(t *testing.T) {
	got := make(chan string, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("Authorization") }))
	defer hs.Close()
	if bearerClient("") != nil {
		t.Fatal("a client without a key")
	}
	resp, err := bearerClient("s3cret").Get(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := <-got; h != "Bearer s3cret" {
		t.Fatalf("Authorization %q", h)
	}
}

// A cluster run trains LoRA on a Tinker trainer: its default learning rate
// is the full fine-tuning one scaled by Tinker's LoRA factor, and an
// explicit rl.optim.lr still wins.
func TestClusterLoRADefaults(t *testing.T) {
	base := "cluster:\n  data: d\n  search: http://s\n  tokenizer: t\n  sampler: tinker\n  trainer:\n    base_url: http://t\n    base_model: m\n"
	f, err := DecodeClusterFile([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if f.RL.Optim.LR != 5e-5 || f.Cluster.Trainer.LoraRank != 32 {
		t.Fatalf("lr %g rank %d, want 5e-5 and 32", f.RL.Optim.LR, f.Cluster.Trainer.LoraRank)
	}
	if rl.DefaultConfig().Optim.LR != 5e-6 {
		t.Fatalf("the library default lr moved: %g", rl.DefaultConfig().Optim.LR)
	}
	f, err = DecodeClusterFile([]byte(base + "rl:\n  optim:\n    lr: 1.0e-6\n"))
	if err != nil || f.RL.Optim.LR != 1e-6 {
		t.Fatalf("explicit lr: %v, %g", err, f.RL.Optim.LR)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
