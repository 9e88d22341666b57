package rollout

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable writes the medians as a table.
func WriteTable(w io.Writer, rep *Report) {
	o := rep.Options
	m := rep.Median
	fmt.Fprintf(w, "simulated rollout: B=%d groups × G=%d, %d steps (%d warm-up excluded), train step %.0f s, weight sync %.0f s, %d runs (medians), time ×%.0f\n",
		o.BatchGroups, o.GroupSize, o.Steps, o.Warmup, o.TrainStepSec, o.WeightSyncSec, o.Runs, o.Speedup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\ttrained traj / sim h\ttrained tokens / sim s\tengine idle\tgate idle\tmax staleness\t")
	maxSt := func(rs []ModeResult) int {
		n := 0
		for _, r := range rs {
			n = max(n, r.MaxStaleness)
		}
		return n
	}
	fmt.Fprintf(tw, "sync (η=0)\t%.0f\t%.0f\t%.2f\t%.2f\t%d\t\n", m.SyncTrajPerHour, m.SyncTokensPerS, m.SyncEngineIdle, m.SyncGateIdle, maxSt(rep.Sync))
	fmt.Fprintf(tw, "async (η=%d, interruptible)\t%.0f\t%.0f\t%.2f\t%.2f\t%d\t\n", o.AsyncEta, m.AsyncTrajPerHour, m.AsyncTokensPerS, m.AsyncEngineIdle, m.AsyncGateIdle, maxSt(rep.Async))
	tw.Flush()
	fmt.Fprintf(w, "async/sync trained-trajectory throughput: %.2f× (runs:", m.Speedup)
	for _, r := range rep.Ratios {
		fmt.Fprintf(w, " %.2f", r)
	}
	fmt.Fprintln(w, ")")
	if s := rep.Scale; s != nil {
		fmt.Fprintf(w, "scale: %d concurrent trajectories (peak), %d turns, %.1f µs CPU per turn (controller + simulated engine + agents)\n",
			s.PeakActive, s.Turns, s.CPUPerTurnUS)
		fmt.Fprintf(w, "       peak live heap %.0f MiB with %d trajectories (running or finished) holding %d tokens: %.1f KiB per trajectory, %.0f B per held token; stacks %.0f MiB, %d goroutines; %.1f s\n",
			s.PeakHeapMiB, s.ActiveAtPeak, s.HeldTokens, s.HeapPerTrajKiB, s.BytesPerToken, s.StackMiB, s.Goroutines, s.WallSeconds)
	}
	fmt.Fprintf(w, "load average: %.2f %.2f %.2f\n", rep.Load[0], rep.Load[1], rep.Load[2])
}
