package reward

import (
	"fmt"
	"strings"
)

// Metric names a string metric of the registry (Metrics).
type Metric string

// The registry's metric names.
const (
	// MetricEM is SQuAD-normalised exact match.
	MetricEM Metric = "em"
	// MetricF1 is ASearcher evaluate.py's set-based F1, the "F1" of
	// ASearcher's tables.
	MetricF1 Metric = "f1"
	// MetricSQuADF1 is SQuAD v1.1 token F1 (formerly "token_f1" in reward
	// configs and "f1" in reports).
	MetricSQuADF1 Metric = "squad_f1"
	// MetricRewardF1 is ASearcher's RL reward F1: MetricF1 with True/False
	// mapping and the CJK character rule. The default training reward.
	MetricRewardF1 Metric = "reward_f1"
	// MetricCEM is cover exact match.
	MetricCEM Metric = "cem"
	// MetricSubEM is substring exact match.
	MetricSubEM Metric = "subem"
	// MetricRewardEM is ASearcher's reward_type EM: EM with True/False
	// mapping.
	MetricRewardEM Metric = "reward_em"
	// MetricRewardSubEM is SubEM with True/False mapping.
	MetricRewardSubEM Metric = "reward_subem"
)

// Config is the training reward. The zero value scores plain RewardSetF1
// behind the format gate; DefaultConfig is ASearcher's full reward.
type Config struct {
	// Metric scores the extracted answer against the golds: any name of
	// the metric registry; "" means reward_f1.
	Metric Metric `yaml:"metric" json:"metric"`
	// AugWeight mixes in augmented answers when a question has them:
	// score = (1-w)*m(golds) + w*max(m(aug), m(golds)). ASearcher uses 0.3;
	// 0 ignores augmented answers.
	AugWeight float64 `yaml:"aug_weight" json:"aug_weight"`
	// NoFormatGate turns off the all-generations format gate.
	NoFormatGate bool `yaml:"no_format_gate" json:"no_format_gate"`
	// InvalidQuestion penalises answers that declare the question invalid
	// when the prompt told the model to find the most likely answer.
	InvalidQuestion InvalidQuestion `yaml:"invalid_question" json:"invalid_question"`
}

// InvalidQuestion configures the invalid-question penalty.
type InvalidQuestion struct {
	// Enabled turns the penalty on.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Penalty replaces the score of a penalised trajectory (ASearcher: -0.5).
	Penalty float64 `yaml:"penalty" json:"penalty"`
	// Match is "substring" (ASearcher: the answer contains any of
	// Substrings, case-sensitively, so "valid" inside "Validus" counts) or
	// "phrase" (the SQuAD-normalised answer equals the normalised Phrase).
	Match string `yaml:"match" json:"match"`
	// Substrings are the markers for Match "substring".
	Substrings []string `yaml:"substrings" json:"substrings"`
	// Phrase is the refusal answer for Match "phrase".
	Phrase string `yaml:"phrase" json:"phrase"`
}

// DefaultConfig is ASearcher's training reward: reward_f1 on the last answer,
// the 0.7/0.3 augmented-answer mix, the format gate over every generation,
// and -0.5 for calling the question invalid when told to find the most
// likely answer.
func DefaultConfig() Config {
	return Config{
		Metric:    MetricRewardF1,
		AugWeight: 0.3,
		InvalidQuestion: InvalidQuestion{
			Enabled:    true,
			Penalty:    -0.5,
			Match:      "substring",
			Substrings: []string{"question", "invalid", "appropriate", "valid"},
			Phrase:     "the question is invalid",
		},
	}
}

// Validate reports the first setting that cannot work, in words a user can
// act on.
func (c Config) Validate() error {
	if _, ok := LookupMetric(string(c.Metric)); c.Metric != "" && !ok {
		return fmt.Errorf("reward metric %q: want %s", c.Metric, metricList(MetricNames()))
	}
	if c.AugWeight < 0 || c.AugWeight > 1 {
		return fmt.Errorf("reward aug_weight %v: want a number from 0 to 1", c.AugWeight)
	}
	if iq := c.InvalidQuestion; iq.Enabled {
		switch iq.Match {
		case "substring":
			if len(iq.Substrings) == 0 {
				return fmt.Errorf("reward invalid_question: match substring needs at least one entry in substrings")
			}
		case "phrase":
			if NormalizeAnswer(iq.Phrase) == "" {
				return fmt.Errorf("reward invalid_question: match phrase needs a non-empty phrase")
			}
		default:
			return fmt.Errorf("reward invalid_question match %q: want substring or phrase", iq.Match)
		}
	}
	return nil
}

// Sample is one finished trajectory to score.
type Sample struct {
	// Generations are the texts of every model generation of the trajectory
	// in order; each must pass the format gate.
	Generations []string
	// Answer is the final answer when the caller has already extracted it.
	// When nil it is extracted from the last generation; no complete
	// <answer> tag there means no answer and a score of 0 (ASearcher scores
	// the last action, so answering and then searching again earns nothing).
	Answer *string
	// Golds are the gold answers; AugAnswers the optional paraphrases.
	Golds      []string
	AugAnswers []string
	// ValidInstruction is true when the prompt told the model to find the
	// most likely answer instead of offering the invalid-question reply.
	ValidInstruction bool
}

// Result is a scored trajectory with every component, so a trainer can log
// why a reward is what it is.
type Result struct {
	Score float64 `json:"score"`
	// Answered says whether an answer was found; Answer is it.
	Answered bool   `json:"answered"`
	Answer   string `json:"answer,omitempty"`
	// Correctness is the metric against the golds; AugCorrectness against
	// the augmented answers (0 when there are none).
	Correctness    float64 `json:"correctness"`
	AugCorrectness float64 `json:"aug_correctness"`
	// Format is the format gate's outcome.
	Format FormatCheck `json:"format"`
	// ClaimsInvalid says the answer declares the question invalid;
	// Penalised that the invalid-question penalty replaced the score.
	ClaimsInvalid bool `json:"claims_invalid"`
	Penalised     bool `json:"penalised"`
}

// Score computes the training reward of one trajectory.
func (c Config) Score(s Sample) Result {
	var r Result
	if s.Answer != nil {
		r.Answer, r.Answered = *s.Answer, true
	} else if n := len(s.Generations); n > 0 {
		r.Answer, r.Answered = ExtractAnswer(s.Generations[n-1])
	}
	score := 0.0
	if r.Answered {
		r.Correctness = c.metric(r.Answer, s.Golds)
		score = r.Correctness
		if len(s.AugAnswers) > 0 && c.AugWeight > 0 {
			r.AugCorrectness = c.metric(r.Answer, s.AugAnswers)
			score = (1-c.AugWeight)*r.Correctness + c.AugWeight*max(r.AugCorrectness, r.Correctness)
		}
	}
	if c.NoFormatGate {
		r.Format = FormatCheck{OK: true, Generation: -1}
	} else {
		r.Format = CheckFormat(s.Generations)
		if !r.Format.OK {
			score = 0
		}
	}
	if r.Answered {
		r.ClaimsInvalid = c.InvalidQuestion.claimsInvalid(r.Answer)
	}
	if c.InvalidQuestion.Enabled && s.ValidInstruction && r.ClaimsInvalid {
		score = c.InvalidQuestion.Penalty
		r.Penalised = true
	}
	r.Score = score
	return r
}

func (c Config) metric(answer string, golds []string) float64 {
	m, ok := LookupMetric(string(c.Metric))
	if !ok {
		m, _ = LookupMetric(string(MetricRewardF1))
	}
	return m.Score(answer, golds)
}

func (iq InvalidQuestion) claimsInvalid(answer string) bool {
	if iq.Match == "phrase" {
		return NormalizeAnswer(answer) == NormalizeAnswer(iq.Phrase)
	}
	for _, sub := range iq.Substrings {
		if sub != "" && strings.Contains(answer, sub) {
			return true
		}
	}
	return false
}
