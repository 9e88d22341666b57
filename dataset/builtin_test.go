package dataset

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// loaded caches built-in sets across tests; decoding them all under -race
// takes seconds, and tests only read them.
var loaded sync.Map // name -> func() (*Set, error)

func loadBuiltinOnce(t *testing.T, name string) *Set {
	t.Helper()
	f, _ := loaded.LoadOrStore(name, sync.OnceValues(func() (*Set, error) { return Load(name, Options{}) }))
	set, err := f.(func() (*Set, error))()
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestEmbeddedMatchesData checks that embedded/ holds exactly the shipped
// files, byte for byte (run `go generate ./dataset` when it fails).
func TestEmbeddedMatchesData(t *testing.T) {
	want := map[string]bool{}
	err := filepath.WalkDir("data", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := filepath.Ext(path)
		if strings.Contains(path, "eval-scripts") || (ext != ".json" && ext != ".jsonl" && ext != ".csv") {
			return nil
		}
		rel, _ := filepath.Rel("data", path)
		want[filepath.ToSlash(rel)] = true
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := readEmbedded(filepath.ToSlash(rel))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./dataset)", rel, err)
			return nil
		}
		if !bytes.Equal(got, raw) {
			t.Errorf("embedded %s differs from data/%s (run go generate ./dataset)", rel, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fs.WalkDir(embedded, "embedded", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel := strings.TrimSuffix(strings.TrimPrefix(path, "embedded/"), ".zst")
			if !want[rel] {
				t.Errorf("embedded %s has no source in data/", rel)
			}
		}
		return err
	})
	for _, b := range Builtins() {
		if !want[b.File] {
			t.Errorf("built-in %s points at %s, which is not shipped", b.Name, b.File)
		}
	}
	for _, c := range Corpora() {
		if !want[c.File] {
			t.Errorf("corpus %s points at %s, which is not shipped", c.Name, c.File)
		}
	}
}

func TestBuiltinsLoad(t *testing.T) {
	firsts := map[string]struct{ id, question, answer string }{
		"bamboogle":              {"test_0", "Who was president of the United States in the year that Citibank was founded?", "james madison"},
		"frames":                 {"wiki____0", "", "Jane Ballou"},
		"nq":                     {"test_3283", "who told the story of the prodigal son", "Jesus Christ"},
		"nq-full":                {"0", "when was the last time anyone was on the moon", "14 December 1972 UTC"},
		"triviaqa":               {"test_6233", "", "Mark Twain"},
		"popqa":                  {"test_10207", "Who was the composer of Easy Living?", "Ralph Rainger"},
		"hotpotqa":               {"0", "Were Scott Derrickson and Ed Wood of the same nationality?", "yes"},
		"2wiki":                  {"0", "Who is the mother of the director of film Polish-Russian War (Film)?", "Małgorzata Braunek"},
		"musique":                {"0", "Who is the spouse of the Green performer?", "Miquette Giraudy"},
		"hotpotqa-hipporag-100":  {"5a77ec115542992a6e59dff7", "If Gallu is a demon Lilu is what?", "a spirit"},
		"flashrag-nq-17":         {"test_0", "who got the first nobel prize in physics", "Wilhelm Conrad Röntgen"},
		"xbench-deepsearch-2505": {"1", "", ""},
		"xbench-deepsearch-2510": {"101", "", ""},
	}
	help := BuiltinHelp()
	for _, b := range Builtins() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			set := loadBuiltinOnce(t, b.Name)
			if len(set.Items) != b.Records {
				t.Errorf("%d items, want %d", len(set.Items), b.Records)
			}
			if set.Source != "builtin:"+b.Name || set.Corpus != b.Corpus || len(set.SHA256) != 64 {
				t.Errorf("set identity %+v", set)
			}
			want, ok := firsts[b.Name]
			if !ok {
				t.Fatalf("no expectation for %s", b.Name)
			}
			it := set.Items[0]
			if it.ID != want.id || (want.question != "" && it.Question != want.question) || (want.answer != "" && it.Answers[0] != want.answer) {
				t.Errorf("first item %q %q %q, want %+v", it.ID, it.Question, it.Answers, want)
			}
			for i, it := range set.Items {
				if strings.TrimSpace(it.Question) == "" || len(it.Answers) == 0 || it.Index != i {
					t.Fatalf("item %d incomplete: %+v", i, it)
				}
			}
			if !strings.Contains(help, b.Name) || !strings.Contains(help, b.Description) {
				t.Errorf("BuiltinHelp lacks %s", b.Name)
			}
		})
	}
}

func TestBuiltinDetails(t *testing.T) {
	hp := loadBuiltinOnce(t, "hotpotqa-hipporag-100")
	sf, ok := hp.Items[0].Meta["supporting_facts"].([]any)
	if !ok || len(sf) != 2 {
		t.Errorf("supporting facts not kept: %v", hp.Items[0].Meta["supporting_facts"])
	}
	for _, k := range []string{"context", "type", "level"} {
		if _, ok := hp.Items[0].Meta[k]; !ok {
			t.Errorf("meta lacks %s", k)
		}
	}
	tq := loadBuiltinOnce(t, "triviaqa")
	if n := len(tq.Items[0].Answers); n != 22 {
		t.Errorf("triviaqa first item has %d aliases, want 22", n)
	}
	pq := loadBuiltinOnce(t, "popqa")
	if _, ok := pq.Items[0].Meta["metadata"].(map[string]any); !ok {
		t.Errorf("popqa metadata not kept: %v", pq.Items[0].Meta)
	}
}

// TestXBenchBuiltinDecrypts checks the shipped encrypted files decrypt to
// Chinese text, without writing or logging the plain text.
func TestXBenchBuiltinDecrypts(t *testing.T) {
	for _, name := range []string{"xbench-deepsearch-2505", "xbench-deepsearch-2510"} {
		set := loadBuiltinOnce(t, name)
		cjk := 0
		for _, it := range set.Items {
			if !utf8.ValidString(it.Question) || !utf8.ValidString(it.Answers[0]) {
				t.Fatalf("%s %s: not UTF-8", name, it.ID)
			}
			for _, r := range it.Question {
				if r >= 0x4E00 && r <= 0x9FFF {
					cjk++
					break
				}
			}
			if _, ok := it.Meta["reference_steps"]; !ok {
				t.Fatalf("%s %s: reference_steps not carried", name, it.ID)
			}
		}
		if cjk < 90 {
			t.Errorf("%s: only %d of %d questions contain Chinese; decryption looks wrong", name, cjk, len(set.Items))
		}
	}
}
