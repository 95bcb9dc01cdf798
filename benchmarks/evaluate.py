"""Full evaluation runs: MeLU's four states and the new-user curves on ML-100K and ML-1M.

Prints the report's tables and writes ``report.md``, CSV results and PNG plots to a git-ignored
folder (``reports/evaluate`` by default). The data comes from ``--data-dir`` or
``RECMETA_DATA`` (default ``../shared/data`` beside the checkout); nothing is copied.

    python benchmarks/evaluate.py                     # everything, 3 seeds (about an hour
                                                      # on 2 CPU cores)
    python benchmarks/evaluate.py --protocol melu --methods bias,als --seeds 0,1,2
    python benchmarks/evaluate.py --threads 2 --param max_epochs=20

Parts can run as separate processes (one per core) into their own folders, then be merged
into one report (every split and model is seeded by its seed alone, so a part gives the
same figures as the whole run would):

    python benchmarks/evaluate.py --protocol melu --out reports/a &
    python benchmarks/evaluate.py --protocol curves --out reports/b; wait
    python benchmarks/evaluate.py --merge reports/a reports/b --out reports/evaluate

Torch runs on one thread by default (the machine is shared); ``--threads`` changes it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from recmeta.evaluate.methods import METHODS
from recmeta.evaluate.protocols import Results
from recmeta.evaluate.report import write_report
from recmeta.evaluate.runner import DATASETS, PROTOCOLS, EvaluationConfig, run

ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "RECMETA_DATA", ROOT.parent / "shared" / "data")))
    parser.add_argument("--protocol", default=",".join(PROTOCOLS))
    parser.add_argument("--dataset", default=",".join(DATASETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="MetaRecommender parameter for the neural methods (JSON value)")
    parser.add_argument("--max-users", type=int, default=None)
    parser.add_argument("--max-train-users", type=int, default=None)
    parser.add_argument("--train-users", choices=("eligible", "all"), default="eligible")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "evaluate")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="FOLDER",
                        help="write one report from the metrics.csv, timings.csv (and "
                             "counts.csv) of these earlier runs' folders instead of running "
                             "anything")
    return parser.parse_args(argv)


def merge(folders: list[Path], out: Path) -> Path:
    """One report from the CSV results of runs written to ``folders``."""
    results = Results()
    for folder in folders:
        for name in ("metrics.csv", "timings.csv"):
            if not (folder / name).is_file():
                raise SystemExit(f"{folder / name} not found: give folders written by "
                                 f"benchmarks/evaluate.py --out.")
        results += Results(_settings(pd.read_csv(folder / "metrics.csv")),
                           pd.read_csv(folder / "timings.csv"), _settings(_counts(folder)))
    keys = ["protocol", "dataset", "setting", "method", "seed", "metric"]
    twice = results.metrics.astype({"setting": str}).duplicated(keys)
    if twice.any():
        raise SystemExit(f"{int(twice.sum())} results appear in more than one folder (e.g. "
                         f"{results.metrics[twice].iloc[0].to_dict()}); merge disjoint runs.")
    notes = "Merged from " + ", ".join(f"`{f}`" for f in folders) + \
        " (each folder's report.md gives its settings, code version and time)."
    return write_report(results, out, notes=notes)


def _settings(frame: pd.DataFrame) -> pd.DataFrame:
    """``setting`` as the runs wrote it: a support size k is a number, a state a name. A
    CSV that holds both reads k back as text, whose order puts k = 10 before k = 3."""
    if "setting" in frame:
        frame["setting"] = [int(s) if isinstance(s, str) and s.isdigit() else s
                            for s in frame["setting"]]
    return frame


def _counts(folder: Path) -> pd.DataFrame:
    """A folder's counts.csv: the users each split scored (folders written before it was
    recorded have none, and the merged report has no line for them)."""
    path = folder / "counts.csv"
    return pd.read_csv(path) if path.is_file() else Results().counts


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.merge:
        return _show(merge(args.merge, args.out))
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    params = {}
    for item in args.param:
        key, _, raw = item.partition("=")
        params[key] = json.loads(raw)
    config = EvaluationConfig(
        data_dir=args.data_dir, protocols=tuple(args.protocol.split(",")),
        datasets=tuple(args.dataset.split(",")), methods=tuple(args.methods.split(",")),
        seeds=tuple(int(s) for s in args.seeds.split(",")), neural_params=params,
        max_users=args.max_users, max_train_users=args.max_train_users,
        train_users=args.train_users, out=args.out,
        notes=f"torch threads: {args.threads}; code: {_code_version()}.")
    _, path = run(config, progress=print)
    return _show(path)


def _show(path: Path) -> int:
    """Print the report and where it is; the exit status."""
    print(path.read_text(encoding="utf-8"))
    print(f"report: {path}")
    return 0


def _code_version() -> str:
    """The commit, and whether the working tree differed from it, for the report."""
    core = hashlib.sha1(b"".join(p.read_bytes() for p in sorted((ROOT / "recmeta").glob("*.py"))))
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, text=True,
                                capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"{commit}, recmeta/*.py sha1 {core.hexdigest()[:10]}"


if __name__ == "__main__":
    raise SystemExit(main())
