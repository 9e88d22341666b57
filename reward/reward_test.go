package reward

import (
	"strings"
	"testing"
)

func ptr(s string) *string { return &s }

func TestConfigScore(t *testing.T) {
	def := DefaultConfig()
	phrase := DefaultConfig()
	phrase.InvalidQuestion.Match = "phrase"
	em := DefaultConfig()
	em.Metric = MetricRewardEM
	plainEM := DefaultConfig()
	plainEM.Metric = MetricEM
	legacy := DefaultConfig()
	legacy.Metric = "token_f1"
	noGate := DefaultConfig()
	noGate.NoFormatGate = true
	var zero Config

	tests := []struct {
		name string
		cfg  Config
		in   Sample
		want Result
	}{
		{
			name: "correct answer in last generation",
			cfg:  def,
			in:   Sample{Generations: []string{"<search> x </search>", "<answer> Paris </answer>"}, Golds: []string{"Paris"}},
			want: Result{Score: 1, Answered: true, Answer: "Paris", Correctness: 1, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "answer then a search scores nothing",
			cfg:  def,
			in:   Sample{Generations: []string{"<answer>Paris</answer>", "<search> x </search>"}, Golds: []string{"Paris"}},
			want: Result{Score: 0, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "set F1 partial",
			cfg:  def,
			in:   Sample{Generations: []string{"<answer>Warsaw, Poland</answer>"}, Golds: []string{"Warsaw"}},
			want: Result{Score: 2.0 / 3, Answered: true, Answer: "Warsaw, Poland", Correctness: 2.0 / 3, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "augmented answer lifts the score",
			cfg:  def,
			in:   Sample{Generations: []string{"<answer>NYC</answer>"}, Golds: []string{"New York City"}, AugAnswers: []string{"NYC", "the Big Apple"}},
			want: Result{Score: 0.3, Answered: true, Answer: "NYC", Correctness: 0, AugCorrectness: 1, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "augmented answer never lowers the score",
			cfg:  def,
			in:   Sample{Generations: []string{"<answer>New York City</answer>"}, Golds: []string{"New York City"}, AugAnswers: []string{"NYC"}},
			want: Result{Score: 1, Answered: true, Answer: "New York City", Correctness: 1, AugCorrectness: 0, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "one bad generation zeroes the trajectory",
			cfg:  def,
			in:   Sample{Generations: []string{"<search>a</search><search>b</search>", "<answer>Paris</answer>"}, Golds: []string{"Paris"}},
			want: Result{Score: 0, Answered: true, Answer: "Paris", Correctness: 1, Format: FormatCheck{OK: false, Generation: 0, Problem: "more than one action tag"}},
		},
		{
			name: "format gate off",
			cfg:  noGate,
			in:   Sample{Generations: []string{"Assistant: <answer>Paris</answer>"}, Golds: []string{"Paris"}},
			want: Result{Score: 1, Answered: true, Answer: "Paris", Correctness: 1, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "invalid claim under the valid instruction is penalised",
			cfg:  def,
			in:   Sample{Generations: []string{"<answer> the question is invalid. </answer>"}, Golds: []string{"Paris"}, ValidInstruction: true},
			want: Result{Score: -0.5, Answered: true, Answer: "the question is invalid.", Format: FormatCheck{OK: true, Generation: -1}, ClaimsInvalid: true, Penalised: true},
		},
		{
			name: "invalid claim allowed by the prompt is not penalised",
			cfg:  def,
			in:   Sample{Generations: []string{"<answer> the question is invalid. </answer>"}, Golds: []string{"Paris"}},
			want: Result{Score: 0, Answered: true, Answer: "the question is invalid.", Format: FormatCheck{OK: true, Generation: -1}, ClaimsInvalid: true},
		},
		{
			name: "substring matching penalises a legitimate answer (ASearcher behaviour)",
			cfg:  def,
			in:   Sample{Generations: []string{"<answer>Cheap valid tickets</answer>"}, Golds: []string{"Cheap valid tickets"}, ValidInstruction: true},
			want: Result{Score: -0.5, Answered: true, Answer: "Cheap valid tickets", Correctness: 1, Format: FormatCheck{OK: true, Generation: -1}, ClaimsInvalid: true, Penalised: true},
		},
		{
			name: "phrase matching spares it",
			cfg:  phrase,
			in:   Sample{Generations: []string{"<answer>Cheap valid tickets</answer>"}, Golds: []string{"Cheap valid tickets"}, ValidInstruction: true},
			want: Result{Score: 1, Answered: true, Answer: "Cheap valid tickets", Correctness: 1, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "phrase matching still catches the refusal",
			cfg:  phrase,
			in:   Sample{Generations: []string{"<answer>The question is invalid!</answer>"}, Golds: []string{"x"}, ValidInstruction: true},
			want: Result{Score: -0.5, Answered: true, Answer: "The question is invalid!", Format: FormatCheck{OK: true, Generation: -1}, ClaimsInvalid: true, Penalised: true},
		},
		{
			name: "penalty applies even when the format gate failed",
			cfg:  def,
			in:   Sample{Generations: []string{"assistant", "<answer>invalid</answer>"}, Golds: []string{"x"}, ValidInstruction: true},
			want: Result{Score: -0.5, Answered: true, Answer: "invalid", Format: FormatCheck{OK: false, Generation: 0, Problem: `contains "assistant"`}, ClaimsInvalid: true, Penalised: true},
		},
		{
			name: "reward_em maps True to yes",
			cfg:  em,
			in:   Sample{Generations: []string{"<answer>True</answer>"}, Golds: []string{"yes"}},
			want: Result{Score: 1, Answered: true, Answer: "True", Correctness: 1, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "em is plain exact match, as in reports",
			cfg:  plainEM,
			in:   Sample{Generations: []string{"<answer>True</answer>"}, Golds: []string{"yes"}},
			want: Result{Score: 0, Answered: true, Answer: "True", Correctness: 0, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "default reward_f1: set F1 with the CJK rule",
			cfg:  def,
			in:   Sample{Generations: []string{"<answer>北京市</answer>"}, Golds: []string{"北京"}},
			want: Result{Score: 0.8, Answered: true, Answer: "北京市", Correctness: 0.8, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "old name token_f1 is squad_f1",
			cfg:  legacy,
			in:   Sample{Generations: []string{"<answer>The Beatles band</answer>"}, Golds: []string{"Beatles"}},
			want: Result{Score: 2.0 / 3, Answered: true, Answer: "The Beatles band", Correctness: 2.0 / 3, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "caller-supplied answer",
			cfg:  def,
			in:   Sample{Generations: []string{"<search>q</search>"}, Answer: ptr("Paris"), Golds: []string{"Paris"}},
			want: Result{Score: 1, Answered: true, Answer: "Paris", Correctness: 1, Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "zero config has no aug mix and no penalty",
			cfg:  zero,
			in:   Sample{Generations: []string{"<answer>the question is invalid</answer>"}, Golds: []string{"x"}, AugAnswers: []string{"the question is invalid"}, ValidInstruction: true},
			want: Result{Score: 0, Answered: true, Answer: "the question is invalid", Format: FormatCheck{OK: true, Generation: -1}, ClaimsInvalid: false},
		},
		{
			name: "no generations",
			cfg:  def,
			in:   Sample{Golds: []string{"x"}},
			want: Result{Format: FormatCheck{OK: true, Generation: -1}},
		},
		{
			name: "Chinese gold uses characters",
			cfg:  def,
			in:   Sample{Generations: []string{"<answer>北京</answer>"}, Golds: []string{"北京市"}},
			want: Result{Score: 0.8, Answered: true, Answer: "北京", Correctness: 0.8, Format: FormatCheck{OK: true, Generation: -1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			got := tt.cfg.Score(tt.in)
			if !closeResult(got, tt.want) {
				t.Errorf("Score =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func closeResult(a, b Result) bool {
	near := func(x, y float64) bool { d := x - y; return d < 1e-12 && d > -1e-12 }
	return near(a.Score, b.Score) && near(a.Correctness, b.Correctness) && near(a.AugCorrectness, b.AugCorrectness) &&
		a.Answered == b.Answered && a.Answer == b.Answer && a.Format == b.Format &&
		a.ClaimsInvalid == b.ClaimsInvalid && a.Penalised == b.Penalised
}

// TestAugMixMatchesASearcher checks the mix against ASearcher's literal
// score*0.7 + max(aug, score)*0.3 for the default weight.
func TestAugMixMatchesASearcher(t *testing.T) {
	cfg := DefaultConfig()
	for _, c := range []struct{ pred, gold, aug string }{
		{"New York", "New York City", "NYC New York"},
		{"a b c", "a d", "b c e"},
		{"北京", "北京市", "首都北京"},
	} {
		res := cfg.Score(Sample{Generations: []string{"<answer>" + c.pred + "</answer>"}, Golds: []string{c.gold}, AugAnswers: []string{c.aug}})
		g := MaxSetF1(c.pred, []string{c.gold}, RewardSetF1)
		a := max(MaxSetF1(c.pred, []string{c.aug}, RewardSetF1), g)
		if want := g*0.7 + a*0.3; res.Score != want {
			t.Errorf("%q: score %v, want %v", c.pred, res.Score, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"metric", func(c *Config) { c.Metric = "bleu" }, "want em, f1, squad_f1, reward_f1"},
		{"aug weight", func(c *Config) { c.AugWeight = 1.5 }, "from 0 to 1"},
		{"match", func(c *Config) { c.InvalidQuestion.Match = "regex" }, "substring or phrase"},
		{"no substrings", func(c *Config) { c.InvalidQuestion.Substrings = nil }, "at least one"},
		{"empty phrase", func(c *Config) { c.InvalidQuestion.Match = "phrase"; c.InvalidQuestion.Phrase = " the " }, "non-empty phrase"},
	}
	for _, tt := range bad {
		c := DefaultConfig()
		tt.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want error containing %q", tt.name, err, tt.want)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

func TestFormatProblem(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<think>plan</think>\n<search> q </search>", ""},
		{"plain text without any tag", ""},
		{"<search> q", "unbalanced <search> tags"},
		{"<access> u </access></access>", "unbalanced <access> tags"},
		{"<answer> x", "unbalanced <answer> tags"},
		{"<search>q</search><answer>x</answer>", "more than one action tag"},
		{"As an Assistant I think", `contains "assistant"`},
		{"<|im_start|>assistant", `contains "assistant"`},
		{"</think></think>", "more than one </think>"},
		{"<ANSWER>x</ANSWER>", ""},
	}
	for _, tt := range tests {
		if got := FormatProblem(tt.in); got != tt.want {
			t.Errorf("FormatProblem(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if fc := CheckFormat([]string{"ok", "<search>a</search>", "<search>"}); fc.OK || fc.Generation != 2 {
		t.Errorf("CheckFormat = %+v, want failure at generation 2", fc)
	}
}
