package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// AskConfig is one `asearcher ask` run.
type AskConfig struct {
	Env      EnvConfig
	Agent    string // registry name (default asearcher)
	Prompt   string // optional prompt override
	Question string
	// JSON prints the full trajectory record (one JSON line, the
	// trajectories.jsonl format) instead of the readable summary.
	JSON  bool
	Width int
}

// Ask runs a workflow once on a question and prints the trajectory. The
// trajectory is printed even when the run failed part way; the error is
// returned after it.
func Ask(ctx context.Context, w io.Writer, reg *Registry, c AskConfig) error {
	if strings.TrimSpace(c.Question) == "" {
		return errors.New("no question: pass the question as the argument")
	}
	if reg == nil {
		reg = NewRegistry()
	}
	name := c.Agent
	if name == "" {
		name = AgentASearcher
	}
	wf, err := reg.New(name, Options{Prompt: c.Prompt})
	if err != nil {
		return err
	}
	env, closeEnv, err := c.Env.Build(ctx)
	if err != nil {
		return err
	}
	defer closeEnv()
	env.OnStep = logStep(env.Log)
	return RunAndShow(ctx, w, wf, env, Task{ID: "ask", Question: c.Question}, c.JSON, c.Width)
}

// logStep reports progress as log lines (stderr), so a long run is not
// silent until the trajectory is printed.
func logStep(log *slog.Logger) func(Step) {
	return func(st Step) {
		switch {
		case st.Call != nil:
			c := st.Call
			log.Info("model call", "turn", st.Turn+1, "purpose", c.Purpose, "tokens", len(c.Output),
				"seconds", fmt.Sprintf("%.2f", c.Latency.Seconds()), "text", capRunes(strings.Join(strings.Fields(c.Text), " "), 120))
		case st.Tool != nil:
			t := st.Tool
			args := []any{"turn", st.Turn + 1, "tool", t.Name, "arg", capRunes(t.Arg, 120), "seconds", fmt.Sprintf("%.2f", t.Latency.Seconds())}
			if t.Error != "" {
				args = append(args, "error", t.Error)
			}
			log.Info("tool call", args...)
		}
	}
}

// RunAndShow runs wf on task and prints the trajectory (readable, or one
// JSON line). It is what ask does once the Env is built; custom programs
// call it with their own workflow.
func RunAndShow(ctx context.Context, w io.Writer, wf Workflow, env *Env, task Task, asJSON bool, width int) error {
	traj, runErr := wf.Run(ctx, env, task)
	if traj == nil {
		if runErr == nil {
			runErr = fmt.Errorf("agent %s returned no trajectory", wf.Name())
		}
		return runErr
	}
	var err error
	if asJSON {
		var tw *Writer
		if tw, err = NewWriter(w, false); err == nil {
			err = tw.Write(traj)
		}
	} else {
		err = Show(w, traj, ShowOptions{Width: width})
	}
	if runErr != nil {
		return fmt.Errorf("agent run failed (trajectory above): %w", runErr)
	}
	return err
}
