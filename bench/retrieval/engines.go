package retrievalbench

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/mapping"
	blevesearch "github.com/blevesearch/bleve/v2/search"
	_ "modernc.org/sqlite" // FTS5 via the cgo-free SQLite

	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/retrieval/server"
)

// engine is one system under test. search must be safe for concurrent use
// and returns the ids ("0", "1", ... = corpus order) of the top k.
type engine interface {
	name() string
	build(ctx context.Context, docs []benchDoc, corpusPath, dir string) error
	search(ctx context.Context, query string, k int) ([]int, error)
	close() error
}

type benchDoc struct{ text string }

// ours is asearcher's BM25 engine called in process.
type ours struct {
	ix    *retrieval.Index
	k1, b float64
	an    retrieval.AnalyzerConfig
	pool  chan []retrieval.Hit
}

func (o *ours) name() string { return "asearcher" }

func (o *ours) build(ctx context.Context, _ []benchDoc, corpusPath, dir string) error {
	if _, err := retrieval.Build(ctx, retrieval.BuildOptions{
		Corpus: corpusPath, Out: dir, K1: o.k1, B: o.b, Analyzer: o.an, Progress: retrieval.ProgressOff,
		// FTS5 runs with synchronous=OFF and bleve does not fsync either.
		NoSync: true,
	}); err != nil {
		return err
	}
	ix, err := retrieval.Open(dir, retrieval.OpenOptions{NoDense: true})
	if err != nil {
		return err
	}
	o.ix = ix
	o.pool = make(chan []retrieval.Hit, 256)
	return nil
}

func (o *ours) search(ctx context.Context, q string, k int) ([]int, error) {
	var dst []retrieval.Hit
	select {
	case dst = <-o.pool:
	default:
	}
	hits, err := o.ix.BM25.Search(ctx, q, k, dst[:0])
	ids := make([]int, len(hits))
	for i, h := range hits {
		ids[i] = int(h.Doc)
	}
	select {
	case o.pool <- hits:
	default:
	}
	return ids, err
}

// searchCount is the measured in-process path: no result conversion.
func (o *ours) searchCount(ctx context.Context, q string, k int) (int, error) {
	var dst []retrieval.Hit
	select {
	case dst = <-o.pool:
	default:
	}
	hits, err := o.ix.BM25.Search(ctx, q, k, dst[:0])
	n := len(hits)
	select {
	case o.pool <- hits:
	default:
	}
	return n, err
}

func (o *ours) close() error {
	if o.ix != nil {
		return o.ix.Close()
	}
	return nil
}

// oursHTTP is the same index behind the /retrieve server on loopback.
type oursHTTP struct {
	in     *ours
	srv    *http.Server
	url    string
	client *http.Client
}

func (o *oursHTTP) name() string { return "asearcher-http" }

func (o *oursHTTP) build(ctx context.Context, _ []benchDoc, _, _ string) error {
	s, err := server.New(o.in.ix, server.Options{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	o.srv = s.HTTPServer(ln.Addr().String())
	go o.srv.Serve(ln)
	o.url = "http://" + ln.Addr().String() + "/retrieve"
	o.client = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
	return nil
}

func (o *oursHTTP) search(ctx context.Context, q string, k int) ([]int, error) {
	body := corpus.AppendJSONString([]byte(`{"queries":[`), q)
	body = append(body, `],"topk":`...)
	body = strconv.AppendInt(body, int64(k), 10)
	body = append(body, `,"return_scores":false}`...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, data)
	}
	var out struct {
		Result [][]struct {
			ID string `json:"id"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &out); err != nil || len(out.Result) != 1 {
		return nil, fmt.Errorf("bad /retrieve response: %v", err)
	}
	ids := make([]int, len(out.Result[0]))
	for i, r := range out.Result[0] {
		ids[i], _ = strconv.Atoi(r.ID)
	}
	return ids, nil
}

func (o *oursHTTP) close() error {
	if o.srv != nil {
		return o.srv.Close()
	}
	return nil
}

// fts5 is SQLite FTS5 with its bm25() ranking (k1=1.2, b=0.75, fixed).
type fts5 struct {
	db *sql.DB
}

func (f *fts5) name() string { return "sqlite-fts5" }

func (f *fts5) build(ctx context.Context, docs []benchDoc, _, dir string) error {
	path := filepath.Join(dir, "fts5.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	for _, stmt := range []string{
		"PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF",
		"CREATE VIRTUAL TABLE docs USING fts5(body, tokenize='unicode61')",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return fmt.Errorf("fts5: %s: %w", stmt, err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		db.Close()
		return err
	}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO docs(rowid, body) VALUES(?, ?)")
	if err != nil {
		db.Close()
		return err
	}
	for i, d := range docs {
		if _, err := ins.ExecContext(ctx, i, d.text); err != nil {
			db.Close()
			return fmt.Errorf("fts5 insert: %w", err)
		}
	}
	ins.Close()
	if err := tx.Commit(); err != nil {
		db.Close()
		return err
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO docs(docs) VALUES('optimize')"); err != nil {
		db.Close()
		return err
	}
	db.Close()
	if f.db, err = sql.Open("sqlite", "file:"+path+"?mode=ro"); err != nil {
		return err
	}
	f.db.SetMaxOpenConns(128)
	f.db.SetMaxIdleConns(128)
	return nil
}

// ftsQuery ORs the query's words, each quoted so FTS5 syntax in the text
// cannot break the query.
func ftsQuery(q string) string {
	words := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127)
	})
	for i, w := range words {
		words[i] = `"` + w + `"`
	}
	return strings.Join(words, " OR ")
}

func (f *fts5) search(ctx context.Context, q string, k int) ([]int, error) {
	match := ftsQuery(q)
	if match == "" {
		return nil, nil
	}
	rows, err := f.db.QueryContext(ctx, "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY rank LIMIT ?", match, k)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func (f *fts5) close() error {
	if f.db != nil {
		return f.db.Close()
	}
	return nil
}

// bleveEngine is bleve v2 (scorch) with BM25 scoring and no stored fields.
type bleveEngine struct {
	k1, b float64
	ix    bleve.Index
}

func (e *bleveEngine) name() string { return "bleve-bm25" }

func (e *bleveEngine) build(ctx context.Context, docs []benchDoc, _, dir string) error {
	// bleve keeps k1 and b in package variables.
	blevesearch.BM25_k1, blevesearch.BM25_b = e.k1, e.b
	m := bleve.NewIndexMapping()
	m.ScoringModel = "bm25"
	if err := m.AddCustomAnalyzer("plain", map[string]any{
		"type": custom.Name, "tokenizer": unicode.Name, "token_filters": []string{lowercase.Name},
	}); err != nil {
		return err
	}
	m.DefaultAnalyzer = "plain"
	field := mapping.NewTextFieldMapping()
	field.Store, field.IncludeTermVectors, field.IncludeInAll, field.DocValues = false, false, false, false
	dm := mapping.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt("body", field)
	m.DefaultMapping = dm
	ix, err := bleve.New(filepath.Join(dir, "bleve"), m)
	if err != nil {
		return err
	}
	batch := ix.NewBatch()
	for i, d := range docs {
		if err := batch.Index(strconv.Itoa(i), map[string]any{"body": d.text}); err != nil {
			ix.Close()
			return err
		}
		if batch.Size() == 5000 {
			if err := ix.Batch(batch); err != nil {
				ix.Close()
				return err
			}
			batch = ix.NewBatch()
			if err := ctx.Err(); err != nil {
				ix.Close()
				return err
			}
		}
	}
	if err := ix.Batch(batch); err != nil {
		ix.Close()
		return err
	}
	e.ix = ix
	return nil
}

func (e *bleveEngine) search(ctx context.Context, q string, k int) ([]int, error) {
	mq := bleve.NewMatchQuery(q)
	mq.SetField("body")
	req := bleve.NewSearchRequestOptions(mq, k, 0, false)
	res, err := e.ix.SearchInContext(ctx, req)
	if err != nil {
		return nil, err
	}
	ids := make([]int, len(res.Hits))
	for i, h := range res.Hits {
		ids[i], _ = strconv.Atoi(h.ID)
	}
	return ids, nil
}

func (e *bleveEngine) close() error {
	if e.ix != nil {
		return e.ix.Close()
	}
	return nil
}
