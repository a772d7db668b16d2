"""Counts in words that agree with them: "1 segment", "2 segments" ("1 segments" reads as a slip)."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
