package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time this process has used. The development machine is
// shared, so besides wall-clock MB/s the benchmarks report MB per CPU
// second, which other processes do not distort.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds an "MB/cpu-s" metric for bytesPerOp processed per op.
func reportCPU(b *testing.B, start time.Duration, bytesPerOp int64) {
	if used := cpuTime() - start; used > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(b.N)/used.Seconds()/1e6, "MB/cpu-s")
	}
}

// benchCorpusPath is real English text (Wikipedia passages) shipped with the
// repository; TOKENIZER_BENCH_CORPUS overrides it (a JSONL file with a
// "contents" or "text" field per line, or plain text).
func benchCorpus(b *testing.B) []string {
	b.Helper()
	path := os.Getenv("TOKENIZER_BENCH_CORPUS")
	if path == "" {
		path = filepath.Join("..", "dataset", "data", "flashrag-wiki18-sample", "corpus_sample1000.jsonl")
	}
	f, err := os.Open(path)
	if err != nil {
		b.Skipf("benchmark corpus: %v", err)
	}
	defer f.Close()
	var docs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var row struct {
			Contents string `json:"contents"`
			Text     string `json:"text"`
		}
		if json.Unmarshal(sc.Bytes(), &row) == nil && row.Contents+row.Text != "" {
			docs = append(docs, row.Contents+row.Text)
		} else if line := sc.Text(); line != "" {
			docs = append(docs, line)
		}
	}
	return docs
}

func totalBytes(docs []string) int64 {
	n := 0
	for _, d := range docs {
		n += len(d)
	}
	return int64(n)
}

// BenchmarkEncode is single-threaded encoding of the corpus, one call per
// document (MB/s of UTF-8 input).
func BenchmarkEncode(b *testing.B) {
	tok := qwen(b)
	docs := benchCorpus(b)
	b.SetBytes(totalBytes(docs))
	b.ResetTimer()
	start := cpuTime()
	for b.Loop() {
		for _, d := range docs {
			tok.Encode(d)
		}
	}
	reportCPU(b, start, totalBytes(docs))
}

// BenchmarkEncodeChinese encodes Chinese text, whose pieces are long.
func BenchmarkEncodeChinese(b *testing.B) {
	tok := qwen(b)
	text := strings.Repeat("巴黎是法国的首都，也是法国最大的城市。它位于塞纳河畔，人口约两百一十万。东京是日本的首都。", 200)
	b.SetBytes(int64(len(text)))
	start := cpuTime()
	for b.Loop() {
		tok.Encode(text)
	}
	reportCPU(b, start, int64(len(text)))
}

// BenchmarkEncodeParallel encodes the corpus from all cores at once, the
// way concurrent agents share one tokenizer.
func BenchmarkEncodeParallel(b *testing.B) {
	tok := qwen(b)
	docs := benchCorpus(b)
	b.SetBytes(totalBytes(docs))
	b.ResetTimer()
	start := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for _, d := range docs {
				tok.Encode(d)
			}
		}
	})
	reportCPU(b, start, totalBytes(docs))
}

func BenchmarkDecode(b *testing.B) {
	tok := qwen(b)
	docs := benchCorpus(b)
	ids := make([][]int, len(docs))
	for i, d := range docs {
		ids[i] = tok.Encode(d)
	}
	b.SetBytes(totalBytes(docs))
	b.ResetTimer()
	for b.Loop() {
		for _, x := range ids {
			tok.Decode(x)
		}
	}
}

func BenchmarkStreamDecode(b *testing.B) {
	tok := qwen(b)
	docs := benchCorpus(b)
	ids := tok.Encode(strings.Join(docs[:50], "\n"))
	b.SetBytes(int64(len(strings.Join(docs[:50], "\n"))))
	for b.Loop() {
		d := tok.NewStreamDecoder()
		for _, id := range ids {
			d.Add(id)
		}
		d.Flush()
	}
}

// BenchmarkLoadQwen parses the 151k-vocab tokenizer.json (already read
// into memory and decompressed).
func BenchmarkLoadQwen(b *testing.B) {
	data, err := readMaybeCompressed(qwenPath)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	start := cpuTime()
	for b.Loop() {
		if _, err := FromJSON(data); err != nil {
			b.Fatal(err)
		}
	}
	if used := cpuTime() - start; used > 0 {
		b.ReportMetric(used.Seconds()/float64(b.N), "cpu-s/op")
	}
}

func BenchmarkChatTemplate(b *testing.B) {
	tok := qwen(b)
	msgs := []Message{
		{Role: "system", Content: "You are a search agent."},
		{Role: "user", Content: "Who wrote Hamlet?"},
		{Role: "assistant", Content: "<think>\nLook it up.\n</think>\n\n", ToolCalls: []ToolCall{{Name: "search", Arguments: json.RawMessage(`{"query": "Hamlet author"}`)}}},
		{Role: "tool", Content: "Hamlet is a tragedy by William Shakespeare."},
	}
	for b.Loop() {
		if _, err := tok.ApplyChatTemplate(msgs, ChatOptions{AddGenerationPrompt: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTrain(b *testing.B) {
	corpus := trainCorpus(b)
	b.SetBytes(totalBytes(corpus))
	for b.Loop() {
		if _, err := Train(corpus, TrainOptions{VocabSize: 4096}); err != nil {
			b.Fatal(err)
		}
	}
}
