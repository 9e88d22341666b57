package synth

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// FilterOptions choose the versions Filter keeps.
type FilterOptions struct {
	// MaxSolveRate keeps versions the solver got right at most this often.
	MaxSolveRate float64
	// MaxToolSolveRate, when set, also bounds tool_solve_rate (versions
	// without one pass).
	MaxToolSolveRate *float64
	// PerSeed keeps at most this many versions per seed, the hardest
	// first and, among equally hard ones, the later (more edited) versions
	// (0: all).
	PerSeed int
}

// Filter reads records and returns the kept ones in their input order.
func Filter(records []Record, o FilterOptions) []Record {
	bySeed := map[string][]int{}
	for i, r := range records {
		if r.SolveRate > o.MaxSolveRate {
			continue
		}
		if o.MaxToolSolveRate != nil && r.ToolSolveRate != nil && *r.ToolSolveRate > *o.MaxToolSolveRate {
			continue
		}
		bySeed[r.SeedID] = append(bySeed[r.SeedID], i)
	}
	var keep []int
	for _, idx := range bySeed {
		slices.SortFunc(idx, func(a, b int) int {
			ra, rb := records[a], records[b]
			return cmp.Or(cmp.Compare(ra.SolveRate, rb.SolveRate), cmp.Compare(rb.Version, ra.Version))
		})
		if o.PerSeed > 0 && len(idx) > o.PerSeed {
			idx = idx[:o.PerSeed]
		}
		keep = append(keep, idx...)
	}
	slices.Sort(keep)
	out := make([]Record, len(keep))
	for i, k := range keep {
		out[i] = records[k]
	}
	return out
}

// WriteRecords writes records as JSON lines.
func WriteRecords(w io.Writer, records []Record) error {
	var b bytes.Buffer
	for i := range records {
		line, err := json.Marshal(&records[i])
		if err != nil {
			return fmt.Errorf("write records: %w", err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}
