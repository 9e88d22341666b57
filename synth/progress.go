package synth

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/asearcher/asearcher/corpus"
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

// progress counts finished seeds and accepted questions.
type progress struct {
	mu       sync.Mutex
	bar      *progressbar.ProgressBar
	logger   *slog.Logger
	off      bool
	total    int
	done     int
	failed   int
	accepted int
	start    time.Time
	lastLog  time.Time
}

func newProgress(mode ProgressMode, logger *slog.Logger, total, done int) *progress {
	p := &progress{logger: logger, total: total, done: done, start: time.Now(), off: mode == ProgressOff}
	p.lastLog = p.start
	if mode == ProgressAuto && term.IsTerminal(int(os.Stderr.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("synth"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("seeds"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
		_ = p.bar.Set(done)
	}
	return p
}

func (p *progress) add(accepted int, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	p.accepted += accepted
	if failed {
		p.failed++
	}
	switch {
	case p.off:
	case p.bar != nil:
		p.bar.Describe(fmt.Sprintf("synth: %d accepted, %d failed", p.accepted, p.failed))
		_ = p.bar.Add(1)
	case time.Since(p.lastLog) >= 5*time.Second || p.done == p.total:
		p.lastLog = time.Now()
		p.logger.Info("synth progress", "seeds", fmt.Sprintf("%d/%d", p.done, p.total),
			"accepted", p.accepted, "failed", p.failed, "elapsed", time.Since(p.start).Round(time.Second))
	}
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func writeStats(path string, s Stats) error {
	if err := corpus.WriteJSONFile(path, s); err != nil {
		return fmt.Errorf("synth stats: %w", err)
	}
	return nil
}
