package dataset

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// embedded holds dataset/data compressed with zstd (see gen_embedded.go),
// so a built binary carries every shipped set and corpus.
//
//go:embed embedded
var embedded embed.FS

// Builtin describes a dataset shipped inside the binary.
type Builtin struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases,omitempty"`
	// Description is one line for --help listings.
	Description string `json:"description"`
	// Records is the number of questions.
	Records int `json:"records"`
	// Corpus names the shipped corpus that answers the questions offline;
	// empty when they need a Wikipedia dump or the web.
	Corpus string `json:"corpus,omitempty"`
	// File is the path under dataset/data.
	File string `json:"file"`
	// Licence as stated by the source (details in the file's PROVENANCE.md).
	Licence string `json:"licence"`
}

var builtins = []Builtin{
	{Name: "bamboogle", Records: 125, File: "bamboogle/test.jsonl", Licence: "CC BY-SA 4.0 (FlashRAG datasets)",
		Description: "Bamboogle: 125 two-hop questions that search engines did not answer directly (FlashRAG copy)"},
	{Name: "frames", Records: 824, File: "frames/frames.jsonl", Licence: "Apache-2.0",
		Description: "FRAMES: 824 multi-constraint questions over 2-15 Wikipedia articles (ASearcher web test set)"},
	{Name: "nq", Records: 1000, File: "nq/test_sample1000.jsonl", Licence: "CC BY-SA (NQ), FlashRAG datasets",
		Description: "Natural Questions (NQ-open) test, seeded 1,000-question sample (not ASearcher's NQ_rand1000 draw)"},
	{Name: "nq-full", Records: 3610, File: "nq/test_full_3610.json", Licence: "CC BY-SA (NQ)",
		Description: "Natural Questions (NQ-open) test, all 3,610 questions; ids are row numbers"},
	{Name: "triviaqa", Records: 1000, File: "triviaqa/test_sample1000.jsonl", Licence: "Apache-2.0 (TriviaQA), FlashRAG datasets",
		Description: "TriviaQA test, seeded 1,000-question sample with full alias lists"},
	{Name: "popqa", Records: 1000, File: "popqa/test_sample1000.jsonl", Licence: "MIT (PopQA), FlashRAG datasets",
		Description: "PopQA, seeded 1,000-question sample of entity questions with Wikidata metadata"},
	{Name: "hotpotqa", Records: 7405, File: "hotpotqa-dev-qa/dev_7405.json", Licence: "CC BY-SA 4.0",
		Description: "HotpotQA distractor dev, 7,405 multi-hop questions (no context; ids are row numbers)"},
	{Name: "2wiki", Aliases: []string{"2wikimultihopqa"}, Records: 12576, File: "2wikimultihopqa-dev-qa/dev_12576.json", Licence: "Apache-2.0",
		Description: "2WikiMultihopQA dev, 12,576 multi-hop questions (no context; ids are row numbers)"},
	{Name: "musique", Records: 2417, File: "musique-dev-qa/dev_2417.json", Licence: "CC BY 4.0",
		Description: "MuSiQue-Ans dev, 2,417 answerable 2-4 hop questions (no context; ids are row numbers)"},
	{Name: "hotpotqa-hipporag-100", Records: 100, File: "hotpotqa-hipporag-100/questions.json", Corpus: "hotpotqa-hipporag-100", Licence: "MIT (HippoRAG), CC BY-SA 4.0 (HotpotQA)",
		Description: "100 HotpotQA questions with supporting facts, answerable offline from the shipped hotpotqa-hipporag-100 corpus"},
	{Name: "flashrag-nq-17", Records: 17, File: "flashrag-wiki18-sample/quickstart_nq_test17.jsonl", Licence: "MIT (FlashRAG)",
		Description: "FlashRAG quick-start: 17 NQ questions, a smoke test"},
	{Name: "xbench-deepsearch-2505", Aliases: []string{"xbench-deepsearch"}, Records: 100, File: "xbench-deepsearch/DeepSearch-2505.csv", Licence: "MIT; do not republish the plain text",
		Description: "xBench-DeepSearch 2505: 100 Chinese deep-search questions, needs the web (ASearcher test set; decrypted in memory)"},
	{Name: "xbench-deepsearch-2510", Records: 100, File: "xbench-deepsearch/DeepSearch-2510.csv", Licence: "MIT; do not republish the plain text",
		Description: "xBench-DeepSearch 2510: 100 newer Chinese deep-search questions, needs the web (decrypted in memory)"},
}

// errGAIANotShipped explains the one benchmark users ask for by name that we
// may not ship.
var errGAIANotShipped = errors.New("GAIA is not shipped: its terms forbid resharing it. Accept them on Hugging Face (gaia-benchmark/GAIA), save the 103 text-only validation questions as JSON or JSONL (fields Question and Final answer, or question and answer), and pass the file's path")

// Builtins lists the shipped datasets in a stable order.
func Builtins() []Builtin { return slices.Clone(builtins) }

// LookupBuiltin finds a shipped dataset by name or alias, ignoring case.
func LookupBuiltin(name string) (Builtin, bool) {
	return lookupNamed(builtins, name, func(b Builtin) (string, []string) { return b.Name, b.Aliases })
}

// lookupNamed finds the entry of list whose name or an alias equals name,
// ignoring case.
func lookupNamed[T any](list []T, name string, names func(T) (string, []string)) (T, bool) {
	for _, e := range list {
		n, aliases := names(e)
		if strings.EqualFold(n, name) || slices.ContainsFunc(aliases, func(a string) bool { return strings.EqualFold(a, name) }) {
			return e, true
		}
	}
	var zero T
	return zero, false
}

// BuiltinHelp is the list of shipped datasets for a command's --help.
func BuiltinHelp() string {
	var b strings.Builder
	b.WriteString("Built-in datasets (pass a file path for anything else):\n")
	for _, d := range builtins {
		name := d.Name
		if len(d.Aliases) > 0 {
			name += " (" + strings.Join(d.Aliases, ", ") + ")"
		}
		fmt.Fprintf(&b, "  %-26s %6d  %s\n", name, d.Records, d.Description)
	}
	b.WriteString("  gaia: not shipped (its terms forbid resharing); pass your own copy as a file\n")
	return b.String()
}

// Load reads a built-in dataset by name, or a dataset file by path. A name
// with a path separator or a file extension is always a path.
func Load(nameOrPath string, opts Options) (*Set, error) {
	looksLikePath := strings.ContainsAny(nameOrPath, `/\`) || filepath.Ext(nameOrPath) != ""
	if !looksLikePath {
		if b, ok := LookupBuiltin(nameOrPath); ok {
			return loadBuiltin(b, opts)
		}
		if strings.EqualFold(nameOrPath, "gaia") {
			return nil, errGAIANotShipped
		}
		if _, err := os.Stat(nameOrPath); err != nil {
			return nil, fmt.Errorf("no built-in dataset or file named %q; built-ins: %s", nameOrPath, builtinNames())
		}
	}
	return LoadFile(nameOrPath, opts)
}

// maxFileBytes guards against pointing the loader at something that is not
// a QA file at all (a corpus dump, a disk image).
const maxFileBytes = 2 << 30

// LoadFile reads a dataset file (see Decode for the layouts).
func LoadFile(path string, opts Options) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("dataset: read %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("dataset: %s is over 2 GiB; a QA file should be far smaller", path)
	}
	base, plain, err := decompress(path, data)
	if err != nil {
		return nil, err
	}
	items, err := decodePlain(path, base, plain, opts)
	if err != nil {
		return nil, err
	}
	return &Set{Name: baseName(path), Source: path, SHA256: sha256Hex(plain), Items: items}, nil
}

func loadBuiltin(b Builtin, opts Options) (*Set, error) {
	data, err := readEmbedded(b.File)
	if err != nil {
		return nil, err
	}
	items, err := decodePlain("builtin:"+b.Name+"/"+filepath.Base(b.File), b.File, data, opts)
	if err != nil {
		return nil, err
	}
	return &Set{Name: b.Name, Source: "builtin:" + b.Name, SHA256: sha256Hex(data), Corpus: b.Corpus, Items: items}, nil
}

// readEmbedded returns the decompressed bytes of a file under dataset/data.
func readEmbedded(file string) ([]byte, error) {
	z, err := embedded.ReadFile("embedded/" + file + ".zst")
	if err != nil {
		return nil, fmt.Errorf("dataset: %s is not embedded in this binary: %w", file, err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	out, err := dec.DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("dataset: embedded %s is damaged: %w", file, err)
	}
	return out, nil
}

func builtinNames() string {
	names := make([]string, len(builtins))
	for i, b := range builtins {
		names[i] = b.Name
	}
	return strings.Join(names, ", ")
}

func baseName(path string) string {
	name := filepath.Base(path)
	for _, ext := range []string{".zst", ".gz", ".jsonl", ".ndjson", ".json", ".csv", ".tsv"} {
		name = strings.TrimSuffix(name, ext)
	}
	return name
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
