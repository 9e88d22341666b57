#!/usr/bin/env python3
"""Writes engine/serve/testdata/tinker/fwdbwd_request.{pb,json}: one
forward_backward request encoded by the official tinker SDK's own protobuf
writer (tinker.proto.request_conv) and, for comparison, in its JSON form.
engine/serve's TestProtoFixture decodes the .pb and checks it equals the JSON.

usage: python tinker_proto_fixture.py OUTDIR   (with tinker>=0.25 installed)
"""
import json
import os
import sys

import tinker
from tinker import types
from tinker.proto.request_conv import forward_backward_request_to_proto

out = sys.argv[1]
data = [
    types.Datum(
        model_input=types.ModelInput.from_ints([5, 6, 7, 8]),
        loss_fn_inputs={
            "target_tokens": types.TensorData(data=[6, 7, 8, 9], dtype="int64", shape=[4]),
            "logprobs": types.TensorData(data=[-1.5, -2.25, -0.125, -3.0], dtype="float32"),
            "advantages": types.TensorData(data=[1.0, -0.5, 0.0, 2.0], dtype="float32"),
        },
    ),
    types.Datum(
        model_input=types.ModelInput.from_ints([1, 2]),
        loss_fn_inputs={
            "target_tokens": types.TensorData(data=[2, 3], dtype="int64"),
            "logprobs": types.TensorData(data=[-0.5, -0.75], dtype="float32"),
            "advantages": types.TensorData(data=[0.25, 0.25], dtype="float32"),
        },
    ),
]
fb_input = types.ForwardBackwardInput(data=data, loss_fn="ppo", loss_fn_config={"clip_low_threshold": 0.9, "clip_high_threshold": 1.1})
req = types.ForwardBackwardRequest(forward_backward_input=fb_input, model_id="model-1", seq_id=7)
msg = forward_backward_request_to_proto(req)
with open(os.path.join(out, "fwdbwd_request.pb"), "wb") as f:
    f.write(msg.SerializeToString())
with open(os.path.join(out, "fwdbwd_request.json"), "w") as f:
    json.dump({
        "model_id": "model-1", "seq_id": 7,
        "forward_backward_input": {
            "loss_fn": "ppo", "loss_fn_config": {"clip_low_threshold": 0.9, "clip_high_threshold": 1.1},
            "data": [{
                "model_input": {"chunks": [{"type": "encoded_text", "tokens": d.model_input.to_ints()}]},
                "loss_fn_inputs": {k: {"data": v.tolist(), "dtype": v.dtype} for k, v in d.loss_fn_inputs.items()},
            } for d in data],
        },
        "sdk_version": tinker.__version__,
    }, f, indent=1)
    f.write("\n")
