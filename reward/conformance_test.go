package reward

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"
	"unicode"
)

// conformanceCase is one line of testdata/conformance.jsonl, written by
// testdata/make_conformance.py from the unmodified upstream scripts.
type conformanceCase struct {
	ID   json.RawMessage `json:"id"`
	P    string          `json:"p"`
	G    []string        `json:"g"`
	NA   []string        `json:"na"`
	NT   []string        `json:"nt"`
	SQ1  []float64       `json:"squad_v1_1"`
	HP   []float64       `json:"hotpot_first_gold"`
	W2   []float64       `json:"wiki2"`
	MU   []float64       `json:"musique"`
	EV   []float64       `json:"asearcher_eval"`
	RW   []any           `json:"asearcher_rewards"`
	S    *string         `json:"s"`
	RX   *string         `json:"rewards_extract"`
	EX   *string         `json:"eval_extract"`
	FmOK *bool           `json:"format_ok"`
}

func TestConformanceWithPythonScripts(t *testing.T) {
	f, err := os.Open("testdata/conformance.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	answers, tags := 0, 0
	for sc.Scan() {
		var c conformanceCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		id := string(c.ID)
		if c.S != nil {
			tags++
			got, ok := ExtractAnswer(*c.S)
			for _, want := range []*string{c.RX, c.EX} {
				if (want == nil) == ok || (want != nil && got != *want) {
					t.Errorf("%s: ExtractAnswer(%q) = %q,%v, want %v", id, *c.S, got, ok, deref(want))
				}
			}
			if fc := CheckFormat([]string{*c.S}); fc.OK != *c.FmOK {
				t.Errorf("%s: CheckFormat(%q) = %+v, want ok=%v", id, *c.S, fc, *c.FmOK)
			}
			continue
		}
		answers++
		p, g := c.P, c.G
		all := append([]string{p}, g...)
		for i, s := range all {
			if got := NormalizeAnswer(s); got != c.NA[i] {
				t.Errorf("%s: NormalizeAnswer(%q) = %q, want %q", id, s, got, c.NA[i])
			}
			if got := NormalizeText(s); got != c.NT[i] {
				t.Errorf("%s: NormalizeText(%q) = %q, want %q", id, s, got, c.NT[i])
			}
		}
		check := func(what string, got, want []float64) {
			t.Helper()
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s(%q, %q) = %v, want %v", id, what, p, g, got, want)
			}
		}
		check("squad v1.1", []float64{EM(p, g), F1(p, g)}, c.SQ1)
		hp := TokenF1(p, g[0], HotpotQA)
		check("hotpot", []float64{EM(p, g[:1]), hp.F1, hp.Precision, hp.Recall}, c.HP)
		w2 := MaxTokenF1(p, g, HotpotQA)
		check("2wiki", []float64{EM(p, g), w2.F1, w2.Precision, w2.Recall}, c.W2)
		check("musique", []float64{EM(p, g), MaxTokenF1(p, g, SQuADv2).F1}, c.MU)
		check("asearcher eval", []float64{EM(p, g), MaxSetF1(p, g, EvalSetF1), CEM(p, g), SubEM(p, g)}, c.EV)

		want := Scores{"em": EM(p, g), "subem": SubEM(p, g), "squad_f1": F1(p, g), "f1": MaxSetF1(p, g, EvalSetF1), "reward_f1": MaxSetF1(p, g, RewardSetF1), "cem": CEM(p, g)}
		got := Score(p, g)
		if !maps.Equal(got, want) {
			t.Errorf("%s: Score(%q, %q) = %+v, metric by metric %+v", id, p, g, got, want)
		}
		// The report's f1 is ASearcher's F1 and squad_f1 the SQuAD one,
		// as upstream computes them.
		check("report f1 = asearcher F1, squad_f1 = squad v1.1 F1", []float64{got["f1"], got["squad_f1"]}, []float64{c.EV[1], c.SQ1[1]})

		ans, ok := ExtractAnswer(answerOpen + p + answerClose)
		if !ok || ans != c.RW[0].(string) {
			t.Errorf("%s: extracted %q, want %q", id, ans, c.RW[0])
			continue
		}
		rw := make([]float64, 4)
		for i := range rw {
			rw[i] = c.RW[i+1].(float64)
		}
		check("asearcher rewards", []float64{rewardEM(ans, g), rewardSubEM(ans, g), MaxSetF1(ans, g, RewardSetF1), CEM(ans, g)}, rw)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if answers < 1000 || tags < 500 {
		t.Fatalf("only %d answer and %d tag cases; regenerate testdata/conformance.jsonl", answers, tags)
	}
}

// TestPythonUnicodeTables checks the character classes the normalisers
// re-create against the ones Python 3.11 reported (testdata/pyunicode.json).
func TestPythonUnicodeTables(t *testing.T) {
	raw, err := os.ReadFile("testdata/pyunicode.json")
	if err != nil {
		t.Fatal(err)
	}
	var py struct {
		Lower       map[string]string `json:"lower"`
		DigitExtra  []rune            `json:"isdigit_not_nd"`
		Space       []rune            `json:"isspace"`
		WordIsLN    bool              `json:"word_is_L_or_N_or_underscore"`
		UnicodeData string            `json:"unidata_version"`
	}
	if err := json.Unmarshal(raw, &py); err != nil {
		t.Fatal(err)
	}
	if !py.WordIsLN {
		t.Fatal("Python's \\w is not L|N|_ under this Unicode version; isPyWord needs a table")
	}
	for k, want := range py.Lower {
		cp, err := strconv.Atoi(k)
		if err != nil {
			t.Fatal(err)
		}
		if got := pyLower(string(rune(cp))); got != want {
			t.Errorf("pyLower(U+%04X) = %q, want %q", cp, got, want)
		}
	}
	// The other direction: Go lowers nothing that Python keeps, apart from
	// characters Unicode 14 did not have yet.
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r == 0x3A3 || (r >= 0xD800 && r <= 0xDFFF) {
			continue
		}
		if _, ok := py.Lower[strconv.Itoa(int(r))]; !ok && unicode.ToLower(r) != r {
			t.Errorf("Go lowers U+%04X but Python %s does not", r, py.UnicodeData)
		}
	}
	spaces := map[rune]bool{}
	for _, r := range py.Space {
		spaces[r] = true
	}
	digits := map[rune]bool{}
	for _, r := range py.DigitExtra {
		digits[r] = true
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if isPySpace(r) != spaces[r] {
			t.Errorf("isPySpace(U+%04X) = %v, want %v", r, isPySpace(r), spaces[r])
		}
		if extra := isPyDigit(r) && !unicode.IsDigit(r); extra != digits[r] {
			t.Errorf("isPyDigit(U+%04X) beyond Nd = %v, want %v", r, extra, digits[r])
		}
	}
}
