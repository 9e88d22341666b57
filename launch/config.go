package launch

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the launch: block of a cluster YAML: which servers to start on
// this machine. A server left out is not started, and the cluster: block
// must then say where it runs. Fields are described in
// docs/configuration.md; defaults come from DefaultConfig and
// Server.defaults.
type Config struct {
	// Binary is the asearcher executable for the default commands; ""
	// is the running one.
	Binary string `yaml:"binary"`
	// Host is the address every server listens on and is reached at.
	Host string `yaml:"host"`
	// Model is the model directory ({model}) that the default sampler and
	// trainer commands serve.
	Model string `yaml:"model"`
	// CheckpointDir ({checkpoint_dir}) is where the trainer writes
	// weights and the samplers read them; "" is RUN/server_checkpoints,
	// inside the run directory so that a resume finds them.
	CheckpointDir string `yaml:"checkpoint_dir"`
	// HealthTimeoutS bounds the wait until every server answers its
	// health path; StopGraceS is how long each may take to exit after
	// SIGTERM before SIGKILL.
	HealthTimeoutS float64 `yaml:"health_timeout_s"`
	StopGraceS     float64 `yaml:"stop_grace_s"`

	Search   *Server `yaml:"search"`
	Samplers *Server `yaml:"samplers"`
	Trainer  *Server `yaml:"trainer"`
}

// Server is one role: its command (a template) and how to check it.
type Server struct {
	// Count is the number of sampler servers (samplers only; default 1).
	Count int `yaml:"count"`
	// Index is the index directory of the default search command
	// ({index}; search only).
	Index string `yaml:"index"`
	// Port is the first port; 0 takes free ports on Host. The i-th
	// sampler gets Port+i.
	Port int `yaml:"port"`
	// Command is the command line as a list, with {placeholders}; empty
	// is asearcher's own server. Args are appended to the default
	// command.
	Command []string          `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	// Health is the path that answers 2xx once the server is ready.
	Health string `yaml:"health"`
	// Kind is the samplers' engine (samplers only): "" or asearcher
	// (asearcher serve model), sglang (stock SGLang) or vllm (stock vLLM
	// with runtime LoRA loading). It picks the default command and the
	// protocol the controller speaks to them: SGLang's for asearcher and
	// sglang, the OpenAI API with vLLM's LoRA routes for vllm.
	Kind string `yaml:"kind"`
}

// Sampler kinds.
const (
	KindAsearcher = "asearcher"
	KindSGLang    = "sglang"
	KindVLLM      = "vllm"
)

// DefaultConfig is the launch: block's defaults.
func DefaultConfig() Config {
	return Config{Host: "127.0.0.1", HealthTimeoutS: 120, StopGraceS: 10}
}

// Endpoints are the URLs of the started servers, for the cluster: block.
type Endpoints struct {
	Search   string
	Samplers []string
	// SamplerKind is launch.samplers.kind with its default (asearcher).
	SamplerKind string
	Trainer     string
}

// SamplerSpec is the cluster.sampler value for the launched samplers:
// vllm:http://h:p/v1,… for a vLLM fleet, sglang:http://h:p,… otherwise.
func (e Endpoints) SamplerSpec() string {
	if e.SamplerKind == KindVLLM {
		return "vllm:" + strings.Join(e.Samplers, "/v1,") + "/v1"
	}
	return "sglang:" + strings.Join(e.Samplers, ",")
}

// Plan is what Start needs and what the cluster: block gets.
type Plan struct {
	Specs     []Spec
	Endpoints Endpoints
	Options   Options
}

// Vars fill the placeholders that do not come from the config.
type Vars struct {
	RunDir    string // {run}
	BaseModel string // {base_model}: the name the trainer serves
	LoraRank  int    // {lora_rank}: the rank the trainer trains
	MaxLoRAs  int    // {max_loras}: adapters a sampler must hold at once
}

// Placeholders a command may use.
var placeholders = map[string]string{
	"binary":         "the asearcher executable",
	"host":           "launch.host",
	"port":           "the server's port",
	"model":          "launch.model",
	"base_model":     "cluster.trainer.base_model",
	"checkpoint_dir": "launch.checkpoint_dir",
	"index":          "launch.search.index",
	"run":            "the run directory",
	"rank":           "the sampler's number from 0",
	"name":           "the process name (search, sampler-0, trainer)",
	"lora_rank":      "cluster.trainer.lora_rank",
	"max_loras":      "cluster.publish.max_adapters (default rl.max_staleness + 2)",
}

var placeholderRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// Validate names the first wrong field.
func (c *Config) Validate() error {
	if c.Search == nil && c.Samplers == nil && c.Trainer == nil {
		return errors.New("launch: starts nothing: give launch.search, launch.samplers or launch.trainer (or drop the launch: block)")
	}
	if strings.TrimSpace(c.Host) == "" {
		return errors.New("launch.host is empty")
	}
	if c.HealthTimeoutS <= 0 || c.StopGraceS <= 0 {
		return errors.New("launch.health_timeout_s and launch.stop_grace_s must be > 0")
	}
	for _, r := range c.roles() {
		s := r.server
		field := "launch." + r.role
		switch {
		case s.Port < 0 || s.Port+max(s.Count, 1)-1 > 65535:
			return fmt.Errorf("%s.port %d: want 0 (free ports) or 1 to 65535", field, s.Port)
		case s.Count != 0 && r.role != "samplers":
			return fmt.Errorf("%s.count: only launch.samplers has a count", field)
		case s.Count < 0:
			return fmt.Errorf("%s.count %d: want ≥ 1", field, s.Count)
		case s.Index != "" && r.role != "search":
			return fmt.Errorf("%s.index: only launch.search has an index", field)
		case s.Kind != "" && r.role != "samplers":
			return fmt.Errorf("%s.kind: only launch.samplers has a kind", field)
		case s.Kind != "" && s.Kind != KindAsearcher && s.Kind != KindSGLang && s.Kind != KindVLLM:
			return fmt.Errorf("%s.kind %q: want asearcher, sglang or vllm", field, s.Kind)
		case len(s.Command) > 0 && len(s.Args) > 0:
			return fmt.Errorf("%s: args extend the default command; with a command of your own, put them in it", field)
		case len(s.Command) == 0 && r.role == "search" && s.Index == "":
			return fmt.Errorf("%s.index is empty: the default command (asearcher serve search) needs the index directory", field)
		case len(s.Command) == 0 && r.role != "search" && c.Model == "":
			name := map[string]string{KindSGLang: "python -m sglang.launch_server", KindVLLM: "vllm serve"}[s.Kind]
			if r.role != "samplers" || name == "" {
				name = "asearcher serve model"
			}
			return fmt.Errorf("launch.model is empty: the default %s command (%s) needs the model directory", r.role, name)
		case s.Health != "" && !strings.HasPrefix(s.Health, "/"):
			return fmt.Errorf("%s.health %q: want a path starting with /", field, s.Health)
		}
		for _, a := range s.Command {
			for _, m := range placeholderRE.FindAllStringSubmatch(a, -1) {
				if _, ok := placeholders[m[1]]; !ok {
					return fmt.Errorf("%s.command: unknown placeholder {%s}; known: %s", field, m[1], knownPlaceholders())
				}
			}
		}
		for k := range s.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return fmt.Errorf("%s.env: bad variable name %q", field, k)
			}
		}
	}
	return nil
}

func knownPlaceholders() string {
	var names []string
	for _, n := range []string{"binary", "host", "port", "model", "base_model", "checkpoint_dir", "index", "run", "rank", "name", "lora_rank", "max_loras"} {
		names = append(names, "{"+n+"}")
	}
	return strings.Join(names, " ")
}

type role struct {
	role   string
	server *Server
}

// roles are the configured servers in start order.
func (c *Config) roles() []role {
	var rs []role
	if c.Search != nil {
		rs = append(rs, role{"search", c.Search})
	}
	if c.Trainer != nil {
		rs = append(rs, role{"trainer", c.Trainer})
	}
	if c.Samplers != nil {
		rs = append(rs, role{"samplers", c.Samplers})
	}
	return rs
}

// defaultCommand is a role's server when no command is given:
// asearcher's own, or for samplers of kind sglang or vllm the stock
// engine's launcher as their documentation gives it. vLLM gets LoRA
// serving, since its only publisher (vllm-lora) hot-loads adapters: every
// adapter of rank up to the trainer's, as many at once as the publisher
// keeps loaded.
func defaultCommand(role, kind string) []string {
	switch {
	case role == "search":
		return []string{"{binary}", "serve", "search", "--index", "{index}", "--addr", "{host}:{port}"}
	case role == "samplers" && kind == KindSGLang:
		return []string{"python", "-m", "sglang.launch_server", "--model-path", "{model}", "--served-model-name", "{base_model}",
			"--host", "{host}", "--port", "{port}"}
	case role == "samplers" && kind == KindVLLM:
		return []string{"vllm", "serve", "{model}", "--served-model-name", "{base_model}", "--host", "{host}", "--port", "{port}",
			"--enable-lora", "--max-lora-rank", "{lora_rank}", "--max-loras", "{max_loras}"}
	}
	return []string{"{binary}", "serve", "model", "--model", "{model}", "--name", "{base_model}",
		"--addr", "{host}:{port}", "--checkpoint-dir", "{checkpoint_dir}"}
}

// defaultEnv is what a role's default command needs in its environment:
// vLLM refuses /v1/load_lora_adapter unless runtime LoRA updating is on.
func defaultEnv(role, kind string) map[string]string {
	if role == "samplers" && kind == KindVLLM {
		return map[string]string{"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
	}
	return nil
}

func defaultHealth(role string) string {
	if role == "trainer" {
		return "/api/v1/healthz"
	}
	return "/health"
}

// Plan turns the config into the processes to start and the URLs the
// cluster: block gets: it fills the placeholders and takes free ports on
// Host where none is given. Logs go to RUN/logs/NAME.log.
func (c *Config) Plan(v Vars) (Plan, error) {
	var eps Endpoints
	if err := c.Validate(); err != nil {
		return Plan{}, err
	}
	bin := c.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return Plan{}, fmt.Errorf("launch.binary is empty and this executable's path is unknown: %w", err)
		}
		bin = exe
	}
	ckpt := c.CheckpointDir
	if ckpt == "" {
		ckpt = filepath.Join(v.RunDir, "server_checkpoints")
	}
	// Every server and the controller must agree on these paths whatever
	// their working directory.
	abs := func(p string) string {
		if p == "" {
			return p
		}
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	ckpt = abs(ckpt)
	vars := map[string]string{"binary": bin, "host": c.Host, "model": abs(c.Model), "base_model": v.BaseModel,
		"checkpoint_dir": ckpt, "run": abs(v.RunDir), "lora_rank": strconv.Itoa(v.LoraRank), "max_loras": strconv.Itoa(v.MaxLoRAs)}
	var specs []Spec
	for _, r := range c.roles() {
		s := r.server
		n := 1
		if r.role == "samplers" {
			n = max(s.Count, 1)
		}
		argvT := s.Command
		envT := map[string]string{}
		if len(argvT) == 0 {
			argvT = append(defaultCommand(r.role, s.Kind), s.Args...)
			for k, val := range defaultEnv(r.role, s.Kind) {
				envT[k] = val
			}
		}
		for k, val := range s.Env {
			envT[k] = val // launch.*.env wins over a default
		}
		health := s.Health
		if health == "" {
			health = defaultHealth(r.role)
		}
		for i := range n {
			name := r.role
			if r.role == "samplers" {
				name = fmt.Sprintf("sampler-%d", i)
			}
			port := 0
			if s.Port != 0 {
				port = s.Port + i
				// A server already there would answer the health check
				// in place of ours, which then fails to listen.
				if err := portFree(c.Host, port); err != nil {
					return Plan{}, fmt.Errorf("launch.%s.port: %s cannot use it: %w", r.role, name, err)
				}
			} else {
				p, err := freePort(c.Host)
				if err != nil {
					return Plan{}, fmt.Errorf("launch %s: %w", name, err)
				}
				port = p
			}
			local := map[string]string{"port": strconv.Itoa(port), "rank": strconv.Itoa(i), "name": name, "index": abs(s.Index)}
			argv := make([]string, len(argvT))
			for j, a := range argvT {
				argv[j] = placeholderRE.ReplaceAllStringFunc(a, func(m string) string {
					k := m[1 : len(m)-1]
					if val, ok := local[k]; ok {
						return val
					}
					return vars[k]
				})
			}
			var env []string
			for k, val := range envT {
				env = append(env, k+"="+val)
			}
			slices.Sort(env)
			url := "http://" + net.JoinHostPort(c.Host, strconv.Itoa(port))
			specs = append(specs, Spec{Name: name, Argv: argv, Env: env, URL: url, Health: health,
				Log: filepath.Join(v.RunDir, "logs", name+".log")})
			switch r.role {
			case "search":
				eps.Search = url
			case "trainer":
				eps.Trainer = url
			default:
				eps.Samplers = append(eps.Samplers, url)
				eps.SamplerKind = cmp.Or(s.Kind, KindAsearcher)
			}
		}
	}
	secs := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	return Plan{Specs: specs, Endpoints: eps, Options: Options{HealthTimeout: secs(c.HealthTimeoutS), StopGrace: secs(c.StopGraceS)}}, nil
}

// portFree checks that nothing listens on host:port now.
func portFree(host string, port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return ln.Close()
}

// freePort asks the kernel for a port on host that is free now. Another
// process could take it before the server binds it; the server then fails
// to listen and the launcher reports it with the server's log.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
