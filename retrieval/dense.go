package retrieval

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/viterin/vek/vek32"
	"golang.org/x/sync/errgroup"
)

// Files of a dense index directory.
const (
	vectorsFile    = "vectors.f32"
	denseMetaFile  = "meta.json"
	denseBuildFile = "build.json"
	centroidsFile  = "ivf.centroids.f32"
	listsFile      = "ivf.lists"
)

// DenseBuildOptions configure embedding a corpus.
type DenseBuildOptions struct {
	// Endpoint is an OpenAI-compatible embeddings server (TEI, vLLM,
	// SGLang); Model the model name it serves.
	Endpoint string
	Model    string
	APIKey   string
	// QueryPrefix and PassagePrefix are prepended before embedding; both
	// empty means E5's "query: " and "passage: " unless NoPrefixes.
	QueryPrefix, PassagePrefix string
	NoPrefixes                 bool
	// BatchSize texts per request (default 64) and Concurrency requests in
	// flight (default 2).
	BatchSize, Concurrency int
	// MaxChars truncates long passages before embedding (default 4096
	// bytes; E5 reads 512 tokens at most anyway).
	MaxChars int
	// IVFLists is the number of k-means lists: 0 picks flat search below
	// 100k passages and about 4·√n lists above; negative forces flat.
	IVFLists int
	HTTP     *http.Client
}

// DenseMeta describes a finished dense index.
type DenseMeta struct {
	Model         string    `json:"model"`
	Endpoint      string    `json:"endpoint"`
	Dim           int       `json:"dim"`
	Count         int64     `json:"count"`
	QueryPrefix   string    `json:"query_prefix"`
	PassagePrefix string    `json:"passage_prefix"`
	Normalized    bool      `json:"normalized"`
	IVFLists      int       `json:"ivf_lists"`
	Created       time.Time `json:"created"`
}

func (o *DenseBuildOptions) withDefaults() error {
	if o.Endpoint == "" || o.Model == "" {
		return errors.New("dense index: need --dense-endpoint and --dense-model")
	}
	if !o.NoPrefixes && o.QueryPrefix == "" && o.PassagePrefix == "" {
		o.QueryPrefix, o.PassagePrefix = "query: ", "passage: "
	}
	if o.NoPrefixes {
		o.QueryPrefix, o.PassagePrefix = "", ""
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 64
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.MaxChars <= 0 {
		o.MaxChars = 4096
	}
	return nil
}

// denseBuildState is written before the first vector so that a resumed
// build continues only with the same model and prefixes.
type denseBuildState struct {
	Model         string `json:"model"`
	PassagePrefix string `json:"passage_prefix"`
	Count         int64  `json:"count"`
	Dim           int    `json:"dim"`
}

// BuildDense embeds every passage of st into dir. It resumes an interrupted
// build: vectors already in dir/vectors.f32 are kept when the model and
// prefix match.
func BuildDense(ctx context.Context, st *corpus.Store, dir string, opts DenseBuildOptions, mode ProgressMode, logger *slog.Logger) (*DenseMeta, error) {
	if err := opts.withDefaults(); err != nil {
		return nil, err
	}
	logger = orDiscard(logger)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dense index: %w", err)
	}
	n := int64(st.Len())
	state := denseBuildState{Model: opts.Model, PassagePrefix: opts.PassagePrefix, Count: n}
	var prev denseBuildState
	statePath := filepath.Join(dir, denseBuildFile)
	if data, err := os.ReadFile(statePath); err == nil && json.Unmarshal(data, &prev) == nil &&
		prev.Model == state.Model && prev.PassagePrefix == state.PassagePrefix && prev.Count == n {
		state.Dim = prev.Dim
	}
	vf, err := os.OpenFile(filepath.Join(dir, vectorsFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dense index: %w", err)
	}
	defer vf.Close()
	var done int64
	if state.Dim > 0 {
		info, err := vf.Stat()
		if err != nil {
			return nil, err
		}
		done = info.Size() / int64(4*state.Dim)
	}
	// Drop a torn last vector, then append after the complete ones.
	if err := vf.Truncate(done * int64(4*max(state.Dim, 1))); err != nil {
		return nil, fmt.Errorf("dense index: %w", err)
	}
	if _, err := vf.Seek(0, io.SeekEnd); err != nil {
		return nil, fmt.Errorf("dense index: %w", err)
	}
	if done > 0 {
		logger.Info("resuming dense embedding", "done", done, "of", n)
	}
	client := &EmbeddingsClient{Endpoint: opts.Endpoint, Model: opts.Model, APIKey: opts.APIKey, HTTP: opts.HTTP}
	prog := newProgress(mode, logger, "embedding passages", n, "passages")
	window := opts.BatchSize * opts.Concurrency
	buf := make([]byte, 0, window*4*1024)
	for start := done; start < n; start += int64(window) {
		end := min(n, start+int64(window))
		results := make([][][]float32, (end-start+int64(opts.BatchSize)-1)/int64(opts.BatchSize))
		g, gctx := errgroup.WithContext(ctx)
		for bi := range results {
			lo := start + int64(bi*opts.BatchSize)
			hi := min(end, lo+int64(opts.BatchSize))
			g.Go(func() error {
				texts := make([]string, 0, hi-lo)
				for ord := lo; ord < hi; ord++ {
					p, err := st.Passage(uint32(ord))
					if err != nil {
						return err
					}
					text := p.Contents
					if len(text) > opts.MaxChars {
						text = truncateUTF8(text, opts.MaxChars)
					}
					texts = append(texts, opts.PassagePrefix+text)
				}
				vecs, err := client.Embed(gctx, texts)
				results[bi] = vecs
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, fmt.Errorf("dense index: embedded %d of %d passages, then: %w (run the same command again to resume)", start, n, err)
		}
		buf = buf[:0]
		for _, vecs := range results {
			for _, v := range vecs {
				if state.Dim == 0 {
					state.Dim = len(v)
					if err := corpus.WriteJSONFile(statePath, state); err != nil {
						return nil, err
					}
				}
				if len(v) != state.Dim {
					return nil, fmt.Errorf("dense index: the server returned %d-d vectors after %d-d ones", len(v), state.Dim)
				}
				normalize(v)
				for _, x := range v {
					buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
				}
			}
		}
		if _, err := vf.Write(buf); err != nil {
			return nil, fmt.Errorf("dense index: %w", err)
		}
		prog.Set(end, "")
	}
	prog.Finish()
	if err := vf.Sync(); err != nil {
		return nil, err
	}
	meta := &DenseMeta{
		Model: opts.Model, Endpoint: opts.Endpoint, Dim: state.Dim, Count: n,
		QueryPrefix: opts.QueryPrefix, PassagePrefix: opts.PassagePrefix, Normalized: true,
		Created: time.Now().UTC(),
	}
	lists := opts.IVFLists
	if lists == 0 && n >= 100_000 {
		lists = int(4 * math.Sqrt(float64(n)))
	}
	if lists > 0 && int64(lists) <= n {
		m, err := corpus.MapFile(filepath.Join(dir, vectorsFile))
		if err != nil {
			return nil, err
		}
		err = buildIVF(ctx, corpus.F32s(m.Data), state.Dim, lists, dir, mode, logger)
		m.Close()
		if err != nil {
			return nil, err
		}
		meta.IVFLists = lists
	}
	if err := corpus.SyncFS(dir); err != nil {
		return nil, err
	}
	if err := corpus.WriteJSONFile(filepath.Join(dir, denseMetaFile), meta); err != nil {
		return nil, err
	}
	return meta, nil
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// buildIVF clusters the vectors with spherical k-means (on a sample) and
// writes each vector's list.
func buildIVF(ctx context.Context, vecs []float32, dim, lists int, dir string, mode ProgressMode, logger *slog.Logger) error {
	n := len(vecs) / dim
	rng := rand.New(rand.NewPCG(42, uint64(n)))
	sampleN := min(n, lists*64)
	perm := rng.Perm(n)[:sampleN]
	slices.Sort(perm)
	sample := make([]float32, 0, sampleN*dim)
	for _, i := range perm {
		sample = append(sample, vecs[i*dim:(i+1)*dim]...)
	}
	cent := make([]float32, lists*dim)
	copy(cent, sample[:lists*dim])
	assign := make([]int32, sampleN)
	prog := newProgress(mode, logger, "training IVF", 10, "iterations")
	for iter := 0; iter < 10; iter++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		assignNearest(sample, cent, dim, assign)
		sums := make([]float32, lists*dim)
		counts := make([]int, lists)
		for i, c := range assign {
			vek32.Add_Inplace(sums[int(c)*dim:(int(c)+1)*dim], sample[i*dim:(i+1)*dim])
			counts[c]++
		}
		for c := 0; c < lists; c++ {
			row := sums[c*dim : (c+1)*dim]
			if counts[c] == 0 {
				j := rng.IntN(sampleN)
				copy(row, sample[j*dim:(j+1)*dim])
			}
			normalize(row)
		}
		cent = sums
		prog.Set(int64(iter+1), "")
	}
	prog.Finish()
	all := make([]int32, n)
	const chunk = 1 << 16
	for lo := 0; lo < n; lo += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(n, lo+chunk)
		assignNearest(vecs[lo*dim:hi*dim], cent, dim, all[lo:hi])
	}
	offsets := make([]uint32, lists+1)
	for _, c := range all {
		offsets[c+1]++
	}
	for c := 1; c <= lists; c++ {
		offsets[c] += offsets[c-1]
	}
	ids := make([]uint32, n)
	fill := slices.Clone(offsets[:lists])
	for i, c := range all {
		ids[fill[c]] = uint32(i)
		fill[c]++
	}
	cb := make([]byte, 0, 4*len(cent))
	for _, x := range cent {
		cb = binary.LittleEndian.AppendUint32(cb, math.Float32bits(x))
	}
	if err := atomicfile.WriteFileDeferSync(filepath.Join(dir, centroidsFile), cb); err != nil {
		return err
	}
	lb := make([]byte, 0, 4*(len(offsets)+len(ids)))
	for _, x := range offsets {
		lb = binary.LittleEndian.AppendUint32(lb, x)
	}
	for _, x := range ids {
		lb = binary.LittleEndian.AppendUint32(lb, x)
	}
	return atomicfile.WriteFileDeferSync(filepath.Join(dir, listsFile), lb)
}

// assignNearest sets assign[i] to the centroid with the largest dot product
// with row i of vecs, scoring 256 rows at a time with a SIMD matrix product.
func assignNearest(vecs, cent []float32, dim int, assign []int32) {
	lists := len(cent) / dim
	centT := make([]float32, dim*lists)
	for c := 0; c < lists; c++ {
		for d := 0; d < dim; d++ {
			centT[d*lists+c] = cent[c*dim+d]
		}
	}
	const rows = 256
	scores := make([]float32, rows*lists)
	n := len(vecs) / dim
	for lo := 0; lo < n; lo += rows {
		hi := min(n, lo+rows)
		s := vek32.MatMul_Into(scores, vecs[lo*dim:hi*dim], centT, dim)
		for i := lo; i < hi; i++ {
			assign[i] = int32(vek32.ArgMax(s[(i-lo)*lists : (i-lo+1)*lists]))
		}
	}
}

// DenseOptions tune an opened dense index.
type DenseOptions struct {
	// Endpoint overrides the embeddings server recorded at build time.
	Endpoint string
	APIKey   string
	// NProbe is how many IVF lists a query scans (default lists/16, at
	// least 8); ignored for flat indexes.
	NProbe int
	HTTP   *http.Client
}

// Dense is an opened dense index: vectors are memory-mapped and queries are
// embedded through the configured endpoint.
type Dense struct {
	meta    DenseMeta
	maps    []*corpus.Mapped
	vecs    []float32
	cent    []float32
	offsets []uint32
	ids     []uint32
	nprobe  int
	client  *EmbeddingsClient
}

// OpenDense maps a dense index directory (an index's dense/ folder).
func OpenDense(dir string, opts DenseOptions) (_ *Dense, err error) {
	d := &Dense{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	data, err := os.ReadFile(filepath.Join(dir, denseMetaFile))
	if err != nil {
		return nil, fmt.Errorf("open dense index: %w", err)
	}
	if err := json.Unmarshal(data, &d.meta); err != nil {
		return nil, fmt.Errorf("open dense index: %w", err)
	}
	m, err := corpus.MapFile(filepath.Join(dir, vectorsFile))
	if err != nil {
		return nil, fmt.Errorf("open dense index: %w", err)
	}
	d.maps = append(d.maps, m)
	d.vecs = corpus.F32s(m.Data)
	if d.meta.Dim <= 0 || int64(len(d.vecs)) != d.meta.Count*int64(d.meta.Dim) {
		return nil, fmt.Errorf("open dense index %s: vectors.f32 does not hold %d×%d floats; rebuild it", dir, d.meta.Count, d.meta.Dim)
	}
	if d.meta.IVFLists > 0 {
		cm, err := corpus.MapFile(filepath.Join(dir, centroidsFile))
		if err != nil {
			return nil, fmt.Errorf("open dense index: %w", err)
		}
		d.maps = append(d.maps, cm)
		lm, err := corpus.MapFile(filepath.Join(dir, listsFile))
		if err != nil {
			return nil, fmt.Errorf("open dense index: %w", err)
		}
		d.maps = append(d.maps, lm)
		d.cent = corpus.F32s(cm.Data)
		all := corpus.U32s(lm.Data)
		lists := d.meta.IVFLists
		if len(d.cent) != lists*d.meta.Dim || int64(len(all)) != int64(lists+1)+d.meta.Count {
			return nil, fmt.Errorf("open dense index %s: IVF files do not match meta.json; rebuild it", dir)
		}
		d.offsets, d.ids = all[:lists+1], all[lists+1:]
		d.nprobe = opts.NProbe
		if d.nprobe <= 0 {
			d.nprobe = max(8, lists/16)
		}
		d.nprobe = min(d.nprobe, lists)
	}
	endpoint := d.meta.Endpoint
	if opts.Endpoint != "" {
		endpoint = opts.Endpoint
	}
	d.client = &EmbeddingsClient{Endpoint: endpoint, Model: d.meta.Model, APIKey: opts.APIKey, HTTP: opts.HTTP, MaxAttempts: 3}
	return d, nil
}

// Meta describes the index.
func (d *Dense) Meta() DenseMeta { return d.meta }

// Close unmaps the files.
func (d *Dense) Close() error {
	var errs []error
	for _, m := range d.maps {
		errs = append(errs, m.Close())
	}
	d.maps = nil
	return errors.Join(errs...)
}

// Search implements Retriever: it embeds the query and searches vectors.
func (d *Dense) Search(ctx context.Context, query string, k int, dst []Hit) ([]Hit, error) {
	if k <= 0 {
		return dst, nil
	}
	vecs, err := d.client.Embed(ctx, []string{d.meta.QueryPrefix + query})
	if err != nil {
		return dst, fmt.Errorf("dense search: %w", err)
	}
	q := vecs[0]
	if len(q) != d.meta.Dim {
		return dst, fmt.Errorf("dense search: query vector has %d dimensions, index has %d", len(q), d.meta.Dim)
	}
	normalize(q)
	return d.SearchVector(q, k, dst), nil
}

// SearchVector appends the k passages whose vectors have the largest dot
// product with q: exact over all vectors, or over the nearest IVF lists.
func (d *Dense) SearchVector(q []float32, k int, dst []Hit) []Hit {
	var top topK
	top.h = make([]Hit, 0, k)
	top.reset(k)
	dim := d.meta.Dim
	if d.cent == nil {
		for i := 0; i < int(d.meta.Count); i++ {
			top.push(Hit{Doc: uint32(i), Score: vek32.Dot(q, d.vecs[i*dim:(i+1)*dim])})
		}
		return top.appendSorted(dst)
	}
	var lists topK
	lists.reset(d.nprobe)
	for c := 0; c < d.meta.IVFLists; c++ {
		lists.push(Hit{Doc: uint32(c), Score: vek32.Dot(q, d.cent[c*dim:(c+1)*dim])})
	}
	for _, l := range lists.h {
		for _, id := range d.ids[d.offsets[l.Doc]:d.offsets[l.Doc+1]] {
			top.push(Hit{Doc: id, Score: vek32.Dot(q, d.vecs[int(id)*dim:(int(id)+1)*dim])})
		}
	}
	// Lists are scanned out of document order, so ties are settled here.
	return top.appendSorted(dst)
}

// Hybrid fuses two retrievers by reciprocal rank fusion: a document scores
// Σ 1/(K + rank) over the lists it appears in (rank from 1).
type Hybrid struct {
	Sparse, Dense Retriever
	// Depth is how many hits each retriever contributes (default 100, at
	// least k); K is the RRF constant (default 60).
	Depth int
	K     float64
}

// Search implements Retriever; the two retrievers run concurrently.
func (h *Hybrid) Search(ctx context.Context, query string, k int, dst []Hit) ([]Hit, error) {
	if k <= 0 {
		return dst, nil
	}
	depth := h.Depth
	if depth <= 0 {
		depth = 100
	}
	depth = max(depth, k)
	rrfK := h.K
	if rrfK <= 0 {
		rrfK = 60
	}
	var sparse, dense []Hit
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { sparse, err = h.Sparse.Search(gctx, query, depth, nil); return err })
	g.Go(func() (err error) { dense, err = h.Dense.Search(gctx, query, depth, nil); return err })
	if err := g.Wait(); err != nil {
		return dst, err
	}
	fused := make(map[uint32]float64, len(sparse)+len(dense))
	for _, list := range [][]Hit{sparse, dense} {
		for rank, hit := range list {
			fused[hit.Doc] += 1 / (rrfK + float64(rank+1))
		}
	}
	var top topK
	top.reset(k)
	for doc, s := range fused {
		top.push(Hit{Doc: doc, Score: float32(s)})
	}
	return top.appendSorted(dst), nil
}
