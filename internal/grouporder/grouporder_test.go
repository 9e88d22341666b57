package grouporder

import (
	"slices"
	"testing"
)

func TestSort(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"10", "2", "1"}, []string{"1", "2", "10"}},
		{[]string{"comparison", "bridge", "3", "(missing)"}, []string{"3", "(missing)", "bridge", "comparison"}},
		{[]string{"1.5", "1", "-1"}, []string{"-1", "1", "1.5"}},
		{[]string{"1.0", "1"}, []string{"1", "1.0"}}, // equal values: by text, so the order is total
		{nil, nil},
	} {
		got := slices.Clone(tc.in)
		Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Sort(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Keys(map[string]int{"2": 0, "11": 0, "x": 0}); !slices.Equal(got, []string{"2", "11", "x"}) {
		t.Errorf("Keys = %q", got)
	}
}
