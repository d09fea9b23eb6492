"""The report's sections rendered to Markdown (images written next to it) and to one
self-contained HTML file (PNG charts embedded as base64, SVG inline, trees by `treeplay.tree.render`)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from treeplay.eval.report_data import Section
from treeplay.tree.render import record_block_html, record_markdown


def slug(text: str) -> str:
    """A file name for an asset (e.g. a bench name with ':' and ',')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def render_markdown(sections: Sequence[Section], assets_dir: Path, *, title: str) -> str:
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if block.kind == "text":
                out += [block.text, ""]
            elif block.kind == "table":
                out.append("| " + " | ".join(block.headers) + " |")
                out.append("|" + "---|" * len(block.headers))
                out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in block.rows]
                out.append("")
            elif block.kind in ("image", "svg"):  # svg: hand-written text (treeplay.eval.svg)
                assets_dir.mkdir(parents=True, exist_ok=True)
                (assets_dir / block.name).write_bytes(block.image)
                out += [f"![{block.text}]({assets_dir.name}/{block.name})", ""]
            elif block.kind == "pre":
                out += ["```", block.text.rstrip(), "```", ""]
            elif block.kind == "tree" and block.tree is not None:
                out += [record_markdown(block.tree), ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:14px}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}img{max-width:100%}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px}.node{background:#0969da;color:#fff;border-radius:3px;padding:0 3px;font-size:11px}
figure.svg{margin:.5em 0;overflow-x:auto}iframe.tree{width:100%;height:640px;border:1px solid #d0d7de}.label{color:#fff;border-radius:3px;padding:1px 5px;font-size:12px}ul{list-style:none;padding-left:1em}
"""


def _inline_md(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def render_html(sections: Sequence[Section], *, title: str) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if block.kind == "text":
                lines = block.text.splitlines()
                bullets = [line[2:] for line in lines if line.startswith("- ")]
                others = [line for line in lines if not line.startswith("- ")]
                body.append("<p>" + "<br>".join(_inline_md(line) for line in others) + "</p>")
                if bullets:
                    body.append("<ul class='missing'>" + "".join(f"<li>{_inline_md(b)}</li>" for b in bullets) + "</ul>")
            elif block.kind == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif block.kind == "image":
                encoded = base64.b64encode(block.image).decode("ascii")
                body.append(f"<img alt='{html.escape(block.text)}' src='data:image/png;base64,{encoded}'>")
            elif block.kind == "svg":
                body.append(f"<figure class='svg'>{block.image.decode('utf-8')}</figure>")
            elif block.kind == "pre":
                body.append(f"<details><summary>show</summary><pre>{html.escape(block.text)}</pre></details>")
            elif block.kind == "tree" and block.tree is not None:
                body.append(record_block_html(block.tree))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
