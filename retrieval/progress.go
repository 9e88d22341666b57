package retrieval

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows long work as a bar on a terminal and as a log line every
// logEvery otherwise (CI logs, files).
type progress struct {
	bar      *progressbar.ProgressBar
	logger   *slog.Logger
	desc     string
	total    int64
	start    time.Time
	lastLog  time.Time
	logEvery time.Duration
}

// ProgressMode chooses how builds report progress.
type ProgressMode int

const (
	// ProgressAuto draws a bar when stderr is a terminal and logs otherwise.
	ProgressAuto ProgressMode = iota
	// ProgressLog only logs.
	ProgressLog
	// ProgressOff is silent (tests, library use).
	ProgressOff
)

func newProgress(mode ProgressMode, logger *slog.Logger, desc string, total int64, unit string) *progress {
	p := &progress{logger: logger, desc: desc, total: total, start: time.Now(), logEvery: 10 * time.Second}
	p.lastLog = p.start
	if mode == ProgressOff {
		p.logger = nil
		return p
	}
	if mode == ProgressAuto && term.IsTerminal(int(os.Stderr.Fd())) {
		opts := []progressbar.Option{
			progressbar.OptionSetDescription(desc),
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200 * time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }),
			progressbar.OptionSetPredictTime(true),
		}
		if unit == "bytes" {
			opts = append(opts, progressbar.OptionShowBytes(true))
		} else {
			opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit))
		}
		p.bar = progressbar.NewOptions64(total, opts...)
		p.logger = nil
	}
	return p
}

// set reports the amount done and a short running metric.
func (p *progress) set(done int64, metric string) {
	if p.bar != nil {
		_ = p.bar.Set64(done)
		if metric != "" {
			p.bar.Describe(p.desc + " " + metric)
		}
		return
	}
	if p.logger == nil || time.Since(p.lastLog) < p.logEvery {
		return
	}
	p.lastLog = time.Now()
	args := []any{"done", done, "elapsed", time.Since(p.start).Round(time.Second)}
	if p.total > 0 {
		frac := float64(done) / float64(p.total)
		args = append(args, "percent", fmt.Sprintf("%.1f", 100*frac))
		if frac > 0 {
			eta := time.Duration(float64(time.Since(p.start)) * (1 - frac) / frac)
			args = append(args, "eta", eta.Round(time.Second))
		}
	}
	if metric != "" {
		args = append(args, "metric", metric)
	}
	p.logger.Info(p.desc, args...)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// orDiscard lets callers pass a nil logger.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
