package retrieval

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/asearcher/asearcher/corpus"
)

const fakeDim = 32

// fakeEmbedder is an in-process OpenAI-compatible /v1/embeddings server.
// A text's vector is the sum of fixed pseudo-random vectors of its words
// (after the E5 prefix), so texts sharing words are close.
type fakeEmbedder struct {
	mu       sync.Mutex
	inputs   []string
	requests atomic.Int64
	// failFrom makes every request from this number on fail (0: never).
	failFrom int64
	failCode int
	// flaky fails this many requests with 503 before answering.
	flaky atomic.Int64
}

func wordVec(w string) []float32 {
	rng := rand.New(rand.NewPCG(corpus.HashKey(w), 1))
	v := make([]float32, fakeDim)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func fakeEmbed(text string) []float32 {
	for _, p := range []string{"query: ", "passage: "} {
		text = strings.TrimPrefix(text, p)
	}
	v := make([]float32, fakeDim)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
		for i, x := range wordVec(w) {
			v[i] += x
		}
	}
	v[0] += 1e-3 // never the zero vector
	return v
}

func (f *fakeEmbedder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.requests.Add(1)
	if r.URL.Path != "/v1/embeddings" || r.Method != http.MethodPost {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if f.flaky.Add(-1) >= 0 {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	}
	if f.failFrom > 0 && n >= f.failFrom {
		http.Error(w, `{"error": "broken"}`, f.failCode)
		return
	}
	var req embeddingsRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.inputs = append(f.inputs, req.Input...)
	f.mu.Unlock()
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	resp := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
	}{Object: "list", Model: req.Model}
	// Answer out of order: clients must use "index".
	for i := len(req.Input) - 1; i >= 0; i-- {
		resp.Data = append(resp.Data, item{"embedding", i, fakeEmbed(req.Input[i])})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func TestEmbeddingsClientRetries(t *testing.T) {
	fake := &fakeEmbedder{}
	fake.flaky.Store(2)
	ts := httptest.NewServer(fake)
	defer ts.Close()
	c := &EmbeddingsClient{Endpoint: ts.URL + "/v1/", Model: "m"}
	vecs, err := c.Embed(context.Background(), []string{"a b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if fake.requests.Load() != 3 || len(vecs) != 2 || vecs[0][1] != fakeEmbed("a b")[1] {
		t.Errorf("requests %d, vecs %d", fake.requests.Load(), len(vecs))
	}
	bad := &fakeEmbedder{failFrom: 1, failCode: http.StatusBadRequest}
	ts2 := httptest.NewServer(bad)
	defer ts2.Close()
	if _, err := (&EmbeddingsClient{Endpoint: ts2.URL, Model: "m"}).Embed(context.Background(), []string{"x"}); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("err = %v", err)
	}
	if bad.requests.Load() != 1 {
		t.Errorf("a 400 was retried %d times", bad.requests.Load())
	}
}

func denseCorpus() []string {
	topics := []string{"volcano lava eruption magma", "violin orchestra symphony concerto", "glacier ice polar arctic",
		"football goal striker league", "bread flour yeast oven", "comet orbit telescope astronomy"}
	var docs []string
	for i := 0; i < 60; i++ {
		docs = append(docs, fmt.Sprintf("%s note %d", topics[i%len(topics)], i))
	}
	return docs
}

func TestDenseBuildSearchAndHybrid(t *testing.T) {
	fake := &fakeEmbedder{}
	ts := httptest.NewServer(fake)
	defer ts.Close()
	docs := denseCorpus()
	ix := buildIndex(t, BuildOptions{
		Corpus: writeCorpus(t, docs),
		Dense:  &DenseBuildOptions{Endpoint: ts.URL, Model: "fake-e5", BatchSize: 7},
	})
	if ix.Dense == nil || ix.Manifest.Dense == nil || ix.Dense.Meta().Dim != fakeDim {
		t.Fatalf("no dense index: %+v", ix.Manifest.Dense)
	}
	for _, in := range fake.inputs {
		if !strings.HasPrefix(in, "passage: ") {
			t.Fatalf("passage embedded without prefix: %q", in)
		}
	}
	if len(fake.inputs) != len(docs) {
		t.Errorf("%d passages embedded, want %d", len(fake.inputs), len(docs))
	}
	ctx := context.Background()
	hits, err := ix.Dense.Search(ctx, "orchestra violin", 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if last := fake.inputs[len(fake.inputs)-1]; last != "query: orchestra violin" {
		t.Errorf("query embedded as %q", last)
	}
	// Exact search: the hits are the brute-force best by dot product.
	q := fakeEmbed("orchestra violin")
	normalize(q)
	best := -1.0
	for _, d := range docs {
		v := fakeEmbed("passage: " + d)
		normalize(v)
		var dot float64
		for j := range v {
			dot += float64(v[j]) * float64(q[j])
		}
		best = math.Max(best, dot)
	}
	if len(hits) != 5 || math.Abs(float64(hits[0].Score)-best) > 1e-4 {
		t.Fatalf("top hit %v, want score %.5f", hits, best)
	}
	for _, h := range hits {
		p, _ := ix.Store.Passage(h.Doc)
		if !strings.Contains(p.Contents, "violin") {
			t.Errorf("dense hit %q is off topic", p.Contents)
		}
	}
	for _, method := range []string{"hybrid", "dense", "bm25"} {
		r, err := ix.Retriever(method)
		if err != nil {
			t.Fatal(err)
		}
		hits, err := r.Search(ctx, "glacier arctic", 3, nil)
		if err != nil || len(hits) != 3 {
			t.Fatalf("%s: %v %v", method, hits, err)
		}
		for _, h := range hits {
			p, _ := ix.Store.Passage(h.Doc)
			if !strings.Contains(p.Contents, "glacier") {
				t.Errorf("%s hit %q is off topic", method, p.Contents)
			}
		}
	}
}

func TestDenseResume(t *testing.T) {
	docs := denseCorpus()
	ix := buildIndex(t, BuildOptions{Corpus: writeCorpus(t, docs)})
	dir := ix.Dir
	broken := &fakeEmbedder{failFrom: 4, failCode: http.StatusBadRequest}
	ts := httptest.NewServer(broken)
	opts := DenseBuildOptions{Endpoint: ts.URL, Model: "fake-e5", BatchSize: 5, Concurrency: 1}
	_, err := AddDense(context.Background(), dir, opts, ProgressOff, nil)
	ts.Close()
	if err == nil || !strings.Contains(err.Error(), "run the same command again to resume") {
		t.Fatalf("err = %v", err)
	}
	if got := len(broken.inputs); got != 15 {
		t.Fatalf("%d passages embedded before the failure, want 15", got)
	}
	good := &fakeEmbedder{}
	ts2 := httptest.NewServer(good)
	defer ts2.Close()
	opts.Endpoint = ts2.URL
	meta, err := AddDense(context.Background(), dir, opts, ProgressOff, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(good.inputs) != len(docs)-15 || meta.Count != int64(len(docs)) {
		t.Errorf("resume embedded %d passages (want %d), count %d", len(good.inputs), len(docs)-15, meta.Count)
	}
	ix2, err := Open(dir, OpenOptions{Dense: DenseOptions{Endpoint: ts2.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer ix2.Close()
	// The resumed vectors equal a fresh embedding of each passage.
	for _, ord := range []uint32{0, 14, 15, 59} {
		p, _ := ix2.Store.Passage(ord)
		want := fakeEmbed("passage: " + p.Contents)
		normalize(want)
		got := ix2.Dense.vecs[int(ord)*fakeDim : int(ord+1)*fakeDim]
		for j := range want {
			if math.Abs(float64(got[j]-want[j])) > 1e-6 {
				t.Fatalf("vector %d differs after resume", ord)
			}
		}
	}
}

// TestIVFRecall checks IVF search against exact search on clustered data.
func TestIVFRecall(t *testing.T) {
	const n, dim, lists = 6000, 24, 40
	rng := rand.New(rand.NewPCG(5, 6))
	centers := make([][]float32, 60)
	for i := range centers {
		centers[i] = make([]float32, dim)
		for j := range centers[i] {
			centers[i][j] = float32(rng.NormFloat64())
		}
	}
	dir := t.TempDir()
	var buf []byte
	vecs := make([]float32, 0, n*dim)
	for i := 0; i < n; i++ {
		c := centers[rng.IntN(len(centers))]
		v := make([]float32, dim)
		for j := range v {
			v[j] = c[j] + 0.4*float32(rng.NormFloat64())
		}
		normalize(v)
		vecs = append(vecs, v...)
		for _, x := range v {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, vectorsFile), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := buildIVF(context.Background(), vecs, dim, lists, dir, ProgressOff, nil); err != nil {
		t.Fatal(err)
	}
	meta := DenseMeta{Model: "m", Dim: dim, Count: n, Normalized: true, IVFLists: lists}
	if err := corpus.WriteJSONFile(filepath.Join(dir, denseMetaFile), meta); err != nil {
		t.Fatal(err)
	}
	ivf, err := OpenDense(dir, DenseOptions{NProbe: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer ivf.Close()
	flat := &Dense{meta: DenseMeta{Dim: dim, Count: n}, vecs: vecs}
	total, found := 0, 0
	for i := 0; i < 100; i++ {
		q := make([]float32, dim)
		c := centers[rng.IntN(len(centers))]
		for j := range q {
			q[j] = c[j] + 0.4*float32(rng.NormFloat64())
		}
		normalize(q)
		exact := flat.SearchVector(q, 10, nil)
		approx := ivf.SearchVector(q, 10, nil)
		in := map[uint32]bool{}
		for _, h := range approx {
			in[h.Doc] = true
		}
		for _, h := range exact {
			total++
			if in[h.Doc] {
				found++
			}
		}
	}
	recall := float64(found) / float64(total)
	t.Logf("IVF recall@10 with nprobe 6 of %d lists: %.3f", lists, recall)
	if recall < 0.9 {
		t.Errorf("IVF recall@10 = %.3f, want ≥ 0.9", recall)
	}
}

type fixedRetriever []Hit

func (f fixedRetriever) Search(_ context.Context, _ string, k int, dst []Hit) ([]Hit, error) {
	return append(dst, f[:min(k, len(f))]...), nil
}

// TestHybridRRF checks reciprocal rank fusion by hand: with K = 60,
// doc 2 (ranks 2 and 1) scores 1/62 + 1/61, doc 1 (rank 1 only) 1/61,
// doc 3 (ranks 3 and 3) 2/63, doc 4 (rank 2 only) 1/62.
func TestHybridRRF(t *testing.T) {
	h := &Hybrid{
		Sparse: fixedRetriever{{1, 9}, {2, 8}, {3, 7}},
		Dense:  fixedRetriever{{2, 0.9}, {4, 0.8}, {3, 0.7}},
	}
	hits, err := h.Search(context.Background(), "q", 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		doc   uint32
		score float64
	}{{2, 1.0/62 + 1.0/61}, {3, 2.0 / 63}, {1, 1.0 / 61}, {4, 1.0 / 62}}
	if len(hits) != len(want) {
		t.Fatalf("hits %v", hits)
	}
	for i, w := range want {
		if hits[i].Doc != w.doc || math.Abs(float64(hits[i].Score)-w.score) > 1e-7 {
			t.Errorf("hit %d = %v, want doc %d score %.6f", i, hits[i], w.doc, w.score)
		}
	}
}

// BenchmarkDenseSearch times one top-10 query over 50k 384-d normalised
// vectors (MiniLM's size) exactly and through IVF (224 lists, nprobe 14).
func BenchmarkDenseSearch(b *testing.B) {
	const n, dim, lists = 50000, 384, 224
	rng := rand.New(rand.NewPCG(9, 9))
	vecs := make([]float32, n*dim)
	for i := range vecs {
		vecs[i] = float32(rng.NormFloat64())
	}
	for i := 0; i < n; i++ {
		normalize(vecs[i*dim : (i+1)*dim])
	}
	q := append([]float32(nil), vecs[:dim]...)
	flat := &Dense{meta: DenseMeta{Dim: dim, Count: n}, vecs: vecs}
	b.Run("flat", func(b *testing.B) {
		var dst []Hit
		for b.Loop() {
			dst = flat.SearchVector(q, 10, dst[:0])
		}
	})
	dir := b.TempDir()
	buf := make([]byte, 0, 4*len(vecs))
	for _, x := range vecs {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
	}
	if err := os.WriteFile(filepath.Join(dir, vectorsFile), buf, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := buildIVF(context.Background(), vecs, dim, lists, dir, ProgressOff, nil); err != nil {
		b.Fatal(err)
	}
	if err := corpus.WriteJSONFile(filepath.Join(dir, denseMetaFile), DenseMeta{Model: "m", Dim: dim, Count: n, Normalized: true, IVFLists: lists}); err != nil {
		b.Fatal(err)
	}
	ivf, err := OpenDense(dir, DenseOptions{NProbe: 14})
	if err != nil {
		b.Fatal(err)
	}
	defer ivf.Close()
	b.Run("ivf", func(b *testing.B) {
		var dst []Hit
		for b.Loop() {
			dst = ivf.SearchVector(q, 10, dst[:0])
		}
	})
}
