package retrieval

import (
	"io"
	"log/slog"
	"time"

	"github.com/asearcher/asearcher/internal/progress"
)

// ProgressMode chooses how builds report progress.
type ProgressMode = progress.Mode

const (
	// ProgressAuto draws a bar when stderr is a terminal and logs otherwise.
	ProgressAuto = progress.Auto
	// ProgressLog only logs.
	ProgressLog = progress.Log
	// ProgressOff is silent (tests, library use).
	ProgressOff = progress.Off
)

// newProgress reports one build phase; total < 0 means unknown. Builds
// log every 10 s: their phases are long and each line is a small report.
func newProgress(mode ProgressMode, logger *slog.Logger, desc string, total int64, unit string) *progress.Bar {
	return progress.New(mode, progress.Options{Desc: desc, Unit: unit, Total: max(total, 0), Logger: logger, LogEvery: 10 * time.Second})
}

// orDiscard lets callers pass a nil logger.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
