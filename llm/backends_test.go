package llm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/llm"
)

func TestBackendsOpen(t *testing.T) {
	ctx := context.Background()
	a := fakellm.New(fakellm.Options{})
	defer a.Close()
	b := llm.NewBackends()
	opened := 0
	if err := b.Register("fake", llm.Backend{Usage: "fake:X", Open: func(context.Context, string, llm.OpenOptions) (llm.Sampler, func() error, error) {
		opened++
		return &llm.Resumer{}, nil, nil
	}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec, want string // want: %T of the sampler or an error substring
	}{
		{"sglang:" + a.URL + "," + a.OpenAIURL(), "*llm.Pool"},
		{a.OpenAIURL(), "*llm.Pool"},
		{"fake:whatever", "*llm.Resumer"},
		{"", "model is empty"},
		{"ftp://x", `unknown prefix "ftp"`},
		{"localhost:8000/v1", `unknown prefix "localhost"`},
		{"nohost", "no backend prefix"},
		{a.OpenAIURL() + ",fake:x", "cannot be part of a server list"},
		{"sglang:" + a.URL + "/v1", "server root"},
		{"tinker:" + a.URL, "name the base model"},
		{"tinker:" + a.URL + "?model=base", "*llm.TinkerSampler"},
	}
	for _, tc := range tests {
		s, closeFn, err := b.Open(ctx, tc.spec, llm.OpenOptions{Pool: llm.PoolConfig{HealthInterval: -1}})
		if err != nil {
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q: err %v, want %q", tc.spec, err, tc.want)
			}
			continue
		}
		if got := fmt.Sprintf("%T", s); got != tc.want {
			t.Errorf("%q: sampler %s, want %s", tc.spec, got, tc.want)
		}
		if err := closeFn(); err != nil {
			t.Errorf("%q: close: %v", tc.spec, err)
		}
	}
	if opened != 1 {
		t.Errorf("fake backend opened %d times, want 1", opened)
	}
}

func TestBackendsRegister(t *testing.T) {
	b := llm.NewBackends()
	open := func(context.Context, string, llm.OpenOptions) (llm.Sampler, func() error, error) {
		return nil, nil, nil
	}
	for _, tc := range []struct {
		prefix string
		be     llm.Backend
	}{
		{"sglang", llm.Backend{Open: open}},
		{"", llm.Backend{Open: open}},
		{"a:b", llm.Backend{Open: open}},
		{"nil", llm.Backend{}},
	} {
		if err := b.Register(tc.prefix, tc.be); err == nil {
			t.Errorf("Register(%q) accepted", tc.prefix)
		}
	}
	if err := b.Register("dir", llm.Backend{Open: open, Tokenizer: func(arg string) string { return arg + "/tok" }}); err != nil {
		t.Fatal(err)
	}
	if got := b.Tokenizer(" dir:/m "); got != "/m/tok" {
		t.Errorf("Tokenizer = %q", got)
	}
	if got := b.Tokenizer("http://h/v1"); got != "" {
		t.Errorf("server Tokenizer = %q", got)
	}
	for _, p := range []string{"dir", "http", "https", "openai", "sglang", "tinker", "vllm"} {
		if !strings.Contains(strings.Join(b.Prefixes(), " "), p) {
			t.Errorf("prefix %s missing from %v", p, b.Prefixes())
		}
	}
}

// TestPoolHealth: the pool answers Health when one server does.
func TestPoolHealth(t *testing.T) {
	a := fakellm.New(fakellm.Options{})
	defer a.Close()
	ctx := context.Background()
	b := llm.NewBackends()
	s, closeFn, err := b.Open(ctx, a.OpenAIURL()+",http://127.0.0.1:1/v1", llm.OpenOptions{Pool: llm.PoolConfig{HealthInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if err := llm.Ready(ctx, s); err != nil {
		t.Fatalf("one live server: %v", err)
	}
	dead, closeDead, err := b.Open(ctx, "http://127.0.0.1:1/v1", llm.OpenOptions{Pool: llm.PoolConfig{HealthInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDead()
	if err := llm.Ready(ctx, dead); err == nil {
		t.Fatal("dead pool is ready")
	}
}
