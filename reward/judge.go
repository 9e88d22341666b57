package reward

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"

	"github.com/asearcher/asearcher/llm"
)

// JudgePromptVersion names the judge prompt. It is part of every cache key,
// so changing the prompt text must change it.
const JudgePromptVersion = "asearcher-judge-v1"

// judgePrompt is the one judge prompt (documented in docs/metrics.md). It
// asks for a two-line reply whose last line is machine-checkable, which
// fails less often than asking a model for JSON with free text inside.
const judgePrompt = `You are grading an answer to a question. Decide whether the predicted answer means the same thing as the gold answer.

Question:
%s

%s

Predicted answer:
%s

How to grade:
- Judge meaning, not wording. Differences in spelling, capitalisation, word order, abbreviations, transliteration or the way a number, unit or date is written are fine, and so are extra words that do not change what the answer refers to.
- Numbers must agree to the precision the question asks for. A date must name the same day, month or year that the gold answer gives.
- The answer is incorrect if it names a different entity or value, hedges between several candidates, is broader or narrower in a way that changes what it refers to, contradicts the gold answer, or gives no answer.
- Use only the question and the answers above. Do not judge whether the gold answer itself is right.

Reply with exactly these two lines and nothing after them:
Rationale: <one or two sentences>
Verdict: <CORRECT or INCORRECT>`

// maxJudgeGolds bounds the gold aliases shown to the judge (TriviaQA lists up
// to ~70); the first ones are the canonical forms.
const maxJudgeGolds = 32

// Verdict is the judge's decision.
type Verdict string

const (
	Correct   Verdict = "correct"
	Incorrect Verdict = "incorrect"
	// Unjudged means every attempt failed (server error or an unparsable
	// reply); the sample has no judge score rather than a wrong one.
	Unjudged Verdict = "unjudged"
)

// JudgeConfig configures an LLM judge. Zero fields take the defaults noted.
type JudgeConfig struct {
	// Model names the judge model. It is part of the cache key, so two
	// judges never share verdicts. Required.
	Model string `yaml:"model" json:"model"`
	// MaxAttempts bounds the calls per judgement, counting retries after
	// errors and unparsable replies (default 3).
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// Backoff is the wait before the first retry after an error; it doubles
	// per retry up to MaxBackoff, with jitter (defaults 1s and 30s).
	Backoff    time.Duration `yaml:"backoff" json:"backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff" json:"max_backoff"`
	// Timeout bounds one call (default 2m).
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// Temperature of the first attempt (default 0, greedy). A retry after
	// an unparsable reply samples at RetryTemperature (default 0.7), since
	// a greedy retry would only repeat the same reply.
	Temperature      float64 `yaml:"temperature" json:"temperature"`
	RetryTemperature float64 `yaml:"retry_temperature" json:"retry_temperature"`
	// MaxTokens caps the reply (default 1024; raise it for judges that
	// think before answering).
	MaxTokens int `yaml:"max_tokens" json:"max_tokens"`
	// MaxPredictionChars cuts long predictions before judging (default
	// 2000 characters). The asearcher style cuts as upstream does instead.
	MaxPredictionChars int `yaml:"max_prediction_chars" json:"max_prediction_chars"`
	// Style is "" (ours: the prompt above, a "Verdict:" line) or
	// "asearcher": ASearcher's MBE setup, with its prediction cut (at the
	// first "</", then 500 characters), golds shown as upstream's prompt
	// shows them, and replies read as its fenced-JSON "judgement" with its
	// substring fallback (ParseASearcherVerdict).
	Style string `yaml:"style" json:"style"`
	// PromptFile replaces the prompt with a template file in upstream's
	// slot syntax: {question}, {gt_answer}, {pred_answer}, with {{ and }}
	// for literal braces, so upstream's judge prompt can be used as it is.
	PromptFile string `yaml:"prompt_file" json:"prompt_file"`
}

func (c JudgeConfig) withDefaults() JudgeConfig {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.RetryTemperature <= 0 {
		c.RetryTemperature = 0.7
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = 1024
	}
	if c.MaxPredictionChars <= 0 {
		c.MaxPredictionChars = 2000
	}
	return c
}

// JudgeInput is one prediction to judge.
type JudgeInput struct {
	Question   string
	Golds      []string
	Prediction string
}

// Judgement is a judge's decision with what eval stores beside it.
type Judgement struct {
	Verdict Verdict `json:"verdict"`
	// Score is 1 for Correct and 0 otherwise.
	Score     float64 `json:"score"`
	Rationale string  `json:"rationale,omitempty"`
	// Raw is the judge's full reply that decided, or the last one when
	// none did.
	Raw string `json:"raw"`
	// Attempts is the number of model calls made (0 when cached or when
	// there was no prediction to judge).
	Attempts int  `json:"attempts"`
	Cached   bool `json:"cached"`
	// Model and PromptVersion identify the judge.
	Model         string `json:"model"`
	PromptVersion string `json:"prompt_version"`
	// Error says why the judgement is Unjudged.
	Error string `json:"error,omitempty"`
}

// Judge grades predictions with an LLM. It is safe for concurrent use;
// identical concurrent requests share one model call.
type Judge struct {
	sampler llm.Sampler
	cfg     JudgeConfig
	// tmpl is the template prompt (a file, or the asearcher style's
	// built-in one); nil uses judgePrompt.
	tmpl *judgeTemplate
	// version names the prompt and style in cache keys and judgements.
	version string
	cache   *JudgeCache
	flight  singleflight.Group
	// sleep waits between retries; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewJudge returns a judge that calls sampler with chat messages. cache may
// be nil for an in-memory cache of this judge's lifetime.
func NewJudge(sampler llm.Sampler, cfg JudgeConfig, cache *JudgeCache) (*Judge, error) {
	if sampler == nil {
		return nil, errors.New("judge: no model to call; pass --judge URL")
	}
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("judge: the judge model name is empty; set judge.model so cached verdicts stay tied to their model")
	}
	if cache == nil {
		cache = NewMemoryJudgeCache()
	}
	j := &Judge{sampler: sampler, cfg: cfg.withDefaults(), cache: cache, sleep: sleepCtx, version: JudgePromptVersion}
	switch cfg.Style {
	case JudgeStyleDefault:
	case JudgeStyleASearcher:
		t, err := parseJudgeTemplate(ASearcherJudgePrompt)
		if err != nil {
			return nil, err
		}
		j.tmpl = &t
	default:
		return nil, fmt.Errorf("judge style %q: want %q (ours, the default) or %q", cfg.Style, "", JudgeStyleASearcher)
	}
	if cfg.PromptFile != "" {
		t, err := loadJudgeTemplate(cfg.PromptFile)
		if err != nil {
			return nil, err
		}
		j.tmpl = &t
	}
	if j.tmpl != nil {
		j.version = "style-" + cfg.Style + "/" + j.tmpl.version
	}
	return j, nil
}

// PromptVersion names the judge's prompt and style, as judgements record it.
func (j *Judge) PromptVersion() string { return j.version }

// prediction prepares a prediction for the prompt.
func (j *Judge) prediction(raw string) string {
	pred := strings.ToValidUTF8(strings.TrimSpace(raw), "\uFFFD")
	if j.cfg.Style == JudgeStyleASearcher {
		return asearcherPrediction(pred)
	}
	return truncateRunes(pred, j.cfg.MaxPredictionChars)
}

// prompt renders the judge prompt.
func (j *Judge) prompt(in JudgeInput, pred string) string {
	if j.tmpl == nil {
		return RenderJudgePrompt(in.Question, in.Golds, pred)
	}
	return j.tmpl.render(in.Question, asearcherGolds(in.Golds[:min(len(in.Golds), maxJudgeGolds)]), pred)
}

// parse reads a reply in the style's format.
func (j *Judge) parse(raw string) (Verdict, string, error) {
	if j.cfg.Style == JudgeStyleASearcher {
		return ParseASearcherVerdict(raw)
	}
	return ParseVerdict(raw)
}

// Judge grades one prediction. The error is non-nil only when ctx ends; a
// judge that cannot reach a verdict returns Verdict Unjudged with Error set.
func (j *Judge) Judge(ctx context.Context, in JudgeInput) (Judgement, error) {
	pred := j.prediction(in.Prediction)
	base := Judgement{Model: j.cfg.Model, PromptVersion: j.version}
	if pred == "" {
		base.Verdict, base.Rationale = Incorrect, "no prediction to judge"
		return base, nil
	}
	key := judgeKey(j.cfg.Model, j.version, in.Question, in.Golds, pred)
	if got, ok := j.cache.Get(key); ok {
		got.Cached, got.Attempts = true, 0
		return got, nil
	}
	// A follower of a shared call sees the leader's context error if the
	// leader's caller gave up; it then leads a call of its own.
	for {
		got, retry, err := j.judgeOnce(ctx, base, key, in, pred)
		if retry {
			continue
		}
		return got, err
	}
}

func (j *Judge) judgeOnce(ctx context.Context, base Judgement, key string, in JudgeInput, pred string) (Judgement, bool, error) {
	v, err, shared := j.flight.Do(key, func() (any, error) {
		// A call that lost the race with an identical one may find its
		// verdict cached by now.
		if got, ok := j.cache.Get(key); ok {
			got.Cached, got.Attempts = true, 0
			return got, nil
		}
		got, err := j.judge(ctx, base, j.prompt(in, pred))
		if err != nil {
			return nil, err
		}
		if got.Verdict != Unjudged {
			if err := j.cache.Put(key, got); err != nil {
				// A failed cache write costs a repeat call later, nothing more.
				got.Error = fmt.Sprintf("judge cache: %v", err)
			}
		}
		return got, nil
	})
	if err != nil {
		if shared && ctx.Err() == nil {
			return Judgement{}, true, nil
		}
		return Judgement{}, false, err
	}
	got := v.(Judgement)
	if shared {
		got.Cached, got.Attempts = true, 0
	}
	return got, false, nil
}

func (j *Judge) judge(ctx context.Context, base Judgement, prompt string) (Judgement, error) {
	out := base
	out.Verdict = Unjudged
	temperature := j.cfg.Temperature
	for attempt := 1; attempt <= j.cfg.MaxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return Judgement{}, err
		}
		out.Attempts = attempt
		callCtx, cancel := context.WithTimeout(ctx, j.cfg.Timeout)
		resp, err := j.sampler.Sample(callCtx, &llm.Request{
			Messages: []llm.Message{{Role: "user", Content: prompt}},
			Params:   llm.Params{MaxNewTokens: j.cfg.MaxTokens, Temperature: temperature},
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return Judgement{}, ctx.Err()
			}
			out.Error = fmt.Sprintf("attempt %d: %v", attempt, err)
			if attempt < j.cfg.MaxAttempts {
				if err := j.sleep(ctx, j.backoff(attempt)); err != nil {
					return Judgement{}, err
				}
			}
			continue
		}
		out.Raw = resp.Text
		verdict, rationale, perr := j.parse(resp.Text)
		if perr != nil {
			out.Error = fmt.Sprintf("attempt %d: %v", attempt, perr)
			temperature = j.cfg.RetryTemperature
			continue
		}
		out.Verdict, out.Rationale, out.Error = verdict, rationale, ""
		if verdict == Correct {
			out.Score = 1
		}
		return out, nil
	}
	out.Error = fmt.Sprintf("no verdict after %d attempts, last: %s", j.cfg.MaxAttempts, out.Error)
	return out, nil
}

// backoff is the wait before retry number attempt (1-based): exponential,
// capped, with the upper half jittered so that many failing workers do not
// retry in lockstep.
func (j *Judge) backoff(attempt int) time.Duration {
	d := j.cfg.Backoff << min(attempt-1, 20)
	if d <= 0 || d > j.cfg.MaxBackoff {
		d = j.cfg.MaxBackoff
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RenderJudgePrompt fills the judge prompt. Golds beyond the first 32 are
// left out.
func RenderJudgePrompt(question string, golds []string, prediction string) string {
	var g strings.Builder
	shown := golds[:min(len(golds), maxJudgeGolds)]
	if len(shown) == 1 {
		g.WriteString("Gold answer:\n")
		g.WriteString(strings.TrimSpace(shown[0]))
	} else {
		g.WriteString("Gold answers (any one of them is acceptable):")
		for _, a := range shown {
			g.WriteString("\n- ")
			g.WriteString(strings.TrimSpace(a))
		}
	}
	return fmt.Sprintf(judgePrompt, strings.TrimSpace(question), g.String(), prediction)
}

// JudgeKey identifies a judgement: the judge model, the prompt version, the
// question, the golds in order and the (cut) prediction. Fields are length
// prefixed so no two inputs share a key by concatenation.
func JudgeKey(model, question string, golds []string, prediction string) string {
	return judgeKey(model, JudgePromptVersion, question, golds, prediction)
}

// judgeKey is JudgeKey for a judge with its own prompt version.
func judgeKey(model, version, question string, golds []string, prediction string) string {
	h := sha256.New()
	var n [8]byte
	write := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(model)
	write(version)
	write(question)
	binary.LittleEndian.PutUint64(n[:], uint64(len(golds)))
	h.Write(n[:])
	for _, g := range golds {
		write(g)
	}
	write(prediction)
	return hex.EncodeToString(h.Sum(nil))
}

var (
	verdictLine = regexp.MustCompile(`(?i)^verdict\s*[:：]\s*(.*?)\s*$`)
	verdictWord = regexp.MustCompile(`(?i)^(correct|incorrect)[.!]?$`)
	rationaleRe = regexp.MustCompile(`(?i)^rationale\s*[:：]\s*(.*)$`)
)

// ParseVerdict reads a judge reply strictly. Everything up to the last
// </think> is ignored (reasoning judges). The reply must contain a line
// "Verdict: CORRECT" or "Verdict: INCORRECT" (any case; markdown emphasis
// and a trailing period are tolerated); a Verdict line with any other value,
// or two that disagree, makes the reply unparsable. The free text is never
// searched for the words correct/incorrect.
func ParseVerdict(raw string) (Verdict, string, error) {
	text := raw
	if i := strings.LastIndex(text, "</think>"); i >= 0 {
		text = text[i+len("</think>"):]
	}
	var verdict Verdict
	var rationale []string
	inRationale := false
	for _, line := range strings.Split(text, "\n") {
		plain := strings.TrimSpace(strings.Map(dropEmphasis, line))
		if m := verdictLine.FindStringSubmatch(plain); m != nil {
			inRationale = false
			w := verdictWord.FindStringSubmatch(m[1])
			if w == nil {
				return "", "", fmt.Errorf("verdict %q is neither CORRECT nor INCORRECT", clip(m[1], 60))
			}
			v := Verdict(strings.ToLower(w[1]))
			if verdict != "" && verdict != v {
				return "", "", errors.New("reply gives both CORRECT and INCORRECT verdicts")
			}
			verdict = v
			continue
		}
		if m := rationaleRe.FindStringSubmatch(strings.TrimSpace(strings.ReplaceAll(line, "**", ""))); m != nil {
			inRationale = true
			rationale = append(rationale[:0], m[1])
			continue
		}
		if t := strings.TrimSpace(line); inRationale && t != "" {
			rationale = append(rationale, t)
		}
	}
	if verdict == "" {
		return "", "", fmt.Errorf("no \"Verdict: CORRECT|INCORRECT\" line in reply %q", clip(strings.TrimSpace(text), 80))
	}
	return verdict, strings.TrimSpace(strings.Join(rationale, " ")), nil
}

func dropEmphasis(r rune) rune {
	switch r {
	case '*', '`', '#', '>', '_':
		return -1
	}
	return r
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k]
		}
		i++
	}
	return s
}

func clip(s string, n int) string {
	if t := truncateRunes(s, n); t != s {
		return t + "…"
	}
	return s
}
