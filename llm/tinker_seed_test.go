package llm

import (
	"math"
	"testing"
)

// TestTinkerSeedFitsInt32: SkyRL's JAX sampler builds its PRNG keys from an
// int32 array, so a 64-bit seed fails the whole request; the body carries
// seeds in [0, 2^31), small seeds unchanged, large ones mixed down
// deterministically and kept apart.
func TestTinkerSeedFitsInt32(t *testing.T) {
	body := func(seed int64) int64 {
		t.Helper()
		b, err := tinkerSampleBody(&Request{InputIDs: []int{1}, Params: Params{MaxNewTokens: 1, Temperature: 1, Seed: &seed}})
		if err != nil {
			t.Fatal(err)
		}
		if b.SamplingParams.Seed == nil {
			t.Fatalf("seed %d: none sent", seed)
		}
		return *b.SamplingParams.Seed
	}
	seen := map[int64]int64{}
	for _, seed := range []int64{0, 3, math.MaxInt32, math.MaxInt32 + 1, 534556037077248690, 4159561928343808515, -1, math.MinInt64, math.MaxInt64} {
		got := body(seed)
		if got < 0 || got > math.MaxInt32 {
			t.Errorf("seed %d sent as %d, outside [0, 2^31)", seed, got)
		}
		if seed >= 0 && seed <= math.MaxInt32 && got != seed {
			t.Errorf("seed %d sent as %d, want it unchanged", seed, got)
		}
		if again := body(seed); again != got {
			t.Errorf("seed %d sent as %d, then %d", seed, got, again)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("seeds %d and %d both sent as %d", prev, seed, got)
		}
		seen[got] = seed
	}
	b, err := tinkerSampleBody(&Request{InputIDs: []int{1}, Params: Params{MaxNewTokens: 1, Temperature: 1}})
	if err != nil || b.SamplingParams.Seed != nil {
		t.Errorf("no seed: %v %v", b.SamplingParams.Seed, err)
	}
}
