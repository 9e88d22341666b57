// Package progress shows long work as a bar when stderr is a terminal and
// as a log line every few seconds otherwise, so that CI logs and files get
// readable lines instead of carriage-return noise. Every long-running
// command (index build, eval, synth, train) reports through it.
package progress

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Mode chooses how work reports progress.
type Mode int

const (
	// Auto draws a bar when stderr is a terminal and logs otherwise.
	Auto Mode = iota
	// Log only logs.
	Log
	// Off is silent (tests, library use).
	Off
)

// DefaultLogEvery is how often log mode writes a line.
const DefaultLogEvery = 5 * time.Second

// Options describe one piece of long work.
type Options struct {
	// Desc names the work: the bar's label and the log lines' message.
	Desc string
	// Unit names what is counted ("samples", "seeds"); it is the log key of
	// the done/total figure. "bytes" shows sizes on the bar.
	Unit  string
	Total int64
	// Done is what was already done before this process started (a resumed
	// run); the rate and ETA count only the work done since.
	Done int64
	// Logger receives the lines in log mode; nil uses slog.Default().
	Logger *slog.Logger
	// LogEvery is the time between log lines (0: DefaultLogEvery). The
	// last unit of work is always logged.
	LogEvery time.Duration
	// Terminal is where the bar is drawn when it is a terminal (nil:
	// os.Stderr).
	Terminal *os.File
}

// Bar reports one piece of work. Its methods are safe for concurrent use.
type Bar struct {
	mu        sync.Mutex
	o         Options
	bar       *progressbar.ProgressBar
	log       *slog.Logger // nil when off or drawing a bar
	done      int64
	start     time.Time
	lastLog   time.Time
	lastShown string
}

// New starts reporting.
func New(mode Mode, o Options) *Bar {
	if o.LogEvery <= 0 {
		o.LogEvery = DefaultLogEvery
	}
	if o.Unit == "" {
		o.Unit = "done"
	}
	if o.Terminal == nil {
		o.Terminal = os.Stderr
	}
	b := &Bar{o: o, done: o.Done, start: time.Now()}
	b.lastLog = b.start
	switch {
	case mode == Off:
	case mode == Auto && term.IsTerminal(int(o.Terminal.Fd())):
		opts := []progressbar.Option{
			progressbar.OptionSetDescription(o.Desc),
			progressbar.OptionSetWriter(o.Terminal),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200 * time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(o.Terminal) }),
		}
		if o.Unit == "bytes" {
			opts = append(opts, progressbar.OptionShowBytes(true))
		} else {
			opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(o.Unit))
		}
		b.bar = progressbar.NewOptions64(o.Total, opts...)
		_ = b.bar.Set64(o.Done)
	default:
		b.log = o.Logger
		if b.log == nil {
			b.log = slog.Default()
		}
	}
	return b
}

// Add counts n more units done. metric is a short running figure shown
// beside the bar ("avg@1 0.512"); attrs are extra log attributes.
func (b *Bar) Add(n int64, metric string, attrs ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setLocked(b.done+n, metric, attrs)
}

// Set reports the amount done so far.
func (b *Bar) Set(done int64, metric string, attrs ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setLocked(done, metric, attrs)
}

func (b *Bar) setLocked(done int64, metric string, attrs []any) {
	b.done = done
	if b.bar != nil {
		_ = b.bar.Set64(done)
		if metric != "" && metric != b.lastShown {
			b.lastShown = metric
			b.bar.Describe(b.o.Desc + " " + metric)
		}
		return
	}
	last := b.o.Total > 0 && done >= b.o.Total
	if b.log == nil || (!last && time.Since(b.lastLog) < b.o.LogEvery) {
		return
	}
	b.lastLog = time.Now()
	b.log.Info(b.o.Desc, b.lineLocked(metric, attrs)...)
}

// lineLocked is the log line: done/total, percent, rate, ETA, elapsed,
// then the caller's figures.
func (b *Bar) lineLocked(metric string, attrs []any) []any {
	elapsed := time.Since(b.start)
	args := []any{b.o.Unit, fmt.Sprintf("%d", b.done)}
	if b.o.Total > 0 {
		args[1] = fmt.Sprintf("%d/%d", b.done, b.o.Total)
		args = append(args, "percent", fmt.Sprintf("%.1f", 100*float64(b.done)/float64(b.o.Total)))
	}
	rate := float64(b.done-b.o.Done) / max(elapsed.Seconds(), 1e-9)
	args = append(args, "rate/s", fmt.Sprintf("%.1f", rate))
	if b.o.Total > 0 && rate > 0 && b.done < b.o.Total {
		eta := time.Duration(float64(b.o.Total-b.done) / rate * float64(time.Second))
		args = append(args, "eta", eta.Round(time.Second).String())
	}
	args = append(args, "elapsed", elapsed.Round(time.Second).String())
	if metric != "" {
		args = append(args, "metric", metric)
	}
	return append(args, attrs...)
}

// Finish completes the bar; log mode has already logged the last unit.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		_ = b.bar.Finish()
	}
}
