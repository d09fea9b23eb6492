from __future__ import annotations

import pytest
import torch

from treeplay.train.logprobs import (
    completion_token_logps,
    naive_token_logps,
    shared_prefix_token_logps,
    tree_attention_mask,
)


def _items() -> list[tuple[list[int], list[int]]]:
    p1 = [1, 5, 9, 11, 20, 21, 22, 23, 24]
    p2 = [1, 7, 7, 8]
    return [
        (p1, [30, 31, 32, 33]),  # chosen of pair 1
        (p1, [30, 40, 41]),  # rejected of pair 1 (shares its first token with the chosen)
        (p1, [30, 31, 32, 33]),  # the same golden continuation, chosen again in pair 2
        (p1, [50]),  # one-token completion
        (p2, [60, 61, 62, 63, 64, 65]),
        (p2, [70, 71]),
    ]


def _weighted_sum(scored) -> torch.Tensor:  # type: ignore[no-untyped-def]
    # a loss that uses every row differently, so gradients depend on each row
    weights = torch.arange(1, scored.token_logps.shape[0] + 1, dtype=torch.float32).unsqueeze(1)
    return (scored.token_logps * scored.mask * weights).sum()


@pytest.mark.parametrize("mode", ["packed", "kv-cache"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_prefix_equals_naive_logps_and_gradients(tiny_model, mode: str, attn: str) -> None:  # type: ignore[no-untyped-def]
    tiny_model.config._attn_implementation = attn
    items = _items()
    naive = naive_token_logps(tiny_model, items)
    _weighted_sum(naive).backward()
    naive_grads = {n: p.grad.clone() for n, p in tiny_model.named_parameters()}
    tiny_model.zero_grad()

    shared = completion_token_logps(tiny_model, items, prefix_sharing=mode)
    _weighted_sum(shared).backward()

    assert torch.equal(naive.mask, shared.mask)
    assert torch.allclose(naive.token_logps, shared.token_logps, atol=1e-5)
    assert naive.token_logps[0].sum() < 0  # real log-probs
    for name, param in tiny_model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        assert torch.allclose(naive_grads[name], param.grad, atol=1e-5, rtol=1e-4), name


def test_logps_match_full_forward_log_softmax(tiny_model) -> None:  # type: ignore[no-untyped-def]
    prompt, completion = [1, 2, 3], [4, 5]
    with torch.no_grad():
        logits = tiny_model(input_ids=torch.tensor([prompt + completion])).logits[0]
        logp = torch.log_softmax(logits, -1)
        expected = torch.stack([logp[2, 4], logp[3, 5]])
        for mode in ("packed", "kv-cache", "off"):
            got = completion_token_logps(tiny_model, [(prompt, completion)], prefix_sharing=mode)
            assert torch.allclose(got.row(0), expected, atol=1e-6), mode


def test_tree_attention_mask_shape() -> None:
    # prompt of 2 tokens, segments [2, 4) and [4, 5), one padding position (width 6)
    mask = tree_attention_mask([5], [[(0, 2, [(2, 4), (4, 5)])]], 6)[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 0],  # the second completion does not see the first
        [0, 0, 0, 0, 0, 1],  # padding sees only itself
    ]


def test_kv_cache_mode_refuses_gradient_checkpointing_packed_works(tiny_model) -> None:  # type: ignore[no-untyped-def]
    expected = naive_token_logps(tiny_model, _items()).token_logps.detach()
    tiny_model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    tiny_model.train()
    with pytest.raises(ValueError, match="gradient checkpointing"):
        shared_prefix_token_logps(tiny_model, _items())
    packed = completion_token_logps(tiny_model, _items(), prefix_sharing="packed")
    assert torch.allclose(packed.token_logps, expected, atol=1e-5)
    packed.token_logps.sum().backward()
    assert tiny_model.model.layers[0].mlp.up_proj.weight.grad is not None
