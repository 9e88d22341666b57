package main

import (
	"bytes"
	"context"
	"encoding/json"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const hotpotCorpus = "../../dataset/data/hotpotqa-hipporag-100/corpus.json"

// bagOfWordsEmbeddings is an OpenAI-compatible /v1/embeddings server whose
// vectors count hashed lower-case words, so passages that share words with
// a query are near it. It records the inputs it saw.
func bagOfWordsEmbeddings(t *testing.T, seen *[]string) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if r.URL.Path != "/v1/embeddings" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Model != "bow" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		type item struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		var data []item
		for i, text := range req.Input {
			mu.Lock()
			*seen = append(*seen, text)
			mu.Unlock()
			v := make([]float32, 64)
			v[0] = 1e-3
			for _, word := range strings.Fields(strings.ToLower(text)) {
				h := fnv.New32a()
				h.Write([]byte(strings.Trim(word, `.,;:"'?!()`)))
				v[h.Sum32()%64]++
			}
			data = append(data, item{i, v})
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// index build → search (text and --json, bm25 and hybrid) → serve search →
// /retrieve, /access and /health over loopback → graceful shutdown, all
// through the commands.
func TestIndexSearchServeCommands(t *testing.T) {
	dir := t.TempDir()
	index := filepath.Join(dir, "index")
	var seen []string
	emb := bagOfWordsEmbeddings(t, &seen)

	out, err := runCLI(t, "index", "build", "--corpus", hotpotCorpus, "--out", index,
		"--dense-endpoint", emb.URL, "--dense-model", "bow", "--dense-batch", "100")
	if err != nil {
		t.Fatalf("index build: %v\n%s", err, out)
	}
	if !strings.Contains(out, "indexed 994 passages (0 skipped)") {
		t.Fatalf("index build printed %q", out)
	}
	if len(seen) != 994 || !strings.HasPrefix(seen[0], "passage: ") {
		t.Fatalf("embedded %d passages, first %.40q; want 994 with the E5 passage prefix", len(seen), seen[0])
	}

	out, err = runCLI(t, "search", "--index", index, "-k", "3", "Demon Dice dice game")
	if err != nil {
		t.Fatalf("search: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, " 1. ") || !strings.Contains(out, "Demon Dice") || !strings.Contains(out, "(id ") {
		t.Fatalf("search printed %q", out)
	}

	for _, method := range []string{"bm25", "hybrid"} {
		out, err = runCLI(t, "search", "--index", index, "--method", method, "-k", "2", "--json", "Demon Dice dice game")
		if err != nil {
			t.Fatalf("search --json --method %s: %v\n%s", method, err, out)
		}
		var res struct {
			Query   string `json:"query"`
			Method  string `json:"method"`
			Results []struct {
				Rank     int     `json:"rank"`
				Score    float32 `json:"score"`
				Document struct {
					ID       string `json:"id"`
					Contents string `json:"contents"`
				} `json:"document"`
			} `json:"results"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("search --json printed invalid JSON: %v\n%s", err, out)
		}
		if res.Method != method || res.Query != "Demon Dice dice game" || len(res.Results) != 2 || res.Results[0].Rank != 1 ||
			res.Results[0].Score <= 0 || res.Results[0].Score < res.Results[1].Score ||
			!strings.Contains(res.Results[0].Document.Contents, "Demon Dice") {
			t.Fatalf("search --json --method %s: %+v", method, res)
		}
	}
	if _, err := runCLI(t, "search", "--index", filepath.Join(dir, "missing"), "x"); err == nil {
		t.Fatal("search of a missing index succeeded")
	}

	// serve search on a random loopback port, found through the address file.
	addrDir := filepath.Join(dir, "addr")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCmd()
	var serveOut bytes.Buffer
	root.SetOut(&serveOut)
	root.SetErr(&serveOut)
	root.SetArgs([]string{"serve", "search", "--index", index, "--addr", "127.0.0.1:0", "--save-address-to", addrDir, "--log-level", "warn"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; {
		if names, _ := filepath.Glob(filepath.Join(addrDir, "Host*_IP*.txt")); len(names) == 1 {
			if b, err := os.ReadFile(names[0]); err == nil && len(b) > 0 {
				base = "http://" + string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("serve search wrote no address file")
		}
		select {
		case err := <-done:
			t.Fatalf("serve search exited early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	post := func(path, body string, into any) int {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if into != nil {
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		return resp.StatusCode
	}
	var ret struct {
		Result [][]struct {
			Document struct {
				ID       string `json:"id"`
				Contents string `json:"contents"`
				URL      string `json:"url"`
			} `json:"document"`
			Score float64 `json:"score"`
		} `json:"result"`
	}
	if code := post("/retrieve", `{"queries": ["Demon Dice dice game", "Christopher Nolan"], "topk": 2, "return_scores": true}`, &ret); code != 200 ||
		len(ret.Result) != 2 || len(ret.Result[0]) != 2 || !strings.Contains(ret.Result[0][0].Document.Contents, "Demon Dice") ||
		ret.Result[0][0].Score <= 0 || ret.Result[0][0].Document.URL == "" {
		t.Fatalf("/retrieve: %d %+v", code, ret)
	}
	var acc struct {
		Result []json.RawMessage `json:"result"`
	}
	url := ret.Result[0][0].Document.URL
	if code := post("/access", `{"urls": [`+strconvQuote(url)+`, "https://nowhere.example/x"]}`, &acc); code != 200 ||
		len(acc.Result) != 2 || !bytes.Contains(acc.Result[0], []byte("Demon Dice")) {
		t.Fatalf("/access: %d %s", code, acc.Result)
	}
	if code := post("/retrieve", `{"queries": "not a list"}`, nil); code != http.StatusBadRequest {
		t.Fatalf("bad /retrieve answered %d", code)
	}
	resp, err := http.Get(base + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/health: %v %v", err, resp)
	}
	resp.Body.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve search after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve search did not shut down")
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestIndexBuildBuiltinCorpus: --corpus builtin:NAME (as docs/synth.md and
// synth --help suggest) indexes a corpus shipped in the binary; an unknown
// name is a clear error.
func TestIndexBuildBuiltinCorpus(t *testing.T) {
	index := filepath.Join(t.TempDir(), "index")
	out, err := runCLI(t, "index", "build", "--corpus", "builtin:hotpotqa", "--out", index)
	if err != nil {
		t.Fatalf("index build: %v\n%s", err, out)
	}
	if !strings.Contains(out, "indexed 994 passages (0 skipped)") {
		t.Fatalf("index build printed %q", out)
	}
	out, err = runCLI(t, "search", "--index", index, "-k", "1", "Demon Dice dice game")
	if err != nil || !strings.Contains(out, "Demon Dice") {
		t.Fatalf("search: %v\n%s", err, out)
	}
	_, err = runCLI(t, "index", "build", "--corpus", "builtin:nope", "--out", filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(err.Error(), `no shipped corpus named "nope"`) {
		t.Fatalf("unknown builtin corpus: %v", err)
	}
}
