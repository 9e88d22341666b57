package retrieval

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// damageCorpus is enough text for terms with several blocks (df > 128).
func damageCorpus(t testing.TB, n int) string {
	rng := rand.New(rand.NewPCG(7, 8))
	texts := make([]string, n)
	for i := range texts {
		var w []string
		for range 30 {
			w = append(w, fmt.Sprintf("t%d", rng.IntN(200)))
		}
		texts[i] = strings.Join(w, " ")
	}
	return writeCorpus(t, texts)
}

// copyIndex copies an index directory to a fresh temporary one.
func copyIndex(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func stripChecksums(t testing.TB, dir string) {
	t.Helper()
	path := filepath.Join(dir, manifestFile)
	var m map[string]any
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "files")
	data, _ = json.Marshal(m)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// queryAll runs one query per term t0..t199 and returns the first error;
// a panic fails the test (it used to: postings.go:103, slice bounds).
func queryAll(t *testing.T, ix *Index) (err error) {
	t.Helper()
	defer func() {
		if v := recover(); v != nil {
			t.Fatalf("query panicked on a damaged index: %v", v)
		}
	}()
	for i := range 200 {
		if _, e := ix.BM25.Search(context.Background(), fmt.Sprintf("t%d t%d", i, (i+1)%200), 10, nil); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// TestReliabilityDamagedIndex is issue 12's attack: truncating
// bm25/blocks.dat or bm25/postings.dat passed the size check, and queries
// then panicked (the search server dropped every connection). Now every
// file of the index is checked against the manifest at open: a truncated
// or altered file is refused, naming it.
func TestReliabilityDamagedIndex(t *testing.T) {
	src := filepath.Join(t.TempDir(), "index")
	if _, err := Build(context.Background(), BuildOptions{Corpus: damageCorpus(t, 1000), Out: src, Progress: ProgressOff, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(src, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Manifest.Files) < 10 {
		t.Fatalf("manifest lists %d files", len(ix.Manifest.Files))
	}
	ix.Close()
	var names []string
	for name := range ix.Manifest.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		size := ix.Manifest.Files[name].Size
		for _, how := range []string{"truncate", "flip"} {
			if size == 0 {
				continue
			}
			t.Run(how+" "+name, func(t *testing.T) {
				dir := copyIndex(t, src)
				path := filepath.Join(dir, filepath.FromSlash(name))
				if how == "truncate" {
					os.Truncate(path, size-1)
				} else {
					data, _ := os.ReadFile(path)
					data[len(data)/2] ^= 0x5a
					os.WriteFile(path, data, 0o644)
				}
				ix, err := Open(dir, OpenOptions{})
				if err == nil {
					ix.Close()
					t.Fatalf("opened an index with %s damaged", name)
				}
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error does not name %s: %v", name, err)
				}
			})
		}
	}
	t.Run("missing file", func(t *testing.T) {
		dir := copyIndex(t, src)
		os.Remove(filepath.Join(dir, bm25Dir, docLenFile))
		if _, err := Open(dir, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "bm25/doclen.dat is missing") {
			t.Errorf("missing doclen.dat: %v", err)
		}
	})
	t.Run("verify off still checks sizes", func(t *testing.T) {
		dir := copyIndex(t, src)
		os.Truncate(filepath.Join(dir, bm25Dir, postingsFile), 100)
		if _, err := Open(dir, OpenOptions{Verify: VerifyOff}); err == nil || !strings.Contains(err.Error(), "bm25/postings.dat is 100 bytes") {
			t.Errorf("truncated postings with VerifyOff: %v", err)
		}
	})
}

// TestReliabilityDamagedIndexWithoutChecksums covers indexes built before
// checksums (they open with a warning): the layout checks still refuse a
// truncated blocks.dat or postings.dat, and corrupt postings bytes (which no
// size check sees) make queries fail with an error, never panic.
func TestReliabilityDamagedIndexWithoutChecksums(t *testing.T) {
	src := filepath.Join(t.TempDir(), "index")
	if _, err := Build(context.Background(), BuildOptions{Corpus: damageCorpus(t, 1000), Out: src, Progress: ProgressOff, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	stripChecksums(t, src)
	ix, err := Open(src, OpenOptions{})
	if err != nil {
		t.Fatalf("an index without checksums must still open: %v", err)
	}
	if err := queryAll(t, ix); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	for _, tc := range []struct {
		file string
		cut  int64
	}{{blocksFile, 24}, {blocksFile, 1}, {postingsFile, 1}, {postingsFile, 300}} {
		t.Run(fmt.Sprintf("truncate %s by %d", tc.file, tc.cut), func(t *testing.T) {
			dir := copyIndex(t, src)
			path := filepath.Join(dir, bm25Dir, tc.file)
			st, _ := os.Stat(path)
			os.Truncate(path, st.Size()-tc.cut)
			ix, err := Open(dir, OpenOptions{})
			if err == nil {
				defer ix.Close()
				queryAll(t, ix)
				t.Fatalf("opened with %s truncated", tc.file)
			}
			if !strings.Contains(err.Error(), tc.file) {
				t.Errorf("error does not name %s: %v", tc.file, err)
			}
		})
	}
	t.Run("corrupt postings bytes", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 9))
		failed := 0
		for trial := range 20 {
			dir := copyIndex(t, src)
			path := filepath.Join(dir, bm25Dir, postingsFile)
			data, _ := os.ReadFile(path)
			for range 1 + trial {
				data[rng.IntN(len(data)-postingsPad)] = byte(rng.Uint32())
			}
			os.WriteFile(path, data, 0o644)
			ix, err := Open(dir, OpenOptions{})
			if err != nil {
				continue // the layout check caught it (the last block's header)
			}
			if err := queryAll(t, ix); err != nil {
				failed++
				if !strings.Contains(err.Error(), "corrupt postings block") || !strings.Contains(err.Error(), "rebuild") {
					t.Errorf("query error %v does not say the index is damaged", err)
				}
			}
			ix.Close()
		}
		if failed == 0 {
			t.Error("no corruption was detected by any query")
		}
	})
}

// TestBuildRecordsChecksums: every file of a built index is in the
// manifest with its size, and the sums match a fresh read.
func TestBuildRecordsChecksums(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	if _, err := Build(context.Background(), BuildOptions{Corpus: damageCorpus(t, 50), Out: dir, Progress: ProgressOff, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	n := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == manifestFile {
			return err
		}
		n++
		rel, _ := filepath.Rel(dir, path)
		got, err := sumFile(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want, ok := ix.Manifest.Files[filepath.ToSlash(rel)]; !ok || want != got {
			t.Errorf("%s: manifest %+v (listed %v), file %+v", rel, want, ok, got)
		}
		return nil
	})
	if n != len(ix.Manifest.Files) {
		t.Errorf("%d files on disk, %d in the manifest", n, len(ix.Manifest.Files))
	}
}

// TestVerifyModes: background verification opens at once and reports the
// outcome; Close stops a pass in progress; unknown modes are refused.
func TestVerifyModes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "index")
	if _, err := Build(context.Background(), BuildOptions{Corpus: damageCorpus(t, 300), Out: src, Progress: ProgressOff, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(src, OpenOptions{Verify: VerifyBackground})
	if err != nil {
		t.Fatal(err)
	}
	for ix.Integrity().Status == "verifying" {
		time.Sleep(time.Millisecond)
	}
	if st := ix.Integrity(); st.Status != "verified" {
		t.Errorf("intact index: %+v", st)
	}
	ix.Close()
	for mode, want := range map[VerifyMode]string{VerifySync: "verified", "": "verified", VerifyOff: "unverified"} {
		ix, err := Open(src, OpenOptions{Verify: mode})
		if err != nil {
			t.Fatal(err)
		}
		if st := ix.Integrity(); st.Status != want {
			t.Errorf("mode %q: %+v, want %s", mode, st, want)
		}
		ix.Close()
	}
	// Close during a pass returns promptly and leaves nothing running.
	ix, err = Open(src, OpenOptions{Verify: VerifyBackground})
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
	if _, err := Open(src, OpenOptions{Verify: "sometimes"}); err == nil {
		t.Error("unknown verify mode accepted")
	}
}
