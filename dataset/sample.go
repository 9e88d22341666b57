package dataset

import (
	"math/bits"
	"math/rand/v2"
	"slices"
)

// First returns the first n items (all of them when n <= 0 or n exceeds
// the set).
func First(items []Item, n int) []Item {
	if n <= 0 || n >= len(items) {
		return slices.Clone(items)
	}
	return slices.Clone(items[:n])
}

// Sample returns n items drawn without replacement with the given seed,
// in their original order, so that results read in file order. The same
// seed and input give the same sample on every platform and Go release:
// the generator is PCG and the shuffle is written here rather than taken
// from math/rand, whose algorithms may change.
func Sample(items []Item, n int, seed uint64) []Item {
	if n <= 0 || n >= len(items) {
		return slices.Clone(items)
	}
	pos := permutation(len(items), seed)[:n]
	slices.Sort(pos)
	out := make([]Item, n)
	for i, p := range pos {
		out[i] = items[p]
	}
	return out
}

// Shuffle returns the items in a seeded random order, stable across
// platforms and Go releases.
func Shuffle(items []Item, seed uint64) []Item {
	out := make([]Item, len(items))
	for i, p := range permutation(len(items), seed) {
		out[i] = items[p]
	}
	return out
}

// permutation is a Fisher-Yates shuffle of 0..n-1 driven by PCG.
func permutation(n int, seed uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	rng := rand.NewPCG(seed, 0x9e3779b97f4a7c15)
	for i := n - 1; i > 0; i-- {
		j := boundedRand(rng, uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// boundedRand is an unbiased draw from [0, n) by Lemire's multiply-and-
// reject method.
func boundedRand(rng *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(rng.Uint64(), n)
	if lo < n {
		threshold := -n % n
		for lo < threshold {
			hi, lo = bits.Mul64(rng.Uint64(), n)
		}
	}
	return hi
}

// SortByIndex puts items back in source order, in place.
func SortByIndex(items []Item) {
	slices.SortStableFunc(items, func(a, b Item) int { return a.Index - b.Index })
}
