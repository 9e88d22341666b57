package agent

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadCompressed: reading a 4,000-record .jsonl.zst (one frame per
// record), as eval does on every resume.
func BenchmarkReadCompressed(b *testing.B) {
	path := filepath.Join(b.TempDir(), "t.jsonl.zst")
	w, err := Create(path)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 4000 {
		tr := goldenTrajectory()
		tr.Sample = i
		if err := w.Write(tr); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	// frames is what Open does on a file; stream hides the file's ReadAt,
	// so the reader decodes it as one zstd stream (how files were read
	// before frame-by-frame reading).
	for _, mode := range []string{"frames", "stream"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				var src io.Reader = f
				if mode == "stream" {
					src = struct{ io.Reader }{f}
				}
				r, err := NewReader(src)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					_, err := r.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				r.Close()
				f.Close()
				if n != 4000 {
					b.Fatalf("%d records", n)
				}
			}
		})
	}
}
