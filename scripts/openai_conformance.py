"""Conformance of `asearcher serve model` with the official openai Python SDK.

Run by scripts/openai_conformance.sh against a server on loopback serving a
tiny random model (`asearcher model init`): every call goes through the SDK's
own request building and response parsing (pydantic models), so a field of
the wrong type or shape fails here the way it fails for users.

    python openai_conformance.py BASE_URL API_KEY MODEL

Exits non-zero with a message naming the first check that failed.
"""

import sys
import warnings

import openai

BASE_URL, API_KEY, MODEL = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0, timeout=60)
failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)))
    if not ok:
        failures.append(name)


MSG = [{"role": "user", "content": "Say something."}]

# The SDK warns (pydantic serializer warnings) when a field has the wrong
# type, e.g. logprobs bytes sent as a base64 string: make that an error.
warnings.simplefilter("error")

# models.list and models.retrieve
models = client.models.list()
check("models.list", [m.id for m in models.data] == [MODEL], models)
m = client.models.retrieve(MODEL)
check("models.retrieve", m.id == MODEL and m.object == "model", m)
try:
    client.models.retrieve("no-such-model")
    check("models.retrieve unknown -> NotFoundError", False, "no error")
except openai.NotFoundError as e:
    check("models.retrieve unknown -> NotFoundError", isinstance(e.body, dict) and "message" in e.body, e.body)

# chat with logprobs: bytes are list[int] that decode to the token
chat = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=8, temperature=0,
                                      logprobs=True, top_logprobs=2, extra_body={"ignore_eos": True})
c = chat.choices[0]
check("chat: 8 tokens, finish length", c.finish_reason == "length" and chat.usage.completion_tokens == 8, chat.usage)
content = c.logprobs.content if c.logprobs else []
check("chat logprobs: one entry per token", len(content) == 8, len(content))
ok = all(isinstance(e.bytes, list) and all(isinstance(b, int) for b in e.bytes) for e in content)
check("chat logprobs: bytes are list[int]", ok, [e.bytes for e in content][:3])
joined = b"".join(bytes(e.bytes) for e in content).decode("utf-8", errors="replace")
check("chat logprobs: bytes(...) rebuilds the text", joined == c.message.content, (joined, c.message.content))
check("chat top_logprobs: 2 per token, greedy first",
      all(len(e.top_logprobs) == 2 and e.top_logprobs[0].token == e.token for e in content), content[:1])

# n > 1 and seeds
many = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=4, n=3, seed=7)
check("chat n=3", sorted(ch.index for ch in many.choices) == [0, 1, 2], many.choices)

# streaming chat with n > 1: text per index equals the non-streamed reply
ref = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=6, n=2, temperature=0,
                                     extra_body={"ignore_eos": True})
texts, finish = {}, {}
stream = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=6, n=2, temperature=0, stream=True,
                                        stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
usage = None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for ch in chunk.choices:
        texts[ch.index] = texts.get(ch.index, "") + (ch.delta.content or "")
        if ch.finish_reason:
            finish[ch.index] = ch.finish_reason
check("chat stream n=2: same text as non-streamed",
      all(texts.get(ch.index) == ch.message.content for ch in ref.choices), (texts, [ch.message.content for ch in ref.choices]))
check("chat stream n=2: finish per choice", finish == {0: "length", 1: "length"}, finish)
check("chat stream: usage chunk", usage is not None and usage.completion_tokens == 12, usage)

# completions: token-id prompts, several prompts, streaming them
comp = client.completions.create(model=MODEL, prompt=[[1, 2, 3], [4, 5]], max_tokens=5, temperature=0,
                                 logprobs=2, extra_body={"ignore_eos": True})
check("completions: 2 prompts", len(comp.choices) == 2 and comp.usage.prompt_tokens == 5, comp.usage)
lp = comp.choices[0].logprobs
check("completions logprobs: tokens, token_logprobs, top_logprobs",
      len(lp.tokens) == 5 and len(lp.token_logprobs) == 5 and all(len(t) >= 2 for t in lp.top_logprobs), lp)
stexts = {}
for chunk in client.completions.create(model=MODEL, prompt=[[1, 2, 3], [4, 5]], max_tokens=5, temperature=0,
                                       stream=True, extra_body={"ignore_eos": True}):
    for ch in chunk.choices:
        stexts[ch.index] = stexts.get(ch.index, "") + ch.text
check("completions stream, 2 prompts: same text", stexts == {ch.index: ch.text for ch in comp.choices}, stexts)

# loglikelihood as lm-eval-harness asks for it
ll = client.completions.create(model=MODEL, prompt=[[5, 6, 7, 8]], max_tokens=1, temperature=0, logprobs=1, echo=True,
                               seed=1234)
lp = ll.choices[0].logprobs
ok = (len(lp.token_logprobs) == 5 and lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
      and all(lp.token_logprobs[i] <= max(lp.top_logprobs[i].values()) + 1e-9 for i in range(1, 5)))
check("completions echo + logprobs (lm-eval loglikelihood)", ok, lp)
only = client.completions.create(model=MODEL, prompt=[[5, 6, 7, 8]], max_tokens=0, logprobs=0, echo=True)
check("completions echo with max_tokens 0: prompt only",
      only.usage.completion_tokens == 0 and len(only.choices[0].logprobs.tokens) == 4, only)

# stop strings: the first generated character becomes the stop string
base = client.completions.create(model=MODEL, prompt="ab", max_tokens=6, temperature=0, extra_body={"ignore_eos": True})
first = base.choices[0].text[:1]
if first and first.isprintable():
    st = client.completions.create(model=MODEL, prompt="ab", max_tokens=6, temperature=0, stop=[first],
                                   extra_body={"ignore_eos": True})
    ch = st.choices[0]
    check("stop string: trimmed, finish stop, stop_reason", ch.text == "" and ch.finish_reason == "stop"
          and getattr(ch, "stop_reason", None) == first, ch)
else:
    print("skip stop string check: first generated character is not printable")

# errors: OpenAI-shaped bodies, the SDK's exception classes
for name, call, exc, words in [
    ("max_tokens -1 -> 400", lambda: client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=-1),
     openai.BadRequestError, "max_tokens"),
    ("prompt past the context -> 400 (vLLM wording)",
     lambda: client.completions.create(model=MODEL, prompt=[[1] * 2040], max_tokens=100),
     openai.BadRequestError, "maximum context length"),
    ("unknown model -> 404", lambda: client.chat.completions.create(model="nope", messages=MSG),
     openai.NotFoundError, "does not exist"),
]:
    try:
        call()
        check(name, False, "no error")
    except exc as e:
        check(name, isinstance(e.body, dict) and words in str(e.body.get("message", "")), e.body)
bad = openai.OpenAI(base_url=BASE_URL, api_key="wrong", max_retries=0)
try:
    bad.models.list()
    check("wrong key -> 401", False, "no error")
except openai.AuthenticationError:
    check("wrong key -> 401", True)

if failures:
    print(f"{len(failures)} check(s) failed: {failures}")
    sys.exit(1)
print(f"openai {openai.__version__}: all checks passed")
