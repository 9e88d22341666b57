package testindex

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDirBuiltOnce: every call in a process gets the same, already built
// index directory.
func TestDirBuiltOnce(t *testing.T) {
	a, b := Dir(t), Dir(t)
	if a != b {
		t.Fatalf("two index directories in one process: %s, %s", a, b)
	}
	if _, err := os.Stat(filepath.Join(a, "index.json")); err != nil {
		t.Fatalf("no built index in %s: %v", a, err)
	}
}

// TestServe: the server answers /retrieve and /access over the shipped
// corpus.
func TestServe(t *testing.T) {
	url := Serve(t)
	for _, tt := range []struct{ path, body, want string }{
		{"/retrieve", `{"queries":["James Hetfield Metallica co-founder"],"topk":1}`, "James Hetfield"},
		{"/access", `{"urls":["https://en.wikipedia.org/wiki/James_Hetfield"]}`, "Lars Ulrich"},
	} {
		resp, err := http.Post(url+tt.path, "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tt.want) {
			t.Errorf("%s: %d %s", tt.path, resp.StatusCode, body)
		}
	}
}
