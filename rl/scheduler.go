package rl

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Group is one question and its G trajectories, from admission until it is
// consumed by a training step or rejected.
type Group struct {
	Seq          int64 // admission order, unique within a run
	Question     Question
	AdmitVersion int
	// Deadline is the last training step allowed to consume this group:
	// AdmitVersion + η. Every generated token is at least AdmitVersion, so
	// consuming by Deadline bounds staleness by η.
	Deadline int
	Samples  []*Sample
	Admitted time.Time
	Finished time.Time
	done     bool
}

// Done reports whether the group's trajectories have all finished.
func (g *Group) Done() bool { return g.done }

// Scheduler holds admission and the outstanding groups (running or finished,
// not yet consumed or rejected) in admission order, and forms batches.
//
// AReaL forms a batch from the oldest finished groups. With long-tailed
// trajectories that alone does not bound staleness: a straggler can be
// overtaken step after step by younger groups and end up consumed long after
// its deadline. So the selector also checks, for every future step s+j, that
// the groups still due by then fit into the j remaining batches; if taking
// the oldest finished groups would break that, it waits for the straggler.
// Oldest-first is optimal for every one of these constraints at once, so
// waiting is only ever needed when no valid batch exists yet.
//
// Scheduler is a plain struct: callers hold the lock.
type Scheduler struct {
	Adm         *Admission
	outstanding []*Group
	nextSeq     int64
}

// NewScheduler wraps an Admission.
func NewScheduler(adm *Admission) *Scheduler { return &Scheduler{Adm: adm} }

// Outstanding returns the admitted, unconsumed, unrejected groups in
// admission order. The slice must not be modified.
func (s *Scheduler) Outstanding() []*Group { return s.outstanding }

// FinishedCount is the number of finished groups awaiting a batch.
func (s *Scheduler) FinishedCount() int {
	n := 0
	for _, g := range s.outstanding {
		if g.done {
			n++
		}
	}
	return n
}

// TryAdmit admits q if capacity allows and returns its group, else nil.
func (s *Scheduler) TryAdmit(q Question, now time.Time) *Group {
	if s.Adm.Capacity() <= 0 {
		return nil
	}
	s.Adm.Submit()
	g := &Group{
		Seq:          s.nextSeq,
		Question:     q,
		AdmitVersion: s.Adm.Version,
		Deadline:     s.Adm.Version + s.Adm.Eta,
		Admitted:     now,
	}
	s.nextSeq++
	s.outstanding = append(s.outstanding, g)
	return g
}

// Accept marks a running group finished with its samples.
func (s *Scheduler) Accept(g *Group, samples []*Sample, now time.Time) {
	if g.done {
		panic("rl: group accepted twice")
	}
	g.done = true
	g.Samples = samples
	g.Finished = now
	s.Adm.Accept()
}

// Reject drops a running group and frees its slot.
func (s *Scheduler) Reject(g *Group) {
	if g.done {
		panic("rl: finished group rejected")
	}
	s.remove(g)
	s.Adm.Reject()
}

func (s *Scheduler) remove(g *Group) {
	for i, o := range s.outstanding {
		if o == g {
			s.outstanding = append(s.outstanding[:i], s.outstanding[i+1:]...)
			return
		}
	}
	panic("rl: group not outstanding")
}

// SelectBatch returns the batch for training step `step` and removes it from
// the outstanding set, or nil when no valid batch of Batch finished groups
// exists yet. The batch is in admission order (oldest first).
func (s *Scheduler) SelectBatch(step int) []*Group {
	b := s.Adm.Batch
	var picked []*Group
	for _, g := range s.outstanding {
		if g.done {
			picked = append(picked, g)
			if len(picked) == b {
				break
			}
		}
	}
	if len(picked) < b || !s.feasibleAfter(step, picked) {
		return nil
	}
	keep := s.outstanding[:0]
	pi := 0
	for _, g := range s.outstanding {
		if pi < len(picked) && g == picked[pi] {
			pi++
			continue
		}
		keep = append(keep, g)
	}
	clear(s.outstanding[len(keep):])
	s.outstanding = keep
	return picked
}

// feasibleAfter checks that after consuming picked at step `step`, the
// groups due by step+j number at most j·B for every j ≥ 0.
func (s *Scheduler) feasibleAfter(step int, picked []*Group) bool {
	maxDeadline := step
	for _, g := range s.outstanding {
		maxDeadline = max(maxDeadline, g.Deadline)
	}
	for d := step; d <= maxDeadline; d++ {
		due, took := 0, 0
		for _, g := range s.outstanding {
			if g.Deadline <= d {
				due++
			}
		}
		for _, g := range picked {
			if g.Deadline <= d {
				took++
			}
		}
		if due-took > (d-step)*s.Adm.Batch {
			return false
		}
	}
	return true
}

// Stream yields questions from a Dataset: a seeded permutation per epoch,
// forever, preceded by requeued items (groups that were outstanding when the
// last checkpoint was written and must be generated again after a resume).
type Stream struct {
	ds      Dataset
	seed    uint64
	next    int64
	requeue []int64
	epoch   int64
	perm    []int
}

// NewStream starts at position next with the given requeued indices first.
func NewStream(ds Dataset, seed uint64, next int64, requeue []int64) (*Stream, error) {
	if ds.Len() == 0 {
		return nil, fmt.Errorf("dataset is empty")
	}
	return &Stream{ds: ds, seed: seed, next: next, requeue: append([]int64(nil), requeue...), epoch: -1}, nil
}

// Next returns the next question.
func (st *Stream) Next() Question {
	var idx int64
	if len(st.requeue) > 0 {
		idx = st.requeue[0]
		st.requeue = st.requeue[1:]
	} else {
		idx = st.next
		st.next++
	}
	return st.At(idx)
}

// At returns the question at stream position idx.
func (st *Stream) At(idx int64) Question {
	n := int64(st.ds.Len())
	epoch := idx / n
	if epoch != st.epoch {
		r := rand.New(rand.NewPCG(st.seed, uint64(epoch)))
		st.perm = r.Perm(int(n))
		st.epoch = epoch
	}
	i := st.perm[idx%n]
	id, payload := st.ds.Question(i)
	q := Question{Index: idx, ID: id, Payload: payload}
	if g, ok := st.ds.(GroupedDataset); ok {
		q.Group = g.Group(i)
	}
	return q
}

// Position is the next fresh stream index (requeued items excluded).
func (st *Stream) Position() int64 { return st.next }

// Pending returns the requeued indices not yet handed out.
func (st *Stream) Pending() []int64 { return append([]int64(nil), st.requeue...) }
