package recipe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/asearcher/asearcher/rl"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/eval"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/internal/runlock"
	"github.com/asearcher/asearcher/launch"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/publish"
	"github.com/asearcher/asearcher/reward"
	"github.com/asearcher/asearcher/tokenizer"
	"github.com/asearcher/asearcher/tools"
	"github.com/asearcher/asearcher/trainer"
	"go.yaml.in/yaml/v3"
)

// ClusterFile is a `asearcher train --config` file that trains on real
// backends: the cluster: block says where everything is, the rl: block is
// the controller's rl.Config. Unknown fields are errors (docs/cluster.md).
type ClusterFile struct {
	Cluster *ClusterConfig `yaml:"cluster"`
	// Launch, when present, starts the servers it lists on this machine
	// and fills the cluster: block's URLs for them (RunLaunched).
	Launch *launch.Config `yaml:"launch,omitempty"`
	RL     rl.Config      `yaml:"rl"`
}

// ClusterConfig names the backends of a cluster run.
type ClusterConfig struct {
	// Data is the training questions: a built-in dataset name or a file
	// that package dataset loads (JSONL or JSON, with gold answers).
	Data string `yaml:"data"`
	// Search and Access are the tools, opened by tools.Open as in every
	// command: Search is a retrieval server http://host:port, addrdir:DIR
	// or serper; Access "" (auto) is the retrieval server's /access when
	// Search is one, else Jina with $JINA_API_KEY, else direct fetch.
	Search string `yaml:"search"`
	Access string `yaml:"access"`
	// Agent is a registered agent name (agent.NewRegistry); Prompt
	// optionally replaces its prompt by name.
	Agent  string `yaml:"agent"`
	Prompt string `yaml:"prompt"`
	// Tokenizer is the policy's tokenizer.json or model directory; token
	// mode is what makes trajectories trainable.
	Tokenizer string `yaml:"tokenizer"`
	// Sampler is the generation fleet: sglang:http://a,http://b (an SGLang
	// pool, native /generate), or "tinker" to sample through the trainer's
	// Tinker server.
	Sampler string `yaml:"sampler"`
	// Publisher is the short form of Publish.Kind, kept for older files:
	// "sglang" is tinker-path, "tinker" is tinker.
	Publisher string `yaml:"publisher"`
	// Publish says how each new version reaches the samplers.
	Publish ClusterPublish `yaml:"publish"`
	Trainer ClusterTrainer `yaml:"trainer"`
	// Reward is the training reward (package reward; its defaults are
	// ASearcher's: set F1, augmented answers, format gate, invalid-question
	// penalty).
	Reward reward.Config `yaml:"reward"`
	// ValidInstructionRatio is the share of questions whose prompt says the
	// question is valid and asks for the most likely answer (the rest may
	// answer "the question is invalid"); only those get the reward's
	// invalid-question penalty. ASearcher's default is 1, its web and
	// local recipes use 0.3.
	ValidInstructionRatio float64 `yaml:"valid_instruction_ratio"`
	// GroupBy names a field of the data's records (HotpotQA's type, a
	// hop count; dotted for nested objects): each step's metrics and
	// plots.html then show accuracy, turns and searches per value
	// (rl.GroupedDataset). A field no question has is an error.
	GroupBy string `yaml:"group_by"`
	// Temperature and TopP of rollout sampling.
	Temperature float64 `yaml:"temperature"`
	TopP        float64 `yaml:"top_p"`
	// Limits bound every trajectory (agent.Limits).
	Limits agent.Limits `yaml:"limits"`
	// HealthTimeoutS bounds each health check before the run starts.
	HealthTimeoutS float64 `yaml:"health_timeout_s"`
}

// ClusterPublish chooses the weight publisher (docs/cluster.md).
type ClusterPublish struct {
	// Kind is one of
	//   - tinker-path: update_weights_from_disk with the trainer's own path
	//     (tinker://…) inside pause/continue: servers that open such paths
	//     (asearcher serve model on the trainer's checkpoint directory);
	//   - sglang-lora: each version's LoRA adapter, fetched from the
	//     trainer and written under Dir, hot-loaded on every SGLang server
	//     as AdapterPrefix-vN; requests name their adapter (lora_path);
	//   - sglang-full: the adapter merged into Base, written under Dir and
	//     loaded with update_weights_from_disk inside pause/continue;
	//   - vllm-lora: as sglang-lora on vLLM servers (/v1/load_lora_adapter;
	//     requests name the adapter in model);
	//   - tinker: a new Tinker sampling session (sampler: tinker).
	// Empty: tinker with sampler: tinker, tinker-path with an SGLang fleet.
	Kind string `yaml:"kind"`
	// Dir is where adapters or merged models are written; every server
	// must read it under the same path (shared filesystem or one machine).
	Dir string `yaml:"dir"`
	// Base is the base model directory (HF), for sglang-full's merge and
	// to check adapters' shapes.
	Base string `yaml:"base"`
	// AdapterPrefix names the loaded adapters [policy].
	AdapterPrefix string `yaml:"adapter_prefix"`
	// MaxAdapters caps the adapters sglang-lora and vllm-lora keep loaded
	// on each server, the one being loaded included [rl.max_staleness + 2:
	// the current adapter, the next, and one per version a request may
	// still be running on]. Past it the requests pinning the oldest
	// adapter are aborted (SGLang; they continue on the current adapter)
	// or waited for (vLLM). Keep it at or under the servers' own limit
	// (--max-loaded-loras, vLLM --max-loras).
	MaxAdapters int `yaml:"max_adapters"`
}

// maxAdapters is MaxAdapters with its default for a run of staleness eta.
func (p ClusterPublish) maxAdapters(eta int) int {
	if p.MaxAdapters > 0 {
		return p.MaxAdapters
	}
	return eta + 2
}

// Publisher kinds.
const (
	PublishTinkerPath = "tinker-path"
	PublishSGLangLoRA = "sglang-lora"
	PublishSGLangFull = "sglang-full"
	PublishVLLMLoRA   = "vllm-lora"
	PublishTinker     = "tinker"
)

// ClusterTrainer is the Tinker-compatible training server (the Tinker
// service, SkyRL tx, or `asearcher serve model`). The API key comes from
// $TINKER_API_KEY, never from the file, so the run directory's copy of the
// config holds no secret.
type ClusterTrainer struct {
	BaseURL   string `yaml:"base_url"`
	BaseModel string `yaml:"base_model"`
	LoraRank  int    `yaml:"lora_rank"`
}

// DefaultClusterFile is a cluster file's defaults: the controller's
// rl.Config with a LoRA learning rate, ASearcher's reward, the asearcher
// agent at temperature 1.
func DefaultClusterFile() ClusterFile {
	f := ClusterFile{RL: rl.DefaultConfig()}
	// A Tinker trainer trains LoRA (rank 32 by default), and LoRA wants
	// about 10× the full fine-tuning learning rate (Tinker cookbook,
	// hyperparam_utils.get_lora_lr_over_full_finetune_lr: a fixed factor
	// of 10): ASearcher's 5e-6 becomes 5e-5. A trainer of full weights
	// wants rl.optim.lr: 5e-6 back.
	f.RL.Optim.LR = LoRALRFactor * f.RL.Optim.LR
	return f
}

// LoRALRFactor scales a full fine-tuning learning rate to LoRA's.
const LoRALRFactor = 10

// DefaultLoraRank is the LoRA rank a cluster run asks the trainer for.
const DefaultLoraRank = 32

func defaultClusterConfig() *ClusterConfig {
	return &ClusterConfig{Agent: agent.AgentASearcher, Reward: reward.DefaultConfig(), ValidInstructionRatio: 1, Temperature: 1, HealthTimeoutS: 10,
		Trainer: ClusterTrainer{LoraRank: DefaultLoraRank}}
}

// Validate names the first missing or wrong field.
func (f *ClusterFile) Validate() error {
	c := f.Cluster
	if c == nil {
		return errors.New("no cluster: block; see docs/cluster.md")
	}
	var l launch.Config
	if f.Launch != nil {
		if err := f.Launch.Validate(); err != nil {
			return err
		}
		l = *f.Launch
		for _, both := range []struct {
			launched bool
			set      string
			field    string
		}{{l.Search != nil, c.Search, "search"}, {l.Samplers != nil, c.Sampler, "sampler"}, {l.Trainer != nil, c.Trainer.BaseURL, "trainer.base_url"}} {
			if both.launched && strings.TrimSpace(both.set) != "" {
				return fmt.Errorf("cluster.%s is %q but launch: starts that server and fills it in: leave cluster.%s out", both.field, both.set, both.field)
			}
		}
		// Checked before anything starts: a launched fleet's protocol
		// must match the publisher.
		if l.Samplers != nil {
			vllmFleet, vllmPub := l.Samplers.Kind == launch.KindVLLM, c.Publish.Kind == PublishVLLMLoRA
			switch {
			case vllmFleet && !vllmPub:
				return errors.New("launch.samplers.kind is vllm: set cluster.publish.kind: vllm-lora (and publish.dir), the one publisher a vLLM fleet takes")
			case vllmPub && !vllmFleet:
				return errors.New("cluster.publish.kind vllm-lora needs a vLLM fleet: set launch.samplers.kind: vllm")
			}
		}
	}
	switch {
	case strings.TrimSpace(c.Data) == "":
		return errors.New("cluster.data is empty: name a built-in dataset or a JSONL file of questions with answers")
	case strings.TrimSpace(c.Search) == "" && l.Search == nil:
		return errors.New("cluster.search is empty: give the retrieval server (http://host:port), addrdir:DIR or serper")
	case strings.TrimSpace(c.Tokenizer) == "":
		return errors.New("cluster.tokenizer is empty: give the policy's tokenizer.json or model directory (training needs token mode)")
	case strings.TrimSpace(c.Sampler) == "" && l.Samplers == nil:
		return errors.New("cluster.sampler is empty: give sglang:http://host:port[,http://host2:port] or tinker")
	case c.Trainer.BaseURL == "" && l.Trainer == nil:
		return errors.New("cluster.trainer.base_url is empty: give the Tinker server's root URL")
	case c.Trainer.BaseModel == "":
		return errors.New("cluster.trainer.base_model is empty: give the model name the Tinker server trains")
	case c.Temperature < 0 || c.TopP < 0 || c.TopP > 1:
		return errors.New("cluster.temperature must be ≥ 0 and cluster.top_p from 0 to 1")
	case c.Temperature != 1:
		// Checked here so a run fails at once, not at its first step.
		return fmt.Errorf("cluster.temperature %g: the Tinker API computes training logprobs at temperature 1 only, so a loss against samples drawn at another temperature would be biased; set cluster.temperature: 1", c.Temperature)
	case c.Trainer.LoraRank < 0:
		return fmt.Errorf("cluster.trainer.lora_rank %d: want ≥ 1 (0 means %d)", c.Trainer.LoraRank, DefaultLoraRank)
	case c.ValidInstructionRatio < 0 || c.ValidInstructionRatio > 1:
		return errors.New("cluster.valid_instruction_ratio must be from 0 to 1")
	case c.HealthTimeoutS <= 0:
		return errors.New("cluster.health_timeout_s must be > 0")
	}
	pc := *c
	if l.Samplers != nil {
		// The launched fleet's spec, as withEndpoints will fill it in.
		pc.Sampler = (launch.Endpoints{Samplers: []string{"http://launched"}, SamplerKind: l.Samplers.Kind}).SamplerSpec()
	}
	if _, err := pc.publisher(); err != nil {
		return err
	}
	if err := c.Reward.Validate(); err != nil {
		return fmt.Errorf("cluster.reward: %w", err)
	}
	return f.RL.Validate()
}

// samplerKind is the fleet cluster.sampler names: tinker, sglang or vllm.
func (c *ClusterConfig) samplerKind() string {
	sp := strings.TrimSpace(c.Sampler)
	switch {
	case sp == "tinker":
		return "tinker"
	case strings.HasPrefix(sp, "vllm:"):
		return "vllm"
	}
	return "sglang"
}

// publisher resolves the publisher kind against Sampler.
func (c *ClusterConfig) publisher() (string, error) {
	kind := c.Publish.Kind
	switch c.Publisher {
	case "":
	case "sglang", "tinker":
		if kind != "" {
			return "", fmt.Errorf("cluster.publisher %q and cluster.publish.kind %q both set: keep publish.kind", c.Publisher, kind)
		}
		kind = map[string]string{"sglang": PublishTinkerPath, "tinker": PublishTinker}[c.Publisher]
	default:
		return "", fmt.Errorf("cluster.publisher %q: want sglang or tinker (or use publish.kind)", c.Publisher)
	}
	fleet := c.samplerKind()
	if kind == "" {
		switch fleet {
		case "tinker":
			kind = PublishTinker
		case "vllm":
			return "", errors.New("cluster.sampler is a vLLM fleet: set cluster.publish.kind: vllm-lora (and publish.dir)")
		default:
			kind = PublishTinkerPath
		}
	}
	wantFleet := map[string]string{PublishTinkerPath: "sglang", PublishSGLangLoRA: "sglang", PublishSGLangFull: "sglang",
		PublishVLLMLoRA: "vllm", PublishTinker: "tinker"}
	need, ok := wantFleet[kind]
	switch {
	case !ok:
		return "", fmt.Errorf("cluster.publish.kind %q: want tinker-path, sglang-lora, sglang-full, vllm-lora or tinker", kind)
	case need != fleet:
		forms := map[string]string{"sglang": "sglang:http://host:port[,…]", "vllm": "vllm:http://host:port/v1[,…]", "tinker": "tinker"}
		return "", fmt.Errorf("cluster.publish.kind %s needs cluster.sampler: %s, not %q", kind, forms[need], c.Sampler)
	case (kind == PublishSGLangLoRA || kind == PublishSGLangFull || kind == PublishVLLMLoRA) && strings.TrimSpace(c.Publish.Dir) == "":
		return "", fmt.Errorf("cluster.publish.dir is empty: %s writes each version there, where every server must read it", kind)
	case strings.ContainsAny(c.Publish.AdapterPrefix, "/ \\:"):
		return "", fmt.Errorf("cluster.publish.adapter_prefix %q: use letters, digits, '-' and '_'", c.Publish.AdapterPrefix)
	case c.Publish.MaxAdapters < 0 || c.Publish.MaxAdapters == 1:
		return "", fmt.Errorf("cluster.publish.max_adapters %d: want at least 2 (the current adapter and the next), or 0 for rl.max_staleness + 2", c.Publish.MaxAdapters)
	}
	return kind, nil
}

// DecodeClusterFile decodes a cluster file over the defaults and validates
// it.
func DecodeClusterFile(raw []byte) (ClusterFile, error) {
	f := DefaultClusterFile()
	// The cluster block's defaults apply only when the block is there;
	// a pointer field would otherwise decode over nil.
	probe, err := topKeys(raw)
	if err != nil {
		return f, err
	}
	if _, ok := probe["cluster"]; ok {
		f.Cluster = defaultClusterConfig()
	}
	if _, ok := probe["launch"]; ok {
		l := launch.DefaultConfig()
		f.Launch = &l
	}
	if err := rl.DecodeYAML(bytes.NewReader(raw), &f); err != nil {
		return f, err
	}
	return f, f.Validate()
}

// oneLine joins the lines of a YAML error ("unmarshal errors:\n  line 5:
// …\n  line 9: …") so a user sees one line.
func oneLine(err error) string {
	msg := strings.ReplaceAll(err.Error(), ":\n  ", ": ")
	return strings.ReplaceAll(msg, "\n  ", "; ")
}

// topKeys returns the top-level keys of a YAML document.
func topKeys(raw []byte) (map[string]any, error) {
	var top map[string]any
	if err := yaml.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	return top, nil
}

// ClusterOptions run RunCluster.
type ClusterOptions struct {
	File ClusterFile
	// Out is the run directory; with Resume, its config.yaml is used and
	// RL continues from its latest checkpoint.
	Out    string
	Resume bool
	// Repair lets a resume drop damaged log lines (backup kept).
	Repair   bool
	Progress ProgressMode
	Logger   *slog.Logger
	OnStep   func(*rl.StepRecord)
	// Endpoints are the URLs of the servers that the file's launch: block
	// started (RunLaunched sets them); they fill the cluster: block for
	// this run only, so config.yaml keeps the launch: block and a resume
	// launches anew on fresh ports.
	Endpoints *launch.Endpoints
	// lockHeld says the caller (RunLaunched, which locks the run
	// directory before it starts any server) holds RUN/train.lock.
	lockHeld bool
}

// Paths inside a cluster run directory.
const clusterDataFile = "data.json"

// RunCluster trains the configured agent on real backends: it checks every
// server's health, then runs the controller with the Tinker trainer, the
// SGLang pool or Tinker sampler, and the chosen publisher.
func RunCluster(ctx context.Context, o ClusterOptions) (*rl.Summary, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	file := o.File
	cfgPath := filepath.Join(o.Out, demoConfigFile)
	if o.Resume {
		f, err := LoadClusterFile(cfgPath)
		if err != nil {
			return nil, fmt.Errorf("resume %s: %w", o.Out, err)
		}
		file = f
	} else if err := file.Validate(); err != nil {
		return nil, err
	}
	c, err := withEndpoints(file, o.Endpoints)
	if err != nil {
		return nil, err
	}
	pubKind, _ := c.publisher()

	data, err := dataset.Load(c.Data, dataset.Options{})
	if err != nil {
		return nil, fmt.Errorf("cluster.data: %w", err)
	}
	if len(data.Items) == 0 {
		return nil, fmt.Errorf("cluster.data %s has no questions", c.Data)
	}
	var questions rl.Dataset = clusterQuestions(data.Items)
	if c.GroupBy != "" {
		if err := eval.CheckGroupFields([]string{c.GroupBy}, []*dataset.Set{data}); err != nil {
			return nil, fmt.Errorf("cluster.group_by: %w", err)
		}
		questions = groupedClusterQuestions{clusterQuestions(data.Items), c.GroupBy}
	}
	tok, err := tokenizer.Load(c.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("cluster.tokenizer: %w", err)
	}
	wf, err := agent.NewRegistry().New(c.Agent, agent.Options{Prompt: c.Prompt})
	if err != nil {
		return nil, fmt.Errorf("cluster.agent: %w", err)
	}
	env := agent.Env{Tokenizer: tok, Template: agent.TokenizerTemplate{Tok: tok}, StopTokenIDs: agent.DefaultStopTokenIDs(tok),
		Sampling: llm.Params{Temperature: c.Temperature, TopP: c.TopP}, Limits: c.Limits, Log: log}
	if err := clusterTools(ctx, c, &env, log); err != nil {
		return nil, err
	}

	timeout := time.Duration(c.HealthTimeoutS * float64(time.Second))
	tcfg := llm.TinkerConfig{BaseURL: c.Trainer.BaseURL, APIKey: os.Getenv("TINKER_API_KEY"), Logger: log}
	if err := probeServer(ctx, c.Trainer.BaseURL+"/api/v1/healthz", timeout); err != nil {
		return nil, fmt.Errorf("trainer %s does not answer (start it or fix cluster.trainer.base_url): %w", c.Trainer.BaseURL, err)
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	tr, err := trainer.NewTinker(hctx, trainer.TinkerOptions{TinkerConfig: tcfg, BaseModel: c.Trainer.BaseModel, LoraRank: c.Trainer.LoraRank})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("trainer %s is not usable (check cluster.trainer and TINKER_API_KEY): %w", c.Trainer.BaseURL, err)
	}
	defer tr.Close()
	defer func() {
		// The run's state lives in its saved weights; the training model
		// would otherwise hold trainer memory (and one of a server's
		// --max-models slots) until the trainer drops it, and a resume on
		// the same server could be refused. An interrupted run skips this:
		// a call it cancelled before sending leaves a seq_id gap that the
		// unload would wait behind.
		if ctx.Err() != nil {
			log.Warn("run interrupted: the training model stays loaded on the trainer until it is unloaded or restarted",
				"trainer", c.Trainer.BaseURL, "model", tr.ModelID())
			return
		}
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		if err := tr.Unload(uctx); err != nil {
			log.Warn("training model not unloaded", "trainer", c.Trainer.BaseURL, "model", tr.ModelID(), "err", err)
		}
	}()

	var sampler llm.Sampler
	var pub rl.Publisher
	var wrap func(llm.Sampler) llm.Sampler
	src := publish.Source{TinkerURL: c.Trainer.BaseURL, APIKey: tcfg.APIKey, Base: c.Publish.Base}
	switch pubKind {
	case PublishTinkerPath, PublishSGLangFull, PublishSGLangLoRA:
		pool, urls, err := sglangFleet(ctx, c.Sampler, timeout, log)
		if err != nil {
			return nil, err
		}
		defer pool.Close()
		sampler = pool
		disk := &rl.SGLangPublisher{Servers: urls, Client: bearerClient(llm.APIKeyFromEnv())}
		pub = disk
		switch pubKind {
		case PublishSGLangFull:
			pub = &publish.Full{Inner: disk, Dir: c.Publish.Dir, Fetch: src.Merged, Log: log}
		case PublishSGLangLoRA:
			lp := &publish.LoRA{Servers: urls, Dialect: publish.SGLang, Dir: c.Publish.Dir, Prefix: c.Publish.AdapterPrefix,
				MaxAdapters: c.Publish.maxAdapters(file.RL.MaxStaleness),
				Fetch:       src.Adapter, Client: bearerClient(llm.APIKeyFromEnv()), Log: log}
			defer lp.Close()
			sampler, pub = lp.Wrap(pool), lp
		}
		wrap = func(s llm.Sampler) llm.Sampler { return &llm.Resumer{Sampler: s, Logger: log} }
	case PublishVLLMLoRA:
		pool, urls, err := vllmFleet(ctx, c.Sampler, timeout, log)
		if err != nil {
			return nil, err
		}
		defer pool.Close()
		lp := &publish.LoRA{Servers: urls, Dialect: publish.VLLM, Dir: c.Publish.Dir, Prefix: c.Publish.AdapterPrefix,
			MaxAdapters: c.Publish.maxAdapters(file.RL.MaxStaleness),
			Fetch:       src.Adapter, Client: bearerClient(llm.APIKeyFromEnv()), Log: log}
		defer lp.Close()
		sampler, pub = lp.Wrap(pool), lp
	case PublishTinker:
		sm, err := llm.NewTinkerSampler(llm.TinkerSamplerConfig{TinkerConfig: tcfg, BaseModel: c.Trainer.BaseModel, Decode: tok.Decode})
		if err != nil {
			return nil, fmt.Errorf("tinker sampler: %w", err)
		}
		defer sm.Close()
		sampler = stopStringsOnly{sm}
		pub = rl.SwapPublisher{Load: func(ctx context.Context, path string, _ int) error { return sm.SetModelPath(ctx, path) }}
	}

	// Every server answered: only now does the run directory appear, so a
	// failed start leaves nothing that --resume would pick up.
	if err := startRunDir(o.Out, o.Resume, file, data); err != nil {
		return nil, err
	}
	if !o.lockHeld {
		unlock, err := runlock.Acquire(filepath.Join(o.Out, trainLockFile), "train")
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	bar := newDemoProgress(o.Progress, log, "RL", file.RL.Steps)
	rollout, err := rl.WithExplore(clusterRollout(wf, &env, c, data.Items), file.RL)
	if err != nil {
		return nil, err
	}
	ctl, err := rl.New(rl.Options{
		Config: file.RL, Dataset: questions, Rollout: rollout,
		Sampler: sampler, WrapSampler: wrap, Trainer: tr, Publisher: pub,
		RunDir: o.Out, Resume: o.Resume, Repair: o.Repair, Logger: log,
		OnStep: func(r *rl.StepRecord) {
			bar.Set(int64(r.Step+1), fmt.Sprintf("reward %.3f acc %.2f", r.RewardMean, r.Accuracy))
			if o.OnStep != nil {
				o.OnStep(r)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	log.Info("cluster RL", "data", data.Source, "questions", len(data.Items), "agent", c.Agent, "sampler", c.Sampler,
		"publisher", pubKind, "trainer", c.Trainer.BaseURL, "steps", file.RL.Steps, "resume", o.Resume)
	sum, err := ctl.Run(ctx)
	bar.Finish()
	if err != nil {
		return sum, fmt.Errorf("RL: %w (continue with --resume %s)", err, o.Out)
	}
	return sum, nil
}

// withEndpoints is the file's cluster: block with the URLs of the servers
// its launch: block started.
func withEndpoints(file ClusterFile, eps *launch.Endpoints) (*ClusterConfig, error) {
	if file.Launch == nil {
		return file.Cluster, nil
	}
	if eps == nil {
		return nil, errors.New("this config has a launch: block: run it with asearcher train --config, which starts its servers")
	}
	c := *file.Cluster
	if file.Launch.Search != nil {
		c.Search = eps.Search
	}
	if file.Launch.Samplers != nil {
		c.Sampler = eps.SamplerSpec()
	}
	if file.Launch.Trainer != nil {
		c.Trainer.BaseURL = eps.Trainer
	}
	return &c, nil
}

// startRunDir creates the run directory with its config and the data's
// identity, or, on resume, checks that the data has not changed (the data
// position in the checkpoint would point at other questions).
func startRunDir(dir string, resume bool, file ClusterFile, data *dataset.Set) error {
	type dataID struct {
		Source string `json:"source"`
		SHA256 string `json:"sha256"`
		Items  int    `json:"items"`
	}
	id := dataID{Source: data.Source, SHA256: data.SHA256, Items: len(data.Items)}
	idPath := filepath.Join(dir, clusterDataFile)
	if resume {
		var was dataID
		if err := readJSON(idPath, &was); err != nil {
			return fmt.Errorf("resume %s: %w", dir, err)
		}
		if was.SHA256 != id.SHA256 {
			return fmt.Errorf("resume %s: cluster.data %s changed since the run started (sha256 %.12s, now %.12s); start a new run", dir, data.Source, was.SHA256, id.SHA256)
		}
		return nil
	}
	cfgPath := filepath.Join(dir, demoConfigFile)
	if _, err := os.Stat(cfgPath); err == nil {
		return fmt.Errorf("%s already holds a run: pass --resume %s to continue it, or choose another --out", dir, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create run directory: %w", err)
	}
	b, err := rl.MarshalYAML(file)
	if err != nil {
		return err
	}
	if err := writeJSON(idPath, id); err != nil {
		return err
	}
	// The config goes last: its presence marks a run that --resume can continue.
	return atomicfile.WriteFile(cfgPath, b)
}

// probeServer checks that something answers HTTP at url within timeout;
// any status will do (a hosted server may want a key for this path), only
// a transport error means the server is down.
func probeServer(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// clusterTools opens the tools with the one opener every command uses
// (tools.Open: access "" is auto) and checks that a retrieval server
// answers before the fleet starts generating.
func clusterTools(ctx context.Context, c *ClusterConfig, env *agent.Env, log *slog.Logger) error {
	t, err := tools.Open(tools.Config{Search: c.Search, Access: c.Access}, log)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	env.Search, env.Browse = t.Search, t.Browse
	return agent.CheckEnv(ctx, env, agent.EnvConfig{Search: c.Search}, time.Duration(c.HealthTimeoutS*float64(time.Second)))
}

// sglangFleet builds the SGLang pool and checks every server's /health.
func sglangFleet(ctx context.Context, spec string, timeout time.Duration, log *slog.Logger) (*llm.Pool, []string, error) {
	// sglang:http://a,http://b means every server of the list.
	if rest, ok := strings.CutPrefix(strings.TrimSpace(spec), "sglang:"); ok {
		items := strings.Split(rest, ",")
		for i, it := range items {
			if it = strings.TrimSpace(it); !strings.Contains(strings.SplitN(it, "//", 2)[0], "sglang:") && strings.HasPrefix(it, "http") {
				items[i] = "sglang:" + it
			}
		}
		spec = strings.Join(items, ",")
	}
	eps, err := llm.ParseSpec(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster.sampler: %w", err)
	}
	var samplers []llm.Sampler
	var urls []string
	for _, ep := range eps {
		if ep.Kind != "sglang" {
			return nil, nil, fmt.Errorf("cluster.sampler %s: the fleet must be SGLang servers (sglang:http://host:port), whose weights publisher sglang updates", ep.BaseURL)
		}
		s, err := llm.NewSGLang(llm.SGLangConfig{BaseURL: ep.BaseURL, APIKey: llm.APIKeyFromEnv()})
		if err != nil {
			return nil, nil, fmt.Errorf("cluster.sampler: %w", err)
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err = s.Health(hctx)
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("SGLang server %s is not healthy (start it or fix cluster.sampler): %w", ep.BaseURL, err)
		}
		samplers = append(samplers, s)
		urls = append(urls, ep.BaseURL)
	}
	pool, err := llm.NewPool(samplers, llm.PoolConfig{Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("cluster.sampler: %w", err)
	}
	return pool, urls, nil
}

// vllmFleet builds a pool of vLLM servers (OpenAI API with vLLM's token
// extensions) and checks every server's /health.
func vllmFleet(ctx context.Context, spec string, timeout time.Duration, log *slog.Logger) (*llm.Pool, []string, error) {
	rest, _ := strings.CutPrefix(strings.TrimSpace(spec), "vllm:")
	var samplers []llm.Sampler
	var urls []string
	for _, u := range strings.Split(rest, ",") {
		u = strings.TrimRight(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(u), "vllm:")), "/")
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, nil, fmt.Errorf("cluster.sampler: %q is not an http(s) URL; give vllm:http://host:port/v1[,http://host2:port/v1]", u)
		}
		if !strings.HasSuffix(u, "/v1") {
			u += "/v1"
		}
		s, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: u, APIKey: llm.APIKeyFromEnv(), Dialect: llm.DialectExtended})
		if err != nil {
			return nil, nil, fmt.Errorf("cluster.sampler: %w", err)
		}
		root := strings.TrimSuffix(u, "/v1")
		if err := probeServer(ctx, root+"/health", timeout); err != nil {
			return nil, nil, fmt.Errorf("vLLM server %s is not healthy (start it or fix cluster.sampler): %w", root, err)
		}
		samplers = append(samplers, s)
		urls = append(urls, root)
	}
	pool, err := llm.NewPool(samplers, llm.PoolConfig{Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("cluster.sampler: %w", err)
	}
	return pool, urls, nil
}

// clusterQuestions is the training data as the controller's rl.Dataset.
type clusterQuestions []dataset.Item

func (q clusterQuestions) Len() int                     { return len(q) }
func (q clusterQuestions) Question(i int) (string, any) { return q[i].ID, q[i] }

// groupedClusterQuestions groups the training data by one field of its
// records (cluster.group_by), for the per-group step metrics.
type groupedClusterQuestions struct {
	clusterQuestions
	field string
}

func (q groupedClusterQuestions) GroupBy() string { return q.field }

// Group is the item's value of the field, eval.NoGroup without one, as
// eval's breakdowns name it.
func (q groupedClusterQuestions) Group(i int) string {
	if v, ok := eval.MetaValue(q.clusterQuestions[i].Meta, q.field); ok {
		return v
	}
	return eval.NoGroup
}

// clusterRollout runs the agent on a question and scores it with the
// configured reward over every generation of the trajectory.
func clusterRollout(wf agent.Workflow, env *agent.Env, c *ClusterConfig, items []dataset.Item) rl.Rollout {
	rc, ratio := c.Reward, c.ValidInstructionRatio
	aug := map[string][]string{}
	for _, it := range items {
		if len(it.AugAnswers) > 0 {
			aug[it.ID] = it.AugAnswers
		}
	}
	return rl.WorkflowRollout{
		Workflow: wf,
		Env: func(q rl.Question) (*agent.Env, agent.Task, error) {
			it, ok := q.Payload.(dataset.Item)
			if !ok {
				return nil, agent.Task{}, fmt.Errorf("payload %T is not a dataset item", q.Payload)
			}
			task := agent.Task{ID: it.ID, Question: it.Question, Answers: it.Answers,
				MayBeInvalid: !validInstruction(q.Index, ratio)}
			return env, task, nil
		},
		Reward: func(_ context.Context, task agent.Task, traj *agent.Trajectory) (float64, error) {
			s := reward.Sample{Golds: task.Answers, AugAnswers: aug[task.ID], ValidInstruction: !task.MayBeInvalid}
			for _, call := range traj.Calls {
				s.Generations = append(s.Generations, call.Text)
			}
			if traj.Answered {
				a := traj.Answer
				s.Answer = &a
			}
			return rc.Score(s).Score, nil
		},
	}
}

// validInstruction draws, from the question's stream index alone, whether
// its prompt is the valid-instruction one, so every sample of a group and
// a resumed run see the same prompt.
func validInstruction(index int64, ratio float64) bool {
	if ratio >= 1 {
		return true
	}
	// splitmix64 of the index: uniform in [0, 1).
	z := uint64(index) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11)/(1<<53) < ratio
}

// stopStringsOnly sends a Tinker sampler the agent's stop strings without
// its stop token ids: the Tinker API takes one kind or the other, and the
// agent itself cuts replies at its stop tokens (and strings) whatever the
// backend does, so dropping the ids costs at most a few wasted tokens.
type stopStringsOnly struct{ llm.Sampler }

// Unwrap lets llm.ContextLength see the Tinker server's context window.
func (s stopStringsOnly) Unwrap() llm.Sampler { return s.Sampler }

func (s stopStringsOnly) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if len(req.Params.Stop) > 0 && len(req.Params.StopTokenIDs) > 0 {
		r := *req
		r.Params.StopTokenIDs = nil
		req = &r
	}
	return s.Sampler.Sample(ctx, req)
}

// bearerClient is an HTTP client that sends key as SGLang's "Authorization:
// Bearer" header, so that weight updates reach servers started with
// --api-key as the samplers do; nil (the default client) without a key.
func bearerClient(key string) *http.Client {
	if key == "" {
		return nil
	}
	return &http.Client{Transport: bearerTransport{key: key, next: http.DefaultTransport}}
}

type bearerTransport struct {
	key  string
	next http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}
