package rl

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asearcher/asearcher/llm"
)

// gateProbePublisher is a slow publisher that records, while it runs,
// whether the controller's gate is closed and whether a call sent after
// the publish began gets through it.
type gateProbePublisher struct {
	concurrent bool
	gate       func() *Gate
	started    chan struct{}

	closed, passed bool
}

func (p *gateProbePublisher) PublishesWhileServing() bool { return p.concurrent }

func (p *gateProbePublisher) Publish(ctx context.Context, path string, v int, _ Drainer) error {
	g := p.gate()
	g.mu.Lock()
	p.closed = g.closed
	g.mu.Unlock()
	before := g.Calls()
	close(p.started)
	if p.concurrent {
		// The load lasts until the call has passed (10 s: a hang guard).
		deadline := time.Now().Add(10 * time.Second)
		for !p.passed && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			p.passed = g.Calls() > before
		}
		return nil
	}
	// A closed gate holds the call however long the load takes.
	time.Sleep(30 * time.Millisecond)
	p.passed = g.Calls() > before
	return nil
}

// The controller closes its gate for a publish only when the publisher
// needs it: a ConcurrentPublisher (LoRA: each request pinned to an
// adapter) lets a request sent during a slow load through, stamped with
// the previous version; any other publisher (full weights updated in
// place, e.g. sglang-full) runs with the gate closed and the request waits
// for the new version.
func TestPublishGateFollowsPublisher(t *testing.T) {
	for _, concurrent := range []bool{true, false} {
		t.Run(fmt.Sprintf("concurrent=%v", concurrent), func(t *testing.T) {
			cfg := testConfig()
			tr := newUnigramTrainer(8)
			sm := &unigramSampler{}
			sm.load(tr.theta, 0)
			var c *Controller
			pub := &gateProbePublisher{concurrent: concurrent, gate: func() *Gate { return c.Gate() }, started: make(chan struct{})}
			var err error
			c, err = New(Options{Config: cfg, Dataset: banditDataset(4), Rollout: banditRollout(4, 3),
				Sampler: sm, Trainer: tr, Publisher: pub, RunDir: t.TempDir(), Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			adm, err := NewAdmission(cfg.MaxStaleness, cfg.BatchGroups, cfg.MaxConcurrentGroups)
			if err != nil {
				t.Fatal(err)
			}
			c.sched = NewScheduler(adm)
			ctx := context.Background()
			type reply struct {
				resp *llm.Response
				err  error
			}
			sent := make(chan reply, 1)
			go func() {
				<-pub.started
				seed := int64(1)
				resp, err := c.sampler.Sample(ctx, &llm.Request{ID: "during", InputIDs: []int{0}, Params: llm.Params{MaxNewTokens: 2, Temperature: 1, Seed: &seed}})
				sent <- reply{resp, err}
			}()
			if _, err := c.publish(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if pub.closed == concurrent || pub.passed != concurrent {
				t.Fatalf("during the publish: gate closed %v, a new call got through %v; want %v and %v", pub.closed, pub.passed, !concurrent, concurrent)
			}
			r := <-sent
			if r.err != nil {
				t.Fatal(r.err)
			}
			want := 1 // held until the new version was served
			if concurrent {
				want = 0 // sent on the previous weights while the next loaded
			}
			for _, v := range r.resp.Versions {
				if v != want {
					t.Fatalf("the call sent during the publish carries versions %v, want all %d", r.resp.Versions, want)
				}
			}
		})
	}
}
