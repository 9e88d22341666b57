package reward

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// referenceVectors holds the inputs and outputs of the official metric
// scripts (see dataset/data/eval-scripts/PROVENANCE.md for which script and
// commit produced each family).
const referenceVectors = "../dataset/data/eval-scripts/reference-vectors.jsonl"

type normalized struct {
	Prediction string   `json:"prediction"`
	Golds      []string `json:"golds"`
}

type referenceVector struct {
	ID         json.RawMessage `json:"id"`
	Note       string          `json:"note"`
	Prediction string          `json:"prediction"`
	Golds      []string        `json:"golds"`

	NormalizeAnswer *normalized `json:"normalize_answer"`
	NormalizeText   *normalized `json:"asearcher_normalize_text"`

	SQuADv1 *struct{ EM, F1 float64 } `json:"squad_v1_1"`
	SQuADv2 *struct {
		Exact float64 `json:"exact"`
		F1    float64 `json:"f1"`
	} `json:"squad_v2_0"`
	Hotpot *struct {
		EM, F1, Prec, Recall float64
	} `json:"hotpot_v1_first_gold"`
	Wiki2 *struct {
		EM, F1, Prec, Recall float64
	} `json:"wiki2_v1_1"`
	MuSiQue *struct{ EM, F1 float64 } `json:"musique_v1_0"`
	Eval    *struct {
		EM    float64 `json:"EM"`
		F1    float64 `json:"F1"`
		CEM   float64 `json:"CEM"`
		SubEM float64 `json:"subem"`
	} `json:"asearcher_eval"`
	Rewards *struct {
		EM        float64 `json:"em"`
		SubEM     float64 `json:"subem_check"`
		F1        float64 `json:"f1"`
		CEM       float64 `json:"cem"`
		Extracted *string `json:"extracted"`
	} `json:"asearcher_rewards_on_answer_tag"`
	FlashRAG *struct {
		EM        float64 `json:"em"`
		SubEM     float64 `json:"subem"`
		F1        float64 `json:"f1"`
		Precision float64 `json:"precision"`
		Recall    float64 `json:"recall"`
	} `json:"flashrag"`

	SolutionStr    *string  `json:"solution_str"`
	EvalExtract    *string  `json:"asearcher_eval_extract_solution"`
	RewardsExtract *string  `json:"asearcher_rewards_extract_solution"`
	RewardsEMParis *float64 `json:"asearcher_rewards_em_vs_Paris"`
}

func loadReferenceVectors(t *testing.T) []referenceVector {
	t.Helper()
	f, err := os.Open(referenceVectors)
	if err != nil {
		t.Fatalf("open reference vectors: %v", err)
	}
	defer f.Close()
	var out []referenceVector
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var v referenceVector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %d: %v", len(out)+1, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rewardEM is ASearcher's training-reward em_check: EM with BoolMapping on
// both sides.
func rewardEM(answer string, golds []string) float64 {
	return EM(BoolMapping(answer), BoolMapAll(golds))
}

func rewardSubEM(answer string, golds []string) float64 {
	return SubEM(BoolMapping(answer), BoolMapAll(golds))
}

// TestReferenceVectors checks every one of the 87 vectors made by running
// the official SQuAD v1.1/v2.0, HotpotQA, 2Wiki, MuSiQue, FlashRAG and
// ASearcher scripts. Floats must agree exactly.
func TestReferenceVectors(t *testing.T) {
	vectors := loadReferenceVectors(t)
	if len(vectors) != 87 {
		t.Fatalf("got %d reference vectors, want 87", len(vectors))
	}
	checked := map[string]int{}
	eq := func(t *testing.T, what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	for _, v := range vectors {
		name := fmt.Sprintf("%s_%s", v.ID, v.Note)
		t.Run(name, func(t *testing.T) {
			if v.SolutionStr != nil {
				s := *v.SolutionStr
				got, ok := ExtractAnswer(s)
				for what, want := range map[string]*string{"eval extract_solution": v.EvalExtract, "rewards extract_solution": v.RewardsExtract} {
					if (want == nil) != !ok || (want != nil && got != *want) {
						t.Errorf("%s(%q) = %q,%v, want %v", what, s, got, ok, deref(want))
					}
				}
				score := 0.0
				if ok {
					score = rewardEM(got, []string{"Paris"})
				}
				eq(t, "rewards em vs Paris", score, *v.RewardsEMParis)
				checked["extract"]++
				return
			}
			p, g := v.Prediction, v.Golds
			for _, c := range []struct {
				name string
				fn   func(string) string
				want *normalized
			}{{"normalize_answer", NormalizeAnswer, v.NormalizeAnswer}, {"asearcher_normalize_text", NormalizeText, v.NormalizeText}} {
				if c.want == nil {
					continue
				}
				for i, in := range append([]string{p}, g...) {
					want := c.want.Prediction
					if i > 0 {
						want = c.want.Golds[i-1]
					}
					if got := c.fn(in); got != want {
						t.Errorf("%s(%q) = %q, want %q", c.name, in, got, want)
					}
				}
				checked[c.name]++
			}
			if s := v.SQuADv1; s != nil {
				eq(t, "squad v1.1 em", EM(p, g), s.EM)
				eq(t, "squad v1.1 f1", F1(p, g), s.F1)
				checked["squad_v1_1"]++
			}
			if s := v.SQuADv2; s != nil {
				eq(t, "squad v2.0 exact", EM(p, g), s.Exact)
				eq(t, "squad v2.0 f1", MaxTokenF1(p, g, SQuADv2).F1, s.F1)
				checked["squad_v2_0"]++
			}
			if s := v.Hotpot; s != nil {
				first := g[:1]
				got := TokenF1(p, first[0], HotpotQA)
				eq(t, "hotpot em", EM(p, first), s.EM)
				eq(t, "hotpot f1", got.F1, s.F1)
				eq(t, "hotpot prec", got.Precision, s.Prec)
				eq(t, "hotpot recall", got.Recall, s.Recall)
				checked["hotpot_v1_first_gold"]++
			}
			if s := v.Wiki2; s != nil {
				got := MaxTokenF1(p, g, HotpotQA)
				eq(t, "2wiki em", EM(p, g), s.EM)
				eq(t, "2wiki f1", got.F1, s.F1)
				eq(t, "2wiki prec", got.Precision, s.Prec)
				eq(t, "2wiki recall", got.Recall, s.Recall)
				checked["wiki2_v1_1"]++
			}
			if s := v.MuSiQue; s != nil {
				eq(t, "musique em", EM(p, g), s.EM)
				eq(t, "musique f1", MaxTokenF1(p, g, SQuADv2).F1, s.F1)
				checked["musique_v1_0"]++
			}
			if s := v.Eval; s != nil {
				eq(t, "asearcher eval EM", EM(p, g), s.EM)
				eq(t, "asearcher eval F1", MaxSetF1(p, g, EvalSetF1), s.F1)
				eq(t, "asearcher eval CEM", CEM(p, g), s.CEM)
				eq(t, "asearcher eval subem", SubEM(p, g), s.SubEM)
				sc := Score(p, g)
				eq(t, "Score f1 (ASearcher's F1)", sc["f1"], s.F1)
				eq(t, "Score em", sc["em"], s.EM)
				eq(t, "Score cem", sc["cem"], s.CEM)
				eq(t, "Score subem", sc["subem"], s.SubEM)
				checked["asearcher_eval"]++
			}
			if s := v.Rewards; s != nil {
				// The vectors wrap the prediction in answer tags and score the
				// extracted text, as the training reward does.
				ans, ok := ExtractAnswer(answerOpen + p + answerClose)
				if !ok || s.Extracted == nil || ans != *s.Extracted {
					t.Fatalf("extracted %q,%v, want %v", ans, ok, deref(s.Extracted))
				}
				eq(t, "rewards em", rewardEM(ans, g), s.EM)
				eq(t, "rewards subem", rewardSubEM(ans, g), s.SubEM)
				eq(t, "rewards f1", MaxSetF1(ans, g, RewardSetF1), s.F1)
				eq(t, "rewards cem", CEM(ans, g), s.CEM)
				eq(t, "Score reward_f1", Score(ans, g)["reward_f1"], s.F1)
				for name, want := range map[Metric]float64{MetricRewardF1: s.F1, MetricRewardEM: s.EM, MetricRewardSubEM: s.SubEM} {
					m, _ := LookupMetric(string(name))
					eq(t, "registry "+string(name), m.Score(ans, g), want)
				}
				checked["asearcher_rewards_on_answer_tag"]++
			}
			if s := v.FlashRAG; s != nil {
				got := MaxTokenF1(p, g, HotpotQA)
				eq(t, "flashrag em", EM(p, g), s.EM)
				eq(t, "flashrag subem", SubEM(p, g), s.SubEM)
				eq(t, "flashrag f1", got.F1, s.F1)
				eq(t, "flashrag precision", got.Precision, s.Precision)
				eq(t, "flashrag recall", got.Recall, s.Recall)
				checked["flashrag"]++
			}
		})
	}
	want := map[string]int{
		"extract": 8, "normalize_answer": 79, "asearcher_normalize_text": 79,
		"squad_v1_1": 79, "squad_v2_0": 79, "hotpot_v1_first_gold": 79, "wiki2_v1_1": 79,
		"musique_v1_0": 79, "asearcher_eval": 79, "asearcher_rewards_on_answer_tag": 79, "flashrag": 79,
	}
	for k, n := range want {
		if checked[k] != n {
			t.Errorf("checked %d %s vectors, want %d", checked[k], k, n)
		}
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
