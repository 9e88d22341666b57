"""Records how Search-R1's /retrieve request model validates bodies.

Search-R1's retrieval server (search_r1/search/retrieval_server.py) declares

    class QueryRequest(BaseModel):
        queries: List[str]
        topk: Optional[int] = None
        return_scores: bool = False

and FastAPI validates the json.loads()-ed body in pydantic's Python lax mode.
This script runs that model over the bodies below and writes what pydantic
accepts (with the values it produced) or rejects, so the Go server's
coercions can be tested against the real library without Python at test
time. Regenerate with:

    python3 -m venv ~/.cache/asearcher/pydantic-venv
    ~/.cache/asearcher/pydantic-venv/bin/pip install pydantic
    ~/.cache/asearcher/pydantic-venv/bin/python scripts/retrieve_pydantic_fixture.py \
        > retrieval/server/testdata/pydantic_retrieve.json
"""

import json
from typing import List, Optional

import pydantic
from pydantic import BaseModel, ValidationError


class QueryRequest(BaseModel):
    queries: List[str]
    topk: Optional[int] = None
    return_scores: bool = False


TOPK = ['3', '"3"', '" 3 "', '"3.0"', '3.0', '3.5', '"3.5"', 'true', 'false', '"abc"', '""',
        'null', '"0x10"', '"1_000"', '"+3"', '"-1"', '1e2', '"1e2"', '[3]', '{"a": 1}', '"٣"',
        '"03"', '0', '"0"', '-2', '1e400', '12345678901234567890123', '"3."', '".0"', '"3.00"',
        '"3_"', '"_3"', '"1__0"', '"+-3"', '"- 3"', '"3.0e0"', '"\\t3\\n"', '"3.0 "', '"-0"',
        '"3.0_0"', '"0_3"', '"3.000000000001"', '"+3.0"', '"-3.0"', '"\\uff11\\uff12"', '"0.0"',
        '"00"', '"-"', '"+"', '2.0', '-0.0', '1e20', '"99999999999999999999.0"']
SCORES = ['true', 'false', '"true"', '"True"', '"TRUE"', '"yes"', '"y"', '"on"', '"t"', '"1"',
          '1', '0', '"0"', '"no"', '"off"', '"f"', '"n"', '"false"', '1.0', '0.0', '2', '"2"',
          '"maybe"', 'null', '""', '0.5', '" true "', '[true]']
QUERIES = ['["a"]', '"a"', '[1]', '[null]', '[true]', '["a", 2.5]', '[]', '{"0": "a"}', 'null']


def cases():
    for v in TOPK:
        yield '{"queries": ["q"], "topk": %s}' % v
    for v in SCORES:
        yield '{"queries": ["q"], "return_scores": %s}' % v
    for v in QUERIES:
        yield '{"queries": %s}' % v


def main():
    out = []
    for body in cases():
        try:
            req = QueryRequest.model_validate(json.loads(body))
            out.append({"body": body, "ok": True, "queries": req.queries,
                        "topk": req.topk, "return_scores": req.return_scores})
        except ValidationError as e:
            out.append({"body": body, "ok": False, "error": e.errors()[0]["type"]})
    print(json.dumps({"pydantic": pydantic.VERSION, "cases": out}, indent=1))


if __name__ == "__main__":
    main()
