"""Branch sampling throughput with and without shared-prefix reuse, measured in one run.

The same requests (P prefixes of ~T tokens, B branches each, N new tokens, stop rules off so every
branch generates exactly N tokens) are sampled twice on the embedded model:
- reuse:    one prefill per unique prefix, KV cache expanded to the B branches;
- no reuse: one prefill per branch (the prefix is encoded B times).
Prints generated tokens/s for both, the ratio, and where the time goes (prefill, KV expansion,
decode forwards, token selection + stop rules).

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/branch_sampling.py --threads 2
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import time
from typing import Any

import torch


def real_code_prefixes(tokenizer: Any, count: int, target_tokens: int) -> list[str]:
    """`count` distinct prefixes of real Python (stdlib argparse) of ~target_tokens each, each
    ending right after a `def` line, so the continuation is a function body."""
    import argparse as source_module

    source = inspect.getsource(source_module)
    defs = [m.end() for m in re.finditer(r"^ *def [^\n]*:\n", source, re.MULTILINE)]
    prefixes: list[str] = []
    for end in defs[5:]:
        # walk back line by line until the prefix holds ~target_tokens tokens
        start = source.rfind("\n", 0, max(0, end - target_tokens * 4)) + 1
        text = source[start:end]
        if len(tokenizer.encode(text, add_special_tokens=False)) >= target_tokens * 0.9:
            prefixes.append(text)
        if len(prefixes) == count:
            return prefixes
    raise RuntimeError(f"only found {len(prefixes)} prefixes")


def run(policy: Any, requests: list[Any], reuse: bool) -> dict[str, Any]:
    from treeplay.policy.hf import HFPolicy

    runner = HFPolicy(
        policy.model, policy.tokenizer, policy.prompt_format, policy.model_id, reuse_prefix=reuse, stop_rules=False,
        max_batch_rows=len(requests) * requests[0].n,
    )
    started = time.perf_counter()
    completions = runner.sample(requests)
    seconds = time.perf_counter() - started
    tokens = sum(len(c.token_ids) for c in completions)
    return {
        "reuse": reuse,
        "seconds": round(seconds, 2),
        "generated_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        "prefill_tokens": runner.counts["prefill_tokens"],
        "decode_steps": runner.counts["decode_steps"],
        "time_s": {k: round(v, 2) for k, v in runner.timings.items()},
        "token_ids": [c.token_ids for c in completions],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--prefixes", type=int, default=8)
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--prefix-tokens", type=int, default=400)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from treeplay.policy import load_policy
    from treeplay.policy.records import SampleRequest, SamplingParams
    from treeplay.tasks.records import Task

    policy: Any = load_policy(args.model)
    prefixes = real_code_prefixes(policy.tokenizer, args.prefixes, args.prefix_tokens)
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=args.new_tokens, seed=7)
    requests = [
        SampleRequest(
            task=Task(id=f"bench-{i}", language="py", cwe=(), instruction="Complete the function.", prefix=p),
            prefix=p,
            n=args.branches,
            params=params,
            request_id=f"bench-{i}",
        )
        for i, p in enumerate(prefixes)
    ]
    prompt_tokens = [len(policy.prompt_ids(r.task.instruction, "py", r.prefix)) for r in requests]
    # warm-up (allocator, kernels) on a tiny request
    run(policy, requests[:1][:1], reuse=True)
    reuse = run(policy, requests, reuse=True)
    no_reuse = run(policy, requests, reuse=False)
    same = reuse.pop("token_ids") == no_reuse.pop("token_ids")
    print(json.dumps({
        "model": args.model,
        "threads": args.threads,
        "prefixes": args.prefixes,
        "branches": args.branches,
        "new_tokens": args.new_tokens,
        "prompt_tokens_mean": round(sum(prompt_tokens) / len(prompt_tokens)),
        "reuse": reuse,
        "no_reuse": no_reuse,
        "speedup": round(reuse["tokens_per_s"] / no_reuse["tokens_per_s"], 2),
        "identical_outputs": same,
    }, indent=2))


if __name__ == "__main__":
    main()
