"""Prompt diffs as data for a side-by-side template: lines, with changed words marked.

Nothing here is HTML: the template escapes every piece of text, so a prompt containing
markup shows as text.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

#: Unchanged lines kept around each change; longer unchanged runs fold into one gap row.
CONTEXT_LINES = 3

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True)
class Segment:
    text: str
    changed: bool = False


@dataclass(frozen=True)
class Side:
    """One side of a row: line number (1-based) and the line in segments; empty: no line."""

    number: int | None = None
    segments: tuple[Segment, ...] = ()


@dataclass(frozen=True)
class Row:
    """``kind``: ``equal``, ``changed`` (both sides), ``removed``, ``added`` or ``gap``
    (``folded`` unchanged lines not shown)."""

    kind: str
    old: Side = field(default_factory=Side)
    new: Side = field(default_factory=Side)
    folded: int = 0


@dataclass(frozen=True)
class Diff:
    rows: list[Row]
    added: int
    removed: int

    @property
    def identical(self) -> bool:
        return self.added == 0 and self.removed == 0


def prompt_diff(old: str, new: str) -> Diff:
    """Line diff of two prompts; lines that changed in place are word-diffed."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[Row] = []
    added = removed = 0
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(
                Row("equal", Side(i + 1, (Segment(a[i]),)), Side(j + 1, (Segment(b[j]),)))
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
            continue
        removed += i2 - i1
        added += j2 - j1
        pairs = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(pairs):
            old_segments, new_segments = _word_diff(a[i1 + k], b[j1 + k])
            rows.append(
                Row("changed", Side(i1 + k + 1, old_segments), Side(j1 + k + 1, new_segments))
            )
        for i in range(i1 + pairs, i2):
            rows.append(Row("removed", old=Side(i + 1, (Segment(a[i], changed=True),))))
        for j in range(j1 + pairs, j2):
            rows.append(Row("added", new=Side(j + 1, (Segment(b[j], changed=True),))))
    return Diff(rows=_fold(rows), added=added, removed=removed)


def _word_diff(old: str, new: str) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    left: list[Segment] = []
    right: list[Segment] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if i2 > i1:
            _append(left, "".join(a[i1:i2]), changed=tag != "equal")
        if j2 > j1:
            _append(right, "".join(b[j1:j2]), changed=tag != "equal")
    return tuple(left), tuple(right)


def _append(segments: list[Segment], text: str, *, changed: bool) -> None:
    """Add text, merging it into the last segment when that is of the same kind."""
    if segments and segments[-1].changed == changed:
        segments[-1] = Segment(segments[-1].text + text, changed)
    else:
        segments.append(Segment(text, changed))


def _fold(rows: list[Row]) -> list[Row]:
    """Replace runs of unchanged lines further than CONTEXT_LINES from a change by a gap."""
    keep = [False] * len(rows)
    for index, row in enumerate(rows):
        if row.kind != "equal":
            for k in range(
                max(0, index - CONTEXT_LINES), min(len(rows), index + CONTEXT_LINES + 1)
            ):
                keep[k] = True
    folded: list[Row] = []
    run = 0
    for row, kept in zip(rows, keep, strict=True):
        if kept:
            if run:
                folded.append(Row("gap", folded=run))
                run = 0
            folded.append(row)
        else:
            run += 1
    if run:
        folded.append(Row("gap", folded=run))
    return folded
