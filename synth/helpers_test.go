package synth

// hotpotCorpus is the shipped corpus, for the tests that build an index of
// it with extra inputs (a page store); the plain index comes from
// internal/testindex.
const hotpotCorpus = "../dataset/data/hotpotqa-hipporag-100/corpus.json"
