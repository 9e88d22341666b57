package reward

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	"", "The Beatles", "U.S.", "İstanbul", "ΟΔΟΣ", "ΑΣ'Β", "theé", "the\u0301",
	"New\u001fYork", "北京市，中国", "2025年", "１２３", "²³①", "a-ha", "An", "The The",
	"<answer>Paris</answer>", "<answer><answer>x</answer></answer>", "<answer>x",
	"\xff\xfe invalid utf8", strings.Repeat("a ", 200), "\u00a0\u3000\u2028",
}

// FuzzNormalizeAnswer checks properties every SQuAD-normalised string has:
// valid UTF-8, no ASCII punctuation or uppercase, single inner spaces, no
// article words.
func FuzzNormalizeAnswer(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeAnswer(s)
		if !utf8.ValidString(n) {
			t.Fatalf("invalid UTF-8 %q", n)
		}
		if n != strings.TrimSpace(n) || strings.Contains(n, "  ") {
			t.Fatalf("bad spacing %q", n)
		}
		for _, r := range n {
			if isASCIIPunct(r) || (r >= 'A' && r <= 'Z') || (isPySpace(r) && r != ' ') {
				t.Fatalf("%q contains %q", n, r)
			}
		}
		for _, w := range strings.Split(n, " ") {
			if w == "a" || w == "an" || w == "the" {
				t.Fatalf("%q keeps the article %q", n, w)
			}
		}
		if EM(s, []string{s}) != 1 {
			t.Fatalf("EM(s, s) != 1 for %q", s)
		}
	})
}

func FuzzNormalizeText(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeText(s)
		if !utf8.ValidString(n) || n != strings.TrimSpace(n) || strings.Contains(n, "  ") {
			t.Fatalf("bad output %q", n)
		}
		for _, r := range n {
			if isASCIIPunct(r) || (isPySpace(r) && r != ' ') {
				t.Fatalf("%q contains %q", n, r)
			}
		}
	})
}

// FuzzMetrics checks that every metric stays in [0, 1], that a prediction
// equal to its gold scores 1 where the metric promises it, and that no
// input panics.
func FuzzMetrics(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(s, fuzzSeeds[(i+3)%len(fuzzSeeds)])
	}
	f.Fuzz(func(t *testing.T, pred, gold string) {
		golds := []string{gold}
		sc := Score(pred, golds)
		if len(sc) != len(ReportMetrics()) {
			t.Fatalf("Score has %d metrics, the registry reports %d", len(sc), len(ReportMetrics()))
		}
		for _, m := range Metrics() {
			v := m.Score(pred, golds)
			if !(v >= 0 && v <= 1) {
				t.Fatalf("%s = %v for %q vs %q", m.Name, v, pred, gold)
			}
			if got, ok := sc[string(m.Name)]; m.Report && (!ok || got != v) {
				t.Fatalf("Score[%s] = %v, the metric says %v", m.Name, got, v)
			}
		}
		for _, rule := range []F1Rule{SQuADv1, SQuADv2, HotpotQA} {
			p := TokenF1(pred, gold, rule)
			if !(p.F1 >= 0 && p.F1 <= 1 && p.Precision >= 0 && p.Precision <= 1 && p.Recall >= 0 && p.Recall <= 1) {
				t.Fatalf("rule %d: %+v", rule, p)
			}
		}
		self := Score(gold, golds)
		if self["em"] != 1 || self["subem"] != 1 || self["cem"] != 1 {
			t.Fatalf("gold against itself: %+v for %q", self, gold)
		}
		if NormalizeAnswer(gold) != "" && self["squad_f1"] != 1 {
			t.Fatalf("token F1 of gold against itself = %v for %q", self["squad_f1"], gold)
		}
		if NormalizeText(gold) != "" && self["f1"] != 1 {
			t.Fatalf("set F1 of gold against itself = %v for %q", self["f1"], gold)
		}
	})
}

var answerRE = regexp.MustCompile(`(?s)<answer>(.*?)</answer>`)

// FuzzExtractAnswer compares ExtractAnswer with the regular expression the
// Python scripts use (RE2's leftmost-first, non-greedy matching agrees with
// Python's re here).
func FuzzExtractAnswer(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Add("<answer>a</answer> <answer> b </answer>")
	f.Add("</answer><answer>")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ExtractAnswer(s)
		m := answerRE.FindAllStringSubmatch(s, -1)
		if ok != (len(m) > 0) {
			t.Fatalf("ExtractAnswer(%q) found=%v, regexp found %d", s, ok, len(m))
		}
		if ok && got != pyStrip(m[len(m)-1][1]) {
			t.Fatalf("ExtractAnswer(%q) = %q, regexp gives %q", s, got, m[len(m)-1][1])
		}
	})
}

func FuzzParseVerdict(f *testing.F) {
	for _, s := range []string{
		"Rationale: x\nVerdict: CORRECT", "Verdict: incorrect.", "<think>a</think>Verdict: CORRECT",
		"Verdict:", "Verdict: CORRECT\nVerdict: INCORRECT", "**Verdict**: *Correct*", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, _, err := ParseVerdict(raw)
		if err == nil && v != Correct && v != Incorrect {
			t.Fatalf("ParseVerdict(%q) = %q without error", raw, v)
		}
		if err != nil && v != "" {
			t.Fatalf("ParseVerdict(%q) = %q with error %v", raw, v, err)
		}
	})
}

func FuzzCheckFormat(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "<search> q </search>")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		fc := CheckFormat([]string{a, b})
		if fc.OK != (FormatProblem(a) == "" && FormatProblem(b) == "") {
			t.Fatalf("CheckFormat(%q, %q) = %+v", a, b, fc)
		}
	})
}

// FuzzParseASearcherVerdict: upstream-style replies never panic, and a
// verdict comes back exactly when there is no error.
func FuzzParseASearcherVerdict(f *testing.F) {
	for _, s := range []string{"```json\n{\"judgement\": \"Correct\",}\n```", "{'judgement': 'x'}", "\"judgement\": correct", "```json", "{'a': 'b", "True, None,]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, _, err := ParseASearcherVerdict(raw)
		if (err == nil) != (v == Correct || v == Incorrect) {
			t.Fatalf("ParseASearcherVerdict(%q) = %q, %v", raw, v, err)
		}
	})
}
