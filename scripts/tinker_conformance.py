#!/usr/bin/env python3
"""Runs trainer/testdata/tinker_scenario.json through the official `tinker`
Python SDK against a Tinker-compatible server and prints the numbers as JSON.

trainer/tinker_test.go (TestTinkerSDKConformance) starts `asearcher serve
model`'s handler on loopback, runs this script against it, runs the same
scenario through asearcher's Go client, and compares the two.

usage: tinker_conformance.py --base-url http://127.0.0.1:PORT --scenario FILE
"""
import argparse
import json
import os
import sys

import tinker
from tinker import types


def data_for(scenario, loss):
    out = []
    for d in scenario["data"]:
        toks = d["tokens"]
        inputs = {"target_tokens": types.TensorData(data=toks[1:], dtype="int64")}
        if loss == "cross_entropy":
            inputs["weights"] = types.TensorData(data=d["weights"], dtype="float32")
        else:
            inputs["logprobs"] = types.TensorData(data=d["logprobs"], dtype="float32")
            inputs["advantages"] = types.TensorData(data=d["advantages"], dtype="float32")
        out.append(types.Datum(model_input=types.ModelInput.from_ints(toks[:-1]), loss_fn_inputs=inputs))
    return out


def summary(result):
    return {
        "loss": result.metrics["loss:sum"],
        "logprobs": [[float(x) for x in o["logprobs"].tolist()] for o in result.loss_fn_outputs],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--scenario", required=True)
    args = ap.parse_args()
    with open(args.scenario) as f:
        sc = json.load(f)

    service = tinker.ServiceClient(base_url=args.base_url, api_key=os.environ.get("TINKER_API_KEY", "tml-conformance"))
    caps = service.get_server_capabilities()
    names = [m.model_name for m in caps.supported_models]
    if sc["base_model"] not in names:
        sys.exit(f"server serves {names}, scenario wants {sc['base_model']}")
    tc = service.create_lora_training_client(base_model=sc["base_model"], rank=sc["lora_rank"])

    out = {"sdk_version": tinker.__version__}
    out["cross_entropy"] = summary(tc.forward_backward(data_for(sc, "cross_entropy"), "cross_entropy").result())
    out["importance_sampling"] = summary(
        tc.forward_backward(data_for(sc, "importance_sampling"), "importance_sampling").result())
    out["ppo"] = summary(tc.forward_backward(data_for(sc, "ppo"), "ppo", loss_fn_config=sc["ppo_config"]).result())
    tc.optim_step(types.AdamParams(**sc["adam"])).result()
    out["after_step"] = summary(tc.forward(data_for(sc, "cross_entropy"), "cross_entropy").result())

    path = tc.save_weights_for_sampler(sc["sampler_name"]).result().path
    out["sampler_path_suffix"] = path.split("/", 3)[-1]
    out["sampler_path"] = path
    sampler = service.create_sampling_client(model_path=path)
    s = sc["sample"]
    res = sampler.sample(
        prompt=types.ModelInput.from_ints(s["prompt"]),
        num_samples=1,
        sampling_params=types.SamplingParams(max_tokens=s["max_tokens"], temperature=s["temperature"], seed=s["seed"]),
    ).result()
    seq = res.sequences[0]
    out["sample"] = {"tokens": list(seq.tokens), "logprobs": [float(x) for x in seq.logprobs], "stop_reason": seq.stop_reason}
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
