"""One micro-batch of encoded pairs: its loss and metrics (training step) and its
chosen-over-rejected margins (evaluation, no grad)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from treeplay.train.config import TrainConfig
from treeplay.train.data import EncodedPair
from treeplay.train.logprobs import completion_token_logps, scoring_mode
from treeplay.train.losses import divergence_index, first_divergent_weights, sft_loss, tsp_loss


def _pad_float(rows: Sequence[Sequence[float]], width: int, device: torch.device) -> torch.Tensor:
    out = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.float32)
    return out.to(device)


def _pair_items(batch: Sequence[EncodedPair]) -> list[tuple[Sequence[int], Sequence[int]]]:
    """(prompt, chosen), (prompt, rejected) per pair: rows 0::2 are chosen, 1::2 rejected."""
    items: list[tuple[Sequence[int], Sequence[int]]] = []
    for p in batch:
        items += [(p.prompt_ids, p.chosen_ids), (p.prompt_ids, p.rejected_ids)]
    return items


def batch_loss(
    scorer: nn.Module, batch: Sequence[EncodedPair], config: TrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one micro-batch and its metrics (sequence log-probs, rewards, accuracy)."""
    if config.method == "sft":
        scored = scorer([(p.prompt_ids, p.chosen_ids) for p in batch])
        loss = sft_loss(scored.token_logps, scored.mask)
        chosen = (scored.token_logps * scored.mask).sum(-1)
        return loss, {"loss": loss.item(), "logps/chosen": chosen.mean().item()}
    return _preference_loss(scorer, batch, config)


def _preference_loss(
    scorer: nn.Module, batch: Sequence[EncodedPair], config: TrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """DPO (plus TSP's first-divergent weights and SFT term) against the pairs' reference log-probs."""
    for p in batch:
        if p.ref_chosen is None or p.ref_rejected is None:
            raise ValueError(f"pair {p.index} has no reference log-probs (compute_reference_logprobs first)")
    scored = scorer(_pair_items(batch))
    pol_c, pol_r = scored.token_logps[0::2], scored.token_logps[1::2]
    mask_c, mask_r = scored.mask[0::2], scored.mask[1::2]
    width = scored.token_logps.shape[1]
    device = scored.token_logps.device
    ref_c = _pad_float([p.ref_chosen or () for p in batch], width, device)
    ref_r = _pad_float([p.ref_rejected or () for p in batch], width, device)
    weights_c, weights_r = _first_divergent(batch, config, width, device)
    assert config.sft_alpha is not None
    out = tsp_loss(
        pol_c, pol_r, ref_c, ref_r, mask_c, mask_r,
        chosen_weights=weights_c, rejected_weights=weights_r,
        beta=config.beta, alpha=config.sft_alpha, loss_type=config.loss_type, label_smoothing=config.label_smoothing,
    )
    pref = out.preference
    metrics = {
        "loss": out.loss.item(),
        "loss/preference": pref.loss.item(),
        "loss/sft": out.sft.item(),
        "logps/chosen": (pol_c * mask_c).sum(-1).mean().item(),
        "logps/rejected": (pol_r * mask_r).sum(-1).mean().item(),
        "rewards/chosen": pref.chosen_rewards.mean().item(),
        "rewards/rejected": pref.rejected_rewards.mean().item(),
        "rewards/margin": pref.reward_margin.mean().item(),
        "rewards/accuracy": pref.accuracy.item(),
    }
    return out.loss, metrics


def _first_divergent(
    batch: Sequence[EncodedPair], config: TrainConfig, width: int, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-token weights of chosen and rejected (TSP localisation), or (None, None) when off."""
    assert config.first_w is not None and config.first_w_weight is not None
    if not (config.first_w > 0 and config.first_w_weight > 0):
        return None, None
    wc, wr = [], []
    for p in batch:
        start = divergence_index(p.chosen_ids, p.rejected_ids)
        wc.append(first_divergent_weights(len(p.chosen_ids), start, config.first_w, config.first_w_weight))
        wr.append(first_divergent_weights(len(p.rejected_ids), start, config.first_w, config.first_w_weight))
    return _pad_float(wc, width, device), _pad_float(wr, width, device)


def preference_margins(
    model: nn.Module, pairs: Sequence[EncodedPair], *, batch_size: int = 8, prefix_sharing: str = "packed"
) -> dict[str, float]:
    """Chosen-over-rejected margins of a model on pairs (no grad).

    margin = mean(log p(chosen) - log p(rejected)); per-token margin uses length-normalised
    log-probs; accuracy = fraction of pairs with log p(chosen) > log p(rejected) per token.
    """
    if not pairs:
        raise ValueError("preference_margins: no pairs")
    margins, token_margins, wins = [], [], 0
    with scoring_mode(model):
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            scored = completion_token_logps(model, _pair_items(chunk), prefix_sharing=prefix_sharing)
            for j, p in enumerate(chunk):
                c, r = scored.row(2 * j).sum().item(), scored.row(2 * j + 1).sum().item()
                margins.append(c - r)
                tm = c / len(p.chosen_ids) - r / len(p.rejected_ids)
                token_margins.append(tm)
                wins += tm > 0
    n = len(margins)
    return {
        "pairs": float(n),
        "margin": sum(margins) / n,
        "margin_per_token": sum(token_margins) / n,
        "accuracy_per_token": wins / n,
    }
