package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// maxFileSize bounds what Load reads; the largest real tokenizer.json files
// are a few tens of MB.
const maxFileSize = 1 << 30

// Load reads a Hugging Face tokenizer.json: the file itself, a .zst
// compressed copy, or a model directory that contains tokenizer.json. From a
// directory it also reads tokenizer_config.json, when present, to pick the
// chat template family.
func Load(path string) (*Tokenizer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	dir := ""
	if info.IsDir() {
		dir = path
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := readMaybeCompressed(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := FromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	if dir != "" {
		cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
		switch {
		case err == nil:
			var c struct {
				ChatTemplate json.RawMessage `json:"chat_template"`
			}
			if json.Unmarshal(cfg, &c) == nil {
				t.chatFormat = detectChatFormat(string(c.ChatTemplate))
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("load tokenizer: %w", err)
		}
	}
	return t, nil
}

func readMaybeCompressed(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".zst") {
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}

// fileJSON is the part of tokenizer.json this package reads. The pipeline
// stages stay raw so Save can write back exactly what was loaded.
type fileJSON struct {
	Version       string          `json:"version"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         modelJSON       `json:"model"`
}

type modelJSON struct {
	modelOptions
	Vocab  json.RawMessage `json:"vocab"`
	Merges json.RawMessage `json:"merges"`
}

// modelOptions are the BPE model's settings, written back by Save.
type modelOptions struct {
	Type                    string   `json:"type"`
	Dropout                 *float64 `json:"dropout"`
	UnkToken                *string  `json:"unk_token"`
	ContinuingSubwordPrefix *string  `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string  `json:"end_of_word_suffix"`
	FuseUnk                 bool     `json:"fuse_unk"`
	ByteFallback            bool     `json:"byte_fallback"`
	IgnoreMerges            bool     `json:"ignore_merges"`
}

// FromJSON builds a tokenizer from the bytes of a tokenizer.json file.
func FromJSON(data []byte) (*Tokenizer, error) {
	var f fileJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	t := &Tokenizer{raw: f, chatFormat: ChatQwen3}
	t.raw.Model.Vocab, t.raw.Model.Merges = nil, nil // kept in the model instead
	var err error
	if t.normalize, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if err = checkDecoder(f.Decoder); err != nil {
		return nil, err
	}
	if t.model, err = parseModel(&f.Model); err != nil {
		return nil, err
	}
	if err = t.buildIDTables(f.AddedTokens); err != nil {
		return nil, err
	}
	return t, nil
}

func parseModel(mj *modelJSON) (*bpeModel, error) {
	if mj.Type != "" && mj.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported: only byte-level BPE is", mj.Type)
	}
	vocab, err := parseVocab(mj.Vocab)
	if err != nil {
		return nil, err
	}
	if mj.Dropout != nil && *mj.Dropout > 0 {
		return nil, errors.New("BPE dropout is not supported: set model.dropout to null")
	}
	if (mj.ContinuingSubwordPrefix != nil && *mj.ContinuingSubwordPrefix != "") ||
		(mj.EndOfWordSuffix != nil && *mj.EndOfWordSuffix != "") {
		return nil, errors.New("continuing_subword_prefix and end_of_word_suffix are not supported by byte-level BPE")
	}
	if mj.ByteFallback {
		return nil, errors.New("byte_fallback is not supported: it belongs to SentencePiece-style BPE, not byte-level BPE")
	}
	m := &bpeModel{vocab: vocab, unkID: -1, cache: newWordCache(len(vocab))}
	for id := range m.byteIDs {
		m.byteIDs[id] = -1
	}
	for tok, id := range vocab {
		if id < 0 || id > maxTokenID {
			return nil, fmt.Errorf("vocab token %q has id %d, outside 0..%d", tok, id, maxTokenID)
		}
	}
	for b := 0; b < 256; b++ {
		if id, ok := vocab[string(byteLevel.byteToRune[b])]; ok {
			m.byteIDs[b] = int32(id)
		}
	}
	if mj.UnkToken != nil {
		id, ok := vocab[*mj.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocab", *mj.UnkToken)
		}
		m.unkID, m.fuseUnk = int32(id), mj.FuseUnk
	}
	rules, err := parseMerges(mj.Merges)
	if err != nil {
		return nil, err
	}
	m.merges = rules
	m.ranks = newRankTable(len(rules))
	targets := make(map[int32]struct{}, len(rules))
	for rank, r := range rules {
		a, okA := vocab[r.left]
		b, okB := vocab[r.right]
		c, okC := vocab[r.left+r.right]
		if !okA || !okB || !okC {
			return nil, fmt.Errorf("merge %d (%q %q) uses a token that is not in the vocab", rank, r.left, r.right)
		}
		m.ranks.put(pairKey(int32(a), int32(b)), merge{rank: int32(rank), id: int32(c)})
		if _, dup := targets[int32(c)]; dup {
			m.sharedTargets = true
		}
		targets[int32(c)] = struct{}{}
	}
	maxID := 0
	m.whole = make(map[string]int32, len(vocab))
	for tok, id := range vocab {
		m.whole[string(byteLevel.decodeString(tok))] = int32(id)
		maxID = max(maxID, id)
	}
	m.wholeState = make([]atomic.Uint32, maxID+1)
	if mj.IgnoreMerges {
		// HF returns a word that is in the vocab as that token, merges aside.
		for _, id := range m.whole {
			m.wholeState[id].Store(wholeYes)
		}
	}
	return m, nil
}

// maxTokenID keeps a hostile file from making us allocate id tables of
// arbitrary size; real vocabularies stay far below it.
const maxTokenID = 1<<24 - 1

// parseMerges accepts both layouts HF writes: "a b" strings (tokenizers
// before 0.20) and ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([]mergeRule, error) {
	if isNull(raw) {
		return nil, nil
	}
	s := &jsonScanner{b: raw}
	rules := make([]mergeRule, 0, len(raw)/12)
	err := s.list(func() error {
		n := len(rules)
		if s.peek() == '"' {
			line, err := s.str()
			if err != nil {
				return fmt.Errorf("merge %d: %w", n, err)
			}
			left, right, ok := strings.Cut(line, " ")
			if !ok || strings.Contains(right, " ") {
				return fmt.Errorf("merge %d %q: want two tokens separated by one space", n, line)
			}
			rules = append(rules, mergeRule{left, right})
			return nil
		}
		var pair []string
		if err := s.list(func() error {
			tok, err := s.str()
			pair = append(pair, tok)
			return err
		}); err != nil || len(pair) != 2 {
			return fmt.Errorf("merge %d: want a pair of token strings", n)
		}
		rules = append(rules, mergeRule{pair[0], pair[1]})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("merges: %w", err)
	}
	return rules, nil
}

// buildIDTables fills the id -> token tables used by Decode and TokenID.
func (t *Tokenizer) buildIDTables(added []AddedToken) error {
	maxID := len(t.model.wholeState) - 1
	for _, a := range added {
		if a.ID < 0 || a.ID > maxTokenID {
			return fmt.Errorf("added token %q has id %d, outside 0..%d", a.Content, a.ID, maxTokenID)
		}
		if a.Content == "" {
			return fmt.Errorf("added token %d has empty content", a.ID)
		}
		maxID = max(maxID, a.ID)
	}
	// Sparse ids would be legal but a file that asks for a table much larger
	// than its entries is far more likely malformed.
	if entries := len(t.model.vocab) + len(added); maxID >= 2*entries+1024 {
		return fmt.Errorf("largest token id %d is far beyond the %d tokens defined", maxID, entries)
	}
	t.idToToken = make([]string, maxID+1)
	t.idToBytes = make([][]byte, maxID+1)
	t.defined = make([]bool, maxID+1)
	t.special = make([]bool, maxID+1)
	for tok, id := range t.model.vocab {
		t.idToToken[id] = tok
		t.defined[id] = true
	}
	t.added = added
	t.addedByContent = make(map[string]int, len(added))
	for _, a := range added {
		t.idToToken[a.ID] = a.Content
		if a.Normalized && t.normalize != nil {
			// HF's id_to_token (and so decode) gives a normalized token's
			// normalised text, while token_to_id takes the original.
			t.idToToken[a.ID] = t.normalize(a.Content)
		}
		t.defined[a.ID] = true
		t.special[a.ID] = a.Special
		t.addedByContent[a.Content] = a.ID
	}
	for id, tok := range t.idToToken {
		if t.defined[id] {
			t.idToBytes[id] = byteLevel.decodeString(tok)
		}
	}
	t.rawAdded = newAddedMatcher(added, func(a AddedToken) string {
		if a.Normalized {
			return ""
		}
		return a.Content
	})
	t.normAdded = newAddedMatcher(added, func(a AddedToken) string {
		if !a.Normalized {
			return ""
		}
		if t.normalize != nil {
			return t.normalize(a.Content)
		}
		return a.Content
	})
	return nil
}
