package eval

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParseResults: any bytes in results.jsonl give records and a valid
// prefix length, or an error, never a panic; the prefix re-parses to the
// same records, and every record in it re-encodes.
func FuzzParseResults(f *testing.F) {
	f.Add([]byte(`{"dataset":"d","id":"1","sample":0,"prediction":"x","scores":{"em":1}}` + "\n"))
	f.Add([]byte(`{"dataset":"d","id":"1","sample":0}` + "\n" + `{"dataset":"d","id":"1","sam`))
	f.Add([]byte(`{"dataset":"d","id":"1"}` + "\n" + `{"dataset":"d","id":"1"}` + "\n"))
	f.Add([]byte("garbage\n{}\n"))
	f.Add([]byte(`{"judge":{"verdict":"correct","score":1},"meta":{"x":[1,2]}}` + "\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, n, err := parseResults(bytes.NewReader(data))
		if err != nil {
			return
		}
		if n < 0 || n > int64(len(data)) {
			t.Fatalf("valid prefix %d of %d bytes", n, len(data))
		}
		again, n2, err := parseResults(bytes.NewReader(data[:n]))
		if err != nil || n2 != n || len(again) != len(recs) {
			t.Fatalf("prefix re-parse: %v, %d vs %d bytes, %d vs %d records", err, n2, n, len(again), len(recs))
		}
		for i := range recs {
			if _, err := json.Marshal(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
	})
}
