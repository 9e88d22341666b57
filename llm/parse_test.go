package llm_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/llm"
)

func TestParseSpec(t *testing.T) {
	cases := []struct {
		in   string
		want []llm.Endpoint
		err  string
	}{
		{"http://127.0.0.1:8000/v1", []llm.Endpoint{{Kind: "openai", BaseURL: "http://127.0.0.1:8000/v1", Dialect: llm.DialectAuto}}, ""},
		{"http://h:8000/v1/?model=Qwen/Qwen2.5-7B", []llm.Endpoint{{Kind: "openai", BaseURL: "http://h:8000/v1", Model: "Qwen/Qwen2.5-7B"}}, ""},
		{"sglang:http://10.0.0.5:30000", []llm.Endpoint{{Kind: "sglang", BaseURL: "http://10.0.0.5:30000"}}, ""},
		{"openai:https://api.openai.com/v1?model=gpt-4o-mini", []llm.Endpoint{{Kind: "openai", BaseURL: "https://api.openai.com/v1", Dialect: llm.DialectStandard, Model: "gpt-4o-mini"}}, ""},
		{"vllm:http://a:1/v1", []llm.Endpoint{{Kind: "openai", BaseURL: "http://a:1/v1", Dialect: llm.DialectExtended}}, ""},
		{" sglang:http://a:1 , sglang:http://b:2,http://c:3/v1 ", []llm.Endpoint{
			{Kind: "sglang", BaseURL: "http://a:1"}, {Kind: "sglang", BaseURL: "http://b:2"}, {Kind: "openai", BaseURL: "http://c:3/v1"}}, ""},
		{"", nil, "empty model URL"},
		{",,", nil, "lists no server"},
		{"http://127.0.0.1:8000", nil, "ends in /v1"},
		{"sglang:http://a:1/v1", nil, "server root"},
		{"localhost:8000/v1", nil, "unknown prefix"},
		{"tinker:http://a/v1", nil, "unknown prefix"},
		{"sglang:ftp://a", nil, "want http(s)"},
		{"http://user:secret@h:1", nil, "ends in /v1"},
	}
	for _, c := range cases {
		got, err := llm.ParseSpec(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%q: error shows credentials: %v", c.in, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8000/v1", "sglang:http://a:1,vllm:http://b:2/v1?model=x", "openai:", "::::", "http://[::1]:80/v1", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		eps, err := llm.ParseSpec(spec)
		if err == nil && len(eps) == 0 {
			t.Fatal("no error and no endpoints")
		}
		for _, ep := range eps {
			if ep.BaseURL == "" || (ep.Kind != "sglang" && ep.Kind != "openai") {
				t.Fatalf("bad endpoint %+v", ep)
			}
		}
	})
}

func TestNewClientEndToEnd(t *testing.T) {
	ctx := context.Background()
	a := fakellm.New(fakellm.Options{})
	defer a.Close()
	b := fakellm.New(fakellm.Options{})
	defer b.Close()
	a.Enqueue(fakellm.Reply{Text: "from a"})
	b.Enqueue(fakellm.Reply{Text: "from b"})
	p, err := llm.NewClient("sglang:"+a.URL+","+b.OpenAIURL()+"?model=fake-model", llm.ClientOptions{Pool: llm.PoolConfig{HealthInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got := map[string]bool{}
	for _, id := range []string{"x#0", "y#0"} {
		r, err := p.Sample(ctx, &llm.Request{ID: id, InputIDs: []int{1}})
		if err != nil {
			t.Fatal(err)
		}
		got[r.Text] = true
	}
	if !got["from a"] || !got["from b"] {
		t.Errorf("replies %v", got)
	}
	if !strings.Contains(p.String(), "sglang:"+a.URL) {
		t.Errorf("pool name %q", p.String())
	}
}
