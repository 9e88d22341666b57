package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Format is a file layout.
type Format string

const (
	// FormatJSONL is one JSON object per line.
	FormatJSONL Format = "jsonl"
	// FormatJSON is a JSON array of objects.
	FormatJSON Format = "json"
	// FormatCSV and FormatTSV have a header row naming the columns. A CSV
	// with a "canary" column is xBench's encrypted layout.
	FormatCSV Format = "csv"
	FormatTSV Format = "tsv"
)

// ParseError locates a problem in a dataset file.
type ParseError struct {
	Source string
	// Line is 1-based; 0 when unknown.
	Line int
	// Record is the 0-based record index; -1 when the problem is not in a
	// record (for example the file's top level).
	Record int
	Err    error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Record >= 0 {
		fmt.Fprintf(&b, ": record %d", e.Record)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

// The field names recognised in records, compared after normKey. The first
// present wins; the others stay in Meta.
var (
	idKeys       = []string{"task_id", "id", "_id", "qid", "query_id", "question_id", "questionid", "idx"}
	questionKeys = []string{"question", "query", "prompt", "problem"}
	answerKeys   = []string{"golden_answers", "answers", "answer", "final_answer", "gt", "ground_truth", "target"}
	aliasKeys    = []string{"answer_aliases"}
	augKeys      = []string{"aug_answer", "aug_answers"}
)

// normKey folds field names so that GAIA's "Final answer", Frames' "Prompt"
// and FlashRAG's golden_answers all match the names above.
func normKey(k string) string {
	plain := true
	for i := 0; i < len(k); i++ {
		if c := k[i]; (c >= 'A' && c <= 'Z') || c == ' ' || c == '-' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return k
	}
	b := []byte(strings.ToLower(strings.TrimSpace(k)))
	for i, c := range b {
		if c == ' ' || c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

// Field roles, in the order recordToItem resolves them.
const (
	roleID = iota
	roleQuestion
	roleAnswer
	roleAlias
	roleAug
	numRoles
)

var roleKeys = [numRoles][]string{idKeys, questionKeys, answerKeys, aliasKeys, augKeys}

// fieldRole returns the role a normalised field name can fill and its rank
// among that role's names (lower wins), or -1.
func fieldRole(nk string) (role, rank int) {
	for r, names := range roleKeys {
		for i, n := range names {
			if n == nk {
				return r, i
			}
		}
	}
	return -1, 0
}

// Decode reads a dataset from data. name is used in error messages and, by
// its extension (.jsonl, .json, .csv, .tsv, optionally followed by .zst or
// .gz), to pick the layout; a name without a known extension is sniffed.
func Decode(name string, data []byte, opts Options) ([]Item, error) {
	base, data, err := decompress(name, data)
	if err != nil {
		return nil, err
	}
	return decodePlain(name, base, data, opts)
}

// decodePlain is Decode on decompressed data; base is name without the
// compression suffix.
func decodePlain(name, base string, data []byte, opts Options) ([]Item, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	format, err := detectFormat(base, data)
	if err != nil {
		return nil, &ParseError{Source: name, Record: -1, Err: err}
	}
	var items []Item
	switch format {
	case FormatJSONL:
		items, err = decodeJSONL(name, data, opts)
	case FormatJSON:
		items, err = decodeJSONArray(name, data, opts)
	case FormatCSV:
		items, err = decodeCSV(name, data, ',', opts)
	case FormatTSV:
		items, err = decodeCSV(name, data, '\t', opts)
	}
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, &ParseError{Source: name, Record: -1, Err: errors.New("no records")}
	}
	if err := checkUniqueIDs(name, items); err != nil {
		return nil, err
	}
	return items, nil
}

func decompress(name string, data []byte) (string, []byte, error) {
	switch {
	case strings.HasSuffix(name, ".zst"):
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return "", nil, err
		}
		defer dec.Close()
		out, err := dec.DecodeAll(data, nil)
		if err != nil {
			return "", nil, fmt.Errorf("%s: not a valid zstd file: %w", name, err)
		}
		return strings.TrimSuffix(name, ".zst"), out, nil
	case strings.HasSuffix(name, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return "", nil, fmt.Errorf("%s: not a valid gzip file: %w", name, err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			return "", nil, fmt.Errorf("%s: not a valid gzip file: %w", name, err)
		}
		return strings.TrimSuffix(name, ".gz"), out, nil
	}
	return name, data, nil
}

func detectFormat(name string, data []byte) (Format, error) {
	first := firstNonSpace(data)
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".ndjson":
		return FormatJSONL, nil
	case ".json":
		// Plenty of ".json" files are really JSONL.
		if first == '{' {
			return FormatJSONL, nil
		}
		return FormatJSON, nil
	case ".csv":
		return FormatCSV, nil
	case ".tsv":
		return FormatTSV, nil
	}
	switch first {
	case '[':
		return FormatJSON, nil
	case '{':
		return FormatJSONL, nil
	}
	return "", errors.New("unknown file type; name it .jsonl, .json, .csv or .tsv")
}

func firstNonSpace(data []byte) byte {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

func decodeJSONL(name string, data []byte, opts Options) ([]Item, error) {
	// One decoder over the whole stream is much cheaper than one per line;
	// the checks below keep it to exactly one object per line.
	lines := newLineIndex(data)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var items []Item
	for {
		start := skipSpace(data, int(dec.InputOffset()))
		if start == len(data) {
			break
		}
		line := lines.line(start)
		fail := func(err error) error {
			return &ParseError{Source: name, Line: line, Record: len(items), Err: err}
		}
		if data[start] != '{' {
			end := bytes.IndexByte(data[start:], '\n')
			if end < 0 {
				end = len(data) - start
			}
			return nil, fail(fmt.Errorf("want a JSON object, got %s", describeJSON(data[start:start+end])))
		}
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = errTruncated
			} else {
				err = fmt.Errorf("bad JSON: %v", err)
			}
			return nil, fail(err)
		}
		end := int(dec.InputOffset())
		if rest := nextLineRest(data, end); len(bytes.TrimSpace(rest)) > 0 {
			return nil, fail(errors.New("bad JSON: text after the object on the same line"))
		}
		if lines.line(end-1) != line {
			return nil, fail(errors.New("a JSON object spread over several lines; JSONL wants one object per line (or use a .json array)"))
		}
		it, err := recordToItem(rec, len(items), opts)
		if err != nil {
			return nil, fail(err)
		}
		items = append(items, it)
	}
	return items, nil
}

// nextLineRest is what follows offset i up to the end of its line.
func nextLineRest(data []byte, i int) []byte {
	rest := data[i:]
	if j := bytes.IndexByte(rest, '\n'); j >= 0 {
		return rest[:j]
	}
	return rest
}

func skipSpace(data []byte, off int) int {
	for off < len(data) {
		switch data[off] {
		case ' ', '\t', '\r', '\n':
			off++
			continue
		}
		break
	}
	return off
}

var errTruncated = errors.New("the JSON object is cut short")

func describeJSON(raw []byte) string {
	switch firstNonSpace(raw) {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 0:
		return "nothing"
	}
	return fmt.Sprintf("%q", clip(string(raw), 20))
}

func decodeJSONArray(name string, data []byte, opts Options) ([]Item, error) {
	lines := newLineIndex(data)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	syntax := func(err error, record int) error {
		var se *json.SyntaxError
		line := 0
		if errors.As(err, &se) {
			line = lines.line(int(se.Offset))
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = errors.New("the file ends inside the JSON array")
		}
		return &ParseError{Source: name, Line: line, Record: record, Err: fmt.Errorf("bad JSON: %w", err)}
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, syntax(err, -1)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		hint := ""
		if d, ok := tok.(json.Delim); ok && d == '{' {
			hint = " (an object keyed by something? convert it to an array of records)"
		}
		return nil, &ParseError{Source: name, Line: 1, Record: -1, Err: fmt.Errorf("want a JSON array of question records%s", hint)}
	}
	var items []Item
	for dec.More() {
		start := skipSeparators(data, int(dec.InputOffset()))
		line := lines.line(start)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, syntax(err, len(items))
		}
		rec, ok := v.(map[string]any)
		if !ok {
			return nil, &ParseError{Source: name, Line: line, Record: len(items), Err: fmt.Errorf("want a JSON object, got %s", jsonKind(v))}
		}
		it, err := recordToItem(rec, len(items), opts)
		if err != nil {
			return nil, &ParseError{Source: name, Line: line, Record: len(items), Err: err}
		}
		items = append(items, it)
	}
	if _, err := dec.Token(); err != nil {
		return nil, syntax(err, len(items))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &ParseError{Source: name, Line: lines.line(int(dec.InputOffset())), Record: -1, Err: errors.New("text after the JSON array")}
	}
	return items, nil
}

func skipSeparators(data []byte, off int) int {
	for off < len(data) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
			continue
		}
		break
	}
	return off
}

// lineIndex maps byte offsets to 1-based line numbers.
type lineIndex struct{ starts []int }

func newLineIndex(data []byte) lineIndex {
	starts := []int{0}
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return lineIndex{starts}
}

func (l lineIndex) line(off int) int {
	lo, hi := 0, len(l.starts)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if l.starts[mid] <= off {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo + 1
}

func decodeCSV(name string, data []byte, sep rune, opts Options) ([]Item, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = sep
	r.ReuseRecord = true
	// Tab-separated exports often carry bare quotes inside cells.
	r.LazyQuotes = sep == '\t'
	header, err := r.Read()
	if err != nil {
		return nil, csvError(name, err, -1)
	}
	header = append([]string(nil), header...)
	cols := map[string]int{}
	for i, h := range header {
		if _, dup := cols[normKey(h)]; !dup {
			cols[normKey(h)] = i
		}
	}
	_, encrypted := cols["canary"]
	var items []Item
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(name, err, len(items))
		}
		line, _ := r.FieldPos(0)
		rec := make(map[string]any, len(row))
		for i, v := range row {
			rec[header[i]] = v
		}
		if encrypted {
			if err := decryptXBenchRecord(rec, header, cols); err != nil {
				return nil, &ParseError{Source: name, Line: line, Record: len(items), Err: err}
			}
		} else {
			listCells(rec, header, cols)
		}
		it, err := recordToItem(rec, len(items), opts)
		if err != nil {
			return nil, &ParseError{Source: name, Line: line, Record: len(items), Err: err}
		}
		items = append(items, it)
	}
	return items, nil
}

// listCells turns answer cells that hold a JSON list (["a", "b"]) into
// lists, the way list columns are commonly exported to CSV.
func listCells(rec map[string]any, header []string, cols map[string]int) {
	for _, k := range append(append([]string{}, answerKeys...), aliasKeys...) {
		i, ok := cols[k]
		if !ok {
			continue
		}
		s := strings.TrimSpace(rec[header[i]].(string))
		if !strings.HasPrefix(s, "[") {
			continue
		}
		var list []any
		if json.Unmarshal([]byte(s), &list) == nil {
			rec[header[i]] = list
		}
	}
}

func csvError(name string, err error, record int) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{Source: name, Line: pe.Line, Record: record, Err: fmt.Errorf("bad CSV: %v", pe.Err)}
	}
	if err == io.EOF {
		err = errors.New("empty file, want a header row")
	}
	return &ParseError{Source: name, Record: record, Err: err}
}

// recordToItem maps one decoded record onto an Item.
func recordToItem(rec map[string]any, index int, opts Options) (Item, error) {
	// Pick, per role, the field whose name ranks first; ties between
	// spellings of one name (ID vs id) go to the smallest original key so
	// the choice does not depend on map order.
	var chosen [numRoles]string
	var rank [numRoles]int
	for r := range rank {
		rank[r] = -1
	}
	for k := range rec {
		r, i := fieldRole(normKey(k))
		if r < 0 {
			continue
		}
		if rank[r] < 0 || i < rank[r] || (i == rank[r] && k < chosen[r]) {
			chosen[r], rank[r] = k, i
		}
	}
	has := func(r int) bool { return rank[r] >= 0 }

	it := Item{Index: index}
	if has(roleID) {
		k := chosen[roleID]
		id, err := scalarString(rec[k])
		if err != nil || strings.TrimSpace(id) == "" {
			return Item{}, fmt.Errorf("field %q: want a non-empty string or number id", k)
		}
		it.ID = id
	} else {
		it.ID = strconv.Itoa(index)
	}

	if !has(roleQuestion) {
		return Item{}, fmt.Errorf("no question field; want one of %s (have %s)", strings.Join(questionKeys, ", "), fieldList(rec))
	}
	k := chosen[roleQuestion]
	q, isString := rec[k].(string)
	if !isString || strings.TrimSpace(q) == "" {
		return Item{}, fmt.Errorf("field %q: want a non-empty string", k)
	}
	it.Question = q

	for _, r := range []int{roleAnswer, roleAlias, roleAug} {
		if !has(r) {
			continue
		}
		a, err := answerStrings(rec[chosen[r]])
		if err != nil {
			return Item{}, fmt.Errorf("field %q: %w", chosen[r], err)
		}
		if r == roleAug {
			it.AugAnswers = a
		} else {
			it.Answers = append(it.Answers, a...)
		}
	}
	// GAIA's test split hides its answers behind "?": a placeholder, not a
	// gold (every prediction would be scored against a question mark).
	if slices.ContainsFunc(it.Answers, isHiddenGold) {
		if !opts.AllowMissingAnswers {
			return Item{}, errors.New(`gold answer is "?", a hidden answer (GAIA's test split); evaluate a split with answers, such as GAIA's validation split`)
		}
		it.Answers = slices.DeleteFunc(it.Answers, isHiddenGold)
	}
	if len(it.Answers) == 0 && !opts.AllowMissingAnswers {
		return Item{}, fmt.Errorf("no gold answer; want a non-empty one of %s (have %s)", strings.Join(answerKeys, ", "), fieldList(rec))
	}

	for k, v := range rec {
		if normKey(k) == "file_name" {
			if f, ok := v.(string); ok && strings.TrimSpace(f) != "" && it.Attachment == "" {
				it.Attachment = strings.TrimSpace(f)
			}
		}
		if r, _ := fieldRole(normKey(k)); r >= 0 && chosen[r] == k {
			continue
		}
		if it.Meta == nil {
			it.Meta = make(map[string]any, len(rec))
		}
		it.Meta[k] = v
	}
	return it, nil
}

func fieldList(rec map[string]any) string {
	if len(rec) == 0 {
		return "no fields"
	}
	names := make([]string, 0, len(rec))
	for k := range rec {
		names = append(names, strconv.Quote(k))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// scalarString renders a JSON scalar the way Python's str() would, since
// the reference scripts compare str(answer).
func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		if x {
			return "True", nil
		}
		return "False", nil
	case nil:
		return "", errors.New("is null")
	}
	return "", fmt.Errorf("want a string or number, got %s", jsonKind(v))
}

// answerStrings accepts a string, a number, a bool, a list of those, or
// answer objects: TriviaQA's {"Value", "Aliases"} and SQuAD's {"text"}.
func answerStrings(v any) ([]string, error) {
	var out []string
	add := func(s string) {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	var one func(v any, depth int) error
	one = func(v any, depth int) error {
		switch x := v.(type) {
		case []any:
			if depth > 0 {
				return errors.New("nested lists are not answers")
			}
			for _, e := range x {
				if err := one(e, depth+1); err != nil {
					return err
				}
			}
			return nil
		case map[string]any:
			fields := map[string]any{}
			for k, e := range x {
				fields[normKey(k)] = e
			}
			found := false
			for _, k := range []string{"value", "text", "answer"} {
				if s, ok := fields[k]; ok {
					str, err := scalarString(s)
					if err != nil {
						return fmt.Errorf("answer object field %q %v", k, err)
					}
					add(str)
					found = true
					break
				}
			}
			if al, ok := fields["aliases"].([]any); ok {
				for _, a := range al {
					if s, err := scalarString(a); err == nil {
						add(s)
						found = true
					}
				}
			}
			if !found {
				return errors.New(`answer object has none of "value", "text", "answer", "aliases"`)
			}
			return nil
		}
		s, err := scalarString(v)
		if err != nil {
			return err
		}
		add(s)
		return nil
	}
	if err := one(v, 0); err != nil {
		return nil, err
	}
	return out, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func checkUniqueIDs(name string, items []Item) error {
	seen := make(map[string]int, len(items))
	for i, it := range items {
		if j, dup := seen[it.ID]; dup {
			return &ParseError{Source: name, Record: i, Err: fmt.Errorf("duplicate id %q (also record %d); ids must be unique so results can be matched to questions", it.ID, j)}
		}
		seen[it.ID] = i
	}
	return nil
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func isHiddenGold(a string) bool { return strings.TrimSpace(a) == "?" }
