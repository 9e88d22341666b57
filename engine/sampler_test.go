package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asearcher/asearcher/llm"
)

// charTokenizer maps id i to the i-th character of an alphabet, enough to
// exercise text prompts, stream decoding and stop strings.
type charTokenizer struct{ alphabet []rune }

func newCharTokenizer(vocab int) *charTokenizer {
	var a []rune
	for r := rune('!'); len(a) < vocab; r++ {
		a = append(a, r)
	}
	return &charTokenizer{a}
}

func (c *charTokenizer) Encode(s string) []int {
	var ids []int
	for _, r := range s {
		for i, x := range c.alphabet {
			if x == r {
				ids = append(ids, i)
			}
		}
	}
	return ids
}

func (c *charTokenizer) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteRune(c.alphabet[id])
	}
	return b.String()
}

func testSampler(t *testing.T, opts SamplerOptions) (*Sampler, *Weights) {
	t.Helper()
	c := tinyConfig("qwen3", true)
	c.MaxPositionEmbeddings = 512
	w, err := NewRandomWeights(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Spread the logits so sampling is not uniform noise.
	for i := range w.Flat {
		w.Flat[i] *= 20
	}
	for _, s := range paramLayout(c) {
		if len(s.shape) == 1 {
			for i := range w.byName[s.name] {
				w.byName[s.name][i] = 1
			}
		}
	}
	s := NewSampler(w, 0, opts)
	t.Cleanup(s.Close)
	return s, w
}

func seed(v int64) *int64 { return &v }

// The logprob the sampler reports for a token equals the logprob a training
// forward pass at the sampling temperature computes for the same sequence.
// 106 positions take the decoding path past the 64-key attention block.
func TestSamplerLogprobsMatchForward(t *testing.T) {
	for _, temp := range []float64{1, 0.7} {
		t.Run(fmt.Sprintf("T%g", temp), func(t *testing.T) { samplerMatchesForward(t, temp) })
	}
}

func samplerMatchesForward(t *testing.T, temp float64) {
	s, w := testSampler(t, SamplerOptions{})
	ctx := context.Background()
	prompt := []int{5, 9, 14, 2, 77, 31}
	resp, err := s.Sample(ctx, &llm.Request{InputIDs: prompt, Params: llm.Params{Temperature: temp, MaxNewTokens: 100, Seed: seed(1)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.OutputIDs) != 100 || len(resp.Logprobs) != 100 || resp.Finish != llm.FinishLength {
		t.Fatalf("got %d tokens, %d logprobs, finish %s", len(resp.OutputIDs), len(resp.Logprobs), resp.Finish)
	}
	full := append(append([]int{}, prompt...), resp.OutputIDs...)
	l := NewLearner(w)
	res, err := l.Forward(ctx, []Example{{Input: full[:len(full)-1], Target: full[1:]}}, Loss{Fn: CrossEntropy, Temperature: temp})
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i, lp := range resp.Logprobs {
		worst = math.Max(worst, math.Abs(float64(lp-res.Logprobs[0][len(prompt)-1+i])))
	}
	if worst > 1e-4 {
		t.Fatalf("sampler logprobs at T=%g differ from the forward pass by %.3g", temp, worst)
	}
	t.Logf("max |sampler − forward| logprob = %.3g", worst)
}

func TestSamplerGreedyMatchesFullForward(t *testing.T) {
	s, w := testSampler(t, SamplerOptions{})
	ctx := context.Background()
	prompt := []int{1, 2, 3}
	resp, err := s.Sample(ctx, &llm.Request{InputIDs: prompt, Params: llm.Params{MaxNewTokens: 25}})
	if err != nil {
		t.Fatal(err)
	}
	full := append(append([]int{}, prompt...), resp.OutputIDs...)
	logits, err := NewModel(w, 0).Logits(ctx, full[:len(full)-1])
	if err != nil {
		t.Fatal(err)
	}
	V := w.Config.VocabSize
	for i, tok := range resp.OutputIDs {
		row := logits[(len(prompt)-1+i)*V : (len(prompt)+i)*V]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best != tok {
			t.Fatalf("token %d: sampler chose %d, argmax of full forward is %d", i, tok, best)
		}
	}
}

// Concurrent requests of different lengths, joining at different steps,
// give exactly what each gives alone.
func TestSamplerContinuousBatching(t *testing.T) {
	s, _ := testSampler(t, SamplerOptions{MaxBatch: 4, PrefillChunk: 7})
	ctx := context.Background()
	reqs := make([]*llm.Request, 10)
	for i := range reqs {
		p := make([]int, 1+i*3)
		for j := range p {
			p[j] = (i*7 + j*3) % 97
		}
		reqs[i] = &llm.Request{ID: "r" + string(rune('a'+i)), InputIDs: p,
			Params: llm.Params{Temperature: 0.8, TopK: 20, TopP: 0.9, MaxNewTokens: 5 + i*2, Seed: seed(int64(i))}}
	}
	solo := make([]*llm.Response, len(reqs))
	for i, r := range reqs {
		var err error
		solo[i], err = s.Sample(ctx, &llm.Request{InputIDs: r.InputIDs, Params: r.Params})
		if err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	together := make([]*llm.Response, len(reqs))
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * time.Millisecond)
			resp, err := s.Sample(ctx, r)
			if err != nil {
				t.Error(err)
			}
			together[i] = resp
		}()
	}
	wg.Wait()
	for i := range reqs {
		if !slices.Equal(solo[i].OutputIDs, together[i].OutputIDs) {
			t.Errorf("request %d: batched %v, alone %v", i, together[i].OutputIDs, solo[i].OutputIDs)
		}
		if d := maxAbsDiff(solo[i].Logprobs, together[i].Logprobs); d > 1e-4 {
			t.Errorf("request %d: logprobs differ by %.3g", i, d)
		}
	}
}

func TestSamplerStops(t *testing.T) {
	tok := newCharTokenizer(97)
	s, _ := testSampler(t, SamplerOptions{Tokenizer: tok})
	ctx := context.Background()
	base, err := s.Sample(ctx, &llm.Request{Prompt: "hello", Params: llm.Params{MaxNewTokens: 30}})
	if err != nil {
		t.Fatal(err)
	}
	if base.Text != tok.Decode(base.OutputIDs) || base.PromptTokens != 5 {
		t.Fatalf("text %q does not decode ids %v (prompt tokens %d)", base.Text, base.OutputIDs, base.PromptTokens)
	}
	// Stop token: the 6th generated id.
	stopID := base.OutputIDs[5]
	first := 0
	for first < len(base.OutputIDs) && base.OutputIDs[first] != stopID {
		first++
	}
	r, err := s.Sample(ctx, &llm.Request{Prompt: "hello", Params: llm.Params{MaxNewTokens: 30, StopTokenIDs: []int{stopID}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Finish != llm.FinishStop || len(r.OutputIDs) != first+1 || r.OutputIDs[first] != stopID {
		t.Fatalf("stop token: finish %s, %d tokens, want %d ending in %d", r.Finish, len(r.OutputIDs), first+1, stopID)
	}
	// Stop string spanning two tokens.
	stop := base.Text[7:9]
	idx := strings.Index(base.Text, stop)
	r, err = s.Sample(ctx, &llm.Request{Prompt: "hello", Params: llm.Params{MaxNewTokens: 30, Stop: []string{"\x00never", stop}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Finish != llm.FinishStop || r.StopMatched != stop || r.Text != base.Text[:idx+len(stop)] {
		t.Fatalf("stop string %q: finish %s matched %q text %q (full %q)", stop, r.Finish, r.StopMatched, r.Text, base.Text)
	}
	// Seeds reproduce; top_k 1 is greedy.
	a, _ := s.Sample(ctx, &llm.Request{InputIDs: []int{4, 4}, Params: llm.Params{Temperature: 1, MaxNewTokens: 12, Seed: seed(9)}})
	b, _ := s.Sample(ctx, &llm.Request{InputIDs: []int{4, 4}, Params: llm.Params{Temperature: 1, MaxNewTokens: 12, Seed: seed(9)}})
	if !slices.Equal(a.OutputIDs, b.OutputIDs) {
		t.Fatalf("same seed, different samples: %v vs %v", a.OutputIDs, b.OutputIDs)
	}
	g, _ := s.Sample(ctx, &llm.Request{InputIDs: []int{4, 4}, Params: llm.Params{MaxNewTokens: 12}})
	k1, _ := s.Sample(ctx, &llm.Request{InputIDs: []int{4, 4}, Params: llm.Params{Temperature: 1.5, TopK: 1, MaxNewTokens: 12}})
	if !slices.Equal(g.OutputIDs, k1.OutputIDs) {
		t.Fatalf("top_k=1 %v differs from greedy %v", k1.OutputIDs, g.OutputIDs)
	}
}

func TestSamplerBadRequests(t *testing.T) {
	s, _ := testSampler(t, SamplerOptions{})
	ctx := context.Background()
	for name, req := range map[string]*llm.Request{
		"empty":        {},
		"bad id":       {InputIDs: []int{1, 500}},
		"text no tok":  {Prompt: "hi"},
		"stop no tok":  {InputIDs: []int{1}, Params: llm.Params{Stop: []string{"x"}}},
		"negative top": {InputIDs: []int{1}, Params: llm.Params{TopP: -1}},
		"too long":     {InputIDs: make([]int, 600)},
	} {
		if _, err := s.Sample(ctx, req); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestSamplerAbortReturnsPartial(t *testing.T) {
	s, _ := testSampler(t, SamplerOptions{})
	ctx := context.Background()
	var once sync.Once
	var n int
	resp, err := s.SampleStream(ctx, &llm.Request{ID: "long", InputIDs: []int{3}, Params: llm.Params{Temperature: 1, MaxNewTokens: 400}},
		func(ev StreamEvent) {
			n++
			if n == 5 {
				once.Do(func() { go s.Abort(ctx, "long") })
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Finish != llm.FinishAbort || len(resp.OutputIDs) < 5 || len(resp.OutputIDs) >= 400 || len(resp.Logprobs) != len(resp.OutputIDs) {
		t.Fatalf("abort: finish %s with %d tokens", resp.Finish, len(resp.OutputIDs))
	}
	// The sampler keeps serving.
	if r, err := s.Sample(ctx, &llm.Request{InputIDs: []int{3}, Params: llm.Params{MaxNewTokens: 3}}); err != nil || len(r.OutputIDs) != 3 {
		t.Fatalf("after abort: %v %v", r, err)
	}
	// A cancelled context ends the call.
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := s.Sample(cctx, &llm.Request{InputIDs: []int{3}, Params: llm.Params{MaxNewTokens: 511}}); err == nil {
		// Finishing 500 tokens inside 20 ms is possible on a fast machine; only an error other than cancellation is wrong.
		t.Log("request finished before the cancel")
	}
}

// Weights swapped mid-generation: every token carries the version that
// produced it, and tokens after the swap are exactly the new model's
// greedy continuation of everything before them.
func TestSamplerWeightSwap(t *testing.T) {
	s, w := testSampler(t, SamplerOptions{})
	ctx := context.Background()
	w2, _ := NewRandomWeights(w.Config, 99)
	for i := range w2.Flat {
		w2.Flat[i] = w.Flat[i] * -1.3
	}
	var n int
	resp, err := s.SampleStream(ctx, &llm.Request{InputIDs: []int{7, 8, 9}, Params: llm.Params{MaxNewTokens: 30}},
		func(ev StreamEvent) {
			n++
			if n == 10 {
				s.SetWeights(w2, 1) // called on the scheduler goroutine: takes effect next step
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	switchAt := -1
	for i, v := range resp.Versions {
		if v == 1 && switchAt < 0 {
			switchAt = i
		}
		if switchAt >= 0 && v != 1 || switchAt < 0 && v != 0 {
			t.Fatalf("versions not monotone: %v", resp.Versions)
		}
	}
	if switchAt != 10 {
		t.Fatalf("swap at token %d, want 10 (versions %v)", switchAt, resp.Versions)
	}
	full := append([]int{7, 8, 9}, resp.OutputIDs...)
	logits, _ := NewModel(w2, 1).Logits(ctx, full[:len(full)-1])
	V := w.Config.VocabSize
	for i := switchAt; i < len(resp.OutputIDs); i++ {
		row := logits[(2+i)*V : (3+i)*V]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best != resp.OutputIDs[i] {
			t.Fatalf("token %d after the swap is %d, new weights' argmax is %d", i, resp.OutputIDs[i], best)
		}
		if d := math.Abs(float64(resp.Logprobs[i] - (row[best] - logSumExp(row)))); d > 1e-4 {
			t.Fatalf("token %d logprob off by %.3g", i, d)
		}
	}
	if s.Version() != 1 {
		t.Fatalf("version %d", s.Version())
	}
}

func TestSamplerPrefixReuse(t *testing.T) {
	s, _ := testSampler(t, SamplerOptions{})
	ctx := context.Background()
	turn1 := []int{10, 11, 12, 13, 14, 15, 16, 17}
	r1, err := s.Sample(ctx, &llm.Request{ID: "traj", InputIDs: turn1, Params: llm.Params{MaxNewTokens: 6}})
	if err != nil {
		t.Fatal(err)
	}
	turn2 := append(append(append([]int{}, turn1...), r1.OutputIDs...), 40, 41, 42)
	before := s.Stats().ReusedPrefix
	r2, err := s.Sample(ctx, &llm.Request{ID: "traj", InputIDs: turn2, Params: llm.Params{MaxNewTokens: 6}})
	if err != nil {
		t.Fatal(err)
	}
	reused := s.Stats().ReusedPrefix - before
	if reused != int64(len(turn1)+len(r1.OutputIDs)-1) {
		t.Fatalf("reused %d cached positions, want %d", reused, len(turn1)+len(r1.OutputIDs)-1)
	}
	fresh, err := s.Sample(ctx, &llm.Request{ID: "other", InputIDs: turn2, Params: llm.Params{MaxNewTokens: 6}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r2.OutputIDs, fresh.OutputIDs) || maxAbsDiff(r2.Logprobs, fresh.Logprobs) > 1e-4 {
		t.Fatalf("with reuse %v, fresh %v", r2.OutputIDs, fresh.OutputIDs)
	}
}

func TestSamplerPauseContinue(t *testing.T) {
	s, _ := testSampler(t, SamplerOptions{})
	ctx := context.Background()
	var n int
	resp, err := s.SampleStream(ctx, &llm.Request{ID: "p", InputIDs: []int{3}, Params: llm.Params{MaxNewTokens: 300}},
		func(StreamEvent) {
			n++
			if n == 4 {
				go s.Pause()
			}
		})
	if err != nil || resp.Finish != llm.FinishAbort {
		t.Fatalf("pause: %v %v", resp, err)
	}
	got := make(chan *llm.Response)
	go func() {
		r, _ := s.Sample(ctx, &llm.Request{InputIDs: []int{3}, Params: llm.Params{MaxNewTokens: 2}})
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("request ran while paused")
	case <-time.After(50 * time.Millisecond):
	}
	s.Continue()
	if r := <-got; r == nil || len(r.OutputIDs) != 2 {
		t.Fatalf("after continue: %v", r)
	}
}

// sampleToken draws from softmax(z/T) restricted to the top-k tokens and
// then to the smallest nucleus holding top_p of the remaining mass, and
// reports the logprob under softmax(z/T) (before top-k and top-p), which a
// trainer dividing its logits by T computes for the same token.
func TestSampleTokenDistribution(t *testing.T) {
	z := []float32{2.0, 1.5, 1.0, 0.5, 0, -0.5, -1, -3}
	expected := func(p sampleParams) []float64 {
		w := make([]float64, len(z))
		order := make([]int, len(z)) // z is already sorted descending
		for i := range z {
			w[i] = math.Exp(float64(z[i]) / p.temperature)
			order[i] = i
		}
		keep := len(z)
		if p.topK > 0 && p.topK < keep {
			keep = p.topK
		}
		total := 0.0
		for _, i := range order[:keep] {
			total += w[i]
		}
		if p.topP > 0 && p.topP < 1 {
			cum := 0.0
			for n, i := range order[:keep] {
				cum += w[i]
				if cum >= p.topP*total {
					keep = n + 1
					break
				}
			}
		}
		out := make([]float64, len(z))
		total = 0
		for _, i := range order[:keep] {
			total += w[i]
		}
		for _, i := range order[:keep] {
			out[i] = w[i] / total
		}
		return out
	}
	cases := []struct {
		name string
		p    sampleParams
	}{
		{"plain", sampleParams{temperature: 1}},
		{"hot", sampleParams{temperature: 2}},
		{"cold", sampleParams{temperature: 0.5}},
		{"top-k 3", sampleParams{temperature: 1, topK: 3}},
		{"top-p 0.6", sampleParams{temperature: 1, topP: 0.6}},
		{"top-k 5 then top-p 0.8", sampleParams{temperature: 1.5, topK: 5, topP: 0.8}},
	}
	const draws = 40000
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			var scratch []candidate
			counts := make([]float64, len(z))
			for i := 0; i < draws; i++ {
				tok, lp := sampleToken(z, c.p, rng, &scratch)
				if want := temperedLogprob(z, tok, c.p.temperature); math.Abs(float64(lp)-want) > 1e-5 {
					t.Fatalf("token %d: logprob %v, want %v under softmax(z/%g)", tok, lp, want, c.p.temperature)
				}
				counts[tok]++
			}
			want := expected(c.p)
			for i := range z {
				got := counts[i] / draws
				// 5 standard errors of a binomial frequency.
				tol := 5*math.Sqrt(want[i]*(1-want[i])/draws) + 1e-9
				if want[i] == 0 && counts[i] > 0 || math.Abs(got-want[i]) > tol {
					t.Errorf("token %d: frequency %.4f, want %.4f", i, got, want[i])
				}
			}
		})
	}
	// Greedy takes the argmax whatever the filters say.
	if tok, _ := sampleToken(z, sampleParams{topK: 3, topP: 0.1}, rand.New(rand.NewPCG(1, 1)), new([]candidate)); tok != 0 {
		t.Fatalf("greedy chose %d", tok)
	}
}

// Close answers every request: those in flight end as aborted with their
// partial output, those not yet admitted and those made afterwards get an
// error; none hangs.
func TestSamplerCloseAnswersEveryone(t *testing.T) {
	c := tinyConfig("qwen3", true)
	c.MaxPositionEmbeddings = 512
	w, err := NewRandomWeights(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 5; round++ {
		s := NewSampler(w, 0, SamplerOptions{MaxBatch: 2})
		ctx := context.Background()
		var wg sync.WaitGroup
		results := make(chan string, 40)
		started := make(chan struct{}, 40)
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				started <- struct{}{}
				r, err := s.Sample(ctx, &llm.Request{InputIDs: []int{1, 2, 3}, Params: llm.Params{Temperature: 1, MaxNewTokens: 300}})
				switch {
				case err != nil:
					results <- "error"
				case r.Finish == llm.FinishAbort && len(r.Logprobs) == len(r.OutputIDs):
					results <- "aborted"
				default:
					results <- string(r.Finish)
				}
			}()
		}
		for i := 0; i < 20; i++ {
			<-started
		}
		time.Sleep(time.Duration(round) * 5 * time.Millisecond)
		s.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Sample calls still waiting 10 s after Close")
		}
		close(results)
		for r := range results {
			if r != "error" && r != "aborted" && r != string(llm.FinishLength) {
				t.Fatalf("round %d: unexpected outcome %q", round, r)
			}
		}
		if _, err := s.Sample(ctx, &llm.Request{InputIDs: []int{1}}); err == nil {
			t.Fatal("Sample after Close succeeded")
		}
	}
}

// temperedLogprob is log softmax(z/T)[id] in float64.
func temperedLogprob(z []float32, id int, temp float64) float64 {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, float64(v)/temp)
	}
	var sum float64
	for _, v := range z {
		sum += math.Exp(float64(v)/temp - mx)
	}
	return float64(z[id])/temp - mx - math.Log(sum)
}
