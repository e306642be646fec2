"""Every relative link in the README and the docs leads to a file that exists (and to a heading there)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The README, the docs, and the README of each top-level folder (bench/, …); not .venv's.
DOCUMENTS = sorted(
    {ROOT / "README.md", *ROOT.glob("docs/*.md")}
    | {p for p in ROOT.glob("*/README.md") if not p.parent.name.startswith(".")}
)

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"`+[^`]*`+")
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose(path: Path) -> Iterator[tuple[int, str]]:
    """The lines outside fenced code blocks."""
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield number, line


def links(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for number, line in _prose(path):
        line = _CODE_SPAN.sub("", line)  # a link in code is not a link
        found += [(number, target) for target in _INLINE_LINK.findall(line)]
        reference = _REFERENCE.match(line)
        if reference:
            found.append((number, reference.group(1)))
    return found


def anchors(path: Path) -> set[str]:
    """The ids GitHub gives the headings of ``path``: lower case, punctuation dropped, '-' for spaces."""
    seen: dict[str, int] = {}
    ids: set[str] = set()
    for _, line in _prose(path):
        heading = _HEADING.match(line)
        if not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(2))  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def _is_relative(target: str) -> bool:
    parsed = urlparse(target)
    return not parsed.scheme and not parsed.netloc


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(document: Path) -> None:
    broken: list[str] = []
    for number, target in links(document):
        if not _is_relative(target):
            continue
        file_part, _, fragment = target.partition("#")
        destination = (document.parent / unquote(file_part)).resolve() if file_part else document
        where = f"{document.relative_to(ROOT)}:{number}: {target}"
        if not destination.exists():
            broken.append(f"{where} (no file {destination})")
        elif fragment and destination.suffix == ".md" and unquote(fragment).lower() not in anchors(destination):
            broken.append(f"{where} (no heading #{fragment} in {destination.relative_to(ROOT)})")
    assert broken == [], "broken links:\n" + "\n".join(broken)


def test_the_checker_sees_links_and_headings(tmp_path: Path) -> None:
    """The parser finds what GitHub renders as links and headings, and skips code."""
    page = tmp_path / "page.md"
    page.write_text(
        "# Exit codes\n## The `fitwire` command\n## Exit codes\n"
        "See [a](docs/a.md#x) and ![img](pic.png \"t\"), not `[b](b.md)`.\n"
        "```\n[c](c.md)\n```\n[ref]: other.md\n[web](https://example.com)\n",
        encoding="utf-8",
    )
    assert [t for _, t in links(page)] == ["docs/a.md#x", "pic.png", "other.md", "https://example.com"]
    assert anchors(page) == {"exit-codes", "the-fitwire-command", "exit-codes-1"}
