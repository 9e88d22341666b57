package retrievalbench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/retrieval"
)

// SupportedQuestion is a question with the titles of its gold supporting
// paragraphs (HotpotQA's supporting_facts).
type SupportedQuestion struct {
	Question string
	Titles   []string
}

// LoadHotpotSupport reads a HotpotQA-format file ([{question,
// supporting_facts: [[title, sent_id], ...]}]).
func LoadHotpotSupport(path string) ([]SupportedQuestion, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Question string            `json:"question"`
		Facts    []json.RawMessage `json:"supporting_facts"`
	}
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []SupportedQuestion
	for i, r := range rows {
		seen := map[string]bool{}
		q := SupportedQuestion{Question: r.Question}
		for _, f := range r.Facts {
			var fact []json.RawMessage
			var title string
			if json.Unmarshal(f, &fact) != nil || len(fact) == 0 || json.Unmarshal(fact[0], &title) != nil {
				return nil, fmt.Errorf("%s: question %d: supporting fact is not [title, sentence]", path, i)
			}
			if !seen[title] {
				seen[title] = true
				q.Titles = append(q.Titles, title)
			}
		}
		if len(q.Titles) > 0 {
			out = append(out, q)
		}
	}
	return out, nil
}

// Recall returns, for each k, the mean over questions of the fraction of
// gold paragraphs (matched by title) among the top k hits.
func Recall(ctx context.Context, r retrieval.Retriever, st *corpus.Store, qs []SupportedQuestion, ks []int) (map[int]float64, error) {
	maxK := 0
	for _, k := range ks {
		maxK = max(maxK, k)
	}
	sums := map[int]float64{}
	var hits []retrieval.Hit
	for _, q := range qs {
		var err error
		hits, err = r.Search(ctx, q.Question, maxK, hits[:0])
		if err != nil {
			return nil, err
		}
		titles := make([]string, len(hits))
		for i, h := range hits {
			p, err := st.Passage(h.Doc)
			if err != nil {
				return nil, err
			}
			titles[i] = p.Title
		}
		for _, k := range ks {
			found := 0
			for _, gold := range q.Titles {
				for _, t := range titles[:min(k, len(titles))] {
					if t == gold {
						found++
						break
					}
				}
			}
			sums[k] += float64(found) / float64(len(q.Titles))
		}
	}
	out := map[int]float64{}
	for _, k := range ks {
		out[k] = sums[k] / float64(len(qs))
	}
	return out, nil
}
