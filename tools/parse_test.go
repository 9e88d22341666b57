package tools

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func golden(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseRetrieveReply(t *testing.T) {
	paris := SearchResult{Title: "Paris", URL: "https://en.wikipedia.org/w/index.php?title=Paris", ID: "3964410",
		Text: "\"Paris\"\nParis is the capital and most populous city of France."}
	france := SearchResult{Title: "France", URL: "https://en.wikipedia.org/w/index.php?title=France", ID: "12",
		Text: "\"France\"\nFrance is a country in Western Europe. Its capital is Paris."}
	scoredParis, scoredFrance := paris, france
	scoredParis.Score, scoredFrance.Score = 12.5, 9.25
	cases := []struct {
		file string
		want [][]SearchResult
	}{
		{"retrieve_reply_rows.json", [][]SearchResult{{paris, france}}},
		{"retrieve_reply_scored.json", [][]SearchResult{{scoredParis, scoredFrance}, {}}},
		{"retrieve_reply_flat_scores.json", [][]SearchResult{{{Title: "Paris", ID: "7", Score: 0.8123,
			Text: "\"Paris\"\nParis is the capital and most populous city of France."}}}},
		{"retrieve_reply_title_text.json", [][]SearchResult{{{Title: "Paris", ID: "a1",
			Text: "\"Paris\"\nParis is the capital and most populous city of France."}}}},
	}
	for _, c := range cases {
		got, err := ParseRetrieveReply(golden(t, c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.file, got, c.want)
		}
	}
	for _, bad := range []string{`{}`, `[]`, `{"result":[[{"url":"x"}]]}`, `{"result":[["str"]]}`, `{"result":[[{"document":"x"}]]}`, `nope`} {
		if r, err := ParseRetrieveReply([]byte(bad)); err == nil {
			t.Errorf("%s: want an error, got %+v", bad, r)
		}
	}
}

func TestParseAccessReply(t *testing.T) {
	got, reasons, err := ParseAccessReply(golden(t, "access_reply.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != nil || got[0].Title != "Paris" || got[0].URL != "https://en.wikipedia.org/w/index.php?title=Paris" ||
		got[0].Content[:6] != "Paris\n" || !reflect.DeepEqual(reasons, []string{"", ""}) {
		t.Errorf("got %+v %q", got, reasons)
	}
	got, reasons, err = ParseAccessReply(golden(t, "access_reply_errors.json"))
	if err != nil || len(got) != 2 || got[0] == nil || got[1] != nil || !reflect.DeepEqual(reasons, []string{"", "unknown url or id: https://example.org/missing"}) {
		t.Errorf("with errors: %+v %q %v", got, reasons, err)
	}
	for _, bad := range []string{`{}`, `{"result":[{"url":"u"}]}`, `{"result":"x"}`, `{"result":[],"errors":"x"}`} {
		if _, _, err := ParseAccessReply([]byte(bad)); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
}

func TestParseSerperReply(t *testing.T) {
	got, err := ParseSerperReply(golden(t, "serper_reply.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []SearchResult{
		{Title: "Paris - Wikipedia", URL: "https://en.wikipedia.org/wiki/Paris", Text: "Paris is the capital and largest city of France. With an estimated population of 2,102,650 residents..."},
		{Title: "Paris | Definition, Map, Population, Facts, & History | Britannica", URL: "https://www.britannica.com/place/Paris", Text: "Paris, city and capital of France, situated in the north-central part of the country."},
		{Title: "Capital of France - Wikipedia", URL: "https://en.wikipedia.org/wiki/Capital_of_France", Text: "The capital of France has been Paris since its liberation in 1944."},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	empty, err := ParseSerperReply(golden(t, "serper_reply_empty.json"))
	if err != nil || len(empty) != 0 || empty == nil {
		t.Errorf("empty organic: %v %v", empty, err)
	}
	if _, err := ParseSerperReply(golden(t, "serper_error.json")); err == nil {
		t.Error("an error body must not parse as zero results")
	}
}

func TestParseJinaReply(t *testing.T) {
	cases := []struct {
		file string
		want Page
	}{
		{"jina_reply.txt", Page{Title: "Example Domain", URL: "https://example.com/",
			Content: "This domain is for use in illustrative examples in documents.\n\n[More information...](https://www.iana.org/domains/example)"}},
		{"jina_reply_headers.txt", Page{Title: "Paper", URL: "https://arxiv.org/pdf/2508.07976", Content: "# Beyond Ten Turns\n\nLong-horizon search."}},
		{"jina_reply_plain.txt", Page{Content: "# Just markdown\n\nNo header here. Markdown Content: appears mid-text."}},
	}
	for _, c := range cases {
		if got := ParseJinaReply(string(golden(t, c.file))); !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%s: got %+v", c.file, *got)
		}
	}
}

func FuzzParseRetrieveReply(f *testing.F) {
	for _, n := range []string{"retrieve_reply_rows.json", "retrieve_reply_scored.json", "retrieve_reply_flat_scores.json", "retrieve_reply_title_text.json"} {
		f.Add(golden(f, n))
	}
	f.Add([]byte(`{"result":[[{"document":{"contents":""},"score":null}]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseRetrieveReply(data)
		if err == nil && res == nil {
			t.Fatal("nil result without error")
		}
	})
}

func FuzzParseAccessReply(f *testing.F) {
	f.Add(golden(f, "access_reply.json"))
	f.Add(golden(f, "access_reply_errors.json"))
	f.Add([]byte(`{"result":[null,{"contents":"x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pages, _, err := ParseAccessReply(data)
		if err == nil && pages == nil {
			t.Fatal("nil pages without error")
		}
	})
}

func FuzzParseSerperReply(f *testing.F) {
	for _, n := range []string{"serper_reply.json", "serper_reply_empty.json", "serper_error.json"} {
		f.Add(golden(f, n))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseSerperReply(data)
		if err == nil && res == nil {
			t.Fatal("nil results without error")
		}
	})
}

func FuzzParseJinaReply(f *testing.F) {
	for _, n := range []string{"jina_reply.txt", "jina_reply_headers.txt", "jina_reply_plain.txt"} {
		f.Add(string(golden(f, n)))
	}
	f.Fuzz(func(t *testing.T, body string) {
		if p := ParseJinaReply(body); p == nil {
			t.Fatal("nil page")
		}
	})
}
