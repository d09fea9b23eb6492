"""Language names accepted by the oracle and the file extension each is analysed under."""

from __future__ import annotations

from treeplay.tasks.records import language_from_filename

ALIASES: dict[str, str] = {
    "py": "py",
    "python": "py",
    "python3": "py",
    "c": "c",
    "cpp": "cpp",
    "c++": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "js": "js",
    "javascript": "js",
    "jsx": "js",
    "node": "js",
    "go": "go",
    "golang": "go",
    "java": "java",
    "rb": "rb",
    "ruby": "rb",
}

EXTENSION: dict[str, str] = {"py": "py", "c": "c", "cpp": "cpp", "js": "js", "go": "go", "java": "java", "rb": "rb"}

SUPPORTED = tuple(EXTENSION)

# languages whose line comments open with `#` (the others use `//` and `/* */`)
HASH_COMMENT = frozenset({"py", "rb"})


def normalise_language(language: str) -> str:
    """'Python' -> 'py', 'C++' -> 'cpp'...; ValueError naming the supported ones otherwise."""
    key = language.strip().lower()
    if key not in ALIASES:
        raise ValueError(f"oracle: unsupported language {language!r} (supported: {', '.join(SUPPORTED)})")
    return ALIASES[key]


def language_of_path(path: str) -> str:
    return normalise_language(language_from_filename(path))


def try_normalise_language(language: str) -> str | None:
    """The oracle's name for a language, or None when the oracle has no judge for it."""
    return ALIASES.get(language.strip().lower())
