package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/rl"
)

// Options configure the benchmark. Simulated durations are in simulated
// seconds.
type Options struct {
	Hardware Hardware `json:"hardware"`
	Workload Workload `json:"workload"`
	// TrainStepSec is the fixed simulated time of one training step;
	// WeightSyncSec the time to load new weights into the engine.
	TrainStepSec  float64 `json:"train_step_s"`
	WeightSyncSec float64 `json:"weight_sync_s"`
	// Speedup: simulated seconds per real second.
	Speedup float64 `json:"speedup"`
	// Steps per run; the first Warmup steps are excluded from throughput.
	Steps       int `json:"steps"`
	Warmup      int `json:"warmup"`
	BatchGroups int `json:"batch_groups"`
	GroupSize   int `json:"group_size"`
	// AsyncEta is η of the async mode; sync is η = 0.
	AsyncEta int   `json:"async_eta"`
	Runs     int   `json:"runs"`
	Seed     int64 `json:"seed"`
	// ScaleTrajectories, when > 0, also measures controller CPU per turn
	// and memory with this many concurrent trajectories (η = AsyncEta,
	// G = 16) on ScaleWorkload at ScaleSpeedup.
	ScaleTrajectories int      `json:"scale_trajectories"`
	ScaleWorkload     Workload `json:"scale_workload"`
	ScaleSpeedup      float64  `json:"scale_speedup"`
	// Logger gets progress lines; nil is silent.
	Logger *slog.Logger `json:"-"`
}

// ASearcherWorkload follows ASearcher's training trajectories
// (reference/asearcher.md §2.3, §6): a turn limit of 128 LLM calls, most
// trajectories a handful of turns, a tail past 40 tool calls; a few hundred
// generated tokens per turn (think + tool call), page/search observations
// of ~500 tokens, search and browse latencies of about a second or two.
func ASearcherWorkload() Workload {
	return Workload{TurnsMedian: 6, TurnsSigma: 1.0, MaxTurns: 128,
		TokensMedian: 250, TokensSigma: 0.8, MaxTokens: 4096,
		ObsTokens: 500, PromptTokens: 300, ToolMedianSec: 1.5, ToolSigma: 0.7}
}

// DefaultOptions is the configuration documented in docs/benchmarks.md.
func DefaultOptions() Options {
	scale := ASearcherWorkload()
	// Memory scales with tokens held; the 10k run keeps the turn
	// distribution and divides token counts by 10 so it fits beside other
	// work on a shared 24 GiB machine. Bytes per held token are reported.
	scale.TokensMedian, scale.ObsTokens, scale.PromptTokens = 25, 50, 30
	return Options{
		// 30 tokens/s for a lone sequence, saturating at 20k tokens/s
		// (one inference node of a 1.5–7B model).
		Hardware:      Hardware{StepSec: 1.0 / 30, PerSeqSec: 1.0 / 20000},
		Workload:      ASearcherWorkload(),
		TrainStepSec:  120,
		WeightSyncSec: 5,
		Speedup:       250,
		Steps:         20,
		Warmup:        5,
		BatchGroups:   16,
		GroupSize:     8,
		AsyncEta:      4,
		Runs:          3,
		Seed:          1,

		ScaleTrajectories: 10000,
		ScaleWorkload:     scale,
		ScaleSpeedup:      2000,
	}
}

// ModeResult is one run of one mode.
type ModeResult struct {
	Eta int `json:"eta"`
	// TrajPerHour: trained trajectories per simulated hour after warm-up.
	TrajPerHour float64 `json:"trained_trajectories_per_sim_hour"`
	// TokensPerSec: trained generated tokens per simulated second.
	TokensPerSec float64 `json:"trained_tokens_per_sim_s"`
	// EngineIdle: share of simulated time with no request decoding.
	EngineIdle float64 `json:"engine_idle_fraction"`
	// GateIdle: the controller's own generator_idle metric (no call in
	// flight through its gate), averaged over the measured steps.
	GateIdle     float64 `json:"controller_generator_idle"`
	MaxStaleness int     `json:"max_staleness_trained"`
	Interrupted  int64   `json:"interrupted_calls"`
	SimSeconds   float64 `json:"sim_s"`
	WallSeconds  float64 `json:"wall_s"`
}

// ScaleResult is the many-trajectories measurement.
type ScaleResult struct {
	Trajectories int     `json:"target_trajectories"`
	PeakActive   int64   `json:"peak_concurrent_trajectories"`
	Turns        int64   `json:"turns"`
	CPUPerTurnUS float64 `json:"cpu_us_per_turn"`
	// PeakHeapMiB is the peak live heap (after GC, above the baseline
	// before the run); ActiveAtPeak the trajectories in memory then
	// (running or finished: the single step trains none before the end)
	// and HeldTokens their tokens. StackMiB is the peak goroutine stacks.
	PeakHeapMiB    float64 `json:"peak_live_heap_mib"`
	ActiveAtPeak   int64   `json:"trajectories_at_peak"`
	HeapPerTrajKiB float64 `json:"heap_kib_per_trajectory"`
	HeldTokens     int64   `json:"held_tokens_at_peak"`
	StackMiB       float64 `json:"peak_goroutine_stacks_mib"`
	BytesPerToken  float64 `json:"heap_bytes_per_held_token"`
	Goroutines     int     `json:"peak_goroutines"`
	WallSeconds    float64 `json:"wall_s"`
}

// Report is the benchmark's output.
type Report struct {
	Options Options        `json:"options"`
	Sync    []ModeResult   `json:"sync_runs"`
	Async   []ModeResult   `json:"async_runs"`
	Ratios  []float64      `json:"speedup_runs"`
	Median  MedianSummary  `json:"median"`
	Scale   *ScaleResult   `json:"scale,omitempty"`
	Load    [3]float64     `json:"load_average"`
	Meta    map[string]any `json:"meta,omitempty"`
}

// MedianSummary holds medians over runs.
type MedianSummary struct {
	Speedup          float64 `json:"async_over_sync"`
	SyncTrajPerHour  float64 `json:"sync_trajectories_per_sim_hour"`
	AsyncTrajPerHour float64 `json:"async_trajectories_per_sim_hour"`
	SyncEngineIdle   float64 `json:"sync_engine_idle"`
	AsyncEngineIdle  float64 `json:"async_engine_idle"`
	SyncGateIdle     float64 `json:"sync_controller_generator_idle"`
	AsyncGateIdle    float64 `json:"async_controller_generator_idle"`
	SyncTokensPerS   float64 `json:"sync_trained_tokens_per_sim_s"`
	AsyncTokensPerS  float64 `json:"async_trained_tokens_per_sim_s"`
}

func (o *Options) validate() error {
	switch {
	case o.Speedup <= 0 || o.Hardware.StepSec <= 0 || o.Hardware.PerSeqSec < 0:
		return errors.New("speedup and decode step time must be > 0")
	case o.Steps <= o.Warmup || o.Warmup < 0:
		return fmt.Errorf("steps %d must exceed warmup %d", o.Steps, o.Warmup)
	case o.BatchGroups < 1 || o.GroupSize < 2 || o.AsyncEta < 1 || o.Runs < 1:
		return errors.New("batch groups ≥ 1, group size ≥ 2, async η ≥ 1 and runs ≥ 1 are required")
	case o.Workload.MaxTurns < 1 || o.Workload.MaxTokens < 1:
		return errors.New("workload max turns and max tokens must be ≥ 1")
	}
	return nil
}

// Run measures sync and async side by side, alternating, Runs times, then
// the scale measurement.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = discardLogger()
	}
	rep := &Report{Options: o}
	for i := range o.Runs {
		seed := o.Seed + int64(i)
		s, err := RunMode(ctx, o, 0, seed)
		if err != nil {
			return nil, fmt.Errorf("sync run %d: %w", i+1, err)
		}
		a, err := RunMode(ctx, o, o.AsyncEta, seed)
		if err != nil {
			return nil, fmt.Errorf("async run %d: %w", i+1, err)
		}
		rep.Sync, rep.Async = append(rep.Sync, *s), append(rep.Async, *a)
		rep.Ratios = append(rep.Ratios, a.TrajPerHour/s.TrajPerHour)
		log.Info("rollout bench run", "run", i+1, "sync_traj_per_h", round(s.TrajPerHour), "async_traj_per_h", round(a.TrajPerHour),
			"ratio", round(a.TrajPerHour/s.TrajPerHour))
	}
	pick := func(rs []ModeResult, f func(ModeResult) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	rep.Median = MedianSummary{
		Speedup:          median(rep.Ratios),
		SyncTrajPerHour:  pick(rep.Sync, func(r ModeResult) float64 { return r.TrajPerHour }),
		AsyncTrajPerHour: pick(rep.Async, func(r ModeResult) float64 { return r.TrajPerHour }),
		SyncEngineIdle:   pick(rep.Sync, func(r ModeResult) float64 { return r.EngineIdle }),
		AsyncEngineIdle:  pick(rep.Async, func(r ModeResult) float64 { return r.EngineIdle }),
		SyncGateIdle:     pick(rep.Sync, func(r ModeResult) float64 { return r.GateIdle }),
		AsyncGateIdle:    pick(rep.Async, func(r ModeResult) float64 { return r.GateIdle }),
		SyncTokensPerS:   pick(rep.Sync, func(r ModeResult) float64 { return r.TokensPerSec }),
		AsyncTokensPerS:  pick(rep.Async, func(r ModeResult) float64 { return r.TokensPerSec }),
	}
	if o.ScaleTrajectories > 0 {
		sc, err := RunScale(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("scale run: %w", err)
		}
		rep.Scale = sc
	}
	rep.Load = loadAverage()
	return rep, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

// sim is one wired controller on a fresh engine.
type sim struct {
	clk   *clock
	eng   *engine
	stats *rolloutStats
	ctrl  *rl.Controller
	dir   string
}

func newSim(o Options, w Workload, speedup float64, eta, batch, group, steps int, seed int64, onStep func(*rl.StepRecord)) (*sim, error) {
	dir, err := os.MkdirTemp("", "asearcher-bench-rollout-")
	if err != nil {
		return nil, fmt.Errorf("temp run directory: %w", err)
	}
	clk := newClock(speedup)
	eng := newEngine(clk, o.Hardware)
	st := &rolloutStats{}
	cfg := rl.DefaultConfig()
	cfg.Seed = seed
	cfg.Steps = steps
	cfg.BatchGroups = batch
	cfg.GroupSize = group
	cfg.MaxStaleness = eta
	// The staleness bound alone limits concurrency, (η+1)·B groups, as
	// the benchmark's figures were measured (the library default is B).
	cfg.MaxConcurrentGroups = (eta + 1) * batch
	// Filtering would make both modes discard the same share; off, every
	// admitted group is trained and the ratio is about scheduling alone.
	cfg.FilterZeroVariance = false
	cfg.SampleRetries = 0
	cfg.CheckpointEvery = steps
	cfg.KeepCheckpoints = 1
	cfg.DumpSamples = 0
	cfg.DrainGraceMS = 1
	cfg.DrainTimeoutMS = 1000
	cfg.Loss.MaxTokensPerCall = 1 << 20
	ctrl, err := rl.New(rl.Options{
		Config:  cfg,
		Dataset: newDataset(4096, seed),
		Rollout: agentRollout(w, clk, st),
		Sampler: eng,
		WrapSampler: func(g llm.Sampler) llm.Sampler {
			res := llm.NewResumer(g)
			// The gate holds resubmits while weights load; no extra wait.
			res.Wait = func(ctx context.Context) error { return ctx.Err() }
			res.MaxResubmits = 1000
			res.Logger = discardLogger()
			return res
		},
		Trainer:   &simTrainer{clk: clk, stepSec: o.TrainStepSec},
		Publisher: &interruptPublisher{eng: eng, clk: clk, loadSec: o.WeightSyncSec},
		RunDir:    dir,
		OnStep:    onStep,
		Logger:    discardLogger(),
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &sim{clk: clk, eng: eng, stats: st, ctrl: ctrl, dir: dir}, nil
}

// RunMode runs the real controller at staleness eta on a fresh simulated
// engine and trainer and measures it after the warm-up steps.
func RunMode(ctx context.Context, o Options, eta int, seed int64) (*ModeResult, error) {
	var (
		mu        sync.Mutex
		atWarm    engineStats
		warmSim   float64
		warmReal  time.Time
		endStats  engineStats
		endSim    float64
		s         *sim
		measuring bool
	)
	onStep := func(rec *rl.StepRecord) {
		mu.Lock()
		defer mu.Unlock()
		switch rec.Step + 1 {
		case o.Warmup:
			atWarm, warmSim, warmReal = s.eng.stats(), s.clk.now(), time.Now()
			measuring = true
		case o.Steps:
			endStats, endSim = s.eng.stats(), s.clk.now()
		}
	}
	var err error
	s, err = newSim(o, o.Workload, o.Speedup, eta, o.BatchGroups, o.GroupSize, o.Steps, seed, onStep)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(s.dir)
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.eng.run(ectx)
	mu.Lock()
	if o.Warmup == 0 {
		atWarm, warmSim, warmReal, measuring = s.eng.stats(), 0, time.Now(), true
	}
	mu.Unlock()
	sum, err := s.ctrl.Run(ctx)
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	if !measuring {
		return nil, errors.New("warm-up never finished")
	}
	r := &ModeResult{Eta: eta, SimSeconds: endSim - warmSim, WallSeconds: time.Since(warmReal).Seconds(),
		Interrupted: endStats.aborted - atWarm.aborted}
	steps := o.Steps - o.Warmup
	r.TrajPerHour = float64(steps*o.BatchGroups*o.GroupSize) / r.SimSeconds * 3600
	var genTok float64
	var gateIdle float64
	for _, rec := range sum.Records {
		for st := range rec.SampleStaleness {
			r.MaxStaleness = max(r.MaxStaleness, st)
		}
		if rec.Step >= o.Warmup {
			genTok += float64(rec.Train.TrainTokens)
			for st := range rec.Train.Staleness {
				r.MaxStaleness = max(r.MaxStaleness, st)
			}
			gateIdle += rec.GeneratorIdle
		}
	}
	r.TokensPerSec = genTok / r.SimSeconds
	r.GateIdle = gateIdle / float64(steps)
	if busy, idle := endStats.busy-atWarm.busy, endStats.idle-atWarm.idle; busy+idle > 0 {
		r.EngineIdle = idle / (busy + idle)
	}
	return r, nil
}

// RunScale admits enough groups for ScaleTrajectories concurrent
// trajectories (G = 16, η = AsyncEta, B = trajectories / (16·(η+1))) and
// measures process CPU per LLM turn and heap at peak concurrency.
func RunScale(ctx context.Context, o Options) (*ScaleResult, error) {
	const group = 16
	batch := max(o.ScaleTrajectories/(group*(o.AsyncEta+1)), 1)
	runtime.GC()
	base := readMem()
	s, err := newSim(o, o.ScaleWorkload, o.ScaleSpeedup, o.AsyncEta, batch, group, 1, o.Seed, nil)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(s.dir)
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.eng.run(ectx)

	res := &ScaleResult{Trajectories: o.ScaleTrajectories}
	var peak memSample
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			m := readMem()
			if m.live > peak.live {
				peak = m
				peak.active = s.stats.started.Load()
				peak.tokens = s.stats.tokens.Load()
			}
			res.Goroutines = max(res.Goroutines, runtime.NumGoroutine())
			res.StackMiB = max(res.StackMiB, float64(m.stacks)/(1<<20))
		}
	})
	cpu0 := processCPU()
	start := time.Now()
	_, err = s.ctrl.Run(ctx)
	close(done)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	res.WallSeconds = time.Since(start).Seconds()
	res.Turns = s.stats.turns.Load()
	if res.Turns > 0 {
		res.CPUPerTurnUS = (processCPU() - cpu0).Seconds() * 1e6 / float64(res.Turns)
	}
	res.PeakActive = s.stats.peakActive.Load()
	live := float64(peak.live) - float64(base.live)
	res.PeakHeapMiB = live / (1 << 20)
	res.ActiveAtPeak = peak.active
	if peak.active > 0 {
		res.HeapPerTrajKiB = live / 1024 / float64(peak.active)
	}
	res.HeldTokens = peak.tokens
	if peak.tokens > 0 {
		res.BytesPerToken = live / float64(peak.tokens)
	}
	return res, nil
}

type memSample struct {
	live, stacks   uint64
	active, tokens int64
}

// readMem reads the live heap as of the last GC (garbage not counted) and
// the goroutine stacks.
func readMem() memSample {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	var m memSample
	if s[0].Value.Kind() == metrics.KindUint64 {
		m.live = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		m.stacks = s[1].Value.Uint64()
	}
	return m
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAverage() [3]float64 {
	var out [3]float64
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	fmt.Sscanf(string(raw), "%f %f %f", &out[0], &out[1], &out[2])
	return out
}
