package recipe

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/internal/runlock"
	"github.com/asearcher/asearcher/launch"
	"github.com/asearcher/asearcher/rl"
)

// launchFile lists the started servers (name, pid, URL, log) in the run
// directory while they run, for the operator (and the tests).
const launchFile = "launch.json"

// LaunchedServer is one row of RUN/launch.json.
type LaunchedServer struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	URL  string `json:"url"`
	Log  string `json:"log"`
}

// RunLaunched is RunCluster for a file with a launch: block: it starts the
// servers the block lists (logs in RUN/logs), waits until each is healthy,
// runs the controller against them, and stops them all when the run ends,
// fails or is cancelled. A server that dies mid-run stops the run with an
// error that names it; the run stays resumable. Without a launch: block it
// is RunCluster.
func RunLaunched(ctx context.Context, o ClusterOptions) (*rl.Summary, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	file := o.File
	if o.Resume {
		f, err := LoadClusterFile(filepath.Join(o.Out, demoConfigFile))
		if err != nil {
			return nil, fmt.Errorf("resume %s: %w", o.Out, err)
		}
		file = f
	} else {
		if err := file.Validate(); err != nil {
			return nil, err
		}
		// Refused here, before any server starts (RunCluster would refuse
		// it too, but only after the launch).
		if _, err := os.Stat(filepath.Join(o.Out, demoConfigFile)); err == nil {
			return nil, fmt.Errorf("%s already holds a run: pass --resume %s to continue it, or choose another --out", o.Out, o.Out)
		}
	}
	if file.Launch == nil {
		return RunCluster(ctx, o)
	}
	// A second launcher on this run directory is refused before it starts
	// any server (RunCluster alone would refuse it only after the launch).
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	unlock, err := runlock.Acquire(filepath.Join(o.Out, trainLockFile), "train")
	if err != nil {
		return nil, err
	}
	defer unlock()
	plan, err := file.Launch.Plan(launchVars(file, o.Out))
	if err != nil {
		return nil, err
	}
	plan.Options.Logger = log
	log.Info("launching servers", "count", len(plan.Specs), "logs", filepath.Join(o.Out, "logs"))
	g, err := launch.Start(ctx, plan.Specs, plan.Options)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	defer func() {
		log.Info("stopping launched servers", "count", len(plan.Specs))
		g.Stop()
		os.Remove(filepath.Join(o.Out, launchFile))
	}()
	pids := g.Pids()
	var rows []LaunchedServer
	for _, s := range plan.Specs {
		rows = append(rows, LaunchedServer{Name: s.Name, PID: pids[s.Name], URL: s.URL, Log: s.Log})
	}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.Out, launchFile), append(b, '\n')); err != nil {
		return nil, err
	}

	// A server that dies cancels the run with itself as the cause.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-g.Died():
			cancel(g.Err())
		case <-runCtx.Done():
		}
	}()
	o.File, o.Endpoints, o.lockHeld = file, &plan.Endpoints, true
	sum, err := RunCluster(runCtx, o)
	if died := g.Err(); died != nil && err != nil {
		if _, serr := os.Stat(filepath.Join(o.Out, demoConfigFile)); serr == nil {
			return sum, fmt.Errorf("%w (continue with asearcher train --resume %s)", died, o.Out)
		}
		return sum, died
	}
	return sum, err
}

// launchVars are the placeholders a launch: block's commands get from the
// rest of the file.
func launchVars(file ClusterFile, run string) launch.Vars {
	rank := file.Cluster.Trainer.LoraRank
	if rank == 0 {
		rank = DefaultLoraRank
	}
	return launch.Vars{RunDir: run, BaseModel: file.Cluster.Trainer.BaseModel, LoraRank: rank,
		MaxLoRAs: file.Cluster.Publish.maxAdapters(file.RL.MaxStaleness)}
}
