from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import CharEncoder, make_pairs, tiny_llama

from treeplay.train.config import TrainConfig
from treeplay.train.trainer import ModelBundle, list_checkpoints, train


class Interrupt(Exception):
    pass


def _bundle(seed: int = 0) -> ModelBundle:
    return ModelBundle(tiny_llama(seed=seed), CharEncoder(), model_id="tiny")


def _config(**kw) -> TrainConfig:  # type: ignore[no-untyped-def]
    base = dict(method="tsp", max_steps=6, batch_size=2, grad_accum=2, learning_rate=1e-2, save_every=2,
                progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("lora", [False, True])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path: Path, lora: bool) -> None:
    config = _config(lora=lora, lora_r=4, lora_alpha=8, lora_dropout=0.1, lora_target_modules=("q_proj", "v_proj"))
    pairs = make_pairs(5)

    whole = _bundle()
    train(config, pairs, whole, tmp_path / "whole")

    def stop_at_5(step: int, metrics: dict[str, float]) -> None:
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(config, pairs, _bundle(), tmp_path / "cut", callbacks=[stop_at_5])
    assert [s for s, _ in list_checkpoints(tmp_path / "cut")][-1] == 4
    with pytest.raises(FileExistsError):
        train(config, pairs, _bundle(), tmp_path / "cut")
    if lora:  # a LoRA checkpoint holds the adapter only; the frozen base comes from the base model
        from safetensors import safe_open

        with safe_open(str(tmp_path / "cut" / "checkpoints" / "step-0000004" / "model.safetensors"), "pt") as f:
            saved = set(f.keys())
        assert saved and all(".lora_A." in k or ".lora_B." in k for k in saved), sorted(saved)[:3]
    # full fine-tuning: a different init, so everything must come from the checkpoint
    resumed_bundle = _bundle(seed=0 if lora else 99)
    result = train(config, pairs, resumed_bundle, tmp_path / "cut", resume=True)
    assert result.resumed_from_step == 4 and result.steps == 6

    a, b = _params(whole.model), _params(resumed_bundle.model)
    assert a.keys() == b.keys()
    start = _params(tiny_llama(seed=0))
    moved = [k for k in a if (k in start and not torch.equal(a[k], start[k])) or ("lora_B" in k and a[k].any())]
    assert moved  # training changed weights (LoRA: lora_B starts at zero)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    lines = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    whole_lines = [json.loads(x) for x in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6]
    assert lines[-1]["loss"] == pytest.approx(whole_lines[-1]["loss"], rel=1e-5)


def test_tsp_training_raises_margin_and_saves_hf_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    pairs = make_pairs(6)
    bundle = _bundle()
    config = _config(max_steps=8, grad_accum=1, learning_rate=5e-3, save_every=4)
    result = train(config, pairs[:4], bundle, tmp_path / "run", eval_pairs=pairs[4:])
    assert result.eval_before is not None and result.eval_after is not None
    assert result.eval_after["margin"] > result.eval_before["margin"]
    assert result.pairs_per_step == 2 and result.tokens_per_step > 0
    assert result.recorded_reference == 0 and (tmp_path / "run" / "reference_logprobs.jsonl").exists()
    m = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "logps/chosen", "logps/rejected", "rewards/margin", "rewards/accuracy", "lr"} <= m[0].keys()
    assert m[0]["rewards/margin"] == pytest.approx(0.0, abs=1e-5)  # policy == reference at step 1
    assert m[-1]["rewards/margin"] > 0
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    reloaded = AutoModelForCausalLM.from_pretrained(result.final_model_dir)
    for k, v in bundle.model.state_dict().items():
        assert torch.allclose(reloaded.state_dict()[k], v), k


def test_sft_and_lora_adapter_save(tmp_path: Path) -> None:
    from peft import PeftModel

    pairs = make_pairs(4)
    config = _config(method="sft", max_steps=3, lora=True, lora_r=4, lora_target_modules=("q_proj", "v_proj"))
    result = train(config, pairs, _bundle(), tmp_path / "sft")
    assert result.adapter and (Path(result.final_model_dir) / "adapter_config.json").exists()
    m = [json.loads(x) for x in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert m[-1]["loss"] < m[0]["loss"]
    loaded = PeftModel.from_pretrained(tiny_llama(seed=0), result.final_model_dir)
    assert any("lora_A" in k for k in loaded.state_dict())


def test_recorded_reference_logprobs_are_used(tmp_path: Path) -> None:
    import dataclasses

    enc = CharEncoder()
    pair = make_pairs(1)[0]
    c_ids, r_ids = enc.encode_continuation(pair.chosen), enc.encode_continuation(pair.rejected)
    recorded = dataclasses.replace(
        pair, chosen_token_ids=tuple(c_ids), chosen_ref_logprobs=tuple([-1.0] * len(c_ids)),
        rejected_token_ids=tuple(r_ids), rejected_ref_logprobs=tuple([-1.0] * len(r_ids)),
    )
    result = train(_config(max_steps=1, batch_size=1, grad_accum=1, reference="recorded"), [recorded], _bundle(), tmp_path / "rec")
    assert result.recorded_reference == 1
    assert not (tmp_path / "rec" / "reference_logprobs.jsonl").exists()


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="ppo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gradient_checkpointing"):
        TrainConfig(gradient_checkpointing=True, prefix_sharing="kv-cache")
    with pytest.raises(ValueError, match="prefix_sharing"):
        TrainConfig(prefix_sharing="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_dict({"lr": 1.0})
    tsp, dpo = TrainConfig(method="tsp"), TrainConfig(method="selfplay")
    assert tsp.sft_alpha and tsp.first_w and not dpo.sft_alpha and not dpo.first_w


def test_gradient_checkpointing_and_naive_scoring_give_the_same_training(tmp_path: Path) -> None:
    pairs = make_pairs(4)
    results = {}
    for name, kw in {
        "packed": {},
        "packed+checkpointing": {"gradient_checkpointing": True},
        "naive": {"prefix_sharing": "off"},
    }.items():
        bundle = _bundle()
        train(_config(max_steps=3, grad_accum=1, save_every=3, **kw), pairs, bundle, tmp_path / name)
        results[name] = _params(bundle.model)
    for name in ("packed+checkpointing", "naive"):
        for k, v in results["packed"].items():
            assert torch.allclose(v, results[name][k], atol=1e-5), (name, k)


@pytest.mark.parametrize("reference", ["recompute", "recorded"])
def test_step_zero_log_ratio_is_zero_when_reference_is_recomputed(tmp_path: Path, reference: str) -> None:
    """Pairs carry engine-recorded log-probs (here a flat -1.0 per token, as a quantised engine would
    give values that differ from the trainer's weights). With reference=recompute the first step's
    rewards (beta * (policy - reference) log-ratios) are exactly 0: the reference is a no-grad
    forward of the same start weights and the LoRA update starts at zero."""
    import dataclasses

    encoder = CharEncoder()
    pairs = []
    for pair in make_pairs(4):
        chosen_ids = tuple(encoder.encode_continuation(pair.chosen))
        rejected_ids = tuple(encoder.encode_continuation(pair.rejected))
        pairs.append(dataclasses.replace(
            pair, chosen_token_ids=chosen_ids, chosen_ref_logprobs=(-1.0,) * len(chosen_ids),
            rejected_token_ids=rejected_ids, rejected_ref_logprobs=(-1.0,) * len(rejected_ids),
        ))
    seen: list[dict[str, float]] = []
    config = _config(max_steps=1, grad_accum=1, lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.1,
                     lora_target_modules=("q_proj", "v_proj"), reference=reference)
    result = train(config, pairs, _bundle(), tmp_path / reference, callbacks=[lambda s, m: seen.append(m)])
    first = seen[0]
    if reference == "recompute":
        assert result.recorded_reference == 0
        assert first["rewards/chosen"] == 0.0 and first["rewards/rejected"] == 0.0
    else:
        assert result.recorded_reference == 4
        assert abs(first["rewards/chosen"]) > 0.01  # the flat -1.0 values are not this model's


def test_metrics_jsonl_is_written_without_tensorboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import treeplay.train.trainer as trainer

    monkeypatch.setattr(trainer, "tensorboard_writer", lambda log_dir, purge_step: None)  # tensorboard broken
    train(_config(max_steps=2, grad_accum=1), make_pairs(2), _bundle(), tmp_path / "run")
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    assert not (tmp_path / "run" / "tensorboard").exists()
