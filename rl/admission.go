package rl

import "fmt"

// Admission is AReaL's staleness manager. A task is one group (one question,
// G trajectories); B is the number of groups a training step consumes and v
// the published weight version (= training steps done). A new group is
// admitted only while
//
//	min(maxConcurrent − running, (η + v + 1)·B − (accepted + running)) > 0.
//
// Because every step consumes exactly B accepted groups, this keeps at most
// (η+1)·B groups outstanding; the batch selector (see Scheduler) then makes
// sure each of them is consumed within η versions of its admission.
// Rejected groups (filtered or failed) give their slot back.
//
// Admission is a plain struct: callers hold the lock.
type Admission struct {
	Eta           int // η, maximum staleness; 0 is synchronous RL
	Batch         int // B, groups per training step
	MaxConcurrent int // cap on running groups

	Version   int   // v
	Submitted int64 // groups admitted since the run began (or since resume)
	Running   int64
	Accepted  int64 // cumulative; consumed groups stay counted
	Rejected  int64
}

// NewAdmission validates its parameters; maxConcurrent ≤ 0 means B.
func NewAdmission(eta, batch, maxConcurrent int) (*Admission, error) {
	if eta < 0 {
		return nil, fmt.Errorf("max staleness %d: want ≥ 0", eta)
	}
	if batch <= 0 {
		return nil, fmt.Errorf("batch of %d groups: want ≥ 1", batch)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = batch
	}
	return &Admission{Eta: eta, Batch: batch, MaxConcurrent: maxConcurrent}, nil
}

// Capacity is how many more groups may start now.
func (a *Admission) Capacity() int64 {
	byConc := int64(a.MaxConcurrent) - a.Running
	byStale := int64(a.Eta+a.Version+1)*int64(a.Batch) - (a.Accepted + a.Running)
	return min(byConc, byStale)
}

// Submit records an admitted group; callers check Capacity first.
func (a *Admission) Submit() {
	a.Submitted++
	a.Running++
}

// Accept moves a running group to accepted.
func (a *Admission) Accept() {
	a.Running--
	a.Accepted++
}

// Reject moves a running group to rejected, freeing its slot.
func (a *Admission) Reject() {
	a.Running--
	a.Rejected++
}

// Recover sets the counters after resuming at version v with nothing in
// flight: every group before the checkpoint was consumed, so accepted = v·B.
// Without this (AReaL issue #1388) the first admissions after resume would
// release a burst of v·B groups and break the staleness bound.
// rejected restores the cumulative rejected count for metrics, and
// Submitted is rebuilt so that submitted = running + accepted + rejected
// keeps holding.
func (a *Admission) Recover(version int, rejected int64) {
	a.Version = version
	a.Running = 0
	a.Accepted = int64(version) * int64(a.Batch)
	a.Rejected = rejected
	a.Submitted = a.Accepted + a.Rejected
}

// Check verifies the admission invariants; tests call it after every event.
func (a *Admission) Check() error {
	if a.Running < 0 || a.Accepted < 0 || a.Rejected < 0 {
		return fmt.Errorf("negative counter: running %d accepted %d rejected %d", a.Running, a.Accepted, a.Rejected)
	}
	if a.Submitted != a.Running+a.Accepted+a.Rejected {
		return fmt.Errorf("submitted %d ≠ running %d + accepted %d + rejected %d", a.Submitted, a.Running, a.Accepted, a.Rejected)
	}
	if a.Running > int64(a.MaxConcurrent) {
		return fmt.Errorf("running %d > max concurrent %d", a.Running, a.MaxConcurrent)
	}
	if limit := int64(a.Eta+a.Version+1) * int64(a.Batch); a.Accepted+a.Running > limit {
		return fmt.Errorf("accepted %d + running %d > (η+v+1)·B = %d", a.Accepted, a.Running, limit)
	}
	return nil
}
