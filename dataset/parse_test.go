package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestLoadFileLayouts(t *testing.T) {
	tests := []struct {
		file     string
		n        int
		first    Item // Meta compared by keys only
		metaKeys []string
	}{
		{"plain.jsonl", 3, Item{ID: "0", Question: "Who wrote Hamlet?", Answers: []string{"William Shakespeare"}}, []string{"source"}},
		{"flashrag.jsonl", 2, Item{ID: "test_0", Question: "who got the first nobel prize in physics", Answers: []string{"Wilhelm Conrad Röntgen"}}, nil},
		{"answers_array.json", 2, Item{ID: "17", Question: "Name a primary colour.", Answers: []string{"red", "blue", "yellow"}, AugAnswers: []string{"Red"}}, nil},
		{"frames.tsv", 2, Item{ID: "0", Question: "If my future wife has the same first name as the 15th first lady's mother, what is her name?", Answers: []string{"Jane Ballou"}}, []string{"Unnamed: 0", "reasoning_types", "wikipedia_link_1"}},
		{"gaia_webthinker.json", 2, Item{ID: "00000000-0000-4000-8000-000000000001", Question: "A made-up question in GAIA's layout: what is two plus two?", Answers: []string{"4"}}, []string{"Annotator_Metadata", "Level", "id"}},
		{"gaia_metadata.jsonl", 1, Item{ID: "00000000-0000-4000-8000-00000000000a", Question: "A made-up question in GAIA's metadata.jsonl layout: how many days are in a week?", Answers: []string{"7"}}, []string{"Annotator Metadata", "Level", "file_name"}},
		{"hotpot_dev.json", 1, Item{ID: "5a8b57f25542995d1e6f1371", Question: "Were Scott Derrickson and Ed Wood of the same nationality?", Answers: []string{"yes"}}, []string{"context", "level", "supporting_facts", "type"}},
		{"musique_dev.jsonl", 1, Item{ID: "2hop__460946_294723", Question: "Who is the spouse of the Green performer?", Answers: []string{"Miquette Giraudy", "Miquette Giraudy Hillage"}}, []string{"answerable", "paragraphs", "question_decomposition"}},
		{"wiki2_dev.json", 1, Item{ID: "8813f87c0bdd11eba7f7acde48001122", Question: "Who is the mother of the director of film Polish-Russian War (Film)?", Answers: []string{"Małgorzata Braunek"}}, []string{"context", "evidences", "supporting_facts", "type"}},
		{"triviaqa_rc.json", 1, Item{ID: "tc_33", Question: "Which Lloyd Webber musical premiered in the US on 10th December 1993?", Answers: []string{"Sunset Boulevard", "Sunset Blvd", "Sunset Boulevard"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			set, err := LoadFile(filepath.Join("testdata", tt.file), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Items) != tt.n {
				t.Fatalf("%d items, want %d", len(set.Items), tt.n)
			}
			got := set.Items[0]
			if got.ID != tt.first.ID || got.Question != tt.first.Question || !reflect.DeepEqual(got.Answers, tt.first.Answers) ||
				!reflect.DeepEqual(got.AugAnswers, tt.first.AugAnswers) || got.Index != 0 {
				t.Errorf("first item %+v\nwant %+v", got, tt.first)
			}
			var keys []string
			for k := range got.Meta {
				keys = append(keys, k)
			}
			if !sameSet(keys, tt.metaKeys) {
				t.Errorf("meta keys %q, want %q", keys, tt.metaKeys)
			}
			if set.SHA256 == "" || set.Source != filepath.Join("testdata", tt.file) {
				t.Errorf("set identity %+v", set)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

func TestScalarAnswersAndMeta(t *testing.T) {
	set, err := LoadFile("testdata/plain.jsonl", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a := set.Items[1].Answers; !reflect.DeepEqual(a, []string{"8"}) {
		t.Errorf("number answer = %q", a)
	}
	if a := set.Items[2].Answers; !reflect.DeepEqual(a, []string{"True"}) {
		t.Errorf("bool answer = %q, want Python's str(True)", a)
	}
	// Meta survives a JSON round trip exactly, as eval stores it.
	out, err := json.Marshal(set.Items[2].Meta)
	if err != nil || string(out) != `{"difficulty":{"level":1}}` {
		t.Errorf("meta = %s, %v", out, err)
	}
	fr, err := LoadFile("testdata/flashrag.jsonl", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a := fr.Items[1].Answers; !reflect.DeepEqual(a, []string{"Olivia", "MFSK"}) {
		t.Errorf("empty gold not dropped: %q", a)
	}
	frames, err := LoadFile("testdata/frames.tsv", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a := frames.Items[1].Answers; !reflect.DeepEqual(a, []string{"823", "823 feet"}) {
		t.Errorf("list cell = %q", a)
	}
}

func TestCompressedFiles(t *testing.T) {
	raw, err := os.ReadFile("testdata/flashrag.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	enc, _ := zstd.NewWriter(nil)
	zpath := filepath.Join(dir, "set.jsonl.zst")
	os.WriteFile(zpath, enc.EncodeAll(raw, nil), 0o644)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(raw)
	w.Close()
	gpath := filepath.Join(dir, "set.jsonl.gz")
	os.WriteFile(gpath, gz.Bytes(), 0o644)
	plain, _ := LoadFile("testdata/flashrag.jsonl", Options{})
	for _, p := range []string{zpath, gpath} {
		set, err := LoadFile(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(set.Items, plain.Items) || set.SHA256 != plain.SHA256 || set.Name != "set" {
			t.Errorf("%s loads differently from the plain file", p)
		}
	}
}

func TestXBenchCSV(t *testing.T) {
	canary := "BENCHMARK DATA SHOULD NEVER APPEAR AS PLAIN TEXT ONLINE. canary GUID test-0001"
	var b strings.Builder
	b.WriteString("\ufeffid,prompt,answer,reference_steps,canary\n")
	rows := []struct{ id, q, a string }{{"1", "测试问题：一加一等于几？", "2"}, {"2", "Which year? \"quoted\", with comma", "１９９９年"}}
	for _, r := range rows {
		b.WriteString(r.id + "," + EncryptXBench(r.q, canary) + "," + EncryptXBench(r.a, canary) + "," + EncryptXBench("step one", canary) + ",\"" + canary + "\"\n")
	}
	path := filepath.Join(t.TempDir(), "DeepSearch-test.csv")
	os.WriteFile(path, []byte(b.String()), 0o644)
	set, err := LoadFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		it := set.Items[i]
		if it.ID != r.id || it.Question != r.q || !reflect.DeepEqual(it.Answers, []string{r.a}) {
			t.Errorf("row %d = %+v", i, it)
		}
		if steps, _ := it.Meta["reference_steps"].(string); steps != EncryptXBench("step one", canary) {
			t.Errorf("reference_steps should stay encrypted, got %q", steps)
		}
		if it.Meta["canary"] != canary {
			t.Errorf("canary not carried: %v", it.Meta)
		}
	}
}

func TestDecryptXBench(t *testing.T) {
	for _, s := range []string{"", "a", "北京市，中国", strings.Repeat("x", 500)} {
		got, err := DecryptXBench(EncryptXBench(s, "key"), "key")
		if err != nil || got != s {
			t.Errorf("round trip of %q = %q, %v", s, got, err)
		}
	}
	if _, err := DecryptXBench("%%%", "key"); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Errorf("bad base64: %v", err)
	}
	if _, err := DecryptXBench(EncryptXBench("北京", "right key"), "k"); err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := DecryptXBench("YQ==", ""); err == nil {
		t.Error("empty key accepted")
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string // substrings of the error
	}{
		{"bad.jsonl", "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q2\", \"answer\": }\n", []string{"bad.jsonl:2", "record 1", "bad JSON"}},
		{"noq.jsonl", `{"query_text": "q", "answer": "a"}`, []string{"noq.jsonl:1", "no question field", `"query_text"`}},
		{"noa.jsonl", `{"question": "q"}`, []string{"no gold answer"}},
		{"emptya.jsonl", `{"question": "q", "answer": ["", "  "]}`, []string{"no gold answer"}},
		{"nulla.jsonl", `{"question": "q", "answer": null}`, []string{`field "answer"`, "null"}},
		{"nested.jsonl", `{"question": "q", "answer": [["a"]]}`, []string{"nested lists"}},
		{"qtype.jsonl", `{"question": 5, "answer": "a"}`, []string{`field "question": want a non-empty string`}},
		{"idtype.jsonl", `{"id": {"x": 1}, "question": "q", "answer": "a"}`, []string{`field "id"`}},
		{"dup.jsonl", "{\"id\": \"a\", \"question\": \"q\", \"answer\": \"x\"}\n{\"id\": \"a\", \"question\": \"r\", \"answer\": \"y\"}\n", []string{"duplicate id \"a\"", "record 1", "also record 0"}},
		{"arr.jsonl", `["question", "answer"]`, []string{"want a JSON object, got an array"}},
		{"obj.json", "[\n  {\"question\": \"q\", \"answer\": \"a\"},\n  {\"question\": \"q2\" \"answer\": \"b\"}\n]", []string{"obj.json:3", "record 1", "bad JSON"}},
		{"cut.json", "[{\"question\": \"q\", \"answer\": \"a\"},", []string{"ends inside the JSON array"}},
		{"notarray.json", `{"data": [{"question": "q", "answer": "a"}]}`, []string{"no question field"}},
		{"scalar.json", `"just a string"`, []string{"want a JSON array"}},
		{"elem.json", `[{"question": "q", "answer": "a"}, ["q"]]`, []string{"elem.json:1", "record 1", "want a JSON object, got a list"}},
		{"trailing.json", `[{"question": "q", "answer": "a"}] extra`, []string{"text after the JSON array"}},
		{"empty.jsonl", "\n\n", []string{"no records"}},
		{"empty.json", "[]", []string{"no records"}},
		{"pretty.jsonl", "{\n  \"question\": \"q\",\n  \"answer\": \"a\"\n}\n", []string{"pretty.jsonl:1", "spread over several lines"}},
		{"two.jsonl", `{"question": "q", "answer": "a"} {"question": "r", "answer": "b"}`, []string{"two.jsonl:1", "text after the object"}},
		{"torn.jsonl", "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"r\", \"ans", []string{"torn.jsonl:2", "record 1", "cut short"}},
		{"bad.csv", "question,answer\n\"unclosed,a\n", []string{"bad.csv:2", "bad CSV"}},
		{"fields.csv", "question,answer\nq,a,extra\n", []string{"bad CSV", "wrong number of fields"}},
		{"header.csv", "", []string{"header row"}},
		{"xb.csv", "id,prompt,answer,canary\n1,@@@,YQ==,key\n", []string{"xb.csv:2", `column "prompt"`, "base64"}},
		{"xbnocol.csv", "id,prompt,canary\n1,YQ==,key\n", []string{`without a "answer" column`}},
		{"unknown.txt", "hello", []string{"unknown file type"}},
		{"bad.jsonl.zst", "not zstd", []string{"not a valid zstd file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.name, []byte(tt.data), Options{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
	var pe *ParseError
	_, err := Decode("bad.jsonl", []byte("{\"question\": 1}"), Options{})
	if !errors.As(err, &pe) || pe.Line != 1 || pe.Record != 0 {
		t.Errorf("want a *ParseError at line 1 record 0, got %#v", err)
	}
}

func TestAllowMissingAnswers(t *testing.T) {
	items, err := Decode("q.jsonl", []byte(`{"question": "q"}`), Options{AllowMissingAnswers: true})
	if err != nil || len(items) != 1 || len(items[0].Answers) != 0 {
		t.Fatalf("%+v, %v", items, err)
	}
}

func TestLoadResolvesNamesAndPaths(t *testing.T) {
	if _, err := Load("gaia", Options{}); err == nil || !strings.Contains(err.Error(), "not shipped") {
		t.Errorf("gaia: %v", err)
	}
	if _, err := Load("no-such-set", Options{}); err == nil || !strings.Contains(err.Error(), "bamboogle") {
		t.Errorf("unknown name should list the built-ins: %v", err)
	}
	if _, err := Load("testdata/missing.jsonl", Options{}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	set, err := Load("testdata/plain.jsonl", Options{})
	if err != nil || set.Name != "plain" {
		t.Errorf("path: %+v, %v", set, err)
	}
	for name, want := range map[string]string{"BAMBOOGLE": "bamboogle", "2wikimultihopqa": "2wiki", "xbench-deepsearch": "xbench-deepsearch-2505"} {
		if b, ok := LookupBuiltin(name); !ok || b.Name != want {
			t.Errorf("LookupBuiltin(%s) = %s, %v", name, b.Name, ok)
		}
	}
	if set, err := Load("Bamboogle", Options{}); err != nil || set.Name != "bamboogle" {
		t.Errorf("Load(Bamboogle): %v", err)
	}
	// A file in the working directory whose name is not a built-in is a path.
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile("mydata", []byte(`{"question": "q", "answer": "a"}`), 0o644)
	if set, err := Load("mydata", Options{}); err != nil || len(set.Items) != 1 {
		t.Errorf("bare file name: %v", err)
	}
	// Built-ins come from the binary, not from files beside it.
	if set, err := Load("flashrag-nq-17", Options{}); err != nil || len(set.Items) != 17 {
		t.Errorf("built-in away from the source tree: %v", err)
	}
}

// GAIA rows in Hugging Face's layout: an attachment is flagged (and kept in
// Meta), TextOnly drops it, and the test split's hidden "?" gold is an
// error rather than an answer every prediction is scored against.
func TestGAIARows(t *testing.T) {
	const val = `[
{"task_id":"a1","Question":"Q one?","Level":1,"Final answer":"Paris","file_name":"","file_path":""},
{"task_id":"a2","Question":"What is in the sheet?","Level":2,"Final answer":"42","file_name":"data.xlsx","file_path":"/x/data.xlsx"},
{"task_id":"a3","Question":"Q three?","Level":3,"Final answer":"Lyon"}
]`
	items, err := Decode("gaia-validation.json", []byte(val), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].Attachment != "" || items[1].Attachment != "data.xlsx" || items[2].Attachment != "" {
		t.Fatalf("attachments: %+v", items)
	}
	if items[1].Meta["file_name"] != "data.xlsx" || items[1].Answers[0] != "42" {
		t.Fatalf("item %+v", items[1])
	}
	text, skipped := TextOnly(items)
	if skipped != 1 || len(text) != 2 || text[0].ID != "a1" || text[1].ID != "a3" {
		t.Fatalf("TextOnly kept %+v, skipped %d", text, skipped)
	}

	const test = `{"task_id":"t1","Question":"Q?","Level":1,"Final answer":"?","file_name":""}`
	_, err = Decode("gaia-test.jsonl", []byte(test), Options{})
	if err == nil || !strings.Contains(err.Error(), `gold answer is "?"`) {
		t.Fatalf("hidden gold: err = %v", err)
	}
	// Synthesis may take unanswered questions: the placeholder is dropped.
	items, err = Decode("gaia-test.jsonl", []byte(test), Options{AllowMissingAnswers: true})
	if err != nil || len(items) != 1 || len(items[0].Answers) != 0 {
		t.Fatalf("allow missing: %+v %v", items, err)
	}
	// A "?" among real golds is still a placeholder, never an answer.
	if _, err := Decode("x.jsonl", []byte(`{"question":"q","answers":["?","yes"]}`), Options{}); err == nil {
		t.Fatal(`a "?" gold was accepted`)
	}
}
