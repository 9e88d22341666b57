package synth

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/asearcher/asearcher/corpus"
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

// seedProgress counts finished seeds and accepted questions.
type seedProgress struct {
	bar      *progress.Bar
	mu       sync.Mutex
	accepted int
	failed   int
}

func newProgress(mode ProgressMode, logger *slog.Logger, total, done int) *seedProgress {
	return &seedProgress{bar: progress.New(mode, progress.Options{
		Desc: "synth", Unit: "seeds", Total: int64(total), Done: int64(done), Logger: logger})}
}

func (p *seedProgress) add(accepted int, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.accepted += accepted
	if failed {
		p.failed++
	}
	p.bar.Add(1, fmt.Sprintf("%d accepted, %d failed", p.accepted, p.failed), "accepted", p.accepted, "failed", p.failed)
}

func (p *seedProgress) finish() { p.bar.Finish() }

func writeStats(path string, s Stats) error {
	if err := corpus.WriteJSONFile(path, s); err != nil {
		return fmt.Errorf("synth stats: %w", err)
	}
	return nil
}
