"""Smoke test of ``bench/overhead.py``: its Parley side on one short clip (real session and
Silero VAD, fake providers, real-time pacing, ~4 s). The pipecat side is not run: it needs its
own venv installed from PyPI. Nothing asserts a time (timing claims live in the benchmark)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _overhead() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_overhead", ROOT / "bench" / "overhead.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_parley_side_answers_the_clip_once_and_reports_its_figures(tmp_path: Path) -> None:
    overhead = _overhead()
    spec = overhead.build_input(
        names=["ms_turn_on_the_lamp"], rounds=1, silence_ms=1200, work_dir=tmp_path, warmup=False
    )
    pcm = Path(spec["pcm"]).read_bytes()
    assert len(pcm) == sum(s["frames"] for s in spec["segments"]) * spec["frame_bytes"]
    spec["pcm_bytes"] = pcm

    result = await overhead.parley_call(spec, profile=None)

    assert result["finals_per_segment"] == [1]  # one turn, answered once
    assert len(result["ttfa_ms"]) == 1
    assert result["unanswered"] == 0
    assert result["errors"] == []
    assert result["interruptions"] == 0
    assert result["frames"] == len(pcm) // spec["frame_bytes"]
    assert result["cpu_s"] > 0

    row = overhead.summarize({**result, "version": "test"}, spec)
    pipecat = dict(row, framework="pipecat", cpu_us_per_frame=row["cpu_us_per_frame"] * 4)
    rows = [row, pipecat]
    overhead.print_table(rows)
    assert row["turns"] == 1 and row["splits"] == 0
    assert row["cpu_ratio_to_pipecat"] == 0.25
    assert overhead.targets(rows)["cpu_le_half_of_pipecat"] is True
