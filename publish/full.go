package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

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

	prev string // the directory the fleet serves, when this wrote it
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
	p.prev = ""
	if model == dest {
		p.prev = dest
	}
	return nil
}
