// Package grouporder orders the values of a grouping attribute (a hop
// count, a HotpotQA type) the way a reader expects: numbers by value, so
// that "10" follows "9", then everything else alphabetically.
package grouporder

import (
	"cmp"
	"slices"
	"strconv"
)

// Compare orders two group values: numbers first, by value; then other
// strings, alphabetically.
func Compare(a, b string) int {
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	switch {
	case ea == nil && eb == nil:
		if c := cmp.Compare(fa, fb); c != 0 {
			return c
		}
	case ea == nil:
		return -1
	case eb == nil:
		return 1
	}
	return cmp.Compare(a, b)
}

// Sort sorts values in place with Compare.
func Sort(values []string) { slices.SortFunc(values, Compare) }

// Keys returns the keys of m in Compare order.
func Keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	Sort(out)
	return out
}
