package agent

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	huge := strings.Repeat("lorem ipsum <b>dolor</b> sit < amet ", 1<<20/36) // ~1 MB, no action
	tests := []struct {
		name         string
		text         string
		kind, arg    string
		complete     int
		unterminated []string // kinds
	}{
		{name: "empty", text: ""},
		{name: "no tags", text: "I think the answer is Paris."},
		{name: "search", text: "<think>hmm</think>\n<search> capital of France </search>", kind: KindSearch, arg: "capital of France", complete: 1},
		{name: "access", text: "<access>https://en.wikipedia.org/wiki/Paris</access>", kind: KindAccess, arg: "https://en.wikipedia.org/wiki/Paris", complete: 1},
		{name: "answer", text: "so <answer> Paris </answer>", kind: KindAnswer, arg: "Paris", complete: 1},
		{name: "multiline arg", text: "<answer>\nParis,\nLyon\n</answer>", kind: KindAnswer, arg: "Paris,\nLyon", complete: 1},
		{name: "search-r1 query tags", text: "<|begin_of_query|> who wrote Dune <|end_of_query|>", kind: KindSearch, arg: "who wrote Dune", complete: 1},
		{name: "last match wins same kind", text: "<search>a</search> then <search>b</search>", kind: KindSearch, arg: "b", complete: 2},
		{name: "two kinds: later closer wins", text: "<answer>x</answer><search>y</search>", kind: KindSearch, arg: "y", complete: 2},
		{name: "two kinds: answer last", text: "<search>y</search> ok <answer>x</answer>", kind: KindAnswer, arg: "x", complete: 2},
		{name: "nested same kind: innermost", text: "<search>a <search>b</search>", kind: KindSearch, arg: "b", complete: 1},
		{name: "nested other kind inside", text: "<search>a <answer>b</answer> c</search>", kind: KindSearch, arg: "a <answer>b</answer> c", complete: 2},
		{name: "unterminated search", text: "<search> half a query", unterminated: []string{KindSearch}},
		{name: "unterminated after complete", text: "<answer>x</answer> <search>more", kind: KindAnswer, arg: "x", complete: 1, unterminated: []string{KindSearch}},
		{name: "stray close", text: "</search> nothing opened", complete: 0},
		{name: "empty search", text: "<search>   </search>", kind: KindSearch, arg: "", complete: 1},
		{name: "empty answer", text: "<answer></answer>", kind: KindAnswer, arg: "", complete: 1},
		{name: "invalid utf8", text: "<search>caf\xe9 \xff</search>", kind: KindSearch, arg: "caf\uFFFD \uFFFD", complete: 1},
		{name: "mixed spellings do not pair", text: "<search>x<|end_of_query|>", unterminated: []string{KindSearch}},
		{name: "lone angle brackets", text: "a < b <<< <", complete: 0},
		{name: "marker prefix only", text: "<sear", complete: 0},
		{name: "1 MB without actions", text: huge},
		{name: "1 MB then answer", text: huge + "<answer>42</answer>", kind: KindAnswer, arg: "42", complete: 1},
	}
	p := NewParser()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := p.Parse(tc.text)
			if got.Action.Kind != tc.kind || got.Action.Arg != tc.arg {
				t.Fatalf("action = %q %q, want %q %q", got.Action.Kind, got.Action.Arg, tc.kind, tc.arg)
			}
			if got.Complete != tc.complete {
				t.Errorf("complete = %d, want %d", got.Complete, tc.complete)
			}
			var kinds []string
			for _, u := range got.Unterminated {
				kinds = append(kinds, u.Kind)
			}
			if strings.Join(kinds, ",") != strings.Join(tc.unterminated, ",") {
				t.Errorf("unterminated = %v, want %v", kinds, tc.unterminated)
			}
			checkParsedInvariants(t, p, tc.text, got)
		})
	}
}

func TestParseCustomTag(t *testing.T) {
	p := NewParser(append(ProtocolTags(), Tag{Kind: "calculate", Open: "<calculate>", Close: "</calculate>"})...)
	got := p.Parse("<think>need math</think><calculate> 6*7 </calculate>")
	if got.Action.Kind != "calculate" || got.Action.Arg != "6*7" {
		t.Fatalf("got %+v", got.Action)
	}
	want := []string{"</search>", "<|end_of_query|>", "</access>", "</answer>", "</calculate>"}
	if strings.Join(p.CloseMarkers(), " ") != strings.Join(want, " ") {
		t.Errorf("close markers = %v, want %v", p.CloseMarkers(), want)
	}
}

func checkParsedInvariants(t *testing.T, p *Parser, text string, got Parsed) {
	t.Helper()
	a := got.Action
	if a.Kind == "" {
		if a.Arg != "" || got.Complete != 0 {
			t.Fatalf("no action but arg %q, complete %d", a.Arg, got.Complete)
		}
	} else {
		if a.Start < 0 || a.End > len(text) || a.Start >= a.End {
			t.Fatalf("bad span %d..%d of %d", a.Start, a.End, len(text))
		}
		span := text[a.Start:a.End]
		ok := false
		for _, tag := range p.tags {
			if tag.Kind == a.Kind && strings.HasPrefix(span, tag.Open) && strings.HasSuffix(span, tag.Close) {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("span %q is not a %s tag pair", span, a.Kind)
		}
		if got.Complete < 1 {
			t.Fatalf("action without a complete pair")
		}
	}
	if !utf8.ValidString(a.Arg) || strings.TrimSpace(a.Arg) != a.Arg {
		t.Fatalf("arg not clean: %q", a.Arg)
	}
	for _, u := range got.Unterminated {
		if u.End != len(text) || u.Start < 0 || u.Start > len(text) || !utf8.ValidString(u.Arg) {
			t.Fatalf("bad unterminated %+v", u)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "<search>q</search>", "<answer>a</answer><search>b</search>", "<search>a<search>b</search>",
		"<|begin_of_query|>x<|end_of_query|>", "<access>u", "</answer>", "<search>\xff\xfe</search>",
		"<<search>>", "<answer><answer></answer></answer>", "<think><search> x </think></search>",
	} {
		f.Add(s)
	}
	p := NewParser()
	f.Fuzz(func(t *testing.T, text string) {
		got := p.Parse(text)
		checkParsedInvariants(t, p, text, got)
		// Appending text after the chosen action's close cannot change an
		// earlier-ending choice unless it adds a later complete pair.
		if got.Action.Kind != "" {
			again := p.Parse(text[:got.Action.End])
			if again.Action != got.Action {
				t.Fatalf("prefix ending at the action parses to %+v, want %+v", again.Action, got.Action)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	text := strings.Repeat("Some reasoning about <b>html</b> and a < b. ", 2000) + "<search>final query</search>"
	p := NewParser()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		p.Parse(text)
	}
}
