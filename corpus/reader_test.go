package corpus

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func readAll(t *testing.T, path string, opts ReaderOptions) ([]Passage, *Reader, error) {
	t.Helper()
	r, err := OpenReader(path, opts)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var out []Passage
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, r, nil
		}
		if err != nil {
			return out, r, err
		}
		out = append(out, p)
	}
}

func zstdCopy(t *testing.T, src string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil)
	dst := filepath.Join(t.TempDir(), filepath.Base(src)+".zst")
	if err := os.WriteFile(dst, enc.EncodeAll(data, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestReaderFormats(t *testing.T) {
	opts := ReaderOptions{Row: RowOptions{URLTemplate: DefaultURLTemplate}}
	tests := []struct {
		name   string
		path   string
		ids    []string
		titles []string
	}{
		{"jsonl", "testdata/mixed.jsonl", []string{"a1", "7", "2", "3"}, []string{"Alpha Centauri", "Beta Pictoris", "Gamma Ray", ""}},
		{"jsonl.zst", zstdCopy(t, "testdata/mixed.jsonl"), []string{"a1", "7", "2", "3"}, []string{"Alpha Centauri", "Beta Pictoris", "Gamma Ray", ""}},
		{"json array", "testdata/rows.json", []string{"0", "1"}, []string{"Teutberga", "Lothair II"}},
		{"json title object", "testdata/titles.json", []string{"0", "1"}, []string{"Demon Dice", "Maha Sona"}},
		{"json.zst", zstdCopy(t, "testdata/titles.json"), []string{"0", "1"}, []string{"Demon Dice", "Maha Sona"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, _, err := readAll(t, tc.path, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != len(tc.ids) {
				t.Fatalf("got %d passages, want %d", len(ps), len(tc.ids))
			}
			for i, p := range ps {
				if p.ID != tc.ids[i] || p.Title != tc.titles[i] {
					t.Errorf("passage %d: id=%q title=%q, want %q %q", i, p.ID, p.Title, tc.ids[i], tc.titles[i])
				}
			}
		})
	}
	ps, _, err := readAll(t, "testdata/titles.json", opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\"Demon Dice\"\nDemon Dice is a dice game. It was published twice."; ps[0].Contents != want {
		t.Errorf("sentences joined as %q", ps[0].Contents)
	}
}

func TestReaderMalformed(t *testing.T) {
	_, _, err := readAll(t, "testdata/bad.jsonl", ReaderOptions{})
	if err == nil || !strings.Contains(err.Error(), "testdata/bad.jsonl:2:") {
		t.Fatalf("err = %v, want it to name testdata/bad.jsonl:2", err)
	}
	ps, r, err := readAll(t, "testdata/bad.jsonl", ReaderOptions{SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || r.Skipped() != 3 {
		t.Fatalf("kept %d skipped %d, want 2 and 3", len(ps), r.Skipped())
	}
	if ps[1].ID != "3" {
		t.Errorf("second kept passage id %q", ps[1].ID)
	}
}

func TestReaderDocumentErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"truncated array", `[{"title":"a","text":"b"}, {"title":`, "record 1"},
		{"scalar document", `42`, "want a JSON array"},
		{"not json", `hello`, "not a JSON document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tc.in), "x.json", ReaderOptions{SkipBad: true})
			if err != nil {
				t.Fatal(err)
			}
			for {
				_, err = r.Next()
				if err != nil {
					break
				}
			}
			if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReaderSniffsUnknownExtension(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"{\"contents\":\"a\"}\n{\"contents\":\"b\"}\n", 2},
		{"[{\"text\":\"a\"}]", 1},
		{"{\n \"T\": [\"s\"]\n}", 1},
	} {
		r, err := NewReader(strings.NewReader(tc.in), "corpus.txt", ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			if _, err := r.Next(); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("%q: %v", tc.in, err)
				}
				break
			}
			n++
		}
		if n != tc.want {
			t.Errorf("%q: %d passages, want %d", tc.in, n, tc.want)
		}
	}
}

func TestReaderShippedCorpora(t *testing.T) {
	for _, tc := range []struct {
		path  string
		count int
	}{
		{"../dataset/data/flashrag-wiki18-sample/corpus_sample1000.jsonl", 1000},
		{"../dataset/data/hotpotqa-hipporag-100/corpus.json", 994},
		{"../dataset/data/2wikimultihopqa-hipporag-corpus/corpus.json", 6119},
	} {
		ps, r, err := readAll(t, tc.path, ReaderOptions{Row: RowOptions{URLTemplate: DefaultURLTemplate}})
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != tc.count || r.Skipped() != 0 {
			t.Errorf("%s: %d passages (%d skipped), want %d", tc.path, len(ps), r.Skipped(), tc.count)
		}
		for _, p := range ps {
			if p.Title == "" || p.URL == "" || p.Contents == "" {
				t.Fatalf("%s: incomplete passage %+v", tc.path, p)
			}
		}
		if r.BytesRead() == 0 {
			t.Errorf("%s: BytesRead is 0", tc.path)
		}
	}
}

func TestReaderLongLine(t *testing.T) {
	long := `{"contents":"` + strings.Repeat("x", 3<<20) + `"}` + "\n" + `{"contents":"y"}`
	r, err := NewReader(bytes.NewReader([]byte(long)), "long.jsonl", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Next()
	if err != nil || len(p.Contents) != 3<<20 {
		t.Fatalf("long line: %v (%d bytes)", err, len(p.Contents))
	}
	p, err = r.Next()
	if err != nil || p.Contents != "y" || p.ID != "1" {
		t.Fatalf("after long line: %+v %v", p, err)
	}
}

// FuzzReader feeds arbitrary bytes through both layouts: the reader must
// return passages with valid single-line rows or an error, never panic or
// loop.
func FuzzReader(f *testing.F) {
	for _, path := range []string{"testdata/mixed.jsonl", "testdata/bad.jsonl", "testdata/rows.json", "testdata/titles.json"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("{\"id\":\"\xff\",\"contents\":\"\\u0000\"}\n"))
	f.Add([]byte(`{"a":[1,{"b":"c"}],"text":"t"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range []Format{FormatJSONL, FormatJSON, FormatAuto} {
			r, err := NewReader(bytes.NewReader(data), "fuzz", ReaderOptions{Format: format, SkipBad: true, Row: RowOptions{URLTemplate: DefaultURLTemplate}})
			if err != nil {
				continue
			}
			for i := 0; i < 10000; i++ {
				p, err := r.Next()
				if err != nil {
					break
				}
				if !jsonValidLine(p.Row) {
					t.Fatalf("invalid row %q from %q", p.Row, data)
				}
			}
		}
	})
}

func jsonValidLine(row []byte) bool {
	return !bytes.ContainsAny(row, "\n\r") && jsonValid(row)
}
