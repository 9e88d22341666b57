#!/usr/bin/env python3
"""Generate reward/testdata/conformance.jsonl and pyunicode.json.

The Go metrics must agree with the official Python scoring scripts. The 87
hand-picked cases in dataset/data/eval-scripts/reference-vectors.jsonl cover
the known pitfalls; this script adds a few thousand seeded random cases built
from the same troublesome material (articles, punctuation, Unicode
whitespace, final sigma, dotted I, CJK, non-ASCII digits, combining marks,
answer tags) and records what the unmodified upstream functions return.

The upstream scripts are not part of this repository. Point the script at
your own copies (blob ids as in dataset/data/eval-scripts/PROVENANCE.md):

  python3 reward/testdata/make_conformance.py \
      --squad-v11  .../bi-att-flow/squad/evaluate-v1.1.py \
      --hotpot     .../hotpot/hotpot_evaluate_v1.py \
      --wiki2      .../2wikimultihop/2wikimultihop_evaluate_v1.1.py \
      --musique    .../musique/metrics/answer.py \
      --asearcher-eval    .../ASearcher/evaluation/evaluate.py \
      --asearcher-rewards .../ASearcher/AReaL/ASearcher/utils/rewards.py

Python 3.11 was used for the committed fixtures (Unicode 14.0).
"""

import argparse
import importlib.util
import json
import random
import sys
import types
import unicodedata


def stub_modules():
    # Imported at the top of the scripts but not used by the scoring
    # functions called here.
    for name in ["numpy", "tqdm", "ujson", "metrics", "metrics.metric"]:
        mod = types.ModuleType(name)
        sys.modules.setdefault(name, mod)
    sys.modules["tqdm"].tqdm = lambda x, **k: x
    sys.modules["ujson"].loads = json.loads
    sys.modules["ujson"].dumps = json.dumps

    class Metric:
        pass

    sys.modules["metrics.metric"].Metric = Metric


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


WORDS = [
    "a", "an", "the", "A", "An", "The", "THE", "theory", "Anna", "at", "and",
    "yes", "no", "noanswer", "Yes", "No", "True", "False", "true",
    "Paris", "New", "York", "cat", "mat", "David", "Dinkins", "Mark", "Twain",
    "北京", "北京市", "中国", "2025年", "年", "第3届", "三", "〇",
    "ΟΔΟΣ", "Σ", "οδος", "ΑΣ", "ΑΣ.", "Σ'Α", "ΑΣΑ", "ΑΣ\u0301", "ʰΣ", "ς",
    "İstanbul", "ı", "straße", "STRASSE", "ẞ", "café", "cafe\u0301",
    "théâtre", "é", "the\u0301", "ｔｈｅ", "ＡＢＣ", "１２３", "١٢٣", "²³",
    "①②", "₁₂", "፩", "12", "3.14", "1,000", "$5", "506,000", "1990–1995",
    "Jean-Paul", "rock'n'roll", "O'Neill", "snake_case", "U.S.", "a-ha",
    "“Quoted”", "Ǆ", "ǅ", "ǆ", "Ⅻ", "ⅻ", "K", "Å", "ﬁ", "ŉ", "Ω",
    "<answer>", "</answer>", "answer", "Assistant",
]

SEPARATORS = [
    " ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u2003", "\u200b", "\u001f",
    "\u001c", "\u0085", "\u3000", "\u2028", "", ",", ".", "-", "'", "，",
    "。", "·", "’", ":", "\u0301", "\u00ad", "!?", "(", ")", "_", "/",
]

RANGES = [
    (0x21, 0x7E), (0xA0, 0xFF), (0x370, 0x3FF), (0x400, 0x45F),
    (0x4E00, 0x4E40), (0x3000, 0x3020), (0xFF01, 0xFF5E), (0x2000, 0x206F),
    (0x2460, 0x24FF), (0x1D400, 0x1D430), (0x10400, 0x1044F),
]


def random_char(rng):
    lo, hi = rng.choice(RANGES)
    while True:
        c = chr(rng.randint(lo, hi))
        if unicodedata.category(c) != "Cn":
            return c


def random_text(rng, max_tokens=6):
    parts = []
    for _ in range(rng.randint(0, max_tokens)):
        if rng.random() < 0.15:
            tok = "".join(random_char(rng) for _ in range(rng.randint(1, 3)))
        else:
            tok = rng.choice(WORDS)
        if rng.random() < 0.2:
            tok = tok.upper() if rng.random() < 0.5 else tok.lower()
        parts.append(tok)
        parts.append(rng.choice(SEPARATORS))
    if parts and rng.random() < 0.5:
        parts.pop()
    if rng.random() < 0.1:
        parts.insert(0, rng.choice(SEPARATORS))
    return "".join(parts)


def perturb(rng, s):
    ops = rng.randint(0, 3)
    for _ in range(ops):
        op = rng.randint(0, 5)
        if op == 0:
            s = s.upper()
        elif op == 1:
            s = s.lower()
        elif op == 2 and s:
            i = rng.randint(0, len(s))
            s = s[:i] + rng.choice(SEPARATORS) + s[i:]
        elif op == 3:
            s = rng.choice(["the ", "a ", "", "The "]) + s
        elif op == 4:
            s = s + rng.choice(["", ".", " city", " 年", "!", " the"])
        else:
            words = s.split(" ")
            rng.shuffle(words)
            s = " ".join(words)
    return s


def tag_text(rng):
    pieces = [
        "<answer>", "</answer>", "<search>", "</search>", "<access>",
        "</access>", "<think>", "</think>", "Assistant", "assistant",
        "<ANSWER>", "Paris", " Lyon ", "\n", "  ", "\u3000", "x", "北京",
        "<answer><answer>", "</answer></answer>", "<|im_end|>",
    ]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))


def main():
    ap = argparse.ArgumentParser()
    for flag in ["squad-v11", "hotpot", "wiki2", "musique", "asearcher-eval", "asearcher-rewards"]:
        ap.add_argument("--" + flag, required=True)
    ap.add_argument("--seed", type=int, default=20250807)
    ap.add_argument("--cases", type=int, default=1500)
    ap.add_argument("--tag-cases", type=int, default=600)
    ap.add_argument("--out", default="reward/testdata/conformance.jsonl")
    ap.add_argument("--unicode-out", default="reward/testdata/pyunicode.json")
    args = ap.parse_args()

    stub_modules()
    squad = load("squad_v11", args.squad_v11)
    hotpot = load("hotpot", args.hotpot)
    wiki2 = load("wiki2", args.wiki2)
    musique = load("musique_answer", args.musique)
    ev = load("asearcher_eval", args.asearcher_eval)
    rw = load("asearcher_rewards", args.asearcher_rewards)

    rng = random.Random(args.seed)
    with open(args.out, "w", encoding="utf-8") as out:
        for i in range(args.cases):
            pred = random_text(rng)
            golds = []
            for _ in range(rng.randint(1, 3)):
                golds.append(perturb(rng, pred) if rng.random() < 0.6 else random_text(rng, 4))

            hp = hotpot.f1_score(pred, golds[0])
            w2 = {"em": 0, "f1": 0, "prec": 0, "recall": 0}
            wiki2.update_answer(w2, pred, golds)
            tagged = "<answer>" + pred + "</answer>"
            extracted = rw.extract_solution(tagged)
            rec = {
                "id": i,
                "p": pred,
                "g": golds,
                "na": [squad.normalize_answer(x) for x in [pred] + golds],
                "nt": [ev.normalize_text(x) for x in [pred] + golds],
                "squad_v1_1": [
                    float(squad.metric_max_over_ground_truths(squad.exact_match_score, pred, golds)),
                    float(squad.metric_max_over_ground_truths(squad.f1_score, pred, golds)),
                ],
                "hotpot_first_gold": [float(hotpot.exact_match_score(pred, golds[0]))] + [float(x) for x in hp],
                "wiki2": [float(w2["em"]), float(w2["f1"]), float(w2["prec"]), float(w2["recall"])],
                "musique": [
                    float(musique.metric_max_over_ground_truths(musique.compute_exact, pred, golds)),
                    float(musique.metric_max_over_ground_truths(musique.compute_f1, pred, golds)),
                ],
                "asearcher_eval": [
                    float(max(ev.em_check(pred, g) for g in golds)),
                    float(max(ev.f1_score(pred, g) for g in golds)),
                    float(max(ev.cover_exact_match_score_1(pred, g) for g in golds)),
                    float(max(ev.subem_check(pred, g) for g in golds)),
                ],
                "asearcher_rewards": [
                    extracted,
                    float(rw.compute_score_em(tagged, golds)[1]),
                    float(rw.subem_check(extracted, golds)),
                    float(rw.compute_score_f1(tagged, golds)[1]),
                    float(rw.cover_exact_match_score_1(tagged, golds)[1]),
                ],
            }
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        for i in range(args.tag_cases):
            s = tag_text(rng)
            rec = {
                "id": "tag_%d" % i,
                "s": s,
                "rewards_extract": rw.extract_solution(s),
                "eval_extract": ev.extract_solution(s),
                "format_ok": bool(rw.correct_format_fn(0, s)),
            }
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")

    # Python's Unicode behaviour that the Go normalisers re-create.
    lower = {}
    digit_extra = []
    space = []
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        if unicodedata.category(c) == "Cn":
            continue
        if c.lower() != c and cp != 0x3A3:
            lower[cp] = c.lower()
        if c.isdigit() and unicodedata.category(c) != "Nd":
            digit_extra.append(cp)
        if c.isspace():
            space.append(cp)
    with open(args.unicode_out, "w", encoding="utf-8") as f:
        json.dump({
            "unidata_version": unicodedata.unidata_version,
            "lower": {str(k): v for k, v in sorted(lower.items())},
            "isdigit_not_nd": digit_extra,
            "isspace": space,
            "word_is_L_or_N_or_underscore": all(
                (c.isalnum() or c == "_") == (unicodedata.category(c)[0] in "LN" or c == "_")
                for c in map(chr, range(sys.maxunicode + 1))
                if unicodedata.category(c) != "Cn"
            ),
        }, f, ensure_ascii=False, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
