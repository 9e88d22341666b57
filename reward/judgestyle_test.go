package reward

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Replies in upstream's verdict format parse as DefaultJudge.cal_metrics
// reads them: fenced JSON, then a Python literal (its own prompt's
// trailing comma makes json.loads fail), then the substring fallback.
func TestParseASearcherVerdict(t *testing.T) {
	cases := []struct {
		name, raw string
		want      Verdict
		bad       bool
	}{
		{"fenced json", "```json\n{\"rationale\": \"same city\", \"judgement\": \"Correct\"}\n```", Correct, false},
		{"fenced json incorrect", "```json\n{\"rationale\": \"no\", \"judgement\": \"Incorrect\"}\n```", Incorrect, false},
		{"trailing comma: a python literal", "Sure.\n```json\n{\n    \"rationale\": \"same\",\n    \"judgement\": \"correct\",\n}\n```", Correct, false},
		{"single quotes", "```json\n{'rationale': \"it's the same\", 'judgement': 'CORRECT'}\n```", Correct, false},
		{"unfenced json", "{\"judgement\": \"Correct\"}", Correct, false},
		{"last fence wins", "```json\n{\"judgement\": \"Correct\"}\n```\nOn reflection:\n```json\n{\"judgement\": \"Incorrect\"}\n```", Incorrect, false},
		{"parsed but no judgement: upstream says False", "```json\n{\"rationale\": \"hmm\"}\n```", Incorrect, false},
		{"parsed non-dict", "```json\n[1, 2]\n```", Incorrect, false},
		{"substring fallback: unquoted rationale", "```json\n{\n \"rationale\": the two name the same person,\n \"judgement\": \"Correct\"\n}\n```", Correct, false},
		{"substring fallback: incorrect wins", "{\"rationale\": x, \"judgement\": \"incorrect\"} or \"judgement\": \"correct\"", Incorrect, false},
		{"substring fallback: bare correct", "{\"rationale\": x, \"judgement\": correct}", Correct, false},
		{"our format is not theirs", "Rationale: same.\nVerdict: CORRECT", "", true},
		{"garbage", "I cannot decide.", "", true},
		{"empty", "", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, _, err := ParseASearcherVerdict(c.raw)
			if c.bad {
				if err == nil {
					t.Fatalf("got %q, want an error", v)
				}
				return
			}
			if err != nil || v != c.want {
				t.Fatalf("got %q, %v; want %q", v, err, c.want)
			}
		})
	}
}

func TestASearcherJudgeInputs(t *testing.T) {
	long := strings.Repeat("é", 700)
	cases := []struct{ in, want string }{
		{"Paris", "Paris"},
		{"Paris</answer> trailing", "Paris"},
		{"x </think> y", "x "},
		{long, strings.Repeat("é", 500)},
		{long + "</b>", strings.Repeat("é", 500)},
	}
	for _, c := range cases {
		if got := asearcherPrediction(c.in); got != c.want {
			t.Errorf("asearcherPrediction(%.20q) = %.20q, want %.20q", c.in, got, c.want)
		}
	}
	golds := []struct {
		in   []string
		want string
	}{
		{[]string{"Paris"}, "Paris"},
		{[]string{"Paris", "City of Light"}, "['Paris', 'City of Light']"},
		{[]string{"O'Hare", "a\"b", "c\\d\n"}, `["O'Hare", 'a"b', 'c\\d\n']`},
		{[]string{`it's "x"`, "\x01"}, `['it\'s "x"', '\x01']`},
	}
	for _, g := range golds {
		if got := asearcherGolds(g.in); got != g.want {
			t.Errorf("asearcherGolds(%q) = %s, want %s", g.in, got, g.want)
		}
	}
}

func TestJudgeTemplate(t *testing.T) {
	tmpl, err := parseJudgeTemplate("Q: {question}\nGold: {gt_answer}\nPred: {pred_answer}\n```json\n{{\"judgement\": ...}}\n```")
	if err != nil {
		t.Fatal(err)
	}
	got := tmpl.render("What {x}?", "['a', 'b']", "b {pred_answer}")
	want := "Q: What {x}?\nGold: ['a', 'b']\nPred: b {pred_answer}\n```json\n{\"judgement\": ...}\n```"
	if got != want {
		t.Fatalf("render:\n%s\nwant\n%s", got, want)
	}
	for text, msg := range map[string]string{
		"{question} {answer} {pred_answer}": "unknown slot {answer}",
		"{question} only":                   "no {pred_answer}",
		"{pred_answer} {":                   "never closed",
		"{pred_answer} }":                   "single '}'",
	} {
		if _, err := parseJudgeTemplate(text); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: err = %v, want %q", text, err, msg)
		}
	}
}

// The asearcher style end to end: the prompt file's slots filled with the
// cut prediction and the golds as a Python list, an upstream-style reply
// parsed, a garbled reply retried within the bound, and a prompt version
// that keeps these verdicts apart from the default judge's in the cache.
func TestJudgeASearcherStyle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "judge.txt")
	if err := os.WriteFile(path, []byte("Question: {question}\nLabeled: {gt_answer}\nPredicted: {pred_answer}\n{{json}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &scriptedSampler{replies: []any{"no idea", "```json\n{\"rationale\": \"same\", \"judgement\": \"Correct\",}\n```"}}
	cache := NewMemoryJudgeCache()
	j, _ := newTestJudge(t, s, JudgeConfig{Style: JudgeStyleASearcher, PromptFile: path, MaxAttempts: 3}, cache)
	got, err := j.Judge(context.Background(), JudgeInput{Question: "Capital?", Golds: []string{"Paris", "Paris, France"}, Prediction: "Paris</answer> junk"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != Correct || got.Attempts != 2 || got.Rationale != "same" || !strings.HasPrefix(got.PromptVersion, "style-asearcher/template-") {
		t.Fatalf("judgement %+v", got)
	}
	prompt := s.calls[0].Messages[0].Content
	if prompt != "Question: Capital?\nLabeled: ['Paris', 'Paris, France']\nPredicted: Paris\n{json}" {
		t.Fatalf("prompt %q", prompt)
	}
	def, _ := newTestJudge(t, &scriptedSampler{replies: []any{"Verdict: INCORRECT"}}, JudgeConfig{}, cache)
	if d, _ := def.Judge(context.Background(), JudgeInput{Question: "Capital?", Golds: []string{"Paris", "Paris, France"}, Prediction: "Paris"}); d.Cached || d.Verdict != Incorrect {
		t.Fatalf("the default judge reused the asearcher verdict: %+v", d)
	}
	if _, err := NewJudge(s, JudgeConfig{Model: "m", Style: "mbe"}, nil); err == nil {
		t.Fatal("unknown style accepted")
	}
	if _, err := NewJudge(s, JudgeConfig{Model: "m", PromptFile: filepath.Join(t.TempDir(), "none.txt")}, nil); err == nil {
		t.Fatal("missing prompt file accepted")
	}
	// The built-in asearcher prompt works without a file.
	b, _ := newTestJudge(t, &scriptedSampler{replies: []any{"```json\n{\"judgement\": \"Incorrect\"}\n```"}}, JudgeConfig{Style: JudgeStyleASearcher}, nil)
	if v, _ := b.Judge(context.Background(), JudgeInput{Question: "q", Golds: []string{"a"}, Prediction: "b"}); v.Verdict != Incorrect {
		t.Fatalf("built-in asearcher prompt: %+v", v)
	}
}
