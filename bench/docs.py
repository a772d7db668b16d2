"""docs/benchmarks.md is written by several benchmarks: each owns one '## ' section."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def replace_section(section: str, doc: Path = DOC) -> None:
    """Put ``section`` (starting with its '## ' heading line) in place of the section with the
    same heading, or append it; every other section stays as it is."""
    heading = section.splitlines()[0]
    text = doc.read_text() if doc.is_file() else "# Benchmarks\n"
    if heading in text:
        before, _, after = text.partition(heading)
        rest = after.split("\n## ", 1)
        text = before + section.rstrip("\n") + "\n" + ("\n## " + rest[1] if len(rest) == 2 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.parent.mkdir(exist_ok=True)
    doc.write_text(text)
