package corpus

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseRow(t *testing.T) {
	opts := RowOptions{URLTemplate: DefaultURLTemplate}
	tests := []struct {
		name                      string
		in                        string
		index                     int64
		opts                      RowOptions
		id, title, contents, url  string
		wantErr                   string
		wantRowHas, wantRowHasNot []string
	}{
		{
			name: "flashrag contents", in: `{"id": "0", "contents": "\"Evan Morris\"\nEvan L. Morris was a lobbyist."}`, opts: opts,
			id: "0", title: "Evan Morris", contents: "\"Evan Morris\"\nEvan L. Morris was a lobbyist.",
			url:        "https://en.wikipedia.org/w/index.php?title=Evan%20Morris",
			wantRowHas: []string{`"title":"Evan Morris"`, `"url":"https://en.wikipedia.org/w/index.php?title=Evan%20Morris"`, `"id": "0"`},
		},
		{
			name: "title text url and extra columns", in: `{"id": 12, "title": "Q&A <b>", "text": "body", "url": "u1", "x": {"y": 1}}`, opts: opts,
			id: "12", title: "Q&A <b>", contents: "\"Q&A <b>\"\nbody", url: "u1",
			wantRowHas:    []string{`"contents":"\"Q&A <b>\"\nbody"`, `"x": {"y": 1}`, `"id": 12`},
			wantRowHasNot: []string{`"url":"https`},
		},
		{
			name: "no id takes the record index", in: `{"title": "T", "text": "x"}`, index: 41,
			id: "41", title: "T", contents: "\"T\"\nx",
			wantRowHas:    []string{`"id":"41"`},
			wantRowHasNot: []string{`"url"`},
		},
		{
			name: "contents without title line", in: `{"contents": "just text"}`, index: 3, opts: opts,
			id: "3", contents: "just text", wantRowHasNot: []string{`"url"`},
		},
		{name: "neither contents nor text", in: `{"id": "9", "title": "x"}`, wantErr: "neither"},
		{name: "array", in: `[1, 2]`, wantErr: "not a JSON object"},
		{name: "null", in: `null`, wantErr: "not a JSON object"},
		{name: "broken", in: `{"id": "1", "contents": }`, wantErr: "invalid JSON"},
		{name: "bad id type", in: `{"id": [1], "contents": "x"}`, wantErr: "id must be"},
		{name: "contents not a string", in: `{"contents": 5}`, wantErr: "invalid JSON"},
		{
			name: "invalid utf8 replaced", in: "{\"id\":\"u\",\"contents\":\"\\\"T\\\"\\nbad \xff byte\"}",
			id: "u", title: "T", contents: "\"T\"\nbad \uFFFD byte",
		},
		{
			name: "pretty printed row becomes one line", in: "{\n  \"title\": \"P\",\n  \"text\": \"q\"\n}", index: 0,
			id: "0", title: "P", contents: "\"P\"\nq", wantRowHasNot: []string{"\n  "},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseRow([]byte(tc.in), tc.index, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.ID != tc.id || p.Title != tc.title || p.Contents != tc.contents || p.URL != tc.url {
				t.Errorf("got id=%q title=%q contents=%q url=%q", p.ID, p.Title, p.Contents, p.URL)
			}
			if !json.Valid(p.Row) {
				t.Fatalf("row is not valid JSON: %s", p.Row)
			}
			if strings.Contains(string(p.Row), "\n") {
				t.Errorf("row has a raw newline: %s", p.Row)
			}
			for _, s := range tc.wantRowHas {
				if !strings.Contains(string(p.Row), s) {
					t.Errorf("row %s lacks %s", p.Row, s)
				}
			}
			for _, s := range tc.wantRowHasNot {
				if strings.Contains(string(p.Row), s) {
					t.Errorf("row %s has %s", p.Row, s)
				}
			}
			// A stored row parses back to the same passage.
			q, err := ParseRow(p.Row, 999, RowOptions{})
			if err != nil || q.ID != p.ID || q.Title != p.Title || q.Contents != p.Contents || q.URL != p.URL {
				t.Errorf("row does not round-trip: %+v, %v", q, err)
			}
		})
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "tab\tnl\nctl\x01", "<&>", "é€😀", "\u2028\u2029", "bad\xffutf8"} {
		got := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, got, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Errorf("%q -> %s -> %q", s, got, back)
		}
	}
	if got := string(AppendJSONString(nil, "<a>&")); got != `"<a>&"` {
		t.Errorf("html escaped: %s", got)
	}
}

func TestTitleTextOf(t *testing.T) {
	for _, tc := range []struct{ contents, title, text string }{
		{"\"A\"\nbody\nmore", "A", "body\nmore"},
		{"A title\nbody", "A title", "body"},
		{"no newline", "", "no newline"},
		{"\"\"\nx", "", "x"},
	} {
		if got := TitleOf(tc.contents); got != tc.title {
			t.Errorf("TitleOf(%q) = %q", tc.contents, got)
		}
		if got := TextOf(tc.contents); got != tc.text {
			t.Errorf("TextOf(%q) = %q", tc.contents, got)
		}
	}
}
