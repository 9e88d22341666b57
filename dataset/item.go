// Package dataset loads question-answer sets: the public benchmarks shipped
// inside the binary under built-in names (bamboogle, frames, nq, hotpotqa,
// xbench-deepsearch-2505, ...), and user files in the common layouts (JSONL
// or JSON arrays with question + answer, FlashRAG's golden_answers, HotpotQA,
// 2Wiki and MuSiQue dev files, Frames and GAIA columns, xBench-DeepSearch's
// encrypted CSV, decrypted in memory). It also serves the shipped passage
// corpora so that other packages can index them without knowing paths.
package dataset

// Item is one question with its gold answers.
type Item struct {
	// ID is the record's own id as given in the file (task_id, id, _id,
	// qid, query_id, question_id, QuestionId or idx, the first present).
	// Records without one get their 0-based record position in the file as
	// a decimal string, as ASearcher does.
	ID       string `json:"id"`
	Question string `json:"question"`
	// Answers are the gold answers, first the main answer then aliases.
	// Empty strings are dropped: an empty gold would match any prediction
	// under substring metrics.
	Answers []string `json:"answers"`
	// AugAnswers are optional paraphrases used by the training reward
	// (ASearcher's aug_answer).
	AugAnswers []string `json:"aug_answers,omitempty"`
	// Attachment names a file the question comes with (GAIA's file_name:
	// a spreadsheet, image, audio, ...). A text-only agent cannot read it;
	// eval's text_only skips such questions, as ASearcher and WebThinker
	// evaluate GAIA's 103 text-only validation questions. The field stays
	// in Meta too.
	Attachment string `json:"attachment,omitempty"`
	// Meta holds every field of the record that was not used above, as
	// decoded from JSON (numbers as json.Number), so results can carry it.
	Meta map[string]any `json:"meta,omitempty"`
	// Index is the 0-based position of the record in its source.
	Index int `json:"index"`
}

// Set is a loaded dataset.
type Set struct {
	// Name is the built-in name, or the file name without its extensions.
	Name string `json:"name"`
	// Source is "builtin:NAME" or the file path.
	Source string `json:"source"`
	// SHA256 is the hash of the source bytes (after decompression), so a
	// resumed run can tell that its data changed.
	SHA256 string `json:"sha256"`
	// Corpus names the shipped corpus that holds the evidence for these
	// questions, when there is one (see Corpora).
	Corpus string `json:"corpus,omitempty"`
	Items  []Item `json:"-"`
}

// Options adjust loading.
type Options struct {
	// AllowMissingAnswers accepts records without a gold answer (for
	// example questions to synthesise answers for). By default such a record
	// is an error, since it cannot be scored.
	AllowMissingAnswers bool
}

// TextOnly returns the items without an attachment, and how many it left
// out.
func TextOnly(items []Item) ([]Item, int) {
	out := make([]Item, 0, len(items))
	for _, it := range items {
		if it.Attachment == "" {
			out = append(out, it)
		}
	}
	return out, len(items) - len(out)
}
