package tokenizer

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// TrainOptions configures Train.
type TrainOptions struct {
	// VocabSize is the total number of ids wanted: 256 byte tokens, the
	// learned tokens, and the special and added tokens. It must leave room
	// for the 256 bytes and the tokens listed below. Training stops early,
	// with a smaller vocabulary, when no pair occurs MinFrequency times.
	VocabSize int
	// SpecialTokens become special added tokens (skipped by HF with
	// skip_special_tokens), in this order after the learned vocabulary.
	// Nil means ChatMLSpecialTokens().
	SpecialTokens []string
	// AddedTokens become non-special added tokens after the special ones
	// (Qwen's <think>, <tool_call> and friends).
	AddedTokens []string
	// MinFrequency stops training when the most frequent pair occurs fewer
	// times; 0 means 2.
	MinFrequency int
	// Progress, when set, is called after each merge with the number of
	// merges learned and the number wanted.
	Progress func(done, total int)
}

// ChatMLSpecialTokens are the special tokens Qwen's ChatML needs, with
// Qwen's spelling: end of text, turn start, turn end.
func ChatMLSpecialTokens() []string {
	return []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
}

// QwenAddedTokens are the non-special tokens Qwen's templates write: think
// blocks and tool calls and responses.
func QwenAddedTokens() []string {
	return []string{"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"}
}

// Train learns a byte-level BPE vocabulary from texts with Qwen's pipeline
// (NFC, Qwen's split pattern, byte-level BPE, ChatML special tokens), for
// small models that need their own vocabulary. Training is deterministic:
// the same texts and options give the same tokenizer.
func Train(texts []string, opts TrainOptions) (*Tokenizer, error) {
	return TrainContext(context.Background(), texts, opts)
}

// TrainContext is Train with cancellation.
func TrainContext(ctx context.Context, texts []string, opts TrainOptions) (*Tokenizer, error) {
	specials := opts.SpecialTokens
	if specials == nil {
		specials = ChatMLSpecialTokens()
	}
	extra := len(specials) + len(opts.AddedTokens)
	numMerges := opts.VocabSize - 256 - extra
	if numMerges < 0 {
		return nil, fmt.Errorf("train tokenizer: vocab size %d leaves no room for 256 byte tokens and %d added tokens", opts.VocabSize, extra)
	}
	minFreq := opts.MinFrequency
	if minFreq <= 0 {
		minFreq = 2
	}
	seen := map[string]bool{}
	var added []AddedToken
	for i, content := range append(append([]string(nil), specials...), opts.AddedTokens...) {
		if content == "" || seen[content] {
			return nil, fmt.Errorf("train tokenizer: added token %q is empty or repeated", content)
		}
		seen[content] = true
		added = append(added, AddedToken{Content: content, Special: i < len(specials)})
	}

	words, err := countWords(ctx, texts, added)
	if err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	tr := newBPETrainer(words)
	if err := tr.run(ctx, numMerges, minFreq, opts.Progress); err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}

	vocab := make(map[string]int, len(tr.tokens)+extra)
	for id, tok := range tr.tokens {
		if _, dup := vocab[tok]; !dup {
			vocab[tok] = id
		}
	}
	for i := range added {
		added[i].ID = len(tr.tokens) + i
	}
	t := &Tokenizer{
		raw: fileJSON{
			Version:       "1.0",
			Normalizer:    json.RawMessage(`{"type": "NFC"}`),
			PreTokenizer:  qwenPreTokenizerJSON(),
			PostProcessor: json.RawMessage(`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}`),
			Decoder:       json.RawMessage(`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}`),
			Model:         modelJSON{modelOptions: modelOptions{Type: "BPE"}},
		},
		model: &bpeModel{vocab: vocab, merges: tr.merges},
		added: added,
	}
	// Going through the file format guarantees that what Train returns is
	// exactly what Save writes and Load reads back.
	data, err := t.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	return FromJSON(data)
}

func qwenPreTokenizerJSON() json.RawMessage {
	pattern, _ := marshalNoEscape(qwenPattern)
	return json.RawMessage(`{"type": "Sequence", "pretokenizers": [` +
		`{"type": "Split", "pattern": {"Regex": ` + string(pattern) + `}, "behavior": "Isolated", "invert": false}, ` +
		`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]}`)
}

// countWords pre-tokenises the texts as encoding will and counts each
// distinct piece. Added tokens written in the texts are cut out first so
// they are never learned as ordinary text.
func countWords(ctx context.Context, texts []string, added []AddedToken) (map[string]int64, error) {
	matcher := newAddedMatcher(added, func(a AddedToken) string { return a.Content })
	split := gpt4Splitter{maxDigits: 1}
	nfc, _ := parseNormalizer(json.RawMessage(`{"type": "NFC"}`))
	counts := map[string]int64{}
	for i, text := range texts {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		matcher.split(text, func(seg string) {
			split.split(nfc(seg), func(piece string) { counts[piece]++ })
		}, func(int) {})
	}
	return counts, nil
}

// bpeTrainer learns merges over the distinct words of a corpus.
type bpeTrainer struct {
	tokens []string // byte-level token strings by id
	merges []mergeRule
	byText map[string]int32 // existing token strings, for merges that recreate one

	words  [][]int32 // symbol ids per distinct word
	counts []int64   // occurrences per word
	pairs  map[uint64]int64
	where  map[uint64][]int32 // words that contained the pair when it was counted
	queue  pairQueue
}

func newBPETrainer(wordCounts map[string]int64) *bpeTrainer {
	tr := &bpeTrainer{byText: map[string]int32{}, pairs: map[uint64]int64{}, where: map[uint64][]int32{}}
	for b := 0; b < 256; b++ {
		tok := string(byteLevel.byteToRune[b])
		tr.tokens = append(tr.tokens, tok)
		tr.byText[tok] = int32(b)
	}
	// Sorted words make the word indices, and so everything after, independent
	// of map order.
	keys := make([]string, 0, len(wordCounts))
	for w := range wordCounts {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	for wi, w := range keys {
		syms := make([]int32, len(w))
		for i := 0; i < len(w); i++ {
			syms[i] = int32(w[i])
		}
		tr.words = append(tr.words, syms)
		tr.counts = append(tr.counts, wordCounts[w])
		for i := 0; i+1 < len(syms); i++ {
			k := pairKey(syms[i], syms[i+1])
			tr.pairs[k] += wordCounts[w]
			tr.where[k] = append(tr.where[k], int32(wi))
		}
	}
	for k, c := range tr.pairs {
		tr.queue = append(tr.queue, pairCount{key: k, count: c})
	}
	heap.Init(&tr.queue)
	return tr
}

func (tr *bpeTrainer) run(ctx context.Context, numMerges, minFreq int, progress func(int, int)) error {
	stamp := make([]int32, len(tr.words)) // merge number that last rewrote each word
	for done := 0; len(tr.tokens) < 256+numMerges && tr.queue.Len() > 0; {
		if done%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		top := heap.Pop(&tr.queue).(pairCount)
		cur := tr.pairs[top.key]
		if cur != top.count {
			if cur > 0 {
				heap.Push(&tr.queue, pairCount{key: top.key, count: cur})
			}
			continue // counts only fall for old pairs, so a stale entry is requeued
		}
		if cur < int64(minFreq) {
			break
		}
		a, b := int32(top.key>>32), int32(uint32(top.key))
		text := tr.tokens[a] + tr.tokens[b]
		id, exists := tr.byText[text]
		if !exists {
			id = int32(len(tr.tokens))
			tr.tokens = append(tr.tokens, text)
			tr.byText[text] = id
		}
		tr.merges = append(tr.merges, mergeRule{tr.tokens[a], tr.tokens[b]})
		done++
		tr.apply(a, b, id, int32(done), stamp)
		if progress != nil {
			progress(len(tr.tokens)-256, numMerges)
		}
	}
	return nil
}

// apply rewrites every word that contains the pair (a, b) and updates the
// pair counts by the difference between its old and new pairs.
func (tr *bpeTrainer) apply(a, b, id, mergeNo int32, stamp []int32) {
	key := pairKey(a, b)
	fresh := map[uint64]bool{}
	for _, wi := range tr.where[key] {
		if stamp[wi] == mergeNo {
			continue // listed twice
		}
		stamp[wi] = mergeNo
		old := tr.words[wi]
		var next []int32
		for i := 0; i < len(old); i++ {
			if i+1 < len(old) && old[i] == a && old[i+1] == b {
				if next == nil {
					next = append(make([]int32, 0, len(old)-1), old[:i]...)
				}
				next = append(next, id)
				i++
				continue
			}
			if next != nil {
				next = append(next, old[i])
			}
		}
		if next == nil {
			continue // the pair left this word in an earlier merge
		}
		c := tr.counts[wi]
		for i := 0; i+1 < len(old); i++ {
			tr.pairs[pairKey(old[i], old[i+1])] -= c
		}
		for i := 0; i+1 < len(next); i++ {
			k := pairKey(next[i], next[i+1])
			tr.pairs[k] += c
			if next[i] == id || next[i+1] == id {
				fresh[k] = true
				tr.where[k] = append(tr.where[k], wi)
			}
		}
		tr.words[wi] = next
	}
	delete(tr.where, key)
	for k := range fresh { // push order does not matter: the queue order is total
		if c := tr.pairs[k]; c > 0 {
			heap.Push(&tr.queue, pairCount{key: k, count: c})
		}
	}
}

type pairCount struct {
	key   uint64
	count int64
}

// pairQueue is a max-heap on count; ties go to the smaller pair of ids so the
// result never depends on insertion order.
type pairQueue []pairCount

func (q pairQueue) Len() int { return len(q) }
func (q pairQueue) Less(i, j int) bool {
	if q[i].count != q[j].count {
		return q[i].count > q[j].count
	}
	return q[i].key < q[j].key
}
func (q pairQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pairQueue) Push(x any)   { *q = append(*q, x.(pairCount)) }
func (q *pairQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
