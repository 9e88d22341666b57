package eval

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/asearcher/asearcher/agent"
)

// Config is one evaluation run: what `asearcher eval` reads from --config
// (the eval: block) and its flags.
type Config struct {
	// Data are built-in dataset names or dataset files.
	Data []string `yaml:"data" json:"data"`
	// Out is the run directory (results, trajectories, reports).
	Out string `yaml:"out" json:"out"`
	// K samples per question (Avg@k, Pass@k).
	K int `yaml:"k" json:"k"`
	// Limit evaluates the first Limit questions of each dataset (0: all).
	Limit int `yaml:"limit" json:"limit"`
	// TextOnly skips questions that come with an attachment (GAIA's
	// file_name): ASearcher and WebThinker report GAIA on its 103
	// text-only validation questions. Applied before Limit.
	TextOnly bool `yaml:"text_only" json:"text_only"`

	Model     string `yaml:"model" json:"model"`
	ModelName string `yaml:"model_name" json:"model_name"`
	Tokenizer string `yaml:"tokenizer" json:"tokenizer"`
	Search    string `yaml:"search" json:"search"`
	Access    string `yaml:"access" json:"access"`
	// AllowPrivateFetch lets direct page fetch reach private addresses.
	AllowPrivateFetch bool   `yaml:"allow_private_fetch" json:"allow_private_fetch"`
	ToolCache         string `yaml:"tool_cache" json:"tool_cache"`
	ToolCacheMode     string `yaml:"tool_cache_mode" json:"tool_cache_mode"`

	Agent  string `yaml:"agent" json:"agent"`
	Prompt string `yaml:"prompt" json:"prompt"`

	Temperature float64 `yaml:"temperature" json:"temperature"`
	TopP        float64 `yaml:"top_p" json:"top_p"`
	TopK        int     `yaml:"top_k" json:"top_k"`
	// Seed is the base seed; sample s of a question runs with a seed
	// derived from Seed, the dataset, the question id and s.
	Seed int64 `yaml:"seed" json:"seed"`

	Limits agent.Limits `yaml:"limits" json:"limits"`

	// Judge is the judge model server spec ("" for none) and JudgeModel
	// its model name.
	Judge       string `yaml:"judge" json:"judge"`
	JudgeModel  string `yaml:"judge_model" json:"judge_model"`
	JudgeTries  int    `yaml:"judge_max_attempts" json:"judge_max_attempts"`
	JudgeTokens int    `yaml:"judge_max_tokens" json:"judge_max_tokens"`
	// JudgeStyle is "" (our judge) or "asearcher" (ASearcher's MBE), and
	// JudgePromptFile a judge prompt template (reward.JudgeConfig).
	JudgeStyle      string `yaml:"judge_style" json:"judge_style"`
	JudgePromptFile string `yaml:"judge_prompt_file" json:"judge_prompt_file"`
	// JudgeTemperature samples the judge's first attempt (0: greedy;
	// ASearcher's MBE used 0.6).
	JudgeTemperature float64 `yaml:"judge_temperature" json:"judge_temperature"`

	// Concurrency is the number of agents in flight; MaxLLMInFlight,
	// MaxSearchInFlight and MaxAccessInFlight cap concurrent model and
	// tool calls over all of them (0: same as Concurrency).
	Concurrency       int `yaml:"concurrency" json:"concurrency"`
	MaxLLMInFlight    int `yaml:"max_llm_inflight" json:"max_llm_inflight"`
	MaxSearchInFlight int `yaml:"max_search_inflight" json:"max_search_inflight"`
	MaxAccessInFlight int `yaml:"max_access_inflight" json:"max_access_inflight"`
	// MaxAttempts retries a sample whose agent run failed on a model error
	// (a dead or overloaded server) before recording it as an error.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`

	// NoTrajectories skips trajectories.jsonl.zst.
	NoTrajectories bool `yaml:"no_trajectories" json:"no_trajectories"`
	// Bootstrap resamples for confidence intervals (0: 1000).
	Bootstrap int `yaml:"bootstrap" json:"bootstrap"`
	// GroupBy splits the report by these fields of the data set's records
	// (HotpotQA's type or level, a synthetic set's hops; dotted for nested
	// objects), one breakdown each. A field no question has is an error.
	// Reporting only: it may change between resumed runs.
	GroupBy []string `yaml:"group_by" json:"group_by,omitempty"`
}

// DefaultConfig is the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		K:             1,
		Access:        "auto",
		ToolCacheMode: "live",
		Agent:         agent.AgentASearcher,
		Temperature:   0.6,
		TopP:          1,
		TopK:          -1,
		Limits: agent.Limits{
			MaxTurns:         agent.DefaultMaxTurns,
			MaxContextTokens: agent.DefaultMaxContextTokens,
			MaxCallTokens:    agent.DefaultMaxCallTokens,
			ToolTimeout:      agent.DefaultToolTimeout,
		},
		Concurrency: 32,
		MaxAttempts: 3,
		Bootstrap:   1000,
	}
}

// LoadConfigFile decodes a YAML file over c. The file may hold the fields
// at top level or under an "eval:" key; unknown fields are errors.
func LoadConfigFile(path string, c *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var probe map[string]any
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	if sub, ok := probe["eval"]; ok {
		// Re-encode the eval block so strict decoding applies to it alone.
		if data, err = yaml.Marshal(sub); err != nil {
			return fmt.Errorf("--config %s: %w", path, err)
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("--config %s: %w (see docs/configuration.md, eval section)", path, err)
	}
	return nil
}

// errNoModel is returned when neither a model spec nor an Env is given.
var errNoModel = errors.New("no model: pass --model URL (an OpenAI-compatible /v1 URL, sglang:http://host:port or embedded:DIR)")

// Validate checks the configuration and says what to fix. A model is
// checked by Run, since Options.Env can supply one.
func (c *Config) Validate() error { return c.validate(false) }

// validate is Validate; with inMemory the datasets come from Options.Sets,
// and Data must be empty.
func (c *Config) validate(inMemory bool) error {
	switch {
	case inMemory && len(c.Data) > 0:
		return errors.New("datasets given twice: Options.Sets and --data; pass one")
	case len(c.Data) == 0 && !inMemory:
		return errors.New("no datasets: pass --data NAME|FILE[,...] (asearcher eval --help lists the built-in names)")
	case c.Out == "":
		return errors.New("no run directory: pass --out DIR")
	case c.K < 1:
		return fmt.Errorf("--k %d: want at least 1", c.K)
	case c.Concurrency < 1:
		return fmt.Errorf("--concurrency %d: want at least 1", c.Concurrency)
	case c.Limit < 0:
		return fmt.Errorf("--limit %d: want 0 (all) or more", c.Limit)
	case c.Judge != "" && c.JudgeModel == "":
		return errors.New("--judge needs --judge-model NAME (it keys the judgement cache)")
	}
	seen := map[string]bool{}
	for _, d := range c.Data {
		if seen[d] {
			return fmt.Errorf("--data lists %q twice", d)
		}
		seen[d] = true
	}
	return nil
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.MaxLLMInFlight <= 0 {
		out.MaxLLMInFlight = out.Concurrency
	}
	if out.MaxSearchInFlight <= 0 {
		out.MaxSearchInFlight = out.Concurrency
	}
	if out.MaxAccessInFlight <= 0 {
		out.MaxAccessInFlight = out.Concurrency
	}
	if out.MaxAttempts <= 0 {
		out.MaxAttempts = 1
	}
	if out.Bootstrap <= 0 {
		out.Bootstrap = 1000
	}
	if out.Agent == "" {
		out.Agent = agent.AgentASearcher
	}
	return out
}

// runIdentity is what decides the results of a run. A resumed run must
// match it; concurrency, limits on in-flight calls and the output options
// may change between runs.
type runIdentity struct {
	Datasets    []datasetIdentity `json:"datasets"`
	K           int               `json:"k"`
	Limit       int               `json:"limit"`
	TextOnly    bool              `json:"text_only,omitempty"`
	Model       string            `json:"model"`
	ModelName   string            `json:"model_name"`
	Tokenizer   string            `json:"tokenizer"`
	Search      string            `json:"search"`
	Access      string            `json:"access"`
	Agent       string            `json:"agent"`
	Prompt      string            `json:"prompt"`
	Temperature float64           `json:"temperature"`
	TopP        float64           `json:"top_p"`
	TopK        int               `json:"top_k"`
	Seed        int64             `json:"seed"`
	Limits      agent.Limits      `json:"limits"`
	Judge       string            `json:"judge"`
	JudgeModel  string            `json:"judge_model"`
	// Set only when used, so older run directories keep their hash. The
	// template file is named, not hashed: its verdicts are keyed by its
	// content in the judge cache.
	JudgeStyle       string  `json:"judge_style,omitempty"`
	JudgePromptFile  string  `json:"judge_prompt_file,omitempty"`
	JudgeTemperature float64 `json:"judge_temperature,omitempty"`
}

type datasetIdentity struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	SHA256 string `json:"sha256"`
}

func (id runIdentity) hash() string {
	b, _ := json.Marshal(id)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// runManifest is run.json: the identity, its hash and the full config.
type runManifest struct {
	Hash     string      `json:"hash"`
	Identity runIdentity `json:"identity"`
	Config   Config      `json:"config"`
	Started  time.Time   `json:"started"`
	Version  int         `json:"version"`
}

// diff names the identity fields that differ, for the refusal message.
func (id runIdentity) diff(old runIdentity) []string {
	var a, b map[string]any
	ja, _ := json.Marshal(id)
	jb, _ := json.Marshal(old)
	_ = json.Unmarshal(ja, &a)
	_ = json.Unmarshal(jb, &b)
	var out []string
	for k, v := range a {
		x, _ := json.Marshal(v)
		y, _ := json.Marshal(b[k])
		if !bytes.Equal(x, y) {
			out = append(out, k)
		}
	}
	return out
}
