"""Writes porter_golden.tsv: word<TAB>stem pairs from the Snowball project's
implementation of the original Porter algorithm (PyPI snowballstemmer 3.1.1,
algorithm "porter"), over the lower-case ASCII words of the shipped HotpotQA
and FlashRAG corpora. The Go stemmer is tested against this file.

    python3 -m venv /tmp/venv-retrieval
    /tmp/venv-retrieval/bin/pip install snowballstemmer==3.1.1
    /tmp/venv-retrieval/bin/python retrieval/testdata/gen_porter_golden.py
"""
import json
import os
import re

import snowballstemmer

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "..", "dataset", "data")
words = set()
with open(os.path.join(data, "hotpotqa-hipporag-100", "corpus.json")) as f:
    for title, sentences in json.load(f).items():
        words.update(re.findall(r"[a-z]+", (title + " " + "".join(sentences)).lower()))
with open(os.path.join(data, "flashrag-wiki18-sample", "corpus_sample1000.jsonl")) as f:
    for line in f:
        words.update(re.findall(r"[a-z]+", json.loads(line)["contents"].lower()))
stemmer = snowballstemmer.stemmer("porter")
with open(os.path.join(here, "porter_golden.tsv"), "w") as out:
    # Words of one or two letters are left alone by Porter's own reference
    # implementation (and Lucene's), unlike Snowball; they are not compared.
    for w in sorted(w for w in words if len(w) >= 3):
        out.write(f"{w}\t{stemmer.stemWord(w)}\n")
