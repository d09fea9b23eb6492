"""Token selection: exact top-p, temperature, greedy rows and per-row seeded generators (no model)."""

from __future__ import annotations

import torch

from treeplay.policy.hf import nucleus_candidates, row_seed, select_tokens, top_p_filter
from treeplay.policy.records import SamplingParams


def test_nucleus_candidates_match_full_top_p_filter() -> None:
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(3, 1000) * 3, dim=-1)
    top_p = torch.tensor([0.5, 0.9, 1.0])
    cand_probs, cand_ids = nucleus_candidates(probs, top_p, k=64)
    for row in range(3):
        dense = torch.zeros(1000)
        dense[cand_ids[row]] = cand_probs[row]
        expected = top_p_filter(probs[row], float(top_p[row]))
        assert torch.allclose(dense / dense.sum(), expected, atol=1e-6)


def test_top_p_keeps_only_the_nucleus() -> None:
    probs = torch.tensor([[0.6, 0.3, 0.05, 0.05]])
    cand_probs, cand_ids = nucleus_candidates(probs, torch.tensor([0.8]), k=4)
    kept = {int(i) for p, i in zip(cand_probs[0], cand_ids[0], strict=True) if p > 0}
    assert kept == {0, 1}


def test_select_tokens_greedy_and_seeded_rows() -> None:
    torch.manual_seed(1)
    logits = torch.randn(3, 500)
    params = [SamplingParams(temperature=0.0), SamplingParams(temperature=1.0, top_p=1.0), SamplingParams(temperature=1.0)]

    def gens(seed: int) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(row_seed(seed, i)) for i in range(3)]

    first = select_tokens(logits, params, gens(3))
    assert first[0] == int(torch.argmax(logits[0]))
    assert select_tokens(logits, params, gens(3)) == first
    # a row's draw depends only on its own generator, not on the other rows of the batch
    alone = select_tokens(logits[1:2], params[1:2], gens(3)[1:2])
    assert alone == first[1:2]
    draws = {tuple(select_tokens(logits, params, gens(seed))) for seed in range(10)}
    assert len(draws) > 1
