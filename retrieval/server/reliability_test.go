package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asearcher/asearcher/retrieval"
)

// heavy reports whether the full-scale reliability runs were asked for
// (ASEARCHER_RELIABILITY=1); CI runs them scaled down.
func heavy() bool { return os.Getenv("ASEARCHER_RELIABILITY") == "1" }

// syntheticIndex builds an index of n generated passages (40 words each
// from a 600-word vocabulary), big enough for topk 100 to fill.
func syntheticIndex(t testing.TB, n int) *retrieval.Index {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for i := range n {
		var words []string
		for range 40 {
			words = append(words, fmt.Sprintf("w%d", rng.IntN(600)))
		}
		fmt.Fprintf(&sb, `{"id": "%d", "contents": "\"Title %d\"\n%s"}`+"\n", i, i, strings.Join(words, " "))
	}
	corpusPath := filepath.Join(dir, "corpus.jsonl")
	if err := os.WriteFile(corpusPath, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "index")
	if _, err := retrieval.Build(context.Background(), retrieval.BuildOptions{
		Corpus: corpusPath, Out: out, Progress: retrieval.ProgressOff, NoSync: true,
	}); err != nil {
		t.Fatal(err)
	}
	ix, err := retrieval.Open(out, retrieval.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func queriesBody(n, topk int, scores bool) string {
	qs := make([]string, n)
	for i := range qs {
		qs[i] = fmt.Sprintf("w%d w%d w%d w%d w%d w%d", i%600, (i*7+1)%600, (i*13+2)%600, (i*17+3)%600, (i*19+4)%600, (i*23+5)%600)
	}
	b, _ := json.Marshal(map[string]any{"queries": qs, "topk": topk, "return_scores": scores})
	return string(b)
}

// writeSizes is a ResponseWriter that records the largest single write.
type writeSizes struct {
	*httptest.ResponseRecorder
	maxWrite int
}

func (w *writeSizes) Write(b []byte) (int, error) {
	w.maxWrite = max(w.maxWrite, len(b))
	return w.ResponseRecorder.Write(b)
}

// TestReliabilityRetrieveStreamsLargeReplies is the issue-12 memory attack
// in miniature: a reply of 512 queries × topk 100 used to be built whole in
// memory (70 MB each on wiki passages, 2.5 GB RSS for 16 at once). It must
// now go out in chunks near StreamChunkBytes, and read back identical to
// what one-query requests give.
func TestReliabilityRetrieveStreamsLargeReplies(t *testing.T) {
	ix := syntheticIndex(t, 1500)
	const chunk = 16 << 10
	s, err := New(ix, Options{StreamChunkBytes: chunk})
	if err != nil {
		t.Fatal(err)
	}
	nq := 64
	if heavy() {
		nq = 512
	}
	body := queriesBody(nq, 100, true)
	w := &writeSizes{ResponseRecorder: httptest.NewRecorder()}
	s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/retrieve", strings.NewReader(body)))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body.Bytes())
	}
	total := w.Body.Len()
	// One query's rows (100 rows of ~300 bytes) may overshoot a chunk.
	if w.maxWrite > chunk+64<<10 || total < 4*chunk {
		t.Fatalf("largest write %d bytes of a %d-byte reply: not streamed in %d-byte chunks", w.maxWrite, total, chunk)
	}
	var resp struct {
		Result [][]struct {
			Document json.RawMessage `json:"document"`
			Score    float64         `json:"score"`
		} `json:"result"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("streamed reply is not JSON: %v", err)
	}
	if len(resp.Result) != nq {
		t.Fatalf("%d results for %d queries", len(resp.Result), nq)
	}
	var q struct{ Queries []string }
	json.Unmarshal([]byte(body), &q)
	for _, i := range []int{0, nq / 2, nq - 1} {
		one := httptest.NewRecorder()
		b, _ := json.Marshal(map[string]any{"queries": q.Queries[i : i+1], "topk": 100, "return_scores": true})
		s.ServeHTTP(one, httptest.NewRequest(http.MethodPost, "/retrieve", strings.NewReader(string(b))))
		var single struct {
			Result [][]json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(one.Body.Bytes(), &single); err != nil {
			t.Fatal(err)
		}
		if len(single.Result[0]) != 100 || len(resp.Result[i]) != 100 {
			t.Fatalf("query %d: %d and %d rows, want 100", i, len(single.Result[0]), len(resp.Result[i]))
		}
		got, _ := json.Marshal(resp.Result[i])
		want, _ := json.Marshal(single.Result[0])
		var g, wnt any
		json.Unmarshal(got, &g)
		json.Unmarshal(want, &wnt)
		if fmt.Sprint(g) != fmt.Sprint(wnt) {
			t.Errorf("query %d: batched answer differs from a lone request", i)
		}
	}
}

// TestSearchR1GRPOBatch sends exactly what Search-R1's generation loop
// (search_r1/llm_agent/generation.py, _batch_search) posts for one GRPO step,
// train_batch_size 512 × n_agent 5 = 2,560 queries with topk 3 and
// return_scores true, and reads the reply as it does:
// result[i][j]["document"]["contents"] split into title and text. The old
// limit of 512 queries answered 400 and Search-R1 crashed on the missing
// "result".
func TestSearchR1GRPOBatch(t *testing.T) {
	s, err := New(syntheticIndex(t, 300), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	queries := make([]string, 512*5)
	for i := range queries {
		queries[i] = fmt.Sprintf("what is w%d of w%d", i%600, (i*31)%600)
	}
	payload, _ := json.Marshal(map[string]any{"queries": queries, "topk": 3, "return_scores": true})
	code, body := post(t, ts.URL+"/retrieve", string(payload))
	if code != http.StatusOK {
		t.Fatalf("status %d: %.300s", code, body)
	}
	var resp struct {
		Result [][]struct {
			Document struct {
				Contents string `json:"contents"`
			} `json:"document"`
			Score *float64 `json:"score"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Result) != len(queries) {
		t.Fatalf("%d results for %d queries", len(resp.Result), len(queries))
	}
	for i, docs := range resp.Result {
		if len(docs) != 3 {
			t.Fatalf("query %d: %d docs, want 3", i, len(docs))
		}
		for _, d := range docs {
			title, text, ok := strings.Cut(d.Document.Contents, "\n")
			if !ok || title == "" || text == "" || d.Score == nil {
				t.Fatalf("query %d: doc %+v is not Search-R1's shape", i, d)
			}
		}
	}
}

// TestRetrievePydanticCoercion checks the request decoding against
// pydantic's own verdicts on Search-R1's request model
// (testdata/pydantic_retrieve.json, scripts/retrieve_pydantic_fixture.py):
// every body pydantic accepts with an in-range topk is accepted with the
// same values, and every body it rejects is rejected.
func TestRetrievePydanticCoercion(t *testing.T) {
	data, err := os.ReadFile("testdata/pydantic_retrieve.json")
	if err != nil {
		t.Fatal(err)
	}
	var fix struct {
		Cases []struct {
			Body         string   `json:"body"`
			OK           bool     `json:"ok"`
			Queries      []string `json:"queries"`
			TopK         *float64 `json:"topk"`
			ReturnScores bool     `json:"return_scores"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &fix); err != nil {
		t.Fatal(err)
	}
	lim := Limits{MaxQueries: 100, DefaultTopK: 3, MaxTopK: 1000, MaxResults: 1 << 20}
	for _, c := range fix.Cases {
		req, topk, err := DecodeRetrieve([]byte(c.Body), lim)
		switch {
		case c.Body == `{"queries": ["q"], "return_scores": null}`:
			// Deliberately lenient: null meant false before coercion.
			if err != nil || req.ReturnScores {
				t.Errorf("%s: %v %v", c.Body, req.ReturnScores, err)
			}
		case !c.OK:
			if err == nil {
				t.Errorf("%s: accepted (topk %d, scores %v); pydantic rejects it", c.Body, topk, req.ReturnScores)
			}
		case c.TopK != nil && (*c.TopK < 0 || *c.TopK > float64(lim.MaxTopK)):
			if err == nil || !strings.Contains(err.Error(), "out of range") {
				t.Errorf("%s: want out of range, got topk %d err %v", c.Body, topk, err)
			}
		default:
			want := lim.DefaultTopK
			if c.TopK != nil && *c.TopK != 0 {
				want = int(*c.TopK)
			}
			if err != nil {
				t.Errorf("%s: %v; pydantic accepts it", c.Body, err)
			} else if topk != want || bool(req.ReturnScores) != c.ReturnScores || fmt.Sprint(req.Queries) != fmt.Sprint(c.Queries) {
				t.Errorf("%s: got topk %d scores %v queries %q, pydantic %d %v %q", c.Body, topk, req.ReturnScores, req.Queries, want, c.ReturnScores, c.Queries)
			}
		}
	}
}

// TestReliabilityAdmission holds every turn with requests whose bodies never
// finish; the next request waits QueueTimeout and gets a JSON 429, and
// /health still answers at once.
func TestReliabilityAdmission(t *testing.T) {
	s, err := New(testIndex(t), Options{MaxInFlight: 2, QueueTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	var held []*io.PipeWriter
	var wg sync.WaitGroup
	for range 2 {
		pr, pw := io.Pipe()
		held = append(held, pw)
		pw2 := pw
		go pw2.Write([]byte(`{"queries": [`))
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(ts.URL+"/retrieve", "application/json", pr)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	// Wait until both hold a turn.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.turns) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(s.turns) != 2 {
		t.Fatalf("%d turns held, want 2", len(s.turns))
	}
	code, body := post(t, ts.URL+"/retrieve", `{"queries": ["star"]}`)
	var e apiError
	if code != http.StatusTooManyRequests || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "server busy") {
		t.Errorf("third request: %d %s, want 429 server busy", code, body)
	}
	start := time.Now()
	resp, err := http.Get(ts.URL + "/health")
	if err != nil || resp.StatusCode != 200 || time.Since(start) > time.Second {
		t.Errorf("/health while busy: %v %v after %s", resp, err, time.Since(start))
	}
	if resp != nil {
		resp.Body.Close()
	}
	// Finish one held body: its turn frees, and a waiting request is served.
	done := make(chan int, 1)
	go func() {
		c, _ := post(t, ts.URL+"/retrieve", `{"queries": ["star"]}`)
		done <- c
	}()
	time.Sleep(20 * time.Millisecond)
	held[0].Write([]byte(`"a"]}`))
	held[0].Close()
	if c := <-done; c != http.StatusOK {
		t.Errorf("request after a turn freed: %d", c)
	}
	held[1].Close()
	wg.Wait()
}

// swapRetriever lets a test change the retriever under a running server
// without a data race.
type swapRetriever struct {
	cur atomic.Pointer[retrieval.Retriever]
}

func (s *swapRetriever) set(r retrieval.Retriever) { s.cur.Store(&r) }

func (s *swapRetriever) Search(ctx context.Context, q string, k int, dst []retrieval.Hit) ([]retrieval.Hit, error) {
	return (*s.cur.Load()).Search(ctx, q, k, dst)
}

// panicRetriever panics from its after-th call on (calls may come from
// several goroutines).
type panicRetriever struct{ after int64 }

func (p *panicRetriever) Search(_ context.Context, q string, k int, dst []retrieval.Hit) ([]retrieval.Hit, error) {
	if atomic.AddInt64(&p.after, -1) < 0 {
		var b []byte
		_ = b[len(q)+5] // an index out of range, as corrupt postings caused
	}
	return append(dst, retrieval.Hit{Doc: 0, Score: 1}), nil
}

// TestReliabilityHandlerPanic: a panic in a handler used to drop the
// connection with no answer. Before anything is sent it must be a JSON 500
// (and the server keeps serving); mid-stream, the connection is cut so the
// client cannot mistake a truncated reply for a whole one.
func TestReliabilityHandlerPanic(t *testing.T) {
	s, err := New(testIndex(t), Options{StreamChunkBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	swap := &swapRetriever{}
	swap.set(&panicRetriever{after: 0})
	s.retriever = swap
	ts := httptest.NewServer(s)
	defer ts.Close()

	code, body := post(t, ts.URL+"/retrieve", `{"queries": ["star"]}`)
	var e apiError
	if code != http.StatusInternalServerError || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "internal error") {
		t.Errorf("panic before streaming: %d %s, want JSON 500", code, body)
	}

	// The first window of searchWindowSize queries is searched and
	// streamed before the panic, in the second window.
	swap.set(&panicRetriever{after: searchWindowSize + 3})
	resp, err := http.Post(ts.URL+"/retrieve", "application/json", strings.NewReader(queriesBody(searchWindowSize+20, 3, false)))
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		// The status line and the first rows went out (they are flushed
		// per chunk); then the body must end short.
		t.Errorf("panic mid-stream: read err %v, want a cut connection (unexpected EOF)", err)
	}

	swap.set(s.ix.BM25)
	if code, body := post(t, ts.URL+"/retrieve", `{"queries": ["star"]}`); code != 200 {
		t.Errorf("after panics: %d %s", code, body)
	}
}

// TestReliabilityTopKAboveHundred: topk above the old cap of 100 is served
// up to MaxTopK, and queries × topk is bounded with a 413.
func TestReliabilityTopKAboveHundred(t *testing.T) {
	ts := testServer(t, Options{MaxResults: 3000})
	if code, body := post(t, ts.URL+"/retrieve", `{"queries": ["star"], "topk": 500}`); code != 200 {
		t.Errorf("topk 500: %d %s", code, body)
	}
	if code, body := post(t, ts.URL+"/retrieve", `{"queries": ["star"], "topk": 1001}`); code != 400 || !strings.Contains(string(body), "max-topk") {
		t.Errorf("topk 1001: %d %s", code, body)
	}
	if code, body := post(t, ts.URL+"/retrieve", queriesBody(7, 500, false)); code != 413 || !strings.Contains(string(body), "results exceed") {
		t.Errorf("7 × 500: %d %s", code, body)
	}
}

// TestReliabilityDamagedIndexServed: with the checksum pass in the
// background (serve search's default), a damaged file is found while the
// server runs; /health then answers 503 naming it (it used to say "ok"
// whatever the index held) and queries are refused with a JSON 503.
func TestReliabilityDamagedIndexServed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	if _, err := retrieval.Build(context.Background(), retrieval.BuildOptions{
		Corpus: "testdata/corpus.jsonl", Out: dir, Progress: retrieval.ProgressOff, NoSync: true,
	}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bm25", "postings.dat")
	data, _ := os.ReadFile(path)
	data[3] ^= 0xff
	os.WriteFile(path, data, 0o644)
	ix, err := retrieval.Open(dir, retrieval.OpenOptions{Verify: retrieval.VerifyBackground})
	if err != nil {
		t.Fatalf("background verification must not block open: %v", err)
	}
	defer ix.Close()
	deadline := time.Now().Add(5 * time.Second)
	for ix.Integrity().Status == "verifying" && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if st := ix.Integrity(); st.Status != "damaged" || !strings.Contains(st.Err.Error(), "bm25/postings.dat") {
		t.Fatalf("integrity %+v", st)
	}
	ts := httptest.NewServer(mustNew(t, ix))
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 503 || h["status"] != "damaged" || !strings.Contains(fmt.Sprint(h["error"]), "postings.dat") {
		t.Errorf("/health on a damaged index: %d %v", resp.StatusCode, h)
	}
	for _, ep := range []string{"/retrieve", "/access"} {
		code, body := post(t, ts.URL+ep, `{"queries": ["star"], "urls": ["x"]}`)
		if code != 503 || !strings.Contains(string(body), "damaged") {
			t.Errorf("%s on a damaged index: %d %s", ep, code, body)
		}
	}
}

func mustNew(t testing.TB, ix *retrieval.Index) *Server {
	t.Helper()
	s, err := New(ix, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStreamedRepliesEqualWhole: with a tiny chunk every reply streams in
// many writes; the bytes must equal the reply sent whole.
func TestStreamedRepliesEqualWhole(t *testing.T) {
	ix := testIndex(t)
	whole, err := New(ix, Options{})
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := New(ix, Options{StreamChunkBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, body string }{
		{"/retrieve", `{"queries": ["closest star", "Sirius", "nothing matches zzz", "red dwarf"], "topk": 3, "return_scores": true}`},
		{"/retrieve", `{"queries": ["star"], "topk": 5}`},
		{"/retrieve", `{"queries": []}`},
		{"/access", `{"urls": ["https://example.org/beta", "nope", "https://en.wikipedia.org/wiki/Sirius"]}`},
	} {
		a, b := httptest.NewRecorder(), &writeSizes{ResponseRecorder: httptest.NewRecorder()}
		whole.ServeHTTP(a, httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body)))
		streamed.ServeHTTP(b, httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body)))
		if a.Code != 200 || b.Code != 200 || a.Body.String() != b.Body.String() || !json.Valid(b.Body.Bytes()) {
			t.Errorf("%s %s: whole %d %q, streamed %d %q", tc.path, tc.body, a.Code, a.Body, b.Code, b.Body)
		}
		if ct := b.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: streamed Content-Type %q", tc.path, ct)
		}
	}
}
