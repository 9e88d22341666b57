package retrieval

import (
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// An index records every file's size and CRC-32C in its manifest at build
// time. Open checks every size (a stat per file) and, unless told not to,
// every checksum in one streaming pass, so a truncated or damaged copy is
// refused with the file named instead of crashing queries later. CRC-32C
// runs at memory speed on CPUs with SSE4.2/ARMv8 CRC instructions, so the
// pass costs about one read of the index (docs/benchmarks.md has numbers).

// FileSum is one index file's size and checksum as built.
type FileSum struct {
	Size int64 `json:"size"`
	// CRC32C is the Castagnoli CRC-32 of the contents, 8 hex digits.
	CRC32C string `json:"crc32c"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errVerifyStopped ends a checksum pass that was asked to stop.
var errVerifyStopped = errors.New("checksum pass stopped")

// sumFile streams path through CRC-32C; closing stop (if not nil) ends it
// early with errVerifyStopped.
func sumFile(path string, stop <-chan struct{}) (FileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileSum{}, err
	}
	defer f.Close()
	var crc uint32
	var n int64
	buf := make([]byte, 1<<20)
	for {
		select {
		case <-stop:
			return FileSum{}, errVerifyStopped
		default:
		}
		m, err := f.Read(buf)
		crc = crc32.Update(crc, castagnoli, buf[:m])
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return FileSum{}, err
		}
	}
	return FileSum{Size: n, CRC32C: fmt.Sprintf("%08x", crc)}, nil
}

// sumDir checksums every regular file under root/sub (all of root for sub
// ""), except the manifest itself, keyed by slash-separated path relative
// to root.
func sumDir(root, sub string) (map[string]FileSum, error) {
	var names []string
	err := filepath.WalkDir(filepath.Join(root, sub), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); rel != manifestFile {
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checksum index: %w", err)
	}
	out := make(map[string]FileSum, len(names))
	var mu sync.Mutex
	err = forEachParallel(names, func(name string) error {
		s, err := sumFile(filepath.Join(root, filepath.FromSlash(name)), nil)
		if err != nil {
			return fmt.Errorf("checksum index: %w", err)
		}
		mu.Lock()
		out[name] = s
		mu.Unlock()
		return nil
	})
	return out, err
}

// forEachParallel runs fn over names, in order, on up to GOMAXPROCS
// goroutines; it returns the error of the first name (in that order) that
// failed.
func forEachParallel(names []string, fn func(string) error) error {
	errs := make([]error, len(names))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				errs[i] = fn(names[i])
			}
		}()
	}
	for i := range names {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// errDamaged marks an index file that does not match its manifest.
var errDamaged = errors.New("damaged index")

// verifyFiles checks the files of the index in dir against the manifest:
// sizes always, contents too when checksums is true. include selects the
// files this open uses (a dense index left unopened is not read). Closing
// stop ends the pass with errVerifyStopped.
func verifyFiles(dir string, files map[string]FileSum, include func(name string) bool, checksums bool, stop <-chan struct{}) error {
	var names []string
	for name := range files {
		if include(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			return fmt.Errorf("open index: %s lists %q, which is not a path inside the index", manifestFile, name)
		}
		st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return fmt.Errorf("open index: %w: %s is missing (%v); copy the index again or rebuild it", errDamaged, name, err)
		}
		if want := files[name].Size; st.Size() != want {
			return fmt.Errorf("open index: %w: %s is %d bytes, the manifest says %d (truncated copy?); copy the index again or rebuild it", errDamaged, name, st.Size(), want)
		}
	}
	if !checksums {
		return nil
	}
	// Big files first, so one large file does not start last.
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(files[b].Size, files[a].Size) })
	return forEachParallel(names, func(name string) error {
		got, err := sumFile(filepath.Join(dir, filepath.FromSlash(name)), stop)
		if errors.Is(err, errVerifyStopped) {
			return err
		}
		if err != nil {
			return fmt.Errorf("open index: verify %s: %w", name, err)
		}
		want := files[name]
		if got.Size != want.Size || !strings.EqualFold(got.CRC32C, want.CRC32C) {
			return fmt.Errorf("open index: %w: %s has checksum %s, the manifest says %s (the file changed after the build); copy the index again or rebuild it (--verify off skips this check)", errDamaged, name, got.CRC32C, want.CRC32C)
		}
		return nil
	})
}
