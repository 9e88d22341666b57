package dataset

import (
	"context"
	"testing"
)

// BenchmarkLoadBuiltin decompresses and decodes each shipped set, what
// `asearcher eval --data NAME` pays once per dataset.
func BenchmarkLoadBuiltin(b *testing.B) {
	for _, name := range []string{"bamboogle", "nq", "triviaqa", "hotpotqa", "2wiki", "hotpotqa-hipporag-100", "xbench-deepsearch-2505"} {
		bi, _ := LookupBuiltin(name)
		raw, err := readEmbedded(bi.File)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := Load(name, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bi.Records), "ns/record")
		})
	}
}

// BenchmarkDecode separates decoding from decompression.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct{ name, file string }{
		{"jsonl", "nq/test_sample1000.jsonl"},
		{"json-array", "2wikimultihopqa-dev-qa/dev_12576.json"},
		{"xbench-csv", "xbench-deepsearch/DeepSearch-2505.csv"},
	} {
		raw, err := readEmbedded(c.file)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := Decode(c.file, raw, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadCorpus(b *testing.B) {
	for _, c := range Corpora() {
		raw, _ := readEmbedded(c.File)
		b.Run(c.Name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := ReadCorpus(context.Background(), c.Name, func(Passage) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSample(b *testing.B) {
	items := numbered(12576)
	for b.Loop() {
		Sample(items, 1000, 7)
	}
}

// BenchmarkDecompressEmbedded is the price of shipping the data compressed:
// zstd decoding of one embedded file.
func BenchmarkDecompressEmbedded(b *testing.B) {
	for _, file := range []string{"bamboogle/test.jsonl", "2wikimultihopqa-dev-qa/dev_12576.json"} {
		raw, err := readEmbedded(file)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(file, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := readEmbedded(file); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
