"""examples/nightly_job.py runs, end to end, on a small synthetic database."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nightly_job.py"


def test_nightly_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--dir", str(tmp_path), "--users", "120",
                                      "--items", "80", "--epochs", "1"])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    summary = json.loads(out[: out.rindex("}") + 1])
    assert summary["status"] == "finished" and summary["users"]["scored"] == 120
    assert summary["recommendations_written"] == 120 * 20  # 80 items, at most 60 rated
    assert "user_id" in out.splitlines()[-11]  # the table read back, header and 10 rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "model"]
