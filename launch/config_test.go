package launch

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlan: placeholders are filled, default commands are asearcher's
// servers, ports are taken free or counted up from a given one, and the
// endpoints are what the cluster: block gets.
func TestPlan(t *testing.T) {
	run := t.TempDir()
	c := DefaultConfig()
	c.Binary, c.Model = "/bin/asearcher", "/m/agent"
	c.Search = &Server{Index: "/ix", Args: []string{"--max-topk", "50"}}
	base, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c.Samplers = &Server{Count: 2, Port: base, Command: []string{"python", "-m", "sglang.launch_server", "--model-path", "{model}",
		"--host", "{host}", "--port", "{port}", "--served-model-name", "{base_model}-{rank}", "--json-model-override-args", `{"x": 1}`}}
	c.Trainer = &Server{Env: map[string]string{"JAX_PLATFORMS": "cpu"}}
	p, err := c.Plan(Vars{RunDir: run, BaseModel: "agent"})
	if err != nil {
		t.Skipf("port %d or %d is taken now: %v", base, base+1, err)
	}
	if len(p.Specs) != 4 {
		t.Fatalf("%d specs", len(p.Specs))
	}
	byName := map[string]Spec{}
	for _, s := range p.Specs {
		byName[s.Name] = s
		if s.Log != filepath.Join(run, "logs", s.Name+".log") {
			t.Errorf("%s log %s", s.Name, s.Log)
		}
	}
	search := strings.Join(byName["search"].Argv, " ")
	if !strings.HasPrefix(search, "/bin/asearcher serve search --index /ix --addr 127.0.0.1:") || !strings.HasSuffix(search, " --max-topk 50") {
		t.Errorf("search argv %q", search)
	}
	s1 := strings.Join(byName["sampler-1"].Argv, " ")
	if want := fmt.Sprintf(`python -m sglang.launch_server --model-path /m/agent --host 127.0.0.1 --port %d --served-model-name agent-1 --json-model-override-args {"x": 1}`, base+1); s1 != want {
		t.Errorf("sampler-1 argv\n%s\nwant\n%s", s1, want)
	}
	tr := byName["trainer"]
	if got := strings.Join(tr.Argv, " "); !strings.Contains(got, "serve model --model /m/agent --name agent --addr 127.0.0.1:") ||
		!strings.HasSuffix(got, "--checkpoint-dir "+filepath.Join(run, "server_checkpoints")) {
		t.Errorf("trainer argv %q", got)
	}
	if tr.Health != "/api/v1/healthz" || byName["sampler-0"].Health != "/health" || len(tr.Env) != 1 || tr.Env[0] != "JAX_PLATFORMS=cpu" {
		t.Errorf("trainer health %q env %v", tr.Health, tr.Env)
	}
	e := p.Endpoints
	if e.Search != byName["search"].URL || e.Trainer != tr.URL || strings.Join(e.Samplers, ",") != fmt.Sprintf("http://127.0.0.1:%d,http://127.0.0.1:%d", base, base+1) {
		t.Errorf("endpoints %+v", e)
	}
	if e.Search == e.Trainer {
		t.Errorf("two servers on one port: %s", e.Search)
	}
	if p.Options.HealthTimeout.Seconds() != 120 || p.Options.StopGrace.Seconds() != 10 {
		t.Errorf("options %+v", p.Options)
	}
}

// TestValidate: each wrong field gets an error that names it.
func TestValidate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Model = "/m"
		c.Search = &Server{Index: "/ix"}
		c.Samplers = &Server{Count: 2}
		c.Trainer = &Server{}
		return c
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"nothing", func(c *Config) { c.Search, c.Samplers, c.Trainer = nil, nil, nil }, "starts nothing"},
		{"no host", func(c *Config) { c.Host = " " }, "launch.host"},
		{"no grace", func(c *Config) { c.StopGraceS = 0 }, "stop_grace_s"},
		{"bad port", func(c *Config) { c.Samplers.Port = 65535 }, "launch.samplers.port"},
		{"count on trainer", func(c *Config) { c.Trainer.Count = 2 }, "launch.trainer.count"},
		{"negative count", func(c *Config) { c.Samplers.Count = -1 }, "launch.samplers.count"},
		{"index on samplers", func(c *Config) { c.Samplers.Index = "/x" }, "launch.samplers.index"},
		{"no index", func(c *Config) { c.Search.Index = "" }, "launch.search.index is empty"},
		{"no model", func(c *Config) { c.Model = "" }, "launch.model is empty"},
		{"no model needed with a command", func(c *Config) {
			c.Model = ""
			c.Samplers.Command = []string{"sglang", "{port}"}
			c.Trainer.Command = []string{"skyrl", "{port}"}
		}, ""},
		{"args with command", func(c *Config) { c.Trainer.Command, c.Trainer.Args = []string{"x"}, []string{"y"} }, "args extend the default command"},
		{"unknown placeholder", func(c *Config) { c.Trainer.Command = []string{"x", "--p={prot}"} }, "unknown placeholder {prot}"},
		{"json is no placeholder", func(c *Config) { c.Trainer.Command = []string{"x", `{"tp": 8}`} }, ""},
		{"bad health", func(c *Config) { c.Trainer.Health = "healthz" }, "launch.trainer.health"},
		{"bad env", func(c *Config) { c.Trainer.Env = map[string]string{"A=B": "c"} }, "launch.trainer.env"},
		{"kind on trainer", func(c *Config) { c.Trainer.Kind = "vllm" }, "launch.trainer.kind: only launch.samplers"},
		{"unknown kind", func(c *Config) { c.Samplers.Kind = "tgi" }, `launch.samplers.kind "tgi"`},
		{"vllm needs the model", func(c *Config) { c.Model, c.Samplers.Kind, c.Trainer.Command = "", "vllm", []string{"x"} }, "(vllm serve) needs the model directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestPlanPortInUse: a configured port that something already listens on
// is refused before anything starts (that listener would otherwise answer
// the health check in place of the server).
func TestPlanPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := DefaultConfig()
	c.Trainer = &Server{Port: ln.Addr().(*net.TCPAddr).Port, Command: []string{"x", "{port}"}}
	if _, err := c.Plan(Vars{RunDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "launch.trainer.port: trainer cannot use it") {
		t.Fatalf("got %v", err)
	}
}

// TestPlanSamplerKinds: each sampler kind has its default command and the
// protocol the controller speaks to it; launch.samplers.env overrides a
// default variable.
func TestPlanSamplerKinds(t *testing.T) {
	for _, tc := range []struct {
		kind, argv, spec string
		env              []string
	}{
		{"", "/bin/asearcher serve model --model /m/agent --name agent --addr 127.0.0.1:PORT --checkpoint-dir CKPT", "sglang:", nil},
		{"sglang", "python -m sglang.launch_server --model-path /m/agent --served-model-name agent --host 127.0.0.1 --port PORT", "sglang:", nil},
		{"vllm", "vllm serve /m/agent --served-model-name agent --host 127.0.0.1 --port PORT --enable-lora --max-lora-rank 16 --max-loras 3", "vllm:",
			[]string{"VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			run := t.TempDir()
			c := DefaultConfig()
			c.Binary, c.Model = "/bin/asearcher", "/m/agent"
			c.Samplers = &Server{Kind: tc.kind}
			p, err := c.Plan(Vars{RunDir: run, BaseModel: "agent", LoraRank: 16, MaxLoRAs: 3})
			if err != nil {
				t.Fatal(err)
			}
			s := p.Specs[0]
			port := s.URL[strings.LastIndexByte(s.URL, ':')+1:]
			want := strings.NewReplacer("PORT", port, "CKPT", filepath.Join(run, "server_checkpoints")).Replace(tc.argv)
			if got := strings.Join(s.Argv, " "); got != want {
				t.Errorf("argv\n%s\nwant\n%s", got, want)
			}
			if fmt.Sprint(s.Env) != fmt.Sprint(tc.env) || s.Health != "/health" {
				t.Errorf("env %v health %s", s.Env, s.Health)
			}
			wantSpec := tc.spec + s.URL
			if tc.kind == "vllm" {
				wantSpec += "/v1"
			}
			if got := p.Endpoints.SamplerSpec(); got != wantSpec {
				t.Errorf("sampler spec %q, want %q", got, wantSpec)
			}
		})
	}
	c := DefaultConfig()
	c.Model = "/m"
	c.Samplers = &Server{Kind: "vllm", Env: map[string]string{"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "False"}}
	p, err := c.Plan(Vars{RunDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.Specs[0].Env) != "[VLLM_ALLOW_RUNTIME_LORA_UPDATING=False]" {
		t.Errorf("launch.samplers.env did not override the default: %v", p.Specs[0].Env)
	}
}
