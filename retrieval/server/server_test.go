package server

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asearcher/asearcher/retrieval"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testIndex(t testing.TB) *retrieval.Index {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "index")
	if _, err := retrieval.Build(context.Background(), retrieval.BuildOptions{
		Corpus: "testdata/corpus.jsonl", Out: dir, Progress: retrieval.ProgressOff, NoSync: true,
	}); err != nil {
		t.Fatal(err)
	}
	ix, err := retrieval.Open(dir, retrieval.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func testServer(t testing.TB, opts Options) *httptest.Server {
	t.Helper()
	s, err := New(testIndex(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

func post(t testing.TB, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return resp.StatusCode, data
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, got)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("%s differs:\n got: %s\nwant: %s", name, pretty.Bytes(), want)
	}
}

func TestRetrieveGolden(t *testing.T) {
	ts := testServer(t, Options{})
	for _, tc := range []struct{ name, body string }{
		{"retrieve.golden.json", `{"queries": ["closest star", "Sirius dog star", "no such words"], "topk": 2, "return_scores": false}`},
		{"retrieve_scores.golden.json", `{"queries": ["red dwarf nearest"], "topk": 3, "return_scores": true}`},
		{"retrieve_default_topk.golden.json", `{"queries": ["star"], "topk": null}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, ts.URL+"/retrieve", tc.body)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			golden(t, tc.name, body)
		})
	}
}

// TestRetrieveASearcherClientShape reads the response the way ASearcher's
// AsyncSearchBrowserClient does: r["contents"] and r["url"] of every row.
func TestRetrieveASearcherClientShape(t *testing.T) {
	ts := testServer(t, Options{})
	_, body := post(t, ts.URL+"/retrieve", `{"queries": ["star", "Centauri"], "topk": 5, "return_scores": false}`)
	var resp struct {
		Result [][]map[string]any `json:"result"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Result) != 2 || len(resp.Result[0]) != 5 {
		t.Fatalf("shape %d×%d", len(resp.Result), len(resp.Result[0]))
	}
	for _, rows := range resp.Result {
		for _, row := range rows {
			if _, ok := row["contents"].(string); !ok {
				t.Errorf("row without contents: %v", row)
			}
			if _, ok := row["url"].(string); !ok {
				t.Errorf("row without url: %v", row)
			}
			if _, ok := row["id"]; !ok {
				t.Errorf("row without id: %v", row)
			}
		}
	}
}

func TestAccessGolden(t *testing.T) {
	ts := testServer(t, Options{})
	body := `{"urls": [
		"https://example.org/beta",
		"https://en.wikipedia.org/w/index.php?title=Alpha%20Centauri",
		"https://en.wikipedia.org/wiki/Proxima_Centauri",
		"https://en.wikipedia.org/w/index.php/Sirius",
		"3",
		"https://example.org/missing"
	]}`
	code, resp := post(t, ts.URL+"/access", body)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, resp)
	}
	golden(t, "access.golden.json", resp)
	code, resp = post(t, ts.URL+"/access", `{"urls": ["https://example.org/beta"]}`)
	if code != http.StatusOK || strings.Contains(string(resp), `"errors"`) {
		t.Errorf("all-found access: %d %s", code, resp)
	}
}

func TestBadRequests(t *testing.T) {
	ts := testServer(t, Options{MaxQueries: 3, MaxTopK: 10, MaxBodyBytes: 2048})
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"not json", "POST", "/retrieve", `{"queries": [`, 400, "invalid JSON"},
		{"array body", "POST", "/retrieve", `["q"]`, 400, "JSON object"},
		{"queries missing", "POST", "/retrieve", `{"topk": 3}`, 400, `"queries" is required`},
		{"queries not a list", "POST", "/retrieve", `{"queries": "q"}`, 400, `field "queries"`},
		{"query not a string", "POST", "/retrieve", `{"queries": [1]}`, 400, `want a string`},
		{"topk not int", "POST", "/retrieve", `{"queries": ["q"], "topk": "five"}`, 400, `field "topk"`},
		{"topk fraction", "POST", "/retrieve", `{"queries": ["q"], "topk": 2.5}`, 400, `fractional part`},
		{"topk list", "POST", "/retrieve", `{"queries": ["q"], "topk": [2]}`, 400, `field "topk": got a list`},
		{"return_scores word", "POST", "/retrieve", `{"queries": ["q"], "return_scores": "maybe"}`, 400, `field "return_scores"`},
		{"topk too big", "POST", "/retrieve", `{"queries": ["q"], "topk": 11}`, 400, "topk 11 out of range"},
		{"topk negative", "POST", "/retrieve", `{"queries": ["q"], "topk": -1}`, 400, "out of range"},
		{"too many queries", "POST", "/retrieve", `{"queries": ["a","b","c","d"]}`, 413, "exceed the limit of 3"},
		{"trailing data", "POST", "/retrieve", `{"queries": ["a"]} {}`, 400, "after the object"},
		{"body too large", "POST", "/retrieve", `{"queries": ["` + strings.Repeat("x", 3000) + `"]}`, 413, "larger than 2048"},
		{"urls missing", "POST", "/access", `{}`, 400, `"urls" is required`},
		{"urls wrong type", "POST", "/access", `{"urls": [null, 2]}`, 400, `field "urls`},
		{"GET retrieve", "GET", "/retrieve", "", 405, "use POST"},
		{"POST health", "POST", "/health", "{}", 405, "use GET"},
		{"unknown path", "GET", "/search", "", 404, "no such endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e apiError
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if resp.StatusCode != tc.code || !strings.Contains(e.Error, tc.want) {
				t.Errorf("got %d %q, want %d containing %q", resp.StatusCode, e.Error, tc.code, tc.want)
			}
		})
	}
	// Unknown fields are ignored, as by the upstream servers.
	if code, body := post(t, ts.URL+"/retrieve", `{"queries": ["star"], "topk": 1, "extra": {"x": 1}}`); code != 200 {
		t.Errorf("unknown field rejected: %d %s", code, body)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	ts := testServer(t, Options{})
	post(t, ts.URL+"/retrieve", `{"queries": ["star", "sun"]}`)
	resp, err := http.Get(ts.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h["status"] != "ok" || h["passages"] != float64(5) {
		t.Errorf("health %v", h)
	}
	resp, err = http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`asearcher_search_requests_total{code="200",endpoint="retrieve"} 1`,
		`asearcher_search_queries_total 2`,
		`asearcher_search_index_passages 5`,
		`asearcher_search_request_seconds_bucket{endpoint="retrieve"`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestConcurrentRequests checks that parallel requests get the answers a
// lone request gets (run under -race).
func TestConcurrentRequests(t *testing.T) {
	ts := testServer(t, Options{})
	queries := []string{"closest star", "Sirius", "red dwarf", "young star debris", "Alpha Centauri A yellow"}
	want := map[string]string{}
	for _, q := range queries {
		_, body := post(t, ts.URL+"/retrieve", fmt.Sprintf(`{"queries": [%q], "topk": 3, "return_scores": true}`, q))
		want[q] = string(body)
	}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				q := queries[(g+i)%len(queries)]
				resp, err := http.Post(ts.URL+"/retrieve", "application/json", strings.NewReader(fmt.Sprintf(`{"queries": [%q], "topk": 3, "return_scores": true}`, q)))
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != want[q] {
					t.Errorf("concurrent answer for %q differs", q)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestServeGracefulShutdown(t *testing.T) {
	s, err := New(testIndex(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, "127.0.0.1:0", func(a net.Addr) { addrc <- a }) }()
	addr := <-addrc
	code, _ := post(t, "http://"+addr.String()+"/retrieve", `{"queries": ["star"]}`)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	dir := t.TempDir()
	path, err := WriteAddressFile(dir, addr)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != addr.String() || !strings.HasPrefix(filepath.Base(path), "Host127.0.0.1_IP") {
		t.Errorf("address file %s = %q", path, data)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := http.Post("http://"+addr.String()+"/retrieve", "application/json", strings.NewReader("{}")); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func FuzzDecodeRetrieve(f *testing.F) {
	for _, s := range []string{
		`{"queries": ["a", "b"], "topk": 5, "return_scores": true}`,
		`{"queries": [], "topk": null}`,
		`{"queries": ["q"], "topk": 1e3}`,
		`{"queries": [null], "topk": -0}`,
		`{"queries": ["\ud800"], "x": [[[[]]]]}`,
		`{"queries": ["q"], "topk": " +1_0.00 ", "return_scores": "YES"}`,
		`{"queries": ["q"], "topk": 99999999999999999999999, "return_scores": 1.0}`,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, topk, err := DecodeRetrieve(body, Limits{MaxQueries: 8, DefaultTopK: 3, MaxTopK: 100, MaxResults: 400})
		if err != nil {
			if _, ok := err.(requestError); !ok {
				t.Fatalf("non-request error %T %v", err, err)
			}
			return
		}
		if req.Queries == nil || len(req.Queries) > 8 || topk < 1 || topk > 100 {
			t.Fatalf("accepted invalid request %+v topk %d from %q", req, topk, body)
		}
	})
}

func FuzzDecodeAccess(f *testing.F) {
	for _, s := range []string{`{"urls": ["a"]}`, `{"urls": null}`, `{"urls": [1]}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeAccess(body, 4)
		if err == nil && (req.URLs == nil || len(req.URLs) > 4) {
			t.Fatalf("accepted invalid request %+v from %q", req, body)
		}
	})
}

// BenchmarkRetrieveHandler measures one /retrieve request of one query
// through the handler (decode, search, encode rows), without the network.
func BenchmarkRetrieveHandler(b *testing.B) {
	s, err := New(testIndex(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"queries": ["closest star to the Sun"], "topk": 3, "return_scores": true}`)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/retrieve", bytes.NewReader(body)))
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
