package rl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	stdlog "log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/llm"
)

// This file checks the invariants of areal.md §12.3 as property tests: the
// whole controller runs rollouts through the real SGLang backend and pool
// against scripted fake SGLang servers with random latencies, aborts,
// failures and weight updates.

const eosID = fakellm.ByteEOS

// scriptFor is the reply a server generates for a rid: deterministic, so a
// rollout can check that the tokens it got back are exactly these, none
// lost or repeated across interruptions.
func scriptFor(rid string) (ids []int, finish string) {
	h := fnv.New64a()
	io.WriteString(h, rid)
	r := rand.New(rand.NewPCG(h.Sum64(), 3))
	n := 1 + r.IntN(30)
	ids = make([]int, n)
	for i := range ids {
		ids[i] = 'a' + r.IntN(26)
	}
	switch x := r.Float64(); {
	case x < 0.03:
		finish = "abort" // aborts by itself, forever: the client must give up
	case x < 0.10:
		finish = "length"
	}
	return ids, finish
}

// segment is one /generate as a proxy in front of a server saw it.
type segment struct {
	server  int
	rid     string
	ok      bool
	tokens  int
	version int // server weight version when generation started
}

// proxy sits in front of one fake server: it logs every request, holds
// /generate while the server is paused (as the server itself does) so that
// the version at generation start is known, and records the protocol.
type proxy struct {
	idx    int
	strip  bool // remove weight_version from replies
	srv    *fakellm.Server
	rp     *httputil.ReverseProxy
	hs     *httptest.Server
	log    *protoLog
	mu     sync.Mutex
	paused bool
	resume chan struct{}
}

type protoLog struct {
	mu       sync.Mutex
	events   []string // "pause s", "continue s", "update s", "generate-in-pause s"
	segments []segment
	failNext map[string]int // endpoint → failures to inject
}

func (l *protoLog) add(e string) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func newProxy(t *testing.T, idx int, srv *fakellm.Server, log *protoLog, strip bool) *proxy {
	u, _ := url.Parse(srv.URL)
	p := &proxy{idx: idx, srv: srv, strip: strip, rp: httputil.NewSingleHostReverseProxy(u), log: log, resume: make(chan struct{})}
	p.rp.ErrorLog = stdlog.New(io.Discard, "", 0)
	p.hs = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.hs.Close)
	return p
}

func (p *proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	name := fmt.Sprintf("%s %d", r.URL.Path, p.idx)
	p.log.mu.Lock()
	if p.log.failNext[r.URL.Path] > 0 {
		p.log.failNext[r.URL.Path]--
		p.log.events = append(p.log.events, "failed "+name)
		p.log.mu.Unlock()
		http.Error(w, `{"success":false,"message":"injected failure"}`, http.StatusInternalServerError)
		return
	}
	p.log.mu.Unlock()
	switch r.URL.Path {
	case "/pause_generation":
		p.mu.Lock()
		p.paused = true
		p.mu.Unlock()
		p.log.add(name)
		p.rp.ServeHTTP(w, r)
		return
	case "/continue_generation":
		p.rp.ServeHTTP(w, r)
		p.mu.Lock()
		if p.paused {
			p.paused = false
			close(p.resume)
			p.resume = make(chan struct{})
		}
		p.mu.Unlock()
		p.log.add(name)
		return
	case "/update_weights_from_disk":
		p.log.add(name)
		p.rp.ServeHTTP(w, r)
		return
	case "/generate":
	default:
		p.rp.ServeHTTP(w, r)
		return
	}
	var req struct {
		RID string `json:"rid"`
	}
	json.Unmarshal(body, &req)
	p.mu.Lock()
	if p.paused {
		p.log.add("generate-in-pause " + name)
	}
	for p.paused {
		ch := p.resume
		p.mu.Unlock()
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	seg := segment{server: p.idx, rid: req.RID}
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r)
	respBody := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		// fakellm never lets a generation span a weight update (updates
		// abort running requests; held ones start after), so the version
		// it reports is the version that generated every token.
		var out map[string]any
		if json.Unmarshal(respBody, &out) == nil {
			if mi, ok := out["meta_info"].(map[string]any); ok {
				ct, _ := mi["completion_tokens"].(float64)
				wv, _ := mi["weight_version"].(string)
				fmt.Sscan(wv, &seg.version)
				seg.ok, seg.tokens = true, int(ct)
				if p.strip {
					delete(mi, "weight_version")
					respBody, _ = json.Marshal(out)
					rec.Header().Del("Content-Length")
				}
			}
		}
	}
	p.log.mu.Lock()
	p.log.segments = append(p.log.segments, seg)
	p.log.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(respBody)
}

// resumer is the AReaL resubmit loop: on an abort it sends prompt + partial
// output again with the remaining budget, appending only what successful
// replies return, and gives up after a bounded number of aborts that
// produced nothing. (The llm package's own wrapper replaces it when it
// lands.)
type resumer struct {
	inner         llm.Sampler
	maxNoProgress int
}

func (r *resumer) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	budget := req.Params.MaxNewTokens
	out := &llm.Response{PromptTokens: len(req.InputIDs)}
	noProgress := 0
	for {
		sub := *req
		sub.InputIDs = append(slices.Clip(req.InputIDs), out.OutputIDs...)
		sub.Params.MaxNewTokens = budget - len(out.OutputIDs)
		resp, err := r.inner.Sample(ctx, &sub)
		if err != nil {
			return nil, err
		}
		out.OutputIDs = append(out.OutputIDs, resp.OutputIDs...)
		out.Logprobs = append(out.Logprobs, resp.Logprobs...)
		out.Versions = append(out.Versions, resp.Versions...)
		out.Text += resp.Text
		if resp.Finish != llm.FinishAbort {
			out.Finish, out.StopMatched = resp.Finish, resp.StopMatched
			return out, nil
		}
		if len(out.OutputIDs) >= budget {
			out.Finish = llm.FinishLength
			return out, nil
		}
		if len(resp.OutputIDs) == 0 {
			noProgress++
			if noProgress > r.maxNoProgress {
				return nil, fmt.Errorf("request %s aborted %d times without progress", req.ID, noProgress)
			}
		} else {
			noProgress = 0
		}
	}
}

type invariantEnv struct {
	t       *testing.T
	servers []*fakellm.Server
	proxies []*proxy
	log     *protoLog
	pool    *llm.Pool

	mu         sync.Mutex
	violations []string
	calls      map[string]*llm.Response // rid → merged reply as the agent saw it
}

func (e *invariantEnv) violate(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.violations) < 20 {
		e.violations = append(e.violations, fmt.Sprintf(format, args...))
	}
}

func newInvariantEnv(t *testing.T, seed uint64, nServers int, omitVersion bool) *invariantEnv {
	e := &invariantEnv{t: t, log: &protoLog{failNext: map[string]int{}}, calls: map[string]*llm.Response{}}
	var rmu sync.Mutex
	r := rand.New(rand.NewPCG(seed, 11))
	var samplers []llm.Sampler
	for i := range nServers {
		srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
			ids, finish := scriptFor(c.RID)
			rmu.Lock()
			defer rmu.Unlock()
			rep := fakellm.Reply{IDs: ids, Finish: finish,
				Delay:      time.Duration(r.IntN(2000)) * time.Microsecond,
				TokenDelay: time.Duration(r.IntN(400)) * time.Microsecond}
			switch x := r.Float64(); {
			case x < 0.04:
				rep = fakellm.Reply{Status: http.StatusServiceUnavailable}
			case x < 0.06:
				rep = fakellm.Reply{Drop: true}
			}
			return rep
		}})
		t.Cleanup(srv.Close)
		e.servers = append(e.servers, srv)
		p := newProxy(t, i, srv, e.log, omitVersion)
		e.proxies = append(e.proxies, p)
		s, err := llm.NewSGLang(llm.SGLangConfig{BaseURL: p.hs.URL})
		if err != nil {
			t.Fatal(err)
		}
		samplers = append(samplers, s)
	}
	pool, err := llm.NewPool(samplers, llm.PoolConfig{Logger: testLogger(t), MaxAttempts: 6, BaseBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond, Cooldown: 20 * time.Millisecond, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	e.pool = pool
	return e
}

// rollout is a multi-turn agent: each turn sends the whole context, then
// appends a masked observation. It checks the token-level contract of each
// reply against the script.
func (e *invariantEnv) rollout(ctx context.Context, q Question, s llm.Sampler, sample int, seed int64) (*Sample, error) {
	r := rand.New(rand.NewPCG(uint64(seed), 5))
	prompt := []int{'q', int('0' + q.Index%10), '>'}
	seq := Sequence{}
	push := func(tok int, gen bool, lp float32, v int) {
		seq.Tokens = append(seq.Tokens, tok)
		seq.LossMask = append(seq.LossMask, gen)
		seq.Logprobs = append(seq.Logprobs, lp)
		seq.Versions = append(seq.Versions, v)
	}
	for _, tok := range prompt {
		push(tok, false, 0, -1)
	}
	turns := 1 + r.IntN(4)
	for turn := range turns {
		rid := fmt.Sprintf("%s-%d-%x#%d", q.ID, sample, uint64(seed)&0xffffff, turn)
		maxNew := 1 + r.IntN(35)
		input := slices.Clone(seq.Tokens)
		resp, err := s.Sample(ctx, &llm.Request{ID: rid, InputIDs: input,
			Params: llm.Params{MaxNewTokens: maxNew, Temperature: 1, StopTokenIDs: []int{eosID}}})
		if err != nil {
			return nil, err
		}
		e.checkReply(rid, maxNew, len(input), resp)
		e.mu.Lock()
		e.calls[rid] = resp
		e.mu.Unlock()
		for i, tok := range resp.OutputIDs {
			push(tok, true, resp.Logprobs[i], resp.Versions[i])
		}
		if resp.Finish == llm.FinishStop && turn < turns-1 {
			for range 1 + r.IntN(3) {
				push('o', false, 0, -1) // observation: tool output, masked
			}
		}
	}
	reward := float64(r.IntN(2))
	return &Sample{Sequences: []Sequence{seq}, Reward: reward, Score: reward, Turns: turns}, nil
}

// checkReply: the merged output is exactly the scripted tokens (no token
// lost or duplicated at segment boundaries), within budget, and lengths
// agree (invariants 4, 5, 7).
func (e *invariantEnv) checkReply(rid string, maxNew, promptLen int, resp *llm.Response) {
	ids, finish := scriptFor(rid)
	want := ids
	wantFinish := llm.FinishStop
	switch {
	case len(ids) >= maxNew:
		want, wantFinish = ids[:maxNew], llm.FinishLength
	case finish == "length":
		wantFinish = llm.FinishLength
	case finish == "":
		want = append(slices.Clone(ids), eosID)
	}
	if !slices.Equal(resp.OutputIDs, want) {
		e.violate("%s: output %v, want %v (tokens lost or duplicated)", rid, resp.OutputIDs, want)
	}
	if resp.Finish != wantFinish {
		e.violate("%s: finish %q, want %q", rid, resp.Finish, wantFinish)
	}
	if len(resp.OutputIDs) > maxNew {
		e.violate("%s: %d tokens over a budget of %d", rid, len(resp.OutputIDs), maxNew)
	}
	if len(resp.Logprobs) != len(resp.OutputIDs) || len(resp.Versions) != len(resp.OutputIDs) {
		e.violate("%s: %d tokens, %d logprobs, %d versions", rid, len(resp.OutputIDs), len(resp.Logprobs), len(resp.Versions))
	}
	if resp.PromptTokens != promptLen {
		e.violate("%s: prompt tokens %d, want the original %d", rid, resp.PromptTokens, promptLen)
	}
	for i := 1; i < len(resp.Versions); i++ {
		if resp.Versions[i] < resp.Versions[i-1] {
			e.violate("%s: versions decrease: %v", rid, resp.Versions)
			break
		}
	}
}

// checkVersions compares every reply's per-token versions with the version
// that generated each segment (invariant 5). With labels pinned by the gate
// (servers that report no version) a label may be older than the truth (a
// request that reached a server just after its pause runs on the new
// weights), never newer.
func (e *invariantEnv) checkVersions(exact bool) {
	bySeg := map[string][]segment{}
	e.log.mu.Lock()
	for _, s := range e.log.segments {
		if s.ok && s.tokens > 0 {
			bySeg[s.rid] = append(bySeg[s.rid], s)
		}
	}
	e.log.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	for rid, resp := range e.calls {
		var truth []int
		for _, s := range bySeg[rid] {
			for range s.tokens {
				truth = append(truth, s.version)
			}
		}
		if len(truth) != len(resp.Versions) {
			e.violations = append(e.violations, fmt.Sprintf("%s: %d versions, servers generated %d tokens", rid, len(resp.Versions), len(truth)))
			continue
		}
		for i := range truth {
			if resp.Versions[i] != truth[i] && (exact || resp.Versions[i] > truth[i]) {
				e.violations = append(e.violations, fmt.Sprintf("%s: token %d labelled v%d, generated by v%d", rid, i, resp.Versions[i], truth[i]))
				break
			}
		}
	}
}

// checkProtocol: per server, every pause is followed by an update and a
// continue (continue even when the update failed), and no update happens
// outside a pause (invariant 6).
func (e *invariantEnv) checkProtocol(n int) {
	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	for s := range n {
		state := "running"
		for _, ev := range e.log.events {
			var path string
			var idx int
			if _, err := fmt.Sscanf(ev, "%s %d", &path, &idx); err != nil || idx != s {
				continue
			}
			switch path {
			case "/pause_generation":
				if state != "running" {
					e.violations = append(e.violations, fmt.Sprintf("server %d: pause while %s", s, state))
				}
				state = "paused"
			case "/update_weights_from_disk":
				if state != "paused" {
					e.violations = append(e.violations, fmt.Sprintf("server %d: update while %s", s, state))
				}
			case "/continue_generation":
				state = "running"
			}
		}
		if state != "running" {
			e.violations = append(e.violations, fmt.Sprintf("server %d left paused: continue_generation missing", s))
		}
	}
}

func TestInvariantsOverFakeSGLang(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		for _, omit := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed%d/omitVersion=%v", seed, omit), func(t *testing.T) {
				runInvariantProperty(t, seed, omit)
			})
		}
	}
}

func runInvariantProperty(t *testing.T, seed uint64, omitVersion bool) {
	r := rand.New(rand.NewPCG(seed, 77))
	const nServers = 2
	env := newInvariantEnv(t, seed, nServers, omitVersion)
	cfg := testConfig()
	cfg.Seed = int64(seed)
	cfg.Steps = 8
	cfg.BatchGroups = 2 + r.IntN(3)
	cfg.GroupSize = 2 + r.IntN(3)
	cfg.MaxStaleness = r.IntN(4)
	cfg.SampleRetries = 1
	cfg.DrainGraceMS = 2
	cfg.DrainTimeoutMS = 500
	tr := newUnigramTrainer(fakellm.ByteEOS + 1)
	var urls []string
	for _, p := range env.proxies {
		urls = append(urls, p.hs.URL)
	}
	pub := &SGLangPublisher{Servers: urls, Retries: 2}
	checked := &checkingPublisher{inner: pub, env: env}
	c, err := New(Options{Config: cfg, Dataset: banditDataset(40), Rollout: RolloutFunc(env.rollout),
		Sampler: env.pool, WrapSampler: func(s llm.Sampler) llm.Sampler { return &resumer{inner: s, maxNoProgress: 3} },
		Trainer: tr, Publisher: checked, RunDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	checked.gate = c.Gate()
	consumed := map[int64]bool{}
	c.hooks.onChange = func(s *Scheduler) {
		if err := s.Adm.Check(); err != nil {
			env.violate("admission: %v", err)
		}
	}
	c.hooks.onBatch = func(step int, batch []*Group) {
		if len(batch) != cfg.BatchGroups {
			env.violate("step %d: %d groups, want %d", step, len(batch), cfg.BatchGroups)
		}
		for i, g := range batch {
			if len(g.Samples) != cfg.GroupSize {
				env.violate("step %d: group of %d samples, want %d", step, len(g.Samples), cfg.GroupSize)
			}
			if i > 0 && batch[i-1].Seq > g.Seq {
				env.violate("step %d: batch not oldest first", step)
			}
			if consumed[g.Question.Index] {
				env.violate("step %d: question %d used twice", step, g.Question.Index)
			}
			consumed[g.Question.Index] = true
			var rewards []float64
			for _, s := range g.Samples {
				rewards = append(rewards, s.Reward)
				if mv := s.MinVersion(); mv >= 0 && step-mv > cfg.MaxStaleness {
					env.violate("step %d: sample with head version %d, staleness %d > η=%d", step, mv, step-mv, cfg.MaxStaleness)
				}
			}
			if ZeroVariance(rewards) {
				env.violate("step %d: zero-variance group trained", step)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := c.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.Version != cfg.Steps {
		t.Fatalf("version %d after %d steps", sum.Version, cfg.Steps)
	}
	env.checkVersions(!omitVersion)
	env.checkProtocol(nServers)
	for _, s := range env.servers {
		if got := s.Version(); got != cfg.Steps {
			env.violate("server at version %d after %d steps", got, cfg.Steps)
		}
	}
	if sum.Filtered == 0 {
		t.Logf("no group filtered in this run (B=%d G=%d)", cfg.BatchGroups, cfg.GroupSize)
	}
	for _, v := range env.violations {
		t.Error(v)
	}
	if testing.Verbose() {
		t.Logf("η=%d B=%d G=%d: %d calls, %d segments, %d filtered, %d failed groups",
			cfg.MaxStaleness, cfg.BatchGroups, cfg.GroupSize, len(env.calls), len(env.log.segments), sum.Filtered, sum.Failed)
	}
}

// checkingPublisher asserts the controller's side of the update protocol:
// the gate is closed for the whole publish (no new call reaches a server)
// and still closed when the publisher returns, so it opens only after
// continue_generation went out.
type checkingPublisher struct {
	inner Publisher
	env   *invariantEnv
	gate  *Gate
}

func (p *checkingPublisher) Publish(ctx context.Context, path string, version int, d Drainer) error {
	g := p.gate
	closed := func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.closed
	}
	if !closed() {
		p.env.violate("publish v%d with the gate open", version)
	}
	err := p.inner.Publish(ctx, path, version, d)
	if !closed() {
		p.env.violate("gate opened before publish v%d returned", version)
	}
	if g.Version() >= version {
		p.env.violate("version bumped to %d before every server acknowledged", g.Version())
	}
	return err
}

// TestSGLangPublisherAlwaysContinues: a failing update still sends
// continue_generation to every server, and the error is reported.
func TestSGLangPublisherAlwaysContinues(t *testing.T) {
	for _, failing := range []string{"/update_weights_from_disk", "/pause_generation"} {
		t.Run(failing, func(t *testing.T) {
			env := newInvariantEnv(t, 9, 3, false)
			env.log.failNext[failing] = 100
			var urls []string
			for _, p := range env.proxies {
				urls = append(urls, p.hs.URL)
			}
			pub := &SGLangPublisher{Servers: urls, Retries: 1}
			g := NewGate(env.pool, 0)
			err := pub.Publish(context.Background(), "/ckpt/v1", 1, &drainer{g: g, grace: time.Millisecond, timeout: time.Second, log: testLogger(t)})
			if err == nil {
				t.Fatal("publish succeeded with failing servers")
			}
			env.checkProtocol(3)
			n := 0
			for _, ev := range env.log.events {
				var path string
				var idx int
				fmt.Sscanf(ev, "%s %d", &path, &idx)
				if path == "/continue_generation" {
					n++
				}
			}
			if n != 3 {
				t.Errorf("continue_generation reached %d of 3 servers", n)
			}
			for _, v := range env.violations {
				t.Error(v)
			}
		})
	}
	// Cancelled context: continue still goes out.
	env := newInvariantEnv(t, 10, 2, false)
	var urls []string
	for _, p := range env.proxies {
		urls = append(urls, p.hs.URL)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := drainerFunc(func(context.Context, bool) error { cancel(); return context.Canceled })
	err := (&SGLangPublisher{Servers: urls}).Publish(ctx, "/ckpt", 1, d)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	env.checkProtocol(2)
	for _, v := range env.violations {
		t.Error(v)
	}
}

type drainerFunc func(context.Context, bool) error

func (f drainerFunc) Drain(ctx context.Context, abort bool) error { return f(ctx, abort) }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
