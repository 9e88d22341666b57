package rl

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestAdmissionCapacity(t *testing.T) {
	tests := []struct {
		name                         string
		eta, batch, maxConc, version int
		running, accepted            int64
		want                         int64
	}{
		{"sync fresh", 0, 4, 0, 0, 0, 0, 4},
		{"sync full", 0, 4, 0, 0, 4, 0, 0},
		{"sync after version bump", 0, 4, 0, 1, 0, 4, 4},
		{"eta 2 fresh: concurrency defaults to B", 2, 4, 0, 0, 0, 0, 4},
		{"eta 2 fresh, concurrency (η+1)·B", 2, 4, 12, 0, 0, 0, 12},
		{"concurrency bound", 2, 4, 5, 0, 3, 0, 2},
		{"staleness bound", 2, 4, 100, 0, 2, 9, 1},
		{"over the bound", 1, 4, 100, 0, 3, 6, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAdmission(tt.eta, tt.batch, tt.maxConc)
			if err != nil {
				t.Fatal(err)
			}
			a.Version, a.Running, a.Accepted = tt.version, tt.running, tt.accepted
			if got := a.Capacity(); got != tt.want {
				t.Errorf("capacity = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestAdmissionRejectsBadParams(t *testing.T) {
	if _, err := NewAdmission(-1, 4, 0); err == nil {
		t.Error("negative η accepted")
	}
	if _, err := NewAdmission(0, 0, 0); err == nil {
		t.Error("zero batch accepted")
	}
}

func TestAdmissionRecoverPreventsBurst(t *testing.T) {
	// AReaL #1388: resuming at version 7 with accepted = 0 would admit
	// (η+8)·B groups at once. After Recover only (η+1)·B may start.
	a, _ := NewAdmission(2, 4, 1000)
	a.Recover(7, 3)
	if got, want := a.Capacity(), int64(3*4); got != want {
		t.Fatalf("capacity after recover = %d, want %d", got, want)
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
}

// simulate drives a Scheduler with random completion times, rejections and
// checkpoint/resume cycles, and checks every invariant after every event.
func simulate(t *testing.T, seed uint64, eta, batch, maxConc, steps int, rejectP float64, resumeEvery int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 99))
	adm, err := NewAdmission(eta, batch, maxConc)
	if err != nil {
		t.Fatal(err)
	}
	s := NewScheduler(adm)
	now := time.Unix(0, 0)
	type job struct {
		g    *Group
		left int // events until it finishes
	}
	var running []*job
	var nextIdx int64
	var requeue []int64
	consumed := map[int64]bool{}
	rejected := map[int64]bool{}
	check := func() {
		t.Helper()
		if err := adm.Check(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if got := int64(len(running)); got != adm.Running {
			t.Fatalf("seed %d: %d jobs running but admission says %d", seed, got, adm.Running)
		}
	}
	for step := adm.Version; step < steps; {
		// Admit as much as allowed.
		for {
			var idx int64
			if len(requeue) > 0 {
				idx = requeue[0]
			} else {
				idx = nextIdx
			}
			g := s.TryAdmit(Question{Index: idx}, now)
			if g == nil {
				break
			}
			if len(requeue) > 0 {
				requeue = requeue[1:]
			} else {
				nextIdx++
			}
			// Long-tailed durations: mostly short, sometimes 30× longer.
			d := 1 + r.IntN(5)
			if r.Float64() < 0.1 {
				d *= 30
			}
			running = append(running, &job{g: g, left: d})
			check()
		}
		// Try to train.
		if b := s.SelectBatch(step); b != nil {
			if len(b) != batch {
				t.Fatalf("batch of %d groups, want %d", len(b), batch)
			}
			for i, g := range b {
				if !g.Done() {
					t.Fatalf("unfinished group in batch")
				}
				if i > 0 && b[i-1].Seq >= g.Seq {
					t.Fatalf("batch not in admission order")
				}
				// The staleness bound: every token is ≥ AdmitVersion.
				if step-g.AdmitVersion > eta {
					t.Fatalf("seed %d: step %d consumes group admitted at v%d: staleness %d > η=%d",
						seed, step, g.AdmitVersion, step-g.AdmitVersion, eta)
				}
				if consumed[g.Question.Index] || rejected[g.Question.Index] {
					t.Fatalf("question %d used twice", g.Question.Index)
				}
				consumed[g.Question.Index] = true
			}
			step++
			adm.Version = step
			check()
			if resumeEvery > 0 && step%resumeEvery == 0 && step < steps {
				// Checkpoint + crash + resume: everything outstanding is
				// requeued, nothing in flight survives.
				requeue = requeue[:0]
				for _, g := range s.Outstanding() {
					requeue = append(requeue, g.Question.Index)
				}
				running = nil
				adm2, _ := NewAdmission(eta, batch, maxConc)
				adm2.Recover(step, adm.Rejected)
				adm = adm2
				s = NewScheduler(adm)
				check()
			}
			continue
		}
		// Advance one running job.
		if len(running) == 0 {
			t.Fatalf("seed %d: deadlock at step %d: nothing running and no batch (outstanding %d)", seed, step, len(s.Outstanding()))
		}
		i := r.IntN(len(running))
		j := running[i]
		j.left--
		now = now.Add(time.Second)
		if j.left <= 0 {
			running = slices.Delete(running, i, i+1)
			if r.Float64() < rejectP {
				s.Reject(j.g)
				rejected[j.g.Question.Index] = true
			} else {
				s.Accept(j.g, nil, now)
			}
			check()
		}
	}
	// Every index handed out is consumed, rejected, or still outstanding.
	out := map[int64]bool{}
	for _, g := range s.Outstanding() {
		out[g.Question.Index] = true
	}
	for _, idx := range requeue {
		out[idx] = true
	}
	for idx := range nextIdx {
		n := 0
		for _, m := range []map[int64]bool{consumed, rejected, out} {
			if m[idx] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("seed %d: question %d is in %d of consumed/rejected/outstanding, want exactly 1", seed, idx, n)
		}
	}
}

func TestSchedulerStalenessProperty(t *testing.T) {
	for seed := range uint64(60) {
		r := rand.New(rand.NewPCG(seed, 1))
		eta := r.IntN(5)
		batch := 1 + r.IntN(6)
		maxConc := 0
		if r.IntN(2) == 0 {
			maxConc = 1 + r.IntN(3*batch)
		}
		resume := 0
		if r.IntN(2) == 0 {
			resume = 1 + r.IntN(4)
		}
		simulate(t, seed, eta, batch, maxConc, 40, 0.2*r.Float64(), resume)
	}
}

func TestSchedulerSyncTakesExactlyTheAdmittedGroups(t *testing.T) {
	// η = 0: a step trains only on groups admitted at its own version.
	adm, _ := NewAdmission(0, 3, 0)
	s := NewScheduler(adm)
	var gs []*Group
	for i := range 5 {
		if g := s.TryAdmit(Question{Index: int64(i)}, time.Now()); g != nil {
			gs = append(gs, g)
		}
	}
	if len(gs) != 3 {
		t.Fatalf("admitted %d groups at η=0, want B=3", len(gs))
	}
	for _, g := range gs {
		s.Accept(g, nil, time.Now())
	}
	b := s.SelectBatch(0)
	if len(b) != 3 {
		t.Fatalf("batch %v", b)
	}
	if g := s.TryAdmit(Question{Index: 9}, time.Now()); g != nil {
		t.Fatal("admitted before the version bump")
	}
	adm.Version = 1
	if g := s.TryAdmit(Question{Index: 9}, time.Now()); g == nil || g.AdmitVersion != 1 {
		t.Fatal("not admitted after the version bump")
	}
}

func TestSchedulerWaitsForStraggler(t *testing.T) {
	// η = 1, B = 1: groups A (v0) and B (v0) start; B finishes and is
	// trained at step 0. At step 1 A is due: a younger finished group must
	// not be taken instead.
	adm, _ := NewAdmission(1, 1, 2)
	s := NewScheduler(adm)
	a := s.TryAdmit(Question{Index: 0}, time.Now())
	b := s.TryAdmit(Question{Index: 1}, time.Now())
	s.Accept(b, nil, time.Now())
	if got := s.SelectBatch(0); len(got) != 1 || got[0] != b {
		t.Fatalf("step 0 batch = %v", got)
	}
	adm.Version = 1
	c := s.TryAdmit(Question{Index: 2}, time.Now())
	if c == nil {
		t.Fatal("no capacity at v1")
	}
	s.Accept(c, nil, time.Now())
	if got := s.SelectBatch(1); got != nil {
		t.Fatalf("step 1 took %v while the due straggler runs", got[0].Question.Index)
	}
	s.Accept(a, nil, time.Now())
	if got := s.SelectBatch(1); len(got) != 1 || got[0] != a {
		t.Fatalf("step 1 batch = %v, want the straggler", got)
	}
}

type sliceDataset []string

func (d sliceDataset) Len() int                     { return len(d) }
func (d sliceDataset) Question(i int) (string, any) { return d[i], i }

func TestStreamEpochsAndRequeue(t *testing.T) {
	ds := sliceDataset{"a", "b", "c", "d", "e"}
	st, err := NewStream(ds, 7, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for range 10 {
		q := st.Next()
		seen[q.ID]++
	}
	for _, id := range ds {
		if seen[id] != 2 {
			t.Errorf("%s seen %d times in two epochs", id, seen[id])
		}
	}
	// A resumed stream replays requeued positions first, then continues.
	st2, _ := NewStream(ds, 7, 10, []int64{3, 8})
	want := []int64{3, 8, 10, 11}
	for _, w := range want {
		q := st2.Next()
		if q.Index != w {
			t.Fatalf("index %d, want %d", q.Index, w)
		}
		if q.ID != st.At(w).ID {
			t.Fatalf("position %d maps to %s and %s", w, q.ID, st.At(w).ID)
		}
	}
	if _, err := NewStream(sliceDataset{}, 1, 0, nil); err == nil {
		t.Error("empty dataset accepted")
	}
}
