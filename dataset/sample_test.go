package dataset

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func numbered(n int) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{ID: fmt.Sprint(i), Question: "q", Answers: []string{"a"}, Index: i}
	}
	return items
}

func ids(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func TestFirst(t *testing.T) {
	items := numbered(10)
	if got := ids(First(items, 3)); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Errorf("First 3 = %v", got)
	}
	if len(First(items, 0)) != 10 || len(First(items, 99)) != 10 {
		t.Error("First should return everything for n <= 0 or n > len")
	}
}

// TestSampleGolden pins the sample for a seed: changing it would silently
// change which questions an existing config evaluates.
func TestSampleGolden(t *testing.T) {
	got := ids(Sample(numbered(100), 8, 42))
	want := []string{"2", "25", "34", "38", "40", "46", "63", "66"}
	if !slices.Equal(got, want) {
		t.Errorf("Sample(100, 8, seed 42) = %v, want %v", got, want)
	}
	if got := ids(Shuffle(numbered(6), 7)); !slices.Equal(got, []string{"3", "1", "4", "5", "0", "2"}) {
		t.Errorf("Shuffle(6, seed 7) = %v", got)
	}
}

func TestSampleProperties(t *testing.T) {
	items := numbered(50)
	a := Sample(items, 20, 1)
	if !slices.Equal(ids(a), ids(Sample(items, 20, 1))) {
		t.Error("same seed, different sample")
	}
	if slices.Equal(ids(a), ids(Sample(items, 20, 2))) {
		t.Error("different seeds, same sample")
	}
	if !slices.IsSortedFunc(a, func(x, y Item) int { return x.Index - y.Index }) {
		t.Error("sample not in source order")
	}
	if len(slices.Compact(ids(a))) != 20 {
		t.Error("sample repeats items")
	}
	s := Shuffle(items, 3)
	SortByIndex(s)
	if !slices.Equal(ids(s), ids(items)) {
		t.Error("Shuffle is not a permutation")
	}
}

func TestBoundedRandUniform(t *testing.T) {
	rng := rand.NewPCG(1, 2)
	counts := make([]int, 6)
	for range 60000 {
		counts[boundedRand(rng, 6)]++
	}
	for v, c := range counts {
		if c < 9500 || c > 10500 {
			t.Errorf("value %d drawn %d times of 60000", v, c)
		}
	}
}
