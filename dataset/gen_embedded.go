//go:build ignore

// gen_embedded compresses the shipped data files into embedded/ so that the
// asearcher binary carries them at a quarter of their size. Run it with
// `go generate ./dataset` after changing anything under dataset/data;
// TestEmbeddedMatchesData fails until the two agree.
package main

import (
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
)

func main() {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		log.Fatal(err)
	}
	var want []string
	err = filepath.WalkDir("data", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := filepath.Ext(path)
		// Metric vectors are for tests only; provenance files stay beside the data.
		if strings.HasPrefix(path, filepath.Join("data", "eval-scripts")) || (ext != ".json" && ext != ".jsonl" && ext != ".csv") {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("data", path)
		out := filepath.Join("embedded", rel+".zst")
		want = append(want, out)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		z := enc.EncodeAll(raw, nil)
		tmp := out + ".tmp"
		if err := os.WriteFile(tmp, z, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, out); err != nil {
			return err
		}
		fmt.Printf("%-60s %9d -> %8d bytes\n", rel, len(raw), len(z))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Remove compressed files whose source is gone.
	err = filepath.WalkDir("embedded", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || slices.Contains(want, path) {
			return err
		}
		return os.Remove(path)
	})
	if err != nil {
		log.Fatal(err)
	}
}
