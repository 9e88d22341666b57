#!/usr/bin/env python3
"""Generate the tokenizer package's golden fixtures from the reference
implementations: Hugging Face `tokenizers` (encode/decode) and `transformers`
(apply_chat_template on the real Qwen templates).

Setup (once):
    python3 -m venv /tmp/venv-tokenizer
    /tmp/venv-tokenizer/bin/pip install tokenizers transformers jinja2 zstandard

Run from the repository root:
    /tmp/venv-tokenizer/bin/python tokenizer/testdata/gen_fixtures.py [--qwen-json PATH]

--qwen-json points at an uncompressed Qwen tokenizer.json (see
qwen3/PROVENANCE.md for where it comes from); by default the committed
qwen3/tokenizer.json.zst is used. The trained-vocabulary fixtures need
trained/tokenizer.json, written by
    TOKENIZER_UPDATE_GOLDEN=1 go test ./tokenizer -run TestTrainGolden
so run that first when the trainer changes.

Every output is deterministic: strings come from a seeded generator.
"""

import argparse
import json
import os
import random
import sys
import tempfile

import zstandard
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
REPO = os.path.dirname(PKG)
WIKI = os.path.join(REPO, "dataset", "data", "flashrag-wiki18-sample", "corpus_sample1000.jsonl")


def write_zst_jsonl(path, rows):
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    with open(path, "wb") as f:
        f.write(zstandard.ZstdCompressor(level=19).compress(data))
    print(f"wrote {path}: {len(rows)} rows", file=sys.stderr)


def load_qwen_json(path):
    if path:
        with open(path, "rb") as f:
            return f.read()
    with open(os.path.join(HERE, "qwen3", "tokenizer.json.zst"), "rb") as f:
        return zstandard.ZstdDecompressor().decompress(f.read(), max_output_size=1 << 30)


# ---------------------------------------------------------------- strings

HAND = [
    "", " ", "  ", "\n", "\n\n", "\r\n", "\t", " \t\n", "a", "A", "hello", "Hello world", "Hello, world!",
    "hello  world", "hello   world", "hello \n world", "hello\n\n\nworld", "trailing space ", "trailing spaces   ",
    "   leading spaces", "\n\nleading newlines", "tabs\t\tinside\t", "mixed \t \n \r\n whitespace",
    "don't", "DON'T", "we're they've I'm you'll he'd it's", "'s 't 're 've 'm 'll 'd", "'S'T'RE'VE'M'LL'D",
    "rock'n'roll", "o'clock", "don'ſ go", "it'K", "'", "''", "'''s", "'hello", " 'quoted' ",
    "12345", "3.14159", "1,000,000", "-42", "+7e10", "0x1F", "2024-06-01T12:00:00Z", "v1.2.3", "ⅫⅣ ² ³ ½", "１２３", "٣٤٥",
    "你好", "你好，世界！", "我爱自然语言处理。", "中文 English 混合 text", "日本語のテキストです。", "한국어 텍스트", "Ελληνικά κείμενο",
    "Русский текст", "العربية", "हिन्दी पाठ", "ภาษาไทย", "עברית",
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "emoji 😀 in text 🎉!", "❤️", "🤔💭", "a😀b", "😀😀😀😀😀",
    "e\u0301", "cafe\u0301", "\u1100\u1161\u11a8", "A\u030a", "ﬁ ligature", "ǅ", "Å", "\u212a", "\u00c5",
    "\u00a0nbsp", "x\u00a0y", "\u3000\u3000中文", "a\u2028b", "a\u2029b", "x\u0085y", "\u180e a", "zero\u200bwidth",
    "\ufeffbom", "\ufffd", "tab\x0bvt", "ff\x0cff", "\x00nul", "\x7fdel", "\x1b[31mred\x1b[0m",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<think>\nreasoning\n</think>\n\nanswer", "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
    "<tool_response>\nresult\n</tool_response>", "<|im_start<|im_end|>", "<|im_end|><|im_end|>", "x<|im_end|>y",
    " <|im_end|> ", "<|IM_END|>", "<|im_end", "im_end|>", "<|fim_prefix|>def<|fim_suffix|>x<|fim_middle|>",
    "<search>query</search>", "<access>https://example.com</access>", "<answer>42</answer>",
    "def f(x):\n    return x * 2\n", "if (a && b) { return c; }", "for i in range(10):\n\tprint(i)",
    "func main() {\n\tfmt.Println(\"hi\")\n}\n", "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "<html><body><p class=\"x\">Hi</p></body></html>", "SELECT * FROM t WHERE id = 1;", "x += 1; y -= 2; z *= 3",
    "https://example.com/path?query=1&b=2#frag", "user@example.com", "C:\\Windows\\System32", "~/.config/file.yaml",
    "a" * 300, "ab" * 200, "x" * 1000, " " * 100, "\n" * 50, "-" * 80, "=" * 64, "!" * 33,
    "supercalifragilisticexpialidocious", "Pneumonoultramicroscopicsilicovolcanoconiosis", "antidisestablishmentarianism",
    "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGxvbmcgYmFzZTY0IHN0cmluZyB3aXRob3V0IGFueSBzcGFjZXMgaW4gaXQ=",
    "这是一个很长的中文句子没有任何标点符号用来测试长片段的合并算法是否与参考实现完全一致包括堆算法和扫描算法的切换点" * 2,
    "ThisIsAVeryLongCamelCaseIdentifierThatKeepsGoingAndGoingWithoutAnySpacesAtAllToTestTheHeapPath",
    "1234567890" * 20,
]

WORDS = ("the of and to in is was for on that with as by at from his her it an were which are this be or has had "
         "search answer question page result model token python function return value error agent tool call "
         "Wikipedia Paris London 1984 COVID-19 GPT-4 Qwen2.5 don't can't I'm").split()
CJK = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研质"
EMOJI = ["😀", "😂", "🎉", "👍", "🏽", "❤️", "🔥", "✨", "🚀", "👨‍💻", "🇫🇷", "🤖", "📚", "⭐", "✅"]
PUNCT = list(".,;:!?()[]{}<>\"'`~@#$%^&*-_=+|\\/…—–“”‘’«»。，、！？：；（）【】")
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\n\n", " \n", "\u00a0", "\u3000", "   ", "\u2003"]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
            "<tool_response>", "</tool_response>", "<|vision_pad|>"]
COMBINING = ["\u0301", "\u0300", "\u0308", "\u0327", "\u030a", "\u0323"]
OTHER = ["é", "ñ", "ü", "ß", "ø", "ł", "ş", "ğ", "ı", "İ", "Σ", "ω", "Ж", "ж", "ſ", "K", "Ⅻ", "½", "²", "٣", "ℕ", "∑", "√", "∞"]


def random_string(rng):
    parts = []
    for _ in range(rng.randint(1, 25)):
        kind = rng.random()
        if kind < 0.30:
            w = rng.choice(WORDS)
            parts.append(w.upper() if rng.random() < 0.1 else w.capitalize() if rng.random() < 0.2 else w)
        elif kind < 0.45:
            parts.append(rng.choice(SPACES))
        elif kind < 0.55:
            parts.append("".join(rng.choice(CJK) for _ in range(rng.randint(1, 12))))
        elif kind < 0.63:
            parts.append("".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 4))))
        elif kind < 0.70:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 12))))
        elif kind < 0.75:
            parts.append(rng.choice(EMOJI))
        elif kind < 0.79:
            parts.append(rng.choice(SPECIALS))
        elif kind < 0.83:
            parts.append(rng.choice("aeiouc") + rng.choice(COMBINING))
        elif kind < 0.88:
            parts.append(rng.choice(OTHER))
        elif kind < 0.92:
            parts.append("'" + rng.choice(["s", "t", "re", "ve", "m", "ll", "d", "S", "LL", "x"]))
        elif kind < 0.95:
            parts.append(chr(rng.randint(0x20, 0x7E)) * rng.randint(1, 6))
        else:
            parts.append(chr(rng.choice([rng.randint(0xA0, 0x2FF), rng.randint(0x370, 0x1FFF), rng.randint(0x2000, 0x2BFF),
                                         rng.randint(0x3000, 0x30FF), rng.randint(0xAC00, 0xD7A3), rng.randint(0x1F300, 0x1FAFF)])))
    return "".join(parts)


def wiki_passages(n):
    out = []
    with open(WIKI, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line)["contents"])
            if len(out) == n:
                break
    return out


def fidelity_strings():
    rng = random.Random(20240601)
    strings = list(HAND)
    strings += wiki_passages(120)
    strings += [random_string(rng) for _ in range(1000)]
    return strings


# ---------------------------------------------------------------- encode fixtures


def encode_rows(tok, strings):
    rows = []
    for s in strings:
        ids = tok.encode(s).ids
        rows.append({"text": s, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return rows


def decode_rows(tok, rng, n):
    size = tok.get_vocab_size(with_added_tokens=True)
    rows = []
    for _ in range(n):
        ids = [rng.randrange(size) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.5:  # byte tokens produce partial UTF-8
            ids += [rng.randrange(256) for _ in range(rng.randint(1, 4))]
        rng.shuffle(ids)
        rows.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                     "skip_special": tok.decode(ids, skip_special_tokens=True)})
    return rows


# ---------------------------------------------------------------- chat fixtures

TOOLS = [
    {"type": "function", "function": {"name": "search", "description": "Search the web for a query.",
                                      "parameters": {"type": "object", "properties": {
                                          "query": {"type": "string", "description": "what to look for"},
                                          "topk": {"type": "integer", "default": 5, "minimum": 1.0}},
                                          "required": ["query"]}}},
    {"type": "function", "function": {"name": "access", "description": "Open a URL — returns \"text\".",
                                      "parameters": {"type": "object", "properties": {"url": {"type": "string"}},
                                                     "required": ["url"], "ratio": 0.00001, "big": 1e16}}},
]


def msg(role, content, reasoning=None, calls=None):
    m = {"role": role, "content": content}
    if reasoning is not None:
        m["reasoning_content"] = reasoning
    if calls is not None:
        m["tool_calls"] = calls
    return m


def call(name, args):
    return {"name": name, "arguments": args}


CONVERSATIONS = {
    "single_user": [msg("user", "What is the capital of France?")],
    "system_user": [msg("system", "You are a search agent."), msg("user", "Who wrote Hamlet?")],
    "multi_turn": [msg("system", "Be brief."), msg("user", "Hi"), msg("assistant", "Hello! How can I help?"),
                   msg("user", "Tell me a joke.")],
    "assistant_last": [msg("user", "2+2?"), msg("assistant", "4")],
    "think_in_content": [msg("user", "Why is the sky blue?"),
                         msg("assistant", "<think>\nRayleigh scattering.\n</think>\n\nBecause of Rayleigh scattering."),
                         msg("user", "And sunsets?")],
    "think_last_turn": [msg("user", "Why is the sky blue?"),
                        msg("assistant", "<think>\nRayleigh scattering.\n</think>\n\nBecause of Rayleigh scattering.")],
    "reasoning_field": [msg("user", "Compute 3*7."), msg("assistant", "21", reasoning="\n3 times 7 is 21.\n")],
    "reasoning_after_query": [msg("user", "q1"), msg("assistant", "a1", reasoning="r1"), msg("user", "q2"),
                              msg("assistant", "a2", reasoning="r2")],
    "tool_flow": [msg("system", "Use tools."), msg("user", "Find the population of Paris."),
                  msg("assistant", "", calls=[call("search", {"query": "Paris population", "topk": 3})]),
                  msg("tool", "Paris has 2.1 million inhabitants."),
                  msg("assistant", "About 2.1 million.")],
    "tool_flow_no_system": [msg("user", "Open example.com"),
                            msg("assistant", "Let me open it.", calls=[call("access", {"url": "https://example.com"})]),
                            msg("tool", "Example Domain"), msg("user", "Thanks")],
    "parallel_tools": [msg("user", "Compare A and B."),
                       msg("assistant", "", calls=[call("search", {"query": "A"}), call("search", {"query": "B"})]),
                       msg("tool", "A result"), msg("tool", "B result")],
    "tool_args_string": [msg("user", "go"),
                         msg("assistant", "", calls=[call("search", "{\"query\": \"raw string args\"}")])],
    "tool_response_user": [msg("user", "start"), msg("assistant", "<think>x</think>ok"),
                           msg("user", "<tool_response>\nobs\n</tool_response>"),
                           msg("assistant", "<think>\ny\n</think>\n\ndone")],
    "unicode": [msg("system", "你是一个搜索助手。"), msg("user", "巴黎的人口是多少？😀"),
                msg("assistant", "大约210万。", calls=[call("search", {"query": "巴黎 人口", "lang": "zh", "n": 2.5})])],
    "second_system": [msg("user", "hi"), msg("system", "mid-conversation system"), msg("user", "again")],
    "empty_content": [msg("user", ""), msg("assistant", "")],
    "nested_args": [msg("user", "x"), msg("assistant", "calling", calls=[call("search", {
        "query": "q \"quoted\" \\ slash \n newline \t tab \u0001", "filters": {"year": [2020, 2021], "ok": True, "none": None},
        "weights": [0.1, 1.0, -0.0, 1e-7, 123456789012345678901234567890, 3.0e20]})])],
}

OPTIONS = [
    {"add_generation_prompt": False},
    {"add_generation_prompt": True},
    {"add_generation_prompt": True, "disable_thinking": True},
    {"add_generation_prompt": True, "tools": True},
]


def hf_messages(conv):
    out = []
    for m in conv:
        h = {"role": m["role"], "content": m["content"]}
        if "reasoning_content" in m:
            h["reasoning_content"] = m["reasoning_content"]
        if "tool_calls" in m:
            h["tool_calls"] = [{"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                               for c in m["tool_calls"]]
        out.append(h)
    return out


def chat_rows(tok, templates):
    rows = []
    for fmt, template in templates.items():
        for name, conv in CONVERSATIONS.items():
            for opt in OPTIONS:
                kwargs = {"add_generation_prompt": opt["add_generation_prompt"]}
                if opt.get("disable_thinking"):
                    kwargs["enable_thinking"] = False
                if opt.get("tools"):
                    kwargs["tools"] = TOOLS
                text = tok.apply_chat_template(hf_messages(conv), chat_template=template, tokenize=False, **kwargs)
                rows.append({"format": fmt, "name": name, "messages": conv,
                             "add_generation_prompt": opt["add_generation_prompt"],
                             "disable_thinking": bool(opt.get("disable_thinking")),
                             "tools": TOOLS if opt.get("tools") else None,
                             "text": text, "ids": tok(text, add_special_tokens=False)["input_ids"]})
    return rows


# ---------------------------------------------------------------- trained-vocabulary variants


def variants(trained):
    """Tokenizer.json files that exercise the loader's options, derived from
    the small trained vocabulary so they stay tiny."""
    out = {}
    v = json.loads(json.dumps(trained))
    v["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in v["model"]["merges"]]
    v["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}]}
    v["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = (
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
    next_id = max(t["id"] for t in v["added_tokens"]) + 1
    for content, extra in [("<mask>", {"lstrip": True, "rstrip": True}), ("[W]", {"single_word": True}),
                           ("ﬁx", {"normalized": True}), ("<sep>", {"rstrip": True}), ("<cls>", {"lstrip": True})]:
        tok = {"id": next_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
               "normalized": False, "special": True}
        tok.update(extra)
        v["added_tokens"].append(tok)
        next_id += 1
    out["variant_llama3_nfkc"] = v

    g = json.loads(json.dumps(trained))
    g["normalizer"] = None
    g["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    out["variant_gpt2"] = g
    return out


VARIANT_EXTRA = ["a <mask> b", "a<mask>b", "x  <mask>  y", "[W] w[W] [W]x ([W])", "ﬁx fix ﬁ", "１２３４５ ①②", "a <sep>  b <cls>",
                 "  <cls>   <sep>  ", "hello world", " leading", "it's", "12345678"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qwen-json", help="uncompressed Qwen tokenizer.json (default: the committed .zst)")
    args = ap.parse_args()

    qwen_bytes = load_qwen_json(args.qwen_json)
    tok = Tokenizer.from_str(qwen_bytes.decode())
    strings = fidelity_strings()
    write_zst_jsonl(os.path.join(HERE, "qwen3", "encode.jsonl.zst"), encode_rows(tok, strings))
    write_zst_jsonl(os.path.join(HERE, "qwen3", "decode.jsonl.zst"), decode_rows(tok, random.Random(7), 300))

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tokenizer.json")
        with open(path, "wb") as f:
            f.write(qwen_bytes)
        fast = PreTrainedTokenizerFast(tokenizer_file=path)
    with open(os.path.join(HERE, "qwen3", "tokenizer_config.json"), encoding="utf-8") as f:
        qwen3_template = json.load(f)["chat_template"]
    with open(os.path.join(PKG, "templates", "qwen2.5.jinja"), encoding="utf-8") as f:
        qwen25_template = f.read()
    write_zst_jsonl(os.path.join(HERE, "chat.jsonl.zst"),
                    chat_rows(fast, {"qwen3": qwen3_template, "qwen2.5": qwen25_template}))

    trained_path = os.path.join(HERE, "trained", "tokenizer.json")
    if not os.path.exists(trained_path):
        print(f"skipping trained fixtures: {trained_path} is missing (see the header)", file=sys.stderr)
        return
    with open(trained_path, encoding="utf-8") as f:
        trained_json = json.load(f)
    trained = Tokenizer.from_file(trained_path)
    rows = encode_rows(trained, strings)
    write_zst_jsonl(os.path.join(HERE, "trained", "encode.jsonl.zst"), rows)
    for name, spec in variants(trained_json).items():
        vt = Tokenizer.from_str(json.dumps(spec))
        with open(os.path.join(HERE, "trained", name + ".json"), "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False)
        write_zst_jsonl(os.path.join(HERE, "trained", name + ".jsonl.zst"), encode_rows(vt, VARIANT_EXTRA + strings[:400]))


if __name__ == "__main__":
    main()
