"""Stop rules per language, fence handling and token-boundary cuts (pure, no model)."""

from __future__ import annotations

import pytest

from treeplay.policy.stoprules import StopRule, cut_tokens, strip_markdown_fences, token_ends


def cut_text(language: str, prefix: str, completion: str, stop: tuple[str, ...] = ()) -> str:
    cut = StopRule(language, prefix, stop_strings=stop).find(completion)
    return completion if cut is None else completion[:cut]


# ------------------------------------------------------------------ Python


def test_python_stops_at_dedent_after_function_body() -> None:
    prefix = "import os\n\ndef read(path):\n"
    completion = "    with open(path) as fh:\n        return fh.read()\n\nprint(read('x'))\n"
    assert cut_text("py", prefix, completion) == "    with open(path) as fh:\n        return fh.read()\n\n"


def test_python_keeps_going_while_body_incomplete() -> None:
    prefix = "def f(x):\n"
    assert StopRule("py", prefix).find("    y = x + 1\n    ") is None


def test_python_nested_def_stops_at_its_own_indent() -> None:
    prefix = "class A:\n    def m(self):\n"
    completion = "        return 1\n\n    def other(self):\n        pass\n"
    assert cut_text("py", prefix, completion) == "        return 1\n\n"


def test_python_closing_bracket_at_def_indent_is_not_a_dedent() -> None:
    prefix = "def f(\n    a,\n"
    completion = "):\n    return a\nx = 1\n"
    assert cut_text("py", prefix, completion) == "):\n    return a\n"


def test_python_docstring_lines_at_column_zero_do_not_stop() -> None:
    prefix = "def f():\n"
    completion = '    """Doc\nstill doc\n    """\n    return 2\nz = 3\n'
    assert cut_text("py", prefix, completion) == '    """Doc\nstill doc\n    """\n    return 2\n'


def test_python_prefix_ending_inside_docstring() -> None:
    prefix = 'def f():\n    """\n    Return two.\n'
    completion = 'Example at column zero\n    """\n    return 2\nprint(f())\n'
    assert cut_text("py", prefix, completion) == 'Example at column zero\n    """\n    return 2\n'


def test_python_without_open_def_stops_after_first_top_level_body() -> None:
    prefix = "import os\n"
    completion = "def g():\n    return 1\n\ndef h():\n    return 2\nprint(g())\n"
    assert cut_text("py", prefix, completion) == "def g():\n    return 1\n\ndef h():\n    return 2\n"


def test_python_prefix_mid_line_continues_that_line() -> None:
    prefix = "def f(x):\n    return "
    completion = "x * 2\nprint(f(2))\n"
    assert cut_text("py", prefix, completion) == "x * 2\n"


# ------------------------------------------------------------------ brace languages


@pytest.mark.parametrize(
    ("language", "prefix", "completion", "expected"),
    [
        (
            "c",
            "#include <stdio.h>\n\nint add(int a, int b) {\n",
            "    if (a > 0) {\n        return a + b; /* } */\n    }\n    return b;\n}\n\nint main() { return 0; }\n",
            "    if (a > 0) {\n        return a + b; /* } */\n    }\n    return b;\n}",
        ),
        (
            "cpp",
            "#include <string>\nstd::string f(const std::string& s) {\n",
            '    std::string t = "}{";\n    return s + t;\n}\nint main() {}\n',
            '    std::string t = "}{";\n    return s + t;\n}',
        ),
        (
            "js",
            "const express = require('express');\nfunction handler(req, res) {\n",
            "  const m = { a: 1 };\n  res.send(`x}${m.a}`); // }\n}\nmodule.exports = handler;\n",
            "  const m = { a: 1 };\n  res.send(`x}${m.a}`); // }\n}",
        ),
        (
            "go",
            "package main\n\nfunc Read(path string) ([]byte, error) {\n",
            "\tif path == \"\" {\n\t\treturn nil, nil\n\t}\n\treturn os.ReadFile(path)\n}\n\nfunc main() {}\n",
            "\tif path == \"\" {\n\t\treturn nil, nil\n\t}\n\treturn os.ReadFile(path)\n}",
        ),
        (
            "java",
            "public class A {\n    public static int f(int x) throws Exception {\n",
            "        for (int i = 0; i < x; i++) { x += '}'; }\n        return x;\n    }\n}\n",
            "        for (int i = 0; i < x; i++) { x += '}'; }\n        return x;\n    }",
        ),
    ],
)
def test_brace_languages_stop_after_function_close(language: str, prefix: str, completion: str, expected: str) -> None:
    assert cut_text(language, prefix, completion) == expected


def test_c_without_open_function_stops_after_first_function_not_struct() -> None:
    prefix = "#include <stdlib.h>\n"
    completion = "struct P { int x; };\nint get(struct P *p) {\n  return p->x;\n}\nint other() {}\n"
    assert cut_text("c", prefix, completion) == "struct P { int x; };\nint get(struct P *p) {\n  return p->x;\n}"


def test_c_allman_braces_and_nested_control_blocks() -> None:
    prefix = "void f(int n)\n{\n    while (n)\n    {\n"
    completion = "        n--;\n    }\n}\nvoid g() {}\n"
    assert cut_text("c", prefix, completion) == "        n--;\n    }\n}"


def test_brace_rule_waits_for_unbalanced_body() -> None:
    assert StopRule("go", "func F() {\n").find("\tif x {\n\t\ty()\n\t}\n") is None


# ------------------------------------------------------------------ Ruby, fences, stop strings


def test_ruby_keeps_end_of_method() -> None:
    prefix = "def greet(name)\n"
    completion = "  if name\n    puts name\n  end\nend\ngreet('x')\n"
    assert cut_text("rb", prefix, completion) == "  if name\n    puts name\n  end\nend"


def test_closing_fence_ends_code_in_every_language() -> None:
    for language in ("py", "c", "js", "rb"):
        assert cut_text(language, "x = 1\n", "y = 2\n```\nExplanation...") == "y = 2\n"


def test_fence_only_counts_at_line_start() -> None:
    assert StopRule("py", "s = ", fences=True).find('"```"\n') is None


def test_user_stop_strings_cut_before_the_string() -> None:
    assert cut_text("py", "def f():\n", "    return 1  # END more", stop=("# END",)) == "    return 1  "


def test_strip_markdown_fences_extracts_first_block() -> None:
    text = "Here you go:\n```python\ndef f():\n    return 1\n```\nDone."
    assert strip_markdown_fences(text) == "def f():\n    return 1\n"
    assert strip_markdown_fences("x = 1\n") == "x = 1\n"
    assert strip_markdown_fences("x = 1\n```\n") == "x = 1\n"


# ------------------------------------------------------------------ token cuts


def test_cut_tokens_prefers_boundary_after_trailing_whitespace() -> None:
    pieces = ["  return 1;", "\n}", "\n\n", "int", " main"]
    decoded = ["".join(pieces[:k]) for k in range(len(pieces) + 1)]
    brace_end = decoded[-1].index("}") + 1
    assert cut_tokens(decoded, brace_end) == 2  # "\n}" token boundary is exactly after the brace
    assert cut_tokens(decoded, brace_end - 1) == 1  # mid-token cut with code after: back off
    # a cut in whitespace extends to the end of the whitespace-only token
    assert cut_tokens(decoded, len(decoded[2]) + 1) == 3


def test_token_ends_are_where_each_decoded_prefix_ends() -> None:
    pieces = {1: "    x = 1", 2: "\n", 3: "\n    ", 4: "y"}
    assert token_ends(lambda ids: "".join(pieces[i] for i in ids), [1, 2, 3, 4]) == (9, 10, 15, 16)
    # a byte-level tokenizer decodes half of "é" as U+FFFD: that prefix ends inside a character
    halves = {(5,): "a", (5, 6): "a\ufffd", (5, 6, 7): "aé"}
    assert token_ends(lambda ids: halves[tuple(ids)], [5, 6, 7]) == (1, -1, 2)
    assert token_ends(lambda ids: "", []) == ()


def test_cut_tokens_skips_boundaries_inside_multibyte_characters() -> None:
    decoded = ["", "a", "a\ufffd", "aé", "aéb"]
    assert cut_tokens(decoded, 2) == 3


def test_python_prefix_ending_with_the_closing_docstring_quotes() -> None:
    # SALLM prompts end with the docstring's closing ''' and no newline
    prefix = "@app.route('/w')\ndef write():\n    '''\n    Write the results.\n    '''"
    completion = "\n    results = request.args.get('r')\n    return results\n\nif __name__ == '__main__':\n    app.run(debug=True)\n"
    assert cut_text("py", prefix, completion) == "\n    results = request.args.get('r')\n    return results\n\n"
