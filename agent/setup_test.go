package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/tools"
)

func TestEnvConfigTools(t *testing.T) {
	t.Setenv("SERPER_API_KEY", "test-key")
	t.Setenv("JINA_API_KEY", "")
	tests := []struct {
		search, access     string
		wantSearch, wantBr string // %T of the tools, "" for none
		err                string
	}{
		{search: "", access: "auto"},
		{search: "http://127.0.0.1:5005", access: "auto", wantSearch: "*tools.Local", wantBr: "*tools.Local"},
		{search: "http://127.0.0.1:5005", access: "local", wantSearch: "*tools.Local", wantBr: "*tools.Local"},
		{search: "http://127.0.0.1:5005", access: "fetch", wantSearch: "*tools.Local", wantBr: "*tools.Fetcher"},
		{search: "serper", access: "auto", wantSearch: "*tools.Serper", wantBr: "*tools.Fetcher"},
		{search: "serper", access: "jina", wantSearch: "*tools.Serper", wantBr: "*tools.Jina"},
		{search: "serper", access: "none", wantSearch: "*tools.Serper"},
		{search: "serper", access: "local", err: "needs --search to be a retrieval server"},
		{search: "bing", access: "auto", err: "--search \"bing\""},
		{search: "serper", access: "carrier-pigeon", err: "--access \"carrier-pigeon\""},
	}
	for _, tc := range tests {
		t.Run(tc.search+"/"+tc.access, func(t *testing.T) {
			env := &Env{}
			err := EnvConfig{Search: tc.search, Access: tc.access}.tools(env, tools.SpecOptions{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(env.Search); got != tc.wantSearch {
				t.Errorf("search %s, want %s", got, tc.wantSearch)
			}
			if got := typeName(env.Browse); got != tc.wantBr {
				t.Errorf("browser %s, want %s", got, tc.wantBr)
			}
		})
	}
}

func typeName(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("%T", v)
}

// TestEnvConfigReplay: with the tool cache in replay mode nothing is
// reached and a miss is a tool error the agent shows the model.
func TestEnvConfigReplay(t *testing.T) {
	env, closeEnv, err := EnvConfig{
		Model: "http://127.0.0.1:1/v1", Search: "serper", ToolCache: t.TempDir(), ToolCacheMode: "replay",
	}.Build()
	if err != nil {
		t.Fatal(err)
	}
	defer closeEnv()
	_, err = env.Search.Search(context.Background(), "q", 3)
	if !errors.Is(err, tools.ErrReplayMiss) {
		t.Fatalf("replay miss: %v", err)
	}
	if _, _, err := (EnvConfig{Model: "http://127.0.0.1:1/v1", ToolCache: t.TempDir(), ToolCacheMode: "sometimes"}).Build(); err == nil {
		t.Fatal("bad cache mode accepted")
	}
	if _, _, err := (EnvConfig{Model: "ftp://x"}).Build(); err == nil || !strings.Contains(err.Error(), "--model") {
		t.Fatalf("bad model URL: %v", err)
	}
	if _, _, err := (EnvConfig{Model: "http://127.0.0.1:1/v1", Tokenizer: "/nonexistent"}).Build(); err == nil || !strings.Contains(err.Error(), "--tokenizer") {
		t.Fatalf("bad tokenizer: %v", err)
	}
}
