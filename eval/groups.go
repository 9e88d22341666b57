package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/internal/grouporder"
)

// NoGroup is the group of a question whose record lacks the grouping
// field (a data set without it, mixed with one that has it).
const NoGroup = "(none)"

// Breakdown is a report split by one question attribute (a field of the
// data set's records, carried in each result's meta): one row per data set
// and value, and with several data sets an "overall" row per value (the
// mean over the data sets that have it).
type Breakdown struct {
	Field string          `json:"field"`
	Rows  []DatasetReport `json:"rows"`
}

// MetaValue returns field of a record's meta (a result's, or a data set
// item's) as text. A dotted field
// reaches into nested objects ("metadata.prop"). Numbers print as
// themselves whatever their Go type (an int in memory, a float64 or
// json.Number read back), so 2 groups with 2.0; null counts as absent.
func MetaValue(meta map[string]any, field string) (string, bool) {
	var v any = meta
	for _, part := range strings.Split(field, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[part]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return strconv.FormatFloat(f, 'f', -1, 64), true
		}
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case bool:
		return strconv.FormatBool(x), true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v), true
	}
	return string(b), true
}

// metaFields lists the fields (dotted for nested objects) that occur in
// metas, sorted, for error messages.
func metaFields(metas func(yield func(map[string]any) bool)) []string {
	seen := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			seen[prefix+k] = true
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
			}
		}
	}
	for m := range metas {
		walk("", m)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// errNoField says that no question has field and which fields exist.
func errNoField(field, where string, fields []string) error {
	have := "none: its records have no fields beyond id, question and answers"
	if len(fields) > 0 {
		have = strings.Join(fields, ", ")
	}
	return fmt.Errorf("--group-by %s: no question of %s has the field %q; fields present: %s", field, where, field, have)
}

// CheckGroupFields refuses a grouping field that no question of sets
// has, naming the fields they do have (for a check before anything runs).
func CheckGroupFields(fields []string, sets []*dataset.Set) error {
	for _, f := range fields {
		found := false
		for _, s := range sets {
			for i := range s.Items {
				if _, ok := MetaValue(s.Items[i].Meta, f); ok {
					found = true
					break
				}
			}
		}
		if !found {
			return errNoField(f, "the data", metaFields(func(yield func(map[string]any) bool) {
				for _, s := range sets {
					for i := range s.Items {
						if !yield(s.Items[i].Meta) {
							return
						}
					}
				}
			}))
		}
	}
	return nil
}

// checkRecordField refuses a field that no record's meta has.
func checkRecordField(recs []Record, field string) error {
	for i := range recs {
		if _, ok := MetaValue(recs[i].Meta, field); ok {
			return nil
		}
	}
	return errNoField(field, "the results", recordFields(recs))
}

// recordFields lists the meta fields of recs.
func recordFields(recs []Record) []string {
	return metaFields(func(yield func(map[string]any) bool) {
		for i := range recs {
			if !yield(recs[i].Meta) {
				return
			}
		}
	})
}

// questionGroup is the group of a question: its first sample's value.
func questionGroup(q *question, field string) string {
	if v, ok := MetaValue(q.recs[0].Meta, field); ok {
		return v
	}
	return NoGroup
}

// splitByGroup splits questions by their value of field; values come back
// in grouporder.
func splitByGroup(qs []*question, field string) (map[string][]*question, []string) {
	by := map[string][]*question{}
	for _, q := range qs {
		g := questionGroup(q, field)
		by[g] = append(by[g], q)
	}
	return by, grouporder.Keys(by)
}

// BuildBreakdowns splits the report of recs by each field: every metric's
// Avg@k and Pass@k with bootstrap intervals and the behaviour means
// (turns, searches, accesses per trajectory, as the trajectories recorded
// them) per data set and value. A field that no record has is an error
// naming the fields that exist.
func BuildBreakdowns(recs []Record, fields []string, bootstrap int) ([]Breakdown, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	if bootstrap <= 0 {
		bootstrap = 1000
	}
	groups := groupQuestions(recs)
	order := datasetOrder(recs)
	metrics, _ := reportMetrics(recs)
	var out []Breakdown
	for _, f := range fields {
		if err := checkRecordField(recs, f); err != nil {
			return nil, err
		}
		b := Breakdown{Field: f}
		perValue := map[string]map[string][]*question{} // value → dataset → questions
		var values []string
		for _, ds := range order {
			by, vs := splitByGroup(groups[ds], f)
			for _, v := range vs {
				r := datasetReport(ds, by[v], metrics, bootstrap)
				r.Group = v
				b.Rows = append(b.Rows, r)
				if perValue[v] == nil {
					perValue[v] = map[string][]*question{}
					values = append(values, v)
				}
				perValue[v][ds] = by[v]
			}
		}
		if len(order) > 1 {
			grouporder.Sort(values)
			for _, v := range values {
				var rows []DatasetReport
				var dsOrder []string
				for _, r := range b.Rows {
					if r.Group == v {
						rows = append(rows, r)
						dsOrder = append(dsOrder, r.Name)
					}
				}
				o := overallReport(rows, dsOrder, perValue[v], metrics, bootstrap)
				o.Group = v
				b.Rows = append(b.Rows, o)
			}
		}
		out = append(out, b)
	}
	return out, nil
}

// writeBreakdowns writes one markdown table per breakdown: Avg@k of every
// metric with its interval, and the behaviour means.
func writeBreakdowns(w io.Writer, rep *Report) {
	for _, b := range rep.Breakdowns {
		fmt.Fprintf(w, "\n## By %s\n\n", b.Field)
		fmt.Fprintf(w, "Avg@%d with bootstrap 95%% intervals over the group's questions; behaviour as means per sample.\n\n", rep.K)
		fmt.Fprintf(w, "| dataset | %s | questions | samples |", b.Field)
		for _, m := range rep.Metrics {
			fmt.Fprintf(w, " %s |", m)
		}
		fmt.Fprintf(w, " turns | searches | accesses | answered |\n|---|---|---:|---:|%s---:|---:|---:|---:|\n", strings.Repeat("---:|", len(rep.Metrics)))
		for _, d := range b.Rows {
			fmt.Fprintf(w, "| %s | %s | %d | %d |", d.Name, d.Group, d.Questions, d.Samples)
			for _, m := range rep.Metrics {
				s, ok := d.Metrics[m]
				if !ok {
					fmt.Fprintf(w, " – |")
					continue
				}
				fmt.Fprintf(w, " %s |", fmtCI(s.Avg, s.AvgCI))
			}
			fmt.Fprintf(w, " %.2f | %.2f | %.2f | %.1f%% |\n", d.Means.Turns, d.Means.Searches, d.Means.Accesses, 100*d.Answered)
		}
	}
}
