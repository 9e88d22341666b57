package rl

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/asearcher/asearcher/internal/atomicfile"
)

// State is the controller's part of a checkpoint (checkpoints/step_N/
// controller.json). Randomness is derived from the seed and stream
// positions, so the stream position is the whole RNG state.
type State struct {
	// Version is the number of training steps done (the weight version).
	Version int `json:"version"`
	// StreamNext is the next fresh data-stream index.
	StreamNext int64 `json:"stream_next"`
	// Requeue lists stream indices that were admitted but not consumed when
	// the checkpoint was written, oldest first; they are generated again
	// after a resume, before any fresh question.
	Requeue []int64 `json:"requeue"`
	// Cumulative counters, restored for metrics and admission recovery.
	Rejected int64 `json:"rejected"`
	Filtered int64 `json:"filtered"`
	Failed   int64 `json:"failed"`
	// TrainerState is what Trainer.SaveState returned; relative paths are
	// inside the checkpoint directory.
	TrainerState string `json:"trainer_state"`
	// Elapsed is the training wall time so far, in seconds.
	Elapsed float64 `json:"elapsed_s"`
	// Seed guards against resuming with a different data order.
	Seed int64 `json:"seed"`
}

const (
	checkpointsDir = "checkpoints"
	latestFile     = "latest"
	stateFile      = "controller.json"
	trainerSubdir  = "trainer"
)

func stepName(version int) string { return fmt.Sprintf("step_%06d", version) }

// checkpointWriter lays out checkpoints under runDir/checkpoints.
type checkpointWriter struct {
	root string
	keep int
}

// begin prepares a fresh temporary directory for version's checkpoint and
// returns it and the path to hand to Trainer.SaveState.
func (w *checkpointWriter) begin(version int) (tmp, trainerPath string, err error) {
	if err := os.MkdirAll(w.root, 0o755); err != nil {
		return "", "", err
	}
	tmp = filepath.Join(w.root, stepName(version)+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", "", err
	}
	return tmp, filepath.Join(tmp, trainerSubdir), nil
}

// commit writes the controller state into tmp, renames tmp into place, and
// points latest at it. A kill before the final rename of latest leaves the
// previous checkpoint in force.
func (w *checkpointWriter) commit(tmp string, st *State) error {
	final := filepath.Join(w.root, stepName(st.Version))
	// A trainer state written inside tmp moves with it: store it relative
	// to the checkpoint, whether the run directory was given relative (the
	// default runs/train-<time>) or absolute.
	st.TrainerState = relativeTo(tmp, st.TrainerState)
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, stateFile), raw); err != nil {
		return err
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(w.root); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(w.root, latestFile), []byte(stepName(st.Version)+"\n")); err != nil {
		return err
	}
	return w.prune(st.Version)
}

// prune removes all but the newest keep checkpoints and stale temporaries.
func (w *checkpointWriter) prune(current int) error {
	entries, err := os.ReadDir(w.root)
	if err != nil {
		return err
	}
	var steps []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "step_") {
			continue
		}
		if strings.HasSuffix(name, ".tmp") {
			os.RemoveAll(filepath.Join(w.root, name))
			continue
		}
		steps = append(steps, name)
	}
	sort.Strings(steps)
	cur := stepName(current)
	for i := 0; i < len(steps)-w.keep; i++ {
		if steps[i] != cur {
			os.RemoveAll(filepath.Join(w.root, steps[i]))
		}
	}
	return nil
}

// LoadCheckpoint reads the latest checkpoint of a run directory. It returns
// (nil, "", nil) when the run has none. The returned trainer path is
// absolute when it was stored relative to the checkpoint.
func LoadCheckpoint(runDir string) (*State, string, error) {
	root := filepath.Join(runDir, checkpointsDir)
	raw, err := os.ReadFile(filepath.Join(root, latestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	name := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(name, "step_") || strings.ContainsAny(name, `/\`) {
		return nil, "", fmt.Errorf("%s: %q is not a checkpoint name", filepath.Join(root, latestFile), name)
	}
	dir := filepath.Join(root, name)
	raw, err = os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, "", fmt.Errorf("read checkpoint: %w", err)
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, "", fmt.Errorf("checkpoint %s is damaged: %w; resume from an earlier checkpoint by writing its name into %s", filepath.Join(dir, stateFile), err, filepath.Join(root, latestFile))
	}
	if st.Version < 0 || st.StreamNext < 0 {
		return nil, "", fmt.Errorf("checkpoint %s: negative version or position", dir)
	}
	for _, i := range st.Requeue {
		if i < 0 || i >= st.StreamNext {
			return nil, "", fmt.Errorf("checkpoint %s: requeued index %d outside [0, %d)", dir, i, st.StreamNext)
		}
	}
	tp := st.TrainerState
	if tp != "" && !filepath.IsAbs(tp) && !strings.Contains(tp, "://") {
		tp = filepath.Join(dir, oldTemporaryPath(name, tp))
	}
	return &st, tp, nil
}

// relativeTo returns path relative to dir when path lies inside dir; any
// other path (another directory, a tinker:// URL) is returned unchanged.
func relativeTo(dir, path string) string {
	if path == "" || strings.Contains(path, "://") {
		return path
	}
	absDir, err1 := filepath.Abs(dir)
	absPath, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return path
	}
	rel, err := filepath.Rel(absDir, absPath)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}

// oldTemporaryPath maps a trainer path stored by releases that kept the
// temporary directory's name when the run directory was relative
// ("runs/x/checkpoints/step_N.tmp/trainer") to its place inside the
// committed checkpoint, so those checkpoints resume too.
func oldTemporaryPath(step, stored string) string {
	marker := step + ".tmp" + string(filepath.Separator)
	if i := strings.LastIndex(stored, marker); i >= 0 && (i == 0 || stored[i-1] == filepath.Separator) {
		return stored[i+len(marker):]
	}
	return stored
}
