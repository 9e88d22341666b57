package dataset

import (
	"strings"
	"testing"
)

// checkDecoded holds for every successful Decode: questions and answers
// present, ids unique, indexes in order.
func checkDecoded(t *testing.T, items []Item) {
	seen := map[string]bool{}
	for i, it := range items {
		if strings.TrimSpace(it.Question) == "" || len(it.Answers) == 0 || it.Index != i || seen[it.ID] {
			t.Fatalf("item %d invalid: %+v", i, it)
		}
		for _, a := range it.Answers {
			if strings.TrimSpace(a) == "" {
				t.Fatalf("item %d has an empty answer", i)
			}
		}
		seen[it.ID] = true
	}
}

func FuzzDecodeJSONL(f *testing.F) {
	f.Add([]byte("{\"question\": \"q\", \"answer\": \"a\"}\n"))
	f.Add([]byte(`{"id": 3, "question": "q", "golden_answers": ["a", 1, true], "meta": {"x": [1, 2]}}`))
	f.Add([]byte(`{"Question": "q", "Final answer": "a", "task_id": "t"}`))
	f.Add([]byte(`{"question": "q", "answer": {"Value": "v", "Aliases": ["w"]}}`))
	f.Add([]byte("{\"question\": \"q\", \"answer\": }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := Decode("fuzz.jsonl", data, Options{})
		if err == nil {
			checkDecoded(t, items)
		}
	})
}

func FuzzDecodeJSONArray(f *testing.F) {
	f.Add([]byte(`[{"question": "q", "answer": "a"}]`))
	f.Add([]byte(`[{"_id": "x", "question": "q", "answer": "a", "supporting_facts": [["t", 0]]}, {"_id": "y", "question": "r", "answer": ["b"]}]`))
	f.Add([]byte(`[{"question": "q", "answer": "a"}, 5]`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := Decode("fuzz.json", data, Options{})
		if err == nil {
			checkDecoded(t, items)
		}
	})
}

func FuzzDecodeCSV(f *testing.F) {
	key := "canary key"
	f.Add([]byte("question,answer\nq,a\n"))
	f.Add([]byte("id,prompt,answer,canary\n1," + EncryptXBench("问题", key) + "," + EncryptXBench("答案", key) + "," + key + "\n"))
	f.Add([]byte("Prompt\tAnswer\nq\t[\"a\", \"b\"]\n"))
	f.Add([]byte("question,answer\n\"q,a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{"fuzz.csv", "fuzz.tsv"} {
			items, err := Decode(name, data, Options{})
			if err == nil {
				checkDecoded(t, items)
			}
		}
	})
}

func FuzzXBenchRoundTrip(f *testing.F) {
	f.Add("北京市", "BENCHMARK DATA SHOULD NEVER APPEAR")
	f.Add("", "k")
	f.Fuzz(func(t *testing.T, plain, key string) {
		if key == "" || !utf8Valid(plain) {
			return
		}
		got, err := DecryptXBench(EncryptXBench(plain, key), key)
		if err != nil || got != plain {
			t.Fatalf("round trip of %q with %q = %q, %v", plain, key, got, err)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
