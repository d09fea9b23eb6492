"""treeplay.policy stage: one `Policy` interface over real model backends.

`load_policy("embedded")` gives the embedded Qwen2.5-Coder-0.5B-Instruct served by llama.cpp on CPU
(backend "auto"); any local HF model dir or cached hub id works with backend "hf"; backend "vllm"
needs the `[gpu]` extra.

The stage's public face, imported lazily (PEP 562) so that importing one submodule (e.g. the
stage's config from a run config) does not import the whole stage and its heavy dependencies:
`load_policy`; `resolve_backend`; `BACKENDS`; `Policy`; `SampleRequest`; `SamplingParams`; `Completion`;
`ScoreRequest`; `Scored`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treeplay.lazy_face import lazy_face

if TYPE_CHECKING:  # the real types for type checkers; nothing is imported at run time
    from treeplay.policy.load import BACKENDS, load_policy, resolve_backend  # noqa: F401
    from treeplay.policy.records import (  # noqa: F401
        Completion,
        Policy,
        SampleRequest,
        SamplingParams,
        Scored,
        ScoreRequest,
    )

_FACE = {
    "load_policy": "treeplay.policy.load",
    "resolve_backend": "treeplay.policy.load",
    "BACKENDS": "treeplay.policy.load",
    "Completion": "treeplay.policy.records",
    "Policy": "treeplay.policy.records",
    "SampleRequest": "treeplay.policy.records",
    "SamplingParams": "treeplay.policy.records",
    "ScoreRequest": "treeplay.policy.records",
    "Scored": "treeplay.policy.records",
}
__getattr__, __all__ = lazy_face(__name__, _FACE)
