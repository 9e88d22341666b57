package retrieval

import (
	"os"
	"testing"
)

// BenchmarkOpenVerify measures Open of an existing index with and without
// the checksum pass (warm page cache after the first iteration):
//
//	ASEARCHER_BENCH_INDEX=/tmp/idx go test ./retrieval -run '^$' -bench OpenVerify -benchtime 5x
func BenchmarkOpenVerify(b *testing.B) {
	dir := os.Getenv("ASEARCHER_BENCH_INDEX")
	if dir == "" {
		b.Skip("set ASEARCHER_BENCH_INDEX to an index directory")
	}
	for _, mode := range []VerifyMode{VerifyOff, VerifySync} {
		b.Run(string(mode), func(b *testing.B) {
			var size int64
			for b.Loop() {
				ix, err := Open(dir, OpenOptions{Verify: mode, NoDense: true})
				if err != nil {
					b.Fatal(err)
				}
				size = 0
				for _, f := range ix.Manifest.Files {
					size += f.Size
				}
				ix.Close()
			}
			b.ReportMetric(float64(size)/(1<<20), "MB")
		})
	}
}
