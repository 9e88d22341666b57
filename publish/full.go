package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/asearcher/asearcher/rl"
)

// Full publishes each version as a full model directory: the trainer's
// checkpoint (an adapter is merged into the base model) is written under
// Dir and loaded on every SGLang server with update_weights_from_disk,
// inside Inner's pause / drain / continue protocol. The previous version's
// directory is deleted once the fleet serves the new one.
type Full struct {
	Inner *rl.SGLangPublisher
	// Dir is where merged model directories are written; every server
	// must read it under the same path.
	Dir string
	// Fetch makes the model directory for a trainer path
	// (Source.Merged); it returns where the model is, which may be the
	// path itself when that is already a model directory.
	Fetch func(ctx context.Context, path, dest string) (string, error)
	Log   *slog.Logger

	prev    string // the directory the fleet serves, when this wrote it
	started bool
}

// Publish implements rl.Publisher.
func (p *Full) Publish(ctx context.Context, path string, version int, d rl.Drainer) error {
	if p.Dir == "" {
		return errors.New("publish: no model directory (cluster.publish.dir)")
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	dest, err := filepath.Abs(filepath.Join(p.Dir, fmt.Sprintf("v%06d", version)))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if dest == p.prev {
		return nil // already serving it (a retried publish)
	}
	if err := os.RemoveAll(dest); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	model, err := p.Fetch(ctx, path, dest)
	if err != nil {
		os.RemoveAll(dest)
		return fmt.Errorf("publish v%d: %w", version, err)
	}
	if err := p.Inner.Publish(ctx, model, version, d); err != nil {
		if model == dest {
			os.RemoveAll(dest)
		}
		return err
	}
	if p.prev != "" && p.prev != model {
		if err := os.RemoveAll(p.prev); err != nil && p.Log != nil {
			p.Log.Warn("publish: remove previous model directory", "dir", p.prev, "err", err)
		}
	}
	first := p.prev == "" && !p.started
	p.started = true
	p.prev = ""
	if model == dest {
		p.prev = dest
	}
	if first {
		p.sweepLeftovers(dest)
	}
	return nil
}

// sweepLeftovers deletes the model directories a previous run left in
// Dir (a crash skips their deletion); the fleet serves keep.
func (p *Full) sweepLeftovers(keep string) {
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || len(n) != 7 || n[0] != 'v' || filepath.Join(p.Dir, n) == keep {
			continue
		}
		if _, err := strconv.Atoi(n[1:]); err != nil {
			continue
		}
		dir, _ := filepath.Abs(filepath.Join(p.Dir, n))
		if dir == keep {
			continue
		}
		if err := os.RemoveAll(dir); err != nil && p.Log != nil {
			p.Log.Warn("publish: remove leftover model directory", "dir", dir, "err", err)
		}
	}
}
