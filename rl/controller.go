package rl

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/trainer"
)

// Options wires a Controller to its dataset, agent, sampler, trainer and
// publisher.
type Options struct {
	Config  Config
	Dataset Dataset
	Rollout Rollout
	// Sampler is the generation backend. The controller wraps it in a Gate.
	Sampler llm.Sampler
	// WrapSampler, when set, wraps the gate before rollouts see it; use it
	// for the llm layer's resubmit-on-abort wrapper so that interrupted
	// calls are resumed through the gate.
	WrapSampler func(llm.Sampler) llm.Sampler
	Trainer     trainer.Trainer
	Publisher   Publisher
	// RunDir receives checkpoints, metrics, plots and sample dumps.
	RunDir string
	// Resume continues from RunDir's latest checkpoint when there is one.
	Resume bool
	// Repair lets a resume drop damaged lines of the run's logs (keeping a
	// backup) instead of refusing them; a torn last line is always cut.
	Repair bool
	// OnStep is called after every step (progress display).
	OnStep func(*StepRecord)
	Logger *slog.Logger
}

// Controller runs asynchronous RL. Make one with New and call Run once.
type Controller struct {
	cfg     Config
	opts    Options
	gate    *Gate
	sampler llm.Sampler
	log     *slog.Logger
	ckpt    checkpointWriter
	metrics *metricsSink

	mu      sync.Mutex
	sched   *Scheduler
	stream  *Stream
	changed chan struct{}
	win     window
	totals  struct{ filtered, failed int64 }
	// failStreak counts consecutive failed groups; past a limit the run
	// stops with the last error instead of waiting forever on a dead backend.
	failStreak int
	runErr     error

	// hooks let tests observe every batch and every state change.
	hooks struct {
		onBatch  func(step int, batch []*Group)
		onChange func(s *Scheduler) // called with c.mu held
	}
}

// window accumulates rollout activity between two steps.
type window struct {
	admitted, accepted, filtered, failed int
	trajectories, genTokens              int
	// timedOut counts trajectories cut at the time limit; missingLogprobs
	// trajectories rejected for missing behaviour logprobs.
	timedOut, missingLogprobs int
	// groups sums the behaviour of the finished trajectories by question
	// group (GroupedDataset); nil until one finishes.
	groups groupSums
}

// New validates options and prepares a controller.
func New(o Options) (*Controller, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	switch {
	case o.Dataset == nil:
		return nil, errors.New("rl: no dataset")
	case o.Rollout == nil:
		return nil, errors.New("rl: no rollout")
	case o.Sampler == nil:
		return nil, errors.New("rl: no sampler")
	case o.Trainer == nil:
		return nil, errors.New("rl: no trainer")
	case o.Publisher == nil:
		return nil, errors.New("rl: no weight publisher")
	case o.RunDir == "":
		return nil, errors.New("rl: no run directory")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(o.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	c := &Controller{cfg: o.Config, opts: o, log: o.Logger, changed: make(chan struct{}),
		ckpt: checkpointWriter{root: filepath.Join(o.RunDir, checkpointsDir), keep: o.Config.KeepCheckpoints}}
	c.gate = NewGate(o.Sampler, 0)
	c.sampler = c.gate
	if o.WrapSampler != nil {
		c.sampler = o.WrapSampler(c.gate)
	}
	return c, nil
}

// Gate returns the controller's gate between rollouts and the sampler.
func (c *Controller) Gate() *Gate { return c.gate }

func (c *Controller) broadcast() {
	if c.hooks.onChange != nil {
		c.hooks.onChange(c.sched)
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// Summary is what Run reports at the end.
type Summary struct {
	Steps      int           `json:"steps"`
	Version    int           `json:"version"`
	ResumedAt  int           `json:"resumed_at"`
	Elapsed    float64       `json:"elapsed_s"`
	Records    []*StepRecord `json:"-"`
	Filtered   int64         `json:"groups_filtered"`
	Failed     int64         `json:"groups_failed"`
	Checkpoint string        `json:"checkpoint"`
}

// Run trains until Config.Steps steps are done or ctx ends. On return no
// goroutine it started is left running.
func (c *Controller) Run(ctx context.Context) (*Summary, error) {
	cfg := &c.cfg
	st := &State{Seed: cfg.Seed}
	trainerPath := ""
	if c.opts.Resume {
		loaded, tp, err := LoadCheckpoint(c.opts.RunDir)
		if err != nil {
			return nil, err
		}
		if loaded != nil {
			if loaded.Seed != cfg.Seed {
				return nil, fmt.Errorf("checkpoint was written with seed %d, config says %d: resume with the run's own config", loaded.Seed, cfg.Seed)
			}
			st, trainerPath = loaded, tp
		}
	}
	adm, err := NewAdmission(cfg.MaxStaleness, cfg.BatchGroups, cfg.MaxConcurrentGroups)
	if err != nil {
		return nil, err
	}
	adm.Recover(st.Version, st.Rejected)
	c.sched = NewScheduler(adm)
	c.totals.filtered, c.totals.failed = st.Filtered, st.Failed
	c.stream, err = NewStream(c.opts.Dataset, uint64(cfg.Seed), st.StreamNext, st.Requeue)
	if err != nil {
		return nil, err
	}
	c.gate.SetVersion(st.Version)
	var notes []string
	c.metrics, notes, err = newMetricsSink(c.opts.RunDir, st.Version, c.opts.Repair)
	if err != nil {
		return nil, err
	}
	for _, n := range notes {
		c.log.Warn("repair: " + n)
	}

	if trainerPath != "" {
		c.log.Info("resuming", "version", st.Version, "requeued", len(st.Requeue), "trainer_state", trainerPath)
		if err := c.opts.Trainer.LoadState(ctx, trainerPath, true); err != nil {
			return nil, fmt.Errorf("load trainer state %s: %w", trainerPath, err)
		}
		// The samplers may hold any weights: give them the checkpoint's.
		if _, err := c.publish(ctx, st.Version); err != nil {
			return nil, fmt.Errorf("publish resumed weights: %w", err)
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { c.produce(runCtx, &wg) })

	sum := &Summary{ResumedAt: st.Version}
	start := time.Now()
	elapsedBefore := st.Elapsed
	c.gate.ResetBusy()
	var lastCkptSec float64
	for step := st.Version; step < cfg.Steps; step++ {
		rec, err := c.step(runCtx, step, start)
		if err != nil {
			if ctx.Err() != nil {
				return sum, ctx.Err()
			}
			return sum, fmt.Errorf("step %d: %w", step, err)
		}
		sum.Steps++
		sum.Version = step + 1
		// The record goes out before the checkpoint that covers its step: a
		// kill between the two redoes the step and the resumed sink drops
		// the record, while the reverse order would lose it for good.
		rec.CheckpointSec = lastCkptSec
		if err := c.metrics.add(rec); err != nil {
			c.log.Warn("metrics not written", "err", err)
		}
		last := step+1 == cfg.Steps
		if (step+1)%cfg.CheckpointEvery == 0 || last {
			t := time.Now()
			dir, err := c.checkpoint(runCtx, step+1, elapsedBefore+time.Since(start).Seconds())
			if err != nil {
				return sum, fmt.Errorf("checkpoint after step %d: %w", step, err)
			}
			sum.Checkpoint = dir
			lastCkptSec = time.Since(t).Seconds()
		}
		if c.opts.OnStep != nil {
			c.opts.OnStep(rec)
		}
	}
	sum.Elapsed = elapsedBefore + time.Since(start).Seconds()
	sum.Records = c.metrics.records
	c.mu.Lock()
	sum.Filtered, sum.Failed = c.totals.filtered, c.totals.failed
	c.mu.Unlock()
	return sum, nil
}

// step waits for a batch, trains on it and publishes the new weights.
func (c *Controller) step(ctx context.Context, step int, runStart time.Time) (*StepRecord, error) {
	t0 := time.Now()
	batch, err := c.waitBatch(ctx, step)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	if c.hooks.onBatch != nil {
		c.hooks.onBatch(step, batch)
	}
	adam := c.cfg.Optim.Adam(step, c.cfg.Steps)
	stats, err := Train(ctx, c.opts.Trainer, batch, step, &c.cfg.Advantage, &c.cfg.Loss, adam)
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	if _, err := c.publish(ctx, step+1); err != nil {
		return nil, fmt.Errorf("publish weights v%d: %w", step+1, err)
	}
	t3 := time.Now()

	rec := &StepRecord{Step: step, Version: step + 1, Time: time.Since(runStart).Seconds(),
		WaitSec: t1.Sub(t0).Seconds(), TrainSec: t2.Sub(t1).Seconds(), PublishSec: t3.Sub(t2).Seconds(),
		LR: adam.LearningRate, Train: stats, SampleStaleness: map[int]int{}}
	var rewards []float64
	var score float64
	var turns, tools, searches float64
	for _, g := range batch {
		rec.Questions = append(rec.Questions, g.Question.Index)
		for _, s := range g.Samples {
			rewards = append(rewards, s.Reward)
			score += s.Score
			turns += float64(s.Turns)
			tools += float64(s.ToolCalls)
			searches += float64(s.Searches)
			rec.TurnsMax = max(rec.TurnsMax, s.Turns)
			if mv := s.MinVersion(); mv >= 0 {
				rec.SampleStaleness[step-mv]++
			}
		}
	}
	n := float64(len(rewards))
	rec.RewardMean, rec.RewardStd = meanStd(rewards)
	rec.Accuracy, rec.TurnsMean, rec.ToolsMean, rec.SearchesMean = score/n, turns/n, tools/n, searches/n
	c.dumpSamples(step, batch)

	c.mu.Lock()
	w := c.win
	c.win = window{}
	rec.Running = c.sched.Adm.Running
	rec.Waiting = c.sched.FinishedCount()
	c.mu.Unlock()
	rec.Admitted, rec.Accepted, rec.Filtered, rec.Failed = w.admitted, w.accepted, w.filtered, w.failed
	rec.Finished, rec.GenTokens = w.trajectories, w.genTokens
	rec.TimedOut, rec.MissingLogprobs = w.timedOut, w.missingLogprobs
	if gd, ok := c.opts.Dataset.(GroupedDataset); ok {
		rec.GroupBy, rec.ByGroup = gd.GroupBy(), w.groups.means()
	}
	if done := w.accepted + w.filtered + w.failed; done > 0 {
		rec.FilteredFrac = float64(w.filtered) / float64(done)
	}
	rec.StepSec = time.Since(t0).Seconds()
	if rec.StepSec > 0 {
		rec.TokensPerSec = float64(w.genTokens) / rec.StepSec
	}
	rec.GeneratorIdle = 1 - c.gate.BusyFraction()
	c.gate.ResetBusy()
	c.log.Info("step", "step", step, "reward", round3(rec.RewardMean), "accuracy", round3(rec.Accuracy),
		"wait_s", round3(rec.WaitSec), "train_s", round3(rec.TrainSec), "clip", round3(stats.ClipFraction),
		"running", rec.Running, "waiting", rec.Waiting)
	return rec, nil
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func meanStd(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return m, math.Sqrt(ss / float64(len(xs)))
}

// waitBatch blocks until the scheduler can form the batch of `step`.
func (c *Controller) waitBatch(ctx context.Context, step int) ([]*Group, error) {
	for {
		c.mu.Lock()
		if c.runErr != nil {
			err := c.runErr
			c.mu.Unlock()
			return nil, err
		}
		if b := c.sched.SelectBatch(step); b != nil {
			c.broadcast()
			c.mu.Unlock()
			return b, nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// publish saves sampler weights and makes them version v everywhere. The
// gate is closed throughout and reopened on every path out, unless the
// publisher pins each request to its weights (ConcurrentPublisher): then
// new requests keep going to the previous version while the next loads.
func (c *Controller) publish(ctx context.Context, v int) (string, error) {
	path, err := c.opts.Trainer.SaveWeightsForSampler(ctx, fmt.Sprintf("v%06d", v))
	if err != nil {
		return "", fmt.Errorf("save weights for sampler: %w", err)
	}
	if !publishesWhileServing(c.opts.Publisher) {
		c.gate.Close()
		defer c.gate.Open()
	}
	d := &drainer{g: c.gate, grace: time.Duration(c.cfg.DrainGraceMS) * time.Millisecond,
		timeout: time.Duration(c.cfg.DrainTimeoutMS) * time.Millisecond, log: c.log}
	if err := c.opts.Publisher.Publish(ctx, path, v, d); err != nil {
		return "", err
	}
	c.gate.SetVersion(v)
	c.mu.Lock()
	c.sched.Adm.Version = v
	c.broadcast()
	c.mu.Unlock()
	return path, nil
}

// drainer drains the gate with the configured grace and timeout.
type drainer struct {
	g              *Gate
	grace, timeout time.Duration
	log            *slog.Logger
}

func (d *drainer) Drain(ctx context.Context, abort bool) error {
	timeout := d.timeout
	if !abort {
		timeout = 0 // turn boundaries: wait for every call to end
	}
	left, err := d.g.Drain(ctx, abort, d.grace, timeout)
	if left > 0 && err == nil {
		d.log.Warn("weight update proceeds with calls still in flight (held by a paused server)", "calls", left)
	}
	return err
}

// checkpoint writes trainer and controller state for version v.
func (c *Controller) checkpoint(ctx context.Context, v int, elapsed float64) (string, error) {
	tmp, tpath, err := c.ckpt.begin(v)
	if err != nil {
		return "", err
	}
	saved, err := c.opts.Trainer.SaveState(ctx, tpath)
	if err != nil {
		return "", fmt.Errorf("save trainer state: %w", err)
	}
	c.mu.Lock()
	st := &State{Version: v, StreamNext: c.stream.Position(), Seed: c.cfg.Seed,
		Rejected: c.sched.Adm.Rejected, Filtered: c.totals.filtered, Failed: c.totals.failed,
		TrainerState: saved, Elapsed: elapsed}
	for _, g := range c.sched.Outstanding() {
		st.Requeue = append(st.Requeue, g.Question.Index)
	}
	st.Requeue = append(st.Requeue, c.stream.Pending()...)
	c.mu.Unlock()
	if err := c.ckpt.commit(tmp, st); err != nil {
		return "", err
	}
	return filepath.Join(c.ckpt.root, stepName(v)), nil
}

// produce admits groups whenever capacity allows and starts their rollouts.
func (c *Controller) produce(ctx context.Context, wg *sync.WaitGroup) {
	for {
		c.mu.Lock()
		for c.sched.Adm.Capacity() <= 0 {
			ch := c.changed
			c.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
			c.mu.Lock()
		}
		if ctx.Err() != nil {
			c.mu.Unlock()
			return
		}
		g := c.sched.TryAdmit(c.stream.Next(), time.Now())
		c.win.admitted++
		c.broadcast()
		c.mu.Unlock()
		wg.Go(func() { c.runGroup(ctx, g) })
	}
}

// trajectorySeed derives a per-trajectory seed from the run seed, the
// question's stream index and the sample index, so a resumed run makes the
// same choices.
func trajectorySeed(seed, index int64, sample, attempt int) int64 {
	h := fnv.New64a()
	var buf [32]byte
	binary.LittleEndian.PutUint64(buf[0:], uint64(seed))
	binary.LittleEndian.PutUint64(buf[8:], uint64(index))
	binary.LittleEndian.PutUint64(buf[16:], uint64(sample))
	binary.LittleEndian.PutUint64(buf[24:], uint64(attempt))
	h.Write(buf[:])
	return int64(h.Sum64() >> 1)
}

// runGroup runs G trajectories and accepts or rejects the group.
func (c *Controller) runGroup(ctx context.Context, g *Group) {
	G := c.cfg.GroupSize
	samples := make([]*Sample, G)
	errs := make([]error, G)
	var wg sync.WaitGroup
	var timedOut, missing atomic.Int64
	q := g.Question
	q.Version = g.AdmitVersion
	for i := range G {
		wg.Go(func() {
			for attempt := 0; attempt <= c.cfg.SampleRetries; attempt++ {
				s, late, err := c.runTrajectory(ctx, q, i, attempt)
				if late {
					timedOut.Add(1)
				}
				if err == nil && s != nil {
					if err = validateSample(s, c.cfg.Loss.MissingLogprobs); errors.Is(err, ErrMissingLogprobs) {
						missing.Add(1)
					}
				}
				if err == nil {
					samples[i], errs[i] = s, nil
					return
				}
				errs[i] = err
				if ctx.Err() != nil || late {
					// A retry after the time limit would hold the group
					// for another full limit.
					return
				}
				c.log.Debug("trajectory failed", "question", g.Question.ID, "sample", i, "attempt", attempt, "err", err)
			}
		})
	}
	wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.broadcast()
	c.win.timedOut += int(timedOut.Load())
	c.win.missingLogprobs += int(missing.Load())
	if ctx.Err() != nil {
		// Shutting down: the group ends here; a checkpoint that listed it
		// as outstanding requeues it on resume.
		c.sched.Reject(g)
		return
	}
	if err := errors.Join(errs...); err != nil {
		c.log.Warn("group rejected: trajectory failed", "question", g.Question.ID, "err", err)
		c.sched.Reject(g)
		c.win.failed++
		c.totals.failed++
		c.failStreak++
		if limit := max(8, 2*c.cfg.BatchGroups); c.failStreak >= limit && c.runErr == nil {
			c.runErr = fmt.Errorf("%d groups in a row failed; last error: %w (is the model or search server up?)", c.failStreak, err)
		}
		return
	}
	c.failStreak = 0
	rewards := make([]float64, G)
	for i, s := range samples {
		rewards[i] = s.Reward
		c.win.trajectories++
		c.win.genTokens += s.GeneratedTokens()
		if _, ok := c.opts.Dataset.(GroupedDataset); ok {
			if c.win.groups == nil {
				c.win.groups = groupSums{}
			}
			c.win.groups.add(g.Question.Group, s)
		}
	}
	if c.cfg.FilterZeroVariance && ZeroVariance(rewards) {
		c.sched.Reject(g)
		c.win.filtered++
		c.totals.filtered++
		return
	}
	c.sched.Accept(g, samples, time.Now())
	c.win.accepted++
}

// errTrajectoryTimeout is the cause of a trajectory context cut at
// Config.TrajectoryTimeoutS.
var errTrajectoryTimeout = errors.New("trajectory time limit reached (rl.trajectory_timeout_s)")

// runTrajectory runs one trajectory under the per-trajectory time limit;
// late says the limit was reached, whether the rollout turned that into a
// timed-out sample or an error.
func (c *Controller) runTrajectory(ctx context.Context, q Question, i, attempt int) (s *Sample, late bool, err error) {
	tctx := ctx
	if lim := c.cfg.TrajectoryTimeoutS; lim > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeoutCause(ctx, time.Duration(lim*float64(time.Second)), errTrajectoryTimeout)
		defer cancel()
	}
	s, err = c.opts.Rollout.Run(tctx, q, c.sampler, i, trajectorySeed(c.cfg.Seed, q.Index, i, attempt))
	if ctx.Err() != nil || !errors.Is(context.Cause(tctx), errTrajectoryTimeout) {
		return s, false, err
	}
	// The limit fired; a rollout that still finished normally is not late.
	if err != nil {
		return s, true, fmt.Errorf("%w: %w", errTrajectoryTimeout, err)
	}
	return s, s == nil || s.TimedOut, nil
}

// validateSample checks a finished trajectory before it can be trained on;
// with missing_logprobs: reject, a generated token without a behaviour
// logprob fails it (ErrMissingLogprobs).
func validateSample(s *Sample, missingPolicy string) error {
	if math.IsNaN(s.Reward) || math.IsInf(s.Reward, 0) {
		return fmt.Errorf("reward is %v", s.Reward)
	}
	if t := s.Temperature; t < 0 || math.IsNaN(t) || math.IsInf(t, 0) {
		return fmt.Errorf("sampling temperature is %v", t)
	}
	for i := range s.Sequences {
		if err := s.Sequences[i].Validate(); err != nil {
			return fmt.Errorf("sequence %d: %w", i, err)
		}
	}
	if n := s.MissingLogprobs(); n > 0 && missingPolicy != MissingRecompute {
		return fmt.Errorf("%d %w; rejected by rl.loss.missing_logprobs: %s (set it to recompute to train on them where that is exact)", n, ErrMissingLogprobs, missingPolicy)
	}
	return nil
}

// dumpSamples saves the first DumpSamples trajectories of the batch.
func (c *Controller) dumpSamples(step int, batch []*Group) {
	n := c.cfg.DumpSamples
	if n == 0 {
		return
	}
	dir := filepath.Join(c.opts.RunDir, "samples")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.log.Warn("sample dump", "err", err)
		return
	}
	type dumped struct {
		Step       int             `json:"step"`
		Question   string          `json:"question"`
		Index      int64           `json:"stream_index"`
		Sample     int             `json:"sample"`
		Reward     float64         `json:"reward"`
		Score      float64         `json:"score"`
		MinVersion int             `json:"min_version"`
		Turns      int             `json:"turns"`
		Record     json.RawMessage `json:"record,omitempty"`
	}
	var out []byte
	for _, g := range batch {
		for i, s := range g.Samples {
			if n == 0 {
				break
			}
			n--
			line, err := json.Marshal(dumped{Step: step, Question: g.Question.ID, Index: g.Question.Index, Sample: i,
				Reward: s.Reward, Score: s.Score, MinVersion: s.MinVersion(), Turns: s.Turns, Record: s.Record})
			if err != nil {
				continue
			}
			out = append(append(out, line...), '\n')
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, fmt.Sprintf("step_%06d.jsonl", step)), out); err != nil {
		c.log.Warn("sample dump", "err", err)
	}
}
