// Package reward scores answers: the normalisers and metrics of the official
// QA scripts (SQuAD EM and token F1, HotpotQA/2Wiki/MuSiQue/FlashRAG
// variants, ASearcher's set F1 with its CJK rule, cover EM), answer
// extraction from <answer> tags, ASearcher's per-generation format gate, the
// training reward built from them (augmented answers, invalid-question
// penalty), and an LLM judge with bounded retries and a persistent cache.
//
// Every metric is checked against the outputs of the original Python scripts
// (dataset/data/eval-scripts/reference-vectors.jsonl and
// testdata/conformance.jsonl); docs/metrics.md defines each one.
package reward
