package corpus

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func buildStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenStore(buildStoreDir(t, path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// buildStoreDir writes a store of the corpus at path and returns its
// directory.
func buildStoreDir(t *testing.T, path string) string {
	t.Helper()
	ps, _, err := readAll(t, path, ReaderOptions{Row: RowOptions{URLTemplate: DefaultURLTemplate}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w, err := CreateStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ps {
		ord, err := w.Add(&ps[i])
		if err != nil || int(ord) != i {
			t.Fatalf("Add %d: ord %d err %v", i, ord, err)
		}
	}
	if err := w.Finish(StoreMeta{Source: path}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestStoreLookups(t *testing.T) {
	s := buildStore(t, "../dataset/data/flashrag-wiki18-sample/corpus_sample1000.jsonl")
	if s.Len() != 1000 {
		t.Fatalf("Len %d", s.Len())
	}
	for _, ord := range []uint32{0, 1, 517, 999} {
		p, err := s.Passage(ord)
		if err != nil {
			t.Fatal(err)
		}
		if p.ID != fmt.Sprint(ord) {
			t.Errorf("passage %d has id %q", ord, p.ID)
		}
		got, ok := s.LookupID(p.ID)
		if !ok || got != ord {
			t.Errorf("LookupID(%q) = %d %v", p.ID, got, ok)
		}
		urls := s.LookupURL(p.URL, nil)
		found := false
		for _, u := range urls {
			q, _ := s.Passage(u)
			if q.URL != p.URL {
				t.Errorf("LookupURL(%q) returned passage with url %q", p.URL, q.URL)
			}
			found = found || u == ord
		}
		if !found {
			t.Errorf("LookupURL(%q) = %v, missing %d", p.URL, urls, ord)
		}
		if !json.Valid(s.Row(ord)) {
			t.Errorf("row %d invalid", ord)
		}
	}
	if _, ok := s.LookupID("no-such-id"); ok {
		t.Error("found an unknown id")
	}
	if got := s.LookupURL("https://nowhere", nil); len(got) != 0 {
		t.Errorf("unknown url found %v", got)
	}
	if _, err := s.Passage(1000); err == nil {
		t.Error("out-of-range passage did not fail")
	}
}

func TestStoreSharedURLs(t *testing.T) {
	// Several passages of one article share its url; lookups return all of
	// them in corpus order.
	dir := t.TempDir()
	w, err := CreateStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, title := range []string{"A", "B", "A", "C", "A"} {
		p, err := ParseRow([]byte(fmt.Sprintf(`{"title":%q,"text":"part %d"}`, title, i)), int64(i), RowOptions{URLTemplate: DefaultURLTemplate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Add(&p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(StoreMeta{}); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := s.LookupURL(URLFor(DefaultURLTemplate, "A"), nil)
	if fmt.Sprint(got) != "[0 2 4]" {
		t.Errorf("url A -> %v", got)
	}
}

func TestKeyIndexSpill(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 1000, 20000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			w := NewKeyIndexWriter(dir)
			w.memLimit = 500 // force the partitioned path for larger n
			for i := 0; i < n; i++ {
				if err := w.Add(fmt.Sprintf("key-%d", i%(n/2+1)), uint32(i)); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "k.kix")
			if err := w.Finish(path); err != nil {
				t.Fatal(err)
			}
			k, err := OpenKeyIndex(path)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			if k.Len() != n {
				t.Fatalf("Len %d", k.Len())
			}
			for i := 0; i < n; i++ {
				got := k.Candidates(HashKey(fmt.Sprintf("key-%d", i%(n/2+1))), nil)
				found := false
				for j, v := range got {
					found = found || v == uint32(i)
					if j > 0 && got[j-1] >= v {
						t.Fatalf("values not ascending: %v", got)
					}
				}
				if !found {
					t.Fatalf("key %d: candidates %v", i, got)
				}
			}
			if got := k.Candidates(HashKey("absent"), nil); len(got) != 0 {
				t.Errorf("absent key -> %v", got)
			}
		})
	}
}

func TestOpenStoreRejectsDamage(t *testing.T) {
	if _, err := OpenStore(t.TempDir()); err == nil {
		t.Error("empty dir opened")
	}
	if _, err := parseKeyIndex([]byte("ASKI\x01\x00\x00\x00 short")); err == nil {
		t.Error("short key index parsed")
	}
}

func BenchmarkParseRow(b *testing.B) {
	row := []byte(`{"id": "17", "contents": "\"Evan Morris\"\nEvan L. Morris (January 26, 1977 – July 9, 2015) was a lobbyist for Genentech and its parent corporation Roche in Washington, D.C. He began his career in Washington as an intern in the Clinton White House at age 18."}`)
	opts := RowOptions{URLTemplate: DefaultURLTemplate}
	b.SetBytes(int64(len(row)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRow(row, 17, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStoreLookupID(b *testing.B) {
	s := buildStoreB(b, "../dataset/data/flashrag-wiki18-sample/corpus_sample1000.jsonl")
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := s.LookupID(ids[i%1000]); !ok {
			b.Fatal("missing id")
		}
		i++
	}
}

func buildStoreB(b *testing.B, path string) *Store {
	r, err := OpenReader(path, ReaderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	dir := b.TempDir()
	w, err := CreateStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	for {
		p, err := r.Next()
		if err != nil {
			break
		}
		if _, err := w.Add(&p); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Finish(StoreMeta{}); err != nil {
		b.Fatal(err)
	}
	s, err := OpenStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// TestReliabilityDamagedStore: a store whose offsets or key index were
// damaged inside the file (sizes intact, as an index built before
// checksums, or opened with --verify off) is refused at open, and key
// index entries pointing past the store are ignored, never a panic.
func TestReliabilityDamagedStore(t *testing.T) {
	src := buildStoreDir(t, "../dataset/data/flashrag-wiki18-sample/corpus_sample1000.jsonl")
	damage := func(t *testing.T, name string, off int, b []byte) string {
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if off < 0 {
			off += len(data)
		}
		copy(data[off:], b)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	big := []byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}
	for _, tc := range []struct {
		name, file string
		off        int
		b          []byte
		want       string
	}{
		{"offset out of order", offsetsFile, 8 * 500, big, offsetsFile},
		{"first offset", offsetsFile, 0, []byte{1}, offsetsFile},
		{"key directory", idsFile, keyIndexHeader + 4, []byte{0xff, 0xff, 0xff, 0xff}, idsFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenStore(damage(t, tc.file, tc.off, tc.b))
			if err == nil {
				s.Close()
				t.Fatalf("opened a store with %s damaged", tc.file)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %s: %v", tc.want, err)
			}
		})
	}
	t.Run("key values past the store", func(t *testing.T) {
		// Overwrite every value of urls.kix and ids.kix with a huge
		// ordinal: lookups must find nothing, not index out of range.
		dir := damage(t, idsFile, 0, nil)
		for _, name := range []string{idsFile, urlsFile} {
			path := filepath.Join(dir, name)
			data, _ := os.ReadFile(path)
			k, err := parseKeyIndex(data)
			if err != nil {
				t.Fatal(err)
			}
			valOff := len(data) - 4*k.Len()
			for i := valOff; i < len(data); i++ {
				data[i] = 0xee
			}
			os.WriteFile(path, data, 0o644)
		}
		s, err := OpenStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		first, _ := s.Passage(0)
		if _, ok := s.LookupID(first.ID); ok {
			t.Error("lookup through a damaged key index succeeded")
		}
		if got := s.LookupURL(first.URL, nil); len(got) != 0 {
			t.Errorf("url lookup through a damaged key index: %v", got)
		}
	})
}
