"""A progress bar for management commands' long work (replays, evaluations)."""

from __future__ import annotations

import time
from typing import Any


class ProgressBar:
    """``bar(done, total, label)`` draws ``[#####-----] 12/64 label  0:42 elapsed`` on
    ``stream`` (a command's ``stderr``): redrawn in place on a terminal, one line per step
    otherwise (logs stay readable)."""

    def __init__(self, stream: Any, *, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.tty = bool(getattr(getattr(stream, "_out", stream), "isatty", lambda: False)())

    def __call__(self, done: int, total: int, label: str) -> None:
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = int(time.monotonic() - self.started)
        text = f"[{bar}] {done}/{total} {label:<18} {elapsed // 60}:{elapsed % 60:02d} elapsed"
        if self.tty:
            self.stream.write(f"\r{text}", ending="" if done < total else "\n")
        else:
            self.stream.write(text)
