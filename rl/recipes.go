package rl

import (
	"fmt"

	"github.com/asearcher/asearcher/agent"
)

// ExactMatch is the controller's default training reward and its accuracy
// (WorkflowRollout): 1 when the trajectory's answer matches a gold answer
// after normalisation, else 0. Recipes (package recipe) score their own
// evaluations with it so that the numbers agree.
func ExactMatch(task agent.Task, traj *agent.Trajectory) float64 { return exactMatch(task, traj) }

// TrajectorySeed is the seed the controller gives sample `sample` (try
// `attempt`) of the question at stream index `index` in a run seeded with
// seed; recipes that run the agent outside the controller derive theirs the
// same way.
func TrajectorySeed(seed, index int64, sample, attempt int) int64 {
	return trajectorySeed(seed, index, sample, attempt)
}

// ReadStepRecords reads a run's metrics.jsonl (the StepRecord of every
// step), skipping a torn last line; any other damaged line is an error.
func ReadStepRecords(path string) ([]*StepRecord, error) {
	recs, damaged, err := readRecords(path)
	if err != nil {
		return nil, err
	}
	if len(damaged) > 0 {
		return recs, fmt.Errorf("%s: %d damaged lines", path, len(damaged))
	}
	return recs, nil
}
