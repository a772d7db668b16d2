"""docs/benchmarks.md is written by several benchmarks: each owns one '## ' section."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

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


def measure_and_write(measure: Callable[[Path], Any], render: Callable[[Any], str], write: bool,
                      prefix: str = "vidfarm-bench-") -> str:
    """Run ``measure`` in a scratch folder (removed after), print its figures and their section,
    and put the section in docs/benchmarks.md when ``write``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        figures = measure(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, default=str))
    text = render(figures)
    print(text)
    if write:
        replace_section(text)
    return text
