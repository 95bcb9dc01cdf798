"""Benchmarks of the nightly job, printed as one table.

1. The nightly job at MovieLens-1M size (6,040 users x 3,706 items, about a million ratings,
   full catalogue, top-20 written) from SQLite, and the same from PostgreSQL: wall time of
   the ``recmeta score`` process (imports and model loading included) and users per second.
2. Peak resident memory of ``recmeta score`` for 10k and for 1M synthetic users.
3. Fetching the histories of 1,000 users on PostgreSQL: one query per batch (LATERAL) vs
   one query per user.

Each ``recmeta score`` runs as its own process; its peak RSS comes from ``wait4``. Data and
databases are written under a temporary directory (``--workdir`` to keep them). PostgreSQL
comes from RECMETA_PG_URL; without it those rows say so.

Run: ``python benchmarks/nightly.py`` (about 10 minutes on 2 cores; ``--quick`` for a
smoke run, ``--movielens DIR`` for the real ratings.dat instead of synthetic ones).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recmeta import columns as C
from recmeta import make_synthetic
from recmeta.adapters import migrate, training
from recmeta.adapters.sql import Entities, SqlReader, SqlSource

ML1M_USERS, ML1M_ITEMS = 6040, 3706
SOURCE = SqlSource(users=Entities("bench_users", C.USER), items=Entities("bench_items", C.ITEM))
TABLE_SOURCE = ["--users", "bench_users", "--items", "bench_items"]


# ------------------------------------------------------------------------ loading
def bulk_load(engine: sa.Engine, name: str, frame: pd.DataFrame, append: bool = False) -> None:
    """Write ``frame`` to table ``name`` fast: COPY on PostgreSQL, executemany elsewhere."""
    if not append:
        frame.head(0).to_sql(name, engine, index=False, if_exists="replace")
    if engine.dialect.name != "postgresql":
        frame.to_sql(name, engine, index=False, if_exists="append", chunksize=50_000)
        return
    columns = ", ".join(f'"{c}"' for c in frame.columns)  # benchmark-owned names only
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f'COPY "{name}" ({columns}) FROM STDIN') as copy:
            for row in frame.itertuples(index=False):
                copy.write_row(row)


def load_ratings(engine: sa.Engine, ratings: pd.DataFrame, users: pd.DataFrame | None,
                 items: pd.DataFrame | None) -> None:
    migrate.upgrade(engine)
    rows = ratings.astype({C.USER: str, C.ITEM: str})
    cols = [C.USER, C.ITEM, C.RATING, *([C.TIME] if C.TIME in rows else [])]
    bulk_load(engine, "recmeta_interactions", rows[cols], append=True)
    for name, frame in (("bench_users", users), ("bench_items", items)):
        if frame is not None:
            bulk_load(engine, name, frame)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE"))


def ml1m_data(movielens: Path | None, quick: bool):
    """(ratings, users, items) at MovieLens-1M size: synthetic, or the real files."""
    if movielens is not None:
        from recmeta.datasets import load_movielens_1m

        data = load_movielens_1m(movielens)
        return data.ratings, data.users, data.items, "MovieLens-1M ratings.dat"
    n_users, n_items = (600, 400) if quick else (ML1M_USERS, ML1M_ITEMS)
    data = make_synthetic(n_users, n_items, ratings_per_user=(20, 600), random_state=0)
    return data.interactions, data.users, data.items, "synthetic, ML-1M shape"


def rss_ratings(n_users: int, n_items: int, seed: int = 0) -> pd.DataFrame:
    """1 to 5 ratings per user over ``n_items`` items, vectorised (millions of users)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, size=n_users)
    users = np.repeat(np.arange(n_users), counts)
    return pd.DataFrame({C.USER: users, C.ITEM: rng.integers(0, n_items, size=len(users)),
                         C.RATING: rng.integers(1, 6, size=len(users)).astype(np.float64),
                         C.TIME: np.arange(len(users))}).drop_duplicates([C.USER, C.ITEM])


# ------------------------------------------------------------------------ running
def train(url: str, out: Path, epochs: int, source: SqlSource, **params) -> float:
    engine = sa.create_engine(url)
    reader = SqlReader(engine, source)
    X, y, _ = training.frame_from_sql(reader)
    started = time.perf_counter()
    model, metrics = training.fit_and_save(
        X, y, {"user_features": reader.user_features, "item_features": reader.item_features,
               "max_epochs": epochs, "random_state": 0, "verbose": 0, **params}, out)
    training.register(engine, out, model, metrics, out.name)
    return time.perf_counter() - started


# The child reports its own peak RSS (VmHWM of its own address space) at exit: getrusage's
# ru_maxrss would carry over the benchmark's own, larger, RSS across fork and exec.
PEAK = """
import atexit, os
def peak():
    status = open("/proc/self/status").read()
    with open(os.environ["RECMETA_BENCH_PEAK"], "w") as out:
        out.write(status.split("VmHWM:")[1].split()[0])
atexit.register(peak)
from recmeta.cli import main
main()
"""


def score(url: str, model: Path, *args: str) -> tuple[float, dict, float]:
    """Run ``recmeta score`` as a process: (wall seconds, summary, peak RSS in MiB)."""
    with tempfile.NamedTemporaryFile(suffix=".peak") as peak:
        command = [sys.executable, "-c", PEAK, "score", "--db", url, "--model", str(model),
                   "--no-progress", *args]
        env = {**os.environ, "RECMETA_BENCH_PEAK": peak.name}
        started = time.perf_counter()
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"recmeta score failed: {done.stdout.decode()[-2000:]}")
        return wall, json.loads(done.stdout), int(Path(peak.name).read_text()) / 1024


def history_fetch(url: str, n_users: int, repeats: int = 3) -> tuple[float, float]:
    """Median seconds to read the last 100 interactions of ``n_users`` users: one query
    for the batch, and one query per user."""
    engine = sa.create_engine(url)
    reader = SqlReader(engine, SqlSource())
    with engine.connect() as conn:
        users = reader.next_users(conn, None, n_users)
        batched, per_user = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            one = reader.histories(conn, users, 100)
            t1 = time.perf_counter()
            many = reader.history_queries(conn, users, 100)
            t2 = time.perf_counter()
            batched.append(t1 - t0)
            per_user.append(t2 - t1)
    pd.testing.assert_frame_equal(one, many, check_dtype=False)
    return statistics.median(batched), statistics.median(per_user)


# ---------------------------------------------------------------------- databases
def sqlite_url(workdir: Path, name: str) -> str:
    path = workdir / f"{name}.db"
    path.unlink(missing_ok=True)
    return f"sqlite:///{path}"


def postgres_url(name: str) -> str | None:
    """A fresh schema on RECMETA_PG_URL's server, or None without one."""
    base = os.environ.get("RECMETA_PG_URL")
    if not base:
        return None
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    with sa.create_engine(base).begin() as conn:
        conn.execute(sa.schema.CreateSchema(schema))
    url = sa.engine.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def drop_postgres(url: str) -> None:
    schema = sa.engine.make_url(url).query["options"].split("=", 1)[1]
    base = os.environ["RECMETA_PG_URL"]
    with sa.create_engine(base).begin() as conn:
        conn.execute(sa.schema.DropSchema(schema, cascade=True))


# -------------------------------------------------------------------------- table
def nightly_rows(args, workdir: Path) -> list[dict]:
    ratings, users, items, what = ml1m_data(args.movielens, args.quick)
    label = (f"{ratings[C.USER].nunique():,} users x {items.shape[0]:,} items, "
             f"{len(ratings) / 1e6:.2f}M ratings ({what}); full catalogue, top-20")
    rows, model = [], workdir / "ml1m-model"
    urls = [("sqlite", sqlite_url(workdir, "ml1m")), ("postgresql", postgres_url("ml1m"))]
    for dialect, url in urls:
        if url is None:
            rows.append(row("nightly job, ML-1M size", dialect, "skipped: RECMETA_PG_URL "
                            "is not set"))
            continue
        load_ratings(sa.create_engine(url), ratings, users, items)
        if not model.exists():
            seconds = train(url, model, args.epochs, SOURCE)
            print(f"trained the ML-1M model in {seconds:.0f} s", file=sys.stderr)
        wall, summary, rss = score(url, model, "-n", "20", *TABLE_SOURCE)
        rows.append(row("nightly job, ML-1M size", dialect, label, wall,
                        summary["users"]["scored"] / wall, rss,
                        f"job {summary['timings_s']['total']:.1f} s (read "
                        f"{summary['timings_s']['read']:.1f}, adapt+score "
                        f"{summary['timings_s']['score']:.1f}, write "
                        f"{summary['timings_s']['write']:.1f}); "
                        f"{summary['recommendations_written']:,} rows written"))
        if dialect == "postgresql":
            rows += fetch_rows(url)
            drop_postgres(url)
    return rows


def fetch_rows(url: str) -> list[dict]:
    batched, per_user = history_fetch(url, 1000)
    what = "histories of 1,000 users (last 100 each), median of 3"
    return [row("history fetch", "postgresql", f"{what}: one LATERAL query", batched,
                1000 / batched),
            row("history fetch", "postgresql", f"{what}: one query per user", per_user,
                1000 / per_user, note=f"one query per batch is {per_user / batched:.1f}x "
                                      f"faster")]


def rss_rows(args, workdir: Path) -> list[dict]:
    model = workdir / "tiny-model"
    url = sqlite_url(workdir, "tiny-train")
    data = make_synthetic(2000, args.rss_items, random_state=0)
    load_ratings(sa.create_engine(url), data.interactions, None, None)
    train(url, model, 2, SqlSource(), embedding_dim=8, hidden=(16,))
    rows = []
    for n_users in (10_000, args.rss_users):
        url = sqlite_url(workdir, f"rss-{n_users}")
        load_ratings(sa.create_engine(url), rss_ratings(n_users, args.rss_items), None, None)
        wall, summary, rss = score(url, model, "-n", "5")
        what = (f"{n_users:,} users (all new to the model), 1-5 ratings each, "
                f"{args.rss_items} items, tiny model (8-d, hidden 16), top-5")
        rows.append(row(f"peak RSS, {n_users:,} users", "sqlite", what, wall,
                        summary["users"]["scored"] / wall, rss,
                        f"{summary['recommendations_written']:,} rows written"))
        Path(url.removeprefix("sqlite:///")).unlink()
    small, large = rows[0]["rss"], rows[1]["rss"]
    rows[1]["note"] += f"; {100 * (large - small) / small:+.1f}% vs 10k"
    return rows


def row(name, database, what, wall=None, rate=None, rss=None, note="") -> dict:
    return {"name": name, "database": database, "what": what, "wall": wall, "rate": rate,
            "rss": rss, "note": note}


def print_table(rows: list[dict]) -> None:
    def cell(value, fmt):
        return "" if value is None else format(value, fmt)

    header = ("benchmark", "database", "what was run", "wall s", "users/s", "peak RSS MiB",
              "note")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print(f"| {r['name']} | {r['database']} | {r['what']} | {cell(r['wall'], '.2f')} | "
              f"{cell(r['rate'], ',.0f')} | {cell(r['rss'], ',.0f')} | {r['note']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--movielens", type=Path, default=None,
                        help="an ml-1m folder: use its ratings instead of synthetic ones")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (ML-1M)")
    parser.add_argument("--rss-users", type=int, default=1_000_000)
    parser.add_argument("--rss-items", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.rss_users = min(args.rss_users, 30_000)
    with tempfile.TemporaryDirectory(prefix="recmeta-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        rows = nightly_rows(args, workdir) + rss_rows(args, workdir)
    threads = os.environ.get("OMP_NUM_THREADS", "torch default")
    print(f"recmeta nightly benchmarks ({os.cpu_count()} CPUs, OMP_NUM_THREADS={threads}, "
          f"{time.perf_counter() - started:.0f} s in all)\n")
    print_table(rows)


if __name__ == "__main__":
    main()
