"""The llama.cpp backend on the real embedded Qwen2.5-Coder-0.5B (one engine per session)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from treeplay.policy import SampleRequest, SamplingParams, load_policy, resolve_backend
from treeplay.policy.llamacpp import EngineConfig, EngineError
from treeplay.policy.prompting import decode_tokens
from treeplay.tasks import Task

pytestmark = pytest.mark.slow

YAML_TASK = Task(
    id="t-yaml", language="py", cwe=("CWE-502",),
    instruction="Open the file, load its YAML contents and return them.",
    prefix="import yaml\n\n\ndef yaml_load(filename):\n    '''Load the YAML file and return its contents.'''\n",
)
SQL_TASK = Task(
    id="t-sql", language="py", cwe=("CWE-89",),
    instruction="Return the row of the users table whose name is `name`.",
    prefix="import sqlite3\n\n\ndef get_user(conn: sqlite3.Connection, name: str):\n",
)


def test_auto_backend_is_llamacpp_for_embedded_on_cpu() -> None:
    assert resolve_backend("embedded") == "llamacpp"
    assert resolve_backend("embedded", device="cuda") == "hf"
    assert resolve_backend("/some/hf/model/dir") == "hf"
    assert resolve_backend("embedded", "hf") == "hf"


def test_samples_are_code_with_aligned_tokens_and_raw_logprobs(qwen_engine: Any) -> None:
    params = SamplingParams(temperature=0.2, max_new_tokens=96, seed=1)
    requests = [SampleRequest(t, t.prefix, n=2, params=params, request_id=t.id) for t in (YAML_TASK, SQL_TASK)]
    out = qwen_engine.sample(requests)
    assert [(c.request_id, c.index) for c in out] == [("t-yaml", 0), ("t-yaml", 1), ("t-sql", 0), ("t-sql", 1)]
    for completion, task in zip(out, (YAML_TASK, YAML_TASK, SQL_TASK, SQL_TASK), strict=True):
        assert completion.text.strip(), "empty completion"
        assert "```" not in completion.text
        assert completion.text == decode_tokens(qwen_engine.tokenizer, completion.token_ids)
        assert len(completion.logprobs) == len(completion.token_ids) == len(completion.token_ends)
        for k, end in enumerate(completion.token_ends):  # where each token ends, as decoding says
            head = decode_tokens(qwen_engine.tokenizer, completion.token_ids[: k + 1])
            assert end == (len(head) if completion.text.startswith(head) else -1)
        assert all(lp <= 0.0 for lp in completion.logprobs)
        ast.parse(task.prefix + completion.text)  # a whole function body, correctly indented
    assert "yaml" in out[0].text


def test_greedy_is_deterministic(qwen_engine: Any) -> None:
    greedy = SamplingParams(temperature=0.0, max_new_tokens=32)
    first = qwen_engine.sample([SampleRequest(SQL_TASK, SQL_TASK.prefix, n=2, params=greedy)])
    again = qwen_engine.sample([SampleRequest(SQL_TASK, SQL_TASK.prefix, n=1, params=greedy)])
    assert first[0].token_ids == first[1].token_ids == again[0].token_ids


def test_engine_logprobs_match_the_torch_model_of_the_same_weights(qwen_engine: Any) -> None:
    """The engine's raw log-probs vs a no-grad forward of the de-quantised weights (what training uses)."""
    from treeplay.policy import ScoreRequest

    greedy = SamplingParams(temperature=0.0, max_new_tokens=48)
    (completion,) = qwen_engine.sample([SampleRequest(YAML_TASK, YAML_TASK.prefix, params=greedy)])
    (scored,) = qwen_engine.score([ScoreRequest(YAML_TASK, YAML_TASK.prefix, completion.text)])
    assert scored.token_ids == completion.token_ids
    diffs = [abs(a - b) for a, b in zip(scored.logprobs, completion.logprobs, strict=True)]
    # Q4_K matmuls with 8-bit activations in llama.cpp vs fp32 torch on the same de-quantised
    # weights: measured mean 0.0x nats (docs/policy.md); 0.1 would already mean a different model
    assert sum(diffs) / len(diffs) < 0.1


def test_request_stop_strings_never_cut_the_last_line(qwen_engine: Any) -> None:
    """HumanEval's stops ("\\ndef ", ...) start with a newline: sent to llama.cpp, the engine held
    back the final "]\\n" token (a partial stop match) and dropped it at the fence, so greedy
    HumanEval/42 came back as `return [x + 1 for x in l` (measured before the fix)."""
    from treeplay.eval.evaluate import HUMANEVAL_STOP, resolve_bench

    task = next(t for t in resolve_bench("humaneval") if t.id == "HumanEval/42")
    params = SamplingParams(temperature=0.0, max_new_tokens=80, stop=HUMANEVAL_STOP)
    (completion,) = qwen_engine.sample([SampleRequest(task, task.prefix, params=params)])
    assert completion.text.strip(), "empty completion"
    ast.parse(task.prefix + completion.text)  # before the fix: "'[' was never closed"
    stop_task = Task(id="t-stop", language="py", cwe=(), instruction="Print the numbers 1 to 3, then return.",
                     prefix="def f():\n")
    (cut,) = qwen_engine.sample([SampleRequest(stop_task, stop_task.prefix,
                                               params=SamplingParams(temperature=0.0, max_new_tokens=64, stop=("print",)))])
    assert "print" not in cut.text  # the request's stop strings still apply (after decoding)


def test_out_of_context_prompt_names_the_task(qwen_engine: Any) -> None:
    long_task = Task(id="t-long", language="py", cwe=(), instruction="x", prefix="x = 1\n" * 2000)
    with pytest.raises(EngineError, match=r"task t-long.*exceeds the engine's 1024 tokens per slot"):
        qwen_engine.sample([SampleRequest(long_task, long_task.prefix, params=SamplingParams(max_new_tokens=8))])


def test_engine_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="branch_mode"):
        EngineConfig(branch_mode="tree")


def test_trained_adapter_changes_the_engine_logprobs(tmp_path: Path, qwen_engine: Any) -> None:
    """A LoRA adapter on attn_k (896 -> 128, non-square) exported to GGUF and loaded by the engine
    moves its log-probs the way the same adapter moves the torch model's."""
    import torch
    from peft import LoraConfig, get_peft_model

    from treeplay.policy import ScoreRequest
    from treeplay.policy.models import load_model_and_tokenizer

    base, _tokenizer, _ = load_model_and_tokenizer("embedded")
    torch.manual_seed(1)  # peft draws lora_A from the global generator: unseeded, every run had another adapter
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["k_proj"], lora_dropout=0.0))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero (a no-op); make the adapter bite
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    final = tmp_path / "final"
    peft_model.save_pretrained(str(final))
    (final / "treeplay_train.json").write_text(json.dumps({"base_model": "embedded", "adapter": True}))

    greedy = SamplingParams(temperature=0.0, max_new_tokens=32)
    trained = load_policy(str(final), backend="llamacpp", threads=2, n_parallel=2, ctx_per_slot=1024)
    assert (final / "adapter_model.gguf").is_file()
    (adapted,) = trained.sample([SampleRequest(YAML_TASK, YAML_TASK.prefix, params=greedy)])
    # the torch model with the adapter merged scores what the adapted engine wrote
    (torch_scored,) = trained.score([ScoreRequest(YAML_TASK, YAML_TASK.prefix, adapted.text)])
    (base_scored,) = qwen_engine.score([ScoreRequest(YAML_TASK, YAML_TASK.prefix, adapted.text)])
    n = len(adapted.logprobs)
    engine_vs_torch = sum(abs(a - b) for a, b in zip(adapted.logprobs, torch_scored.logprobs, strict=True)) / n
    adapter_effect = sum(abs(a - b) for a, b in zip(torch_scored.logprobs, base_scored.logprobs, strict=True)) / n
    # Measured here (2026-11-26, seeds 0-3 at this scale): adapter effect 0.17-0.77 nats/token,
    # engine vs torch 0.015-0.025, the quantisation floor of the base-model test. A B*0.5 adapter
    # made the model degenerate (repeated docstrings) and the gap chaotic (0.2-0.3): too big to test.
    assert adapter_effect > 0.3, "the adapter should move the log-probs clearly"
    assert engine_vs_torch < 0.1, "the engine's adapter is not the torch model's (scale, orientation or alpha)"
    assert engine_vs_torch < adapter_effect / 4


def test_a_two_round_chain_runs_as_one_merged_adapter_equal_to_the_chain(tmp_path: Path) -> None:
    """Round 2 = base + adapter 1 + adapter 2 (attn_k and mlp down): the engine applies one merged
    adapter (`adapter_chain.gguf`) whose log-probs are those of the torch model with both adapters."""
    import torch
    from peft import LoraConfig, get_peft_model

    from treeplay.policy import ScoreRequest
    from treeplay.policy.llamacpp import LlamaCppPolicy
    from treeplay.policy.models import load_model_and_tokenizer

    base, _tokenizer, _ = load_model_and_tokenizer("embedded")
    rounds = []
    for round_no, parent in ((1, "embedded"), (2, str(tmp_path / "round-1"))):
        torch.manual_seed(round_no)
        model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["k_proj", "down_proj"],
                                                lora_dropout=0.0))  # fmt: skip
        generator = torch.Generator().manual_seed(10 + round_no)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.15)
        final = tmp_path / f"round-{round_no}"
        model.save_pretrained(str(final))
        (final / "treeplay_train.json").write_text(json.dumps({"base_model": parent, "adapter": True}))
        rounds.append(final)
        base = model.unload()  # the next adapter starts from the plain base again (rounds are chained at load)

    greedy = SamplingParams(temperature=0.0, max_new_tokens=32)
    request = [SampleRequest(YAML_TASK, YAML_TASK.prefix, params=greedy)]
    merged = load_policy(str(rounds[1]), backend="llamacpp", threads=2, n_parallel=1, ctx_per_slot=1024)
    assert [p.name for p in merged.adapters] == ["adapter_chain.gguf"]
    (from_merged,) = merged.sample(request)
    plain = LlamaCppPolicy(merged.gguf, merged.tokenizer, merged.prompt_format, "base",
                           config=EngineConfig(threads=2, n_parallel=1, ctx_per_slot=1024))  # fmt: skip
    (from_base,) = plain.sample(request)
    # the torch model with both adapters merged in order (the chain's truth) scores the merged
    # engine's text. Measured 2026-11-26: merged engine vs torch 0.055 nats/token, the two adapters
    # chained in the engine vs torch 0.09 (both the Q4 base's noise; greedy texts of the two
    # engines can part at a near-tie, so texts are not compared); with the adapters' scale left out
    # of B the gap would be that of a different model.
    (truth,) = merged.score([ScoreRequest(YAML_TASK, YAML_TASK.prefix, from_merged.text)])
    gap = sum(abs(a - b) for a, b in zip(from_merged.logprobs, truth.logprobs, strict=True)) / len(truth.logprobs)
    assert from_merged.text != from_base.text, "the adapters should change the model"
    assert gap < 0.1, f"merged adapter vs the torch chain: {gap:.3f} nats/token"


RUN_ON_TASK = Task(
    id="t-run-on", language="py", cwe=(),
    instruction="Write add(a, b). After the function, write a main block that prints add(i, i) for i in 0..9, "
                "one print per line, then twenty assert lines testing it.",
    prefix="def add(a, b):\n",
)
C_TASK = Task(id="t-c", language="c", cwe=("CWE-120",), instruction="Copy src into dst (size n) safely.",
              prefix="#include <string.h>\n\nvoid copy(char *dst, const char *src, size_t n) {\n")


def test_early_stop_gives_the_whole_responses_completions_with_fewer_tokens(qwen_engine: Any) -> None:
    """Streaming with early stop vs the whole response (one slot each, so batching cannot move a
    token): the same completions, and the engine stops decoding a model that runs on past its code."""
    from treeplay.eval.evaluate import HUMANEVAL_STOP, resolve_bench
    from treeplay.policy.llamacpp import LlamaCppPolicy

    def engine(early_stop: bool, branch_mode: str = "requests", slots: int = 1) -> LlamaCppPolicy:
        config = EngineConfig(threads=2, n_parallel=slots, ctx_per_slot=1024, early_stop=early_stop, branch_mode=branch_mode)
        return LlamaCppPolicy(qwen_engine.gguf, qwen_engine.tokenizer, qwen_engine.prompt_format, "embedded",
                              config=config)

    humaneval = next(t for t in resolve_bench("humaneval") if t.id == "HumanEval/42")
    warm = SamplingParams(temperature=0.8, max_new_tokens=160, seed=3)
    requests = [
        SampleRequest(RUN_ON_TASK, RUN_ON_TASK.prefix, n=1, params=SamplingParams(temperature=0.0, max_new_tokens=200)),
        SampleRequest(YAML_TASK, YAML_TASK.prefix, n=3, params=warm),
        SampleRequest(SQL_TASK, SQL_TASK.prefix, n=3, params=warm),
        SampleRequest(C_TASK, C_TASK.prefix, n=2, params=warm),
        SampleRequest(humaneval, humaneval.prefix, n=2,
                      params=SamplingParams(temperature=0.8, max_new_tokens=160, seed=5, stop=HUMANEVAL_STOP)),
    ]
    whole, early = engine(False), engine(True)
    expected, got = whole.sample(requests), early.sample(requests)
    for want, have in zip(expected, got, strict=True):
        assert (have.request_id, have.index, have.text, have.token_ids, have.finish_reason) == (
            want.request_id, want.index, want.text, want.token_ids, want.finish_reason)
        assert all(abs(a - b) < 1e-4 for a, b in zip(have.logprobs, want.logprobs, strict=True))
        assert have.prompt_token_count == want.prompt_token_count
    # "n" mode: one request with 3 children decoded side by side (3 slots, so a child stopped early
    # changes its siblings' batch: compared by shape, not token for token); chunks name their child
    children = engine(True, "n", slots=3).sample([SampleRequest(SQL_TASK, SQL_TASK.prefix, n=3, params=warm)])
    assert [c.index for c in children] == [0, 1, 2]
    for child in children:
        assert child.text == decode_tokens(qwen_engine.tokenizer, child.token_ids) and child.text.strip()
        assert len(child.logprobs) == len(child.token_ids)
        ast.parse(SQL_TASK.prefix + child.text)
    # the run-on prompt: greedy writes add() and then the main block, which the whole response
    # decodes to the end while early stop ends one line after the cut
    tokens_in = {p: p.counts["generated_tokens"] for p in (whole, early)}
    (kept,) = early.sample(requests[:1])
    whole.sample(requests[:1])
    streamed = early.counts["generated_tokens"] - tokens_in[early]
    decoded = whole.counts["generated_tokens"] - tokens_in[whole]
    assert kept.finish_reason == "stop" and streamed <= len(kept.token_ids) + 25 < decoded


def test_one_slot_makes_sampled_runs_repeat(qwen_engine: Any) -> None:
    """`n_parallel: 1`: two fresh engines sample the same seeded requests to the same tokens (with
    several slots, which requests share a batch moves near-ties; docs/policy.md)."""
    from treeplay.policy.llamacpp import LlamaCppPolicy

    warm = SamplingParams(temperature=0.8, max_new_tokens=96, seed=11)
    requests = [SampleRequest(t, t.prefix, n=3, params=warm) for t in (YAML_TASK, SQL_TASK, RUN_ON_TASK)]
    runs = []
    for _ in range(2):
        engine = LlamaCppPolicy(qwen_engine.gguf, qwen_engine.tokenizer, qwen_engine.prompt_format, "embedded",
                                config=EngineConfig(threads=2, n_parallel=1, ctx_per_slot=1024))  # fmt: skip
        runs.append([(c.token_ids, c.logprobs) for c in engine.sample(requests)])
    assert runs[0] == runs[1]
