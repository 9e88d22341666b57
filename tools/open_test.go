package tools_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/tools"
)

// TestOpenAccessRules: the one access rule every command shares (auto:
// the retrieval server's /access, else Jina with a key, else direct fetch
// when there is a search tool, else none).
func TestOpenAccessRules(t *testing.T) {
	t.Setenv("SERPER_API_KEY", "test-key")
	tests := []struct {
		search, access     string
		jinaKey            string
		wantSearch, wantBr string // %T of the tools, "" for none
		err                string
	}{
		{search: "", access: "auto"},
		{search: "none", access: ""},
		{search: "", access: "auto", jinaKey: "k", wantBr: "*tools.Jina"},
		{search: "http://127.0.0.1:5005", access: "auto", wantSearch: "*tools.Local", wantBr: "*tools.Local"},
		{search: "http://127.0.0.1:5005", access: "", jinaKey: "k", wantSearch: "*tools.Local", wantBr: "*tools.Local"},
		{search: "http://127.0.0.1:5005", access: "local", wantSearch: "*tools.Local", wantBr: "*tools.Local"},
		{search: "http://127.0.0.1:5005", access: "fetch", wantSearch: "*tools.Local", wantBr: "*tools.Fetcher"},
		{search: "serper", access: "auto", wantSearch: "*tools.Serper", wantBr: "*tools.Fetcher"},
		{search: "serper", access: "", jinaKey: "k", wantSearch: "*tools.Serper", wantBr: "*tools.Jina"},
		{search: "serper", access: "jina", wantSearch: "*tools.Serper", wantBr: "*tools.Jina"},
		{search: "serper", access: "none", wantSearch: "*tools.Serper"},
		{search: "serper", access: "local", err: "access local needs search to be a retrieval server"},
		{search: "bing", access: "auto", err: `search "bing"`},
		{search: "serper", access: "carrier-pigeon", err: `access "carrier-pigeon"`},
	}
	for _, tc := range tests {
		t.Run(tc.search+"/"+tc.access+"/"+tc.jinaKey, func(t *testing.T) {
			t.Setenv("JINA_API_KEY", tc.jinaKey)
			got, err := tools.Open(tools.Config{Search: tc.search, Access: tc.access}, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "--") {
					t.Errorf("library error names a CLI flag: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := typeName(got.Search); s != tc.wantSearch {
				t.Errorf("search %s, want %s", s, tc.wantSearch)
			}
			if b := typeName(got.Browse); b != tc.wantBr {
				t.Errorf("browser %s, want %s", b, tc.wantBr)
			}
		})
	}
}

func TestOpenCacheErrors(t *testing.T) {
	_, err := tools.Open(tools.Config{Search: "serper", Cache: t.TempDir(), CacheMode: "sometimes"}, nil)
	if err == nil || !strings.Contains(err.Error(), "tool cache mode") {
		t.Fatalf("bad cache mode: %v", err)
	}
}

func typeName(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("%T", v)
}
