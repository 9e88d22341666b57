package eval

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/asearcher/asearcher/internal/progress"
)

// ProgressMode chooses how a run reports progress.
type ProgressMode = progress.Mode

const (
	// ProgressAuto draws a bar when stderr is a terminal and logs otherwise.
	ProgressAuto = progress.Auto
	// ProgressLog logs a line every few seconds.
	ProgressLog = progress.Log
	// ProgressOff is silent (tests, library use).
	ProgressOff = progress.Off
)

// evalProgress shows done/total, the running Avg@1 (mean F1, or the judge
// score with a judge, over finished samples), rate and ETA.
type evalProgress struct {
	bar *progress.Bar
	mu  sync.Mutex
	sum float64
	n   int
}

func newProgress(mode ProgressMode, w io.Writer, log *slog.Logger, total int, done []Record) *evalProgress {
	p := &evalProgress{}
	for i := range done {
		p.sum += primaryScore(&done[i])
		p.n++
	}
	o := progress.Options{Desc: "eval", Unit: "samples", Total: int64(total), Done: int64(len(done)), Logger: log}
	if f, ok := w.(*os.File); ok {
		o.Terminal = f
	} else if mode == ProgressAuto {
		mode = ProgressLog // a writer that is not a file is never a terminal
	}
	p.bar = progress.New(mode, o)
	return p
}

// primaryScore is the score the progress bar averages.
func primaryScore(r *Record) float64 {
	if r.Judge != nil {
		return r.Judge.Score
	}
	return r.Scores[MetricF1]
}

func (p *evalProgress) add(r *Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sum += primaryScore(r)
	p.n++
	avg := fmt.Sprintf("%.3f", p.sum/float64(max(p.n, 1)))
	p.bar.Add(1, "avg@1 "+avg, "avg@1", avg)
}

func (p *evalProgress) finish() { p.bar.Finish() }
