"""Slow: recorded opponent log-probs (from sampling) equal the trainer's recomputed reference."""

from __future__ import annotations

import pytest
import torch

from treeplay.policy.records import SampleRequest, SamplingParams
from treeplay.tasks.records import Task
from treeplay.train.data import PolicyPromptEncoder, compute_reference_logprobs, encode_pairs
from treeplay.tree.records import Pair


@pytest.mark.slow
def test_recorded_sampler_logprobs_match_recomputed_reference(embedded_policy) -> None:  # type: ignore[no-untyped-def]
    task = Task(
        id="ref-check", language="py", cwe=("CWE-89",), instruction="Return the user row for a name.",
        prefix="def get_user(db, name):\n    cur = db.cursor()\n    cur.execute(",
    )
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=12, seed=5)
    branches = embedded_policy.sample([SampleRequest(task=task, prefix=task.prefix, n=2, params=params)])
    assert len(branches) == 2 and all(b.token_ids for b in branches)
    pair = Pair(
        task_id=task.id, node_id="n0", mode="sibling", language="py", cwe="CWE-89",
        instruction=task.instruction, prefix=task.prefix, chosen=branches[0].text, rejected=branches[1].text,
        chosen_token_ids=branches[0].token_ids, chosen_ref_logprobs=branches[0].logprobs,
        rejected_token_ids=branches[1].token_ids, rejected_ref_logprobs=branches[1].logprobs,
    )
    encoder = PolicyPromptEncoder(embedded_policy.tokenizer, embedded_policy.prompt_format)
    recorded = encode_pairs([pair], encoder, method="tsp", max_prompt_tokens=4096, max_completion_tokens=4096).pairs[0]
    assert recorded.has_reference
    # drop the recorded values, recompute them with the frozen model the way training does
    from dataclasses import replace

    bare = replace(recorded, ref_chosen=None, ref_rejected=None)
    for mode in ("packed", "off"):
        recomputed = compute_reference_logprobs(embedded_policy.model, [bare], prefix_sharing=mode)[0]
        assert recomputed.ref_chosen is not None and recomputed.ref_rejected is not None
        assert torch.allclose(torch.tensor(recomputed.ref_chosen), torch.tensor(recorded.ref_chosen), atol=2e-3), mode
        assert torch.allclose(torch.tensor(recomputed.ref_rejected), torch.tensor(recorded.ref_rejected), atol=2e-3), mode
