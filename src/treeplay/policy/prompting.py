"""Prompt rendering: the model's own chat template, or a plain completion prompt.

Both formats end with the task's code prefix, so a sampled continuation starts exactly after it
and `prefix + completion.text` is the branch program. Training computes log-probs of
`encode_prompt(...) + continuation_ids`, the same token sequence the sampler conditioned on.

- ``chat``: the instruction goes into a user turn rendered with ``tokenizer.apply_chat_template``
  (``add_generation_prompt=True``); the assistant turn is then opened with a markdown fence
  (```` ```python ````) followed by the code prefix. Chat models close the fence when done, which
  is one of the stop rules.
- ``completion``: the instruction becomes a comment in the task's language, followed by the code
  prefix (for base models without a chat template).

Which one a model uses is configured per model (``configs/models/<name>.yaml``), defaulting to
``chat`` when the tokenizer has a chat template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from treeplay.tasks.records import LANGUAGE_NAMES

FormatKind = Literal["chat", "completion"]

# Markdown fence info strings per language code.
FENCE_TAGS = {"py": "python", "c": "c", "cpp": "cpp", "js": "javascript", "go": "go", "java": "java", "rb": "ruby"}
LINE_COMMENTS = {"py": "#", "rb": "#", "c": "//", "cpp": "//", "js": "//", "go": "//", "java": "//"}


@dataclass(frozen=True)
class PromptFormat:
    """How a model's prompt is rendered. `kind` is "chat" or "completion"."""

    kind: FormatKind = "chat"
    system: str | None = None  # optional system message (chat); None keeps the template's default
    fence: bool = True  # chat: open a markdown fence before the code prefix
    add_bos: bool | None = None  # completion: prepend BOS; None = when the tokenizer's add_bos_token says so

    def __post_init__(self) -> None:
        if self.kind not in ("chat", "completion"):
            raise ValueError(f"prompt format kind must be 'chat' or 'completion', got {self.kind!r}")

    @property
    def closes_with_fence(self) -> bool:
        """Whether the model is expected to end its code with a closing ``` (a stop rule)."""
        return self.kind == "chat" and self.fence


def user_message(instruction: str, language: str) -> str:
    """The user turn of a chat prompt: the task instruction plus the expected language."""
    name = LANGUAGE_NAMES.get(language, language)
    return f"{instruction.strip()}\n\nWrite the solution in {name}. Reply with a single code block only."


def comment_block(text: str, language: str) -> str:
    """`text` as line comments of `language` (one comment line per text line)."""
    marker = LINE_COMMENTS.get(language, "#")
    lines = text.strip().splitlines() or [""]
    return "".join(f"{marker} {line}".rstrip() + "\n" for line in lines)


def render_prompt(tokenizer: Any, fmt: PromptFormat, instruction: str, language: str, code_prefix: str) -> str:
    """The full prompt text; it always ends with `code_prefix` verbatim."""
    if fmt.kind == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "prompt format 'chat' needs a tokenizer with a chat template; "
                "configure format: completion for this model (configs/models/<name>.yaml)"
            )
        messages: list[dict[str, str]] = []
        if fmt.system is not None:
            messages.append({"role": "system", "content": fmt.system})
        messages.append({"role": "user", "content": user_message(instruction, language)})
        head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if not isinstance(head, str):
            raise TypeError(f"apply_chat_template returned {type(head).__name__}, expected str")
        if fmt.fence:
            head += f"```{FENCE_TAGS.get(language, language)}\n"
        return head + code_prefix
    header = comment_block(instruction, language) if instruction.strip() else ""
    bos = ""
    add_bos = fmt.add_bos if fmt.add_bos is not None else bool(getattr(tokenizer, "add_bos_token", False))
    if add_bos and getattr(tokenizer, "bos_token", None):
        bos = str(tokenizer.bos_token)
    return bos + header + code_prefix


def encode_prompt(tokenizer: Any, fmt: PromptFormat, instruction: str, language: str, code_prefix: str) -> list[int]:
    """Token ids of the full rendered prompt ending with the code prefix.

    Special tokens are part of the rendered text (chat template / BOS), so the text is encoded
    with ``add_special_tokens=False``.
    """
    text = render_prompt(tokenizer, fmt, instruction, language, code_prefix)
    return list(tokenizer.encode(text, add_special_tokens=False))


def encode_continuation(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a continuation text (no special tokens added)."""
    return list(tokenizer.encode(text, add_special_tokens=False))


def decode_tokens(tokenizer: Any, token_ids: Sequence[int]) -> str:
    """Decode exactly (no whitespace clean-up), keeping the text aligned with the token ids."""
    return str(tokenizer.decode(list(token_ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))
