package eval

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// ProgressMode chooses how a run reports progress.
type ProgressMode int

const (
	// ProgressAuto draws a bar when stderr is a terminal and logs otherwise.
	ProgressAuto ProgressMode = iota
	// ProgressLog logs a line every few seconds.
	ProgressLog
	// ProgressOff is silent (tests, library use).
	ProgressOff
)

// progress shows done/total, the running Avg@1 (mean F1, or the judge
// score with a judge, over finished samples), rate and ETA.
type progress struct {
	mu      sync.Mutex
	bar     *progressbar.ProgressBar
	log     *slog.Logger
	off     bool
	total   int
	done    int
	started int // done when this process started, for the rate
	sum     float64
	n       int
	errors  int
	start   time.Time
	lastLog time.Time
}

func newProgress(mode ProgressMode, w io.Writer, log *slog.Logger, total int, done []Record) *progress {
	p := &progress{log: log, total: total, done: len(done), started: len(done), start: time.Now(), off: mode == ProgressOff}
	for i := range done {
		p.count(&done[i])
	}
	p.lastLog = p.start
	isTerm := false
	if f, ok := w.(*os.File); ok {
		isTerm = term.IsTerminal(int(f.Fd()))
	}
	if mode == ProgressAuto && isTerm {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("eval"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("samples"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
		_ = p.bar.Set(len(done))
	}
	return p
}

func (p *progress) count(r *Record) {
	p.sum += primaryScore(r)
	p.n++
	if r.Error != "" {
		p.errors++
	}
}

// primaryScore is the score the progress bar averages.
func primaryScore(r *Record) float64 {
	if r.Judge != nil {
		return r.Judge.Score
	}
	return r.Scores.F1
}

func (p *progress) add(r *Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	p.count(r)
	avg := p.sum / float64(max(p.n, 1))
	switch {
	case p.off:
	case p.bar != nil:
		p.bar.Describe(fmt.Sprintf("eval avg@1 %.3f", avg))
		_ = p.bar.Add(1)
	case time.Since(p.lastLog) >= 5*time.Second || p.done == p.total:
		p.lastLog = time.Now()
		el := time.Since(p.start)
		rate := float64(p.done-p.started) / max(el.Seconds(), 1e-9)
		eta := "?"
		if rate > 0 {
			eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
		}
		p.log.Info("eval progress", "samples", fmt.Sprintf("%d/%d", p.done, p.total),
			"avg@1", fmt.Sprintf("%.3f", avg), "rate/s", fmt.Sprintf("%.1f", rate), "eta", eta)
	}
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
