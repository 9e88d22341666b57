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

// FuzzBuildBreakdowns: results with any meta (read from a results file
// someone else wrote) group without a panic: a field is found or refused
// with an error, every record lands in exactly one row per dataset, and
// the rows add up to the records.
func FuzzBuildBreakdowns(f *testing.F) {
	f.Add([]byte(`{"dataset":"d","id":"1","meta":{"hops":2}}`+"\n"+`{"dataset":"e","id":"2","meta":{"hops":"2"}}`+"\n"), "hops")
	f.Add([]byte(`{"dataset":"d","id":"1","meta":{"m":{"p":[1,{"q":null}]}}}`+"\n"), "m.p")
	f.Add([]byte(`{"dataset":"d","id":"1","meta":{"a.b":1}}`+"\n"), "a.b")
	f.Add([]byte(`{"dataset":"d","id":"1","sample":1,"meta":{"t":true}}`+"\n"+`{"dataset":"d","id":"1","meta":{"t":1e400}}`+"\n"), "t")
	f.Fuzz(func(t *testing.T, data []byte, field string) {
		recs, _, err := parseResults(bytes.NewReader(data))
		if err != nil || len(recs) == 0 {
			return
		}
		bs, err := BuildBreakdowns(recs, []string{field}, 5)
		if err != nil {
			return
		}
		samples := 0
		for _, r := range bs[0].Rows {
			if r.Name != "overall" {
				samples += r.Samples
			}
		}
		if samples != len(recs) {
			t.Fatalf("rows hold %d samples of %d records", samples, len(recs))
		}
	})
}
