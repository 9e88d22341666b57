// Package retrievalbench compares asearcher's search engine with SQLite
// FTS5 and bleve on the same corpus and queries, and measures retrieval
// recall on QA sets with gold supporting paragraphs.
package retrievalbench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
)

// synthWord spells word rank r of the synthetic vocabulary: "q" plus four
// letters, so no word collides with a stopword or needs stemming.
func synthWord(r uint64) string {
	var b [5]byte
	b[0] = 'q'
	for i := 4; i >= 1; i-- {
		b[i] = byte('a' + r%26)
		r /= 26
	}
	return string(b[:])
}

const synthVocab = 50000

// WriteSyntheticCorpus writes n passages of 50–70 words drawn from a
// Zipf(s=1.1) distribution over a 50,000-word vocabulary (the corpus of the
// FTS5/bleve comparison in reference/go-ecosystem.md §2b) as JSONL rows
// {"id","title","text"}.
func WriteSyntheticCorpus(path string, n int, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(seed, 1))
	z := rand.NewZipf(rng, 1.1, 1, synthVocab-1)
	var text strings.Builder
	for i := 0; i < n; i++ {
		text.Reset()
		words := 50 + rng.IntN(21)
		for j := 0; j < words; j++ {
			if j > 0 {
				text.WriteByte(' ')
			}
			text.WriteString(synthWord(z.Uint64()))
		}
		row, _ := json.Marshal(map[string]string{"id": fmt.Sprint(i), "title": fmt.Sprintf("doc %d", i), "text": text.String()})
		w.Write(row)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SyntheticQueries makes n queries of 3–5 words. "zipf" draws words from
// the corpus distribution (frequent terms, almost every passage matches);
// "mid" draws ranks uniformly from 100 to 50,000 (content-like words).
func SyntheticQueries(kind string, n int, seed uint64) ([]string, error) {
	rng := rand.New(rand.NewPCG(seed, 2))
	z := rand.NewZipf(rng, 1.1, 1, synthVocab-1)
	out := make([]string, n)
	for i := range out {
		words := make([]string, 3+rng.IntN(3))
		for j := range words {
			switch kind {
			case "zipf":
				words[j] = synthWord(z.Uint64())
			case "mid":
				words[j] = synthWord(uint64(100 + rng.IntN(synthVocab-100)))
			default:
				return nil, fmt.Errorf("unknown synthetic query set %q (want zipf or mid)", kind)
			}
		}
		out[i] = strings.Join(words, " ")
	}
	return out, nil
}

// LoadQuestions reads the "question" field of a QA file: a JSON array of
// objects (HotpotQA, 2Wiki dev files) or JSONL.
func LoadQuestions(path string, limit int) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	type q struct {
		Question string `json:"question"`
	}
	var rows []q
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "[") {
		if err := json.Unmarshal(data, &rows); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else {
		for i, line := range strings.Split(trimmed, "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var r q
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
			}
			rows = append(rows, r)
		}
	}
	var out []string
	for _, r := range rows {
		if r.Question != "" {
			out = append(out, r.Question)
		}
		if limit > 0 && len(out) == limit {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no \"question\" fields", path)
	}
	return out, nil
}
