"""The nightly job from Python, on an application's own tables.

An application keeps its events in ``app_events(uid, sku, stars, ts)``, with user and item
features in ``app_users`` and ``app_items``. This script maps those columns, trains a model
on them, registers it, scores every user in batches and reads the top-N back. (To have
something to run on, it first fills a SQLite file with synthetic data; point ``--db`` at
your own database and drop that step.)

The same from the shell, e.g. from cron::

    recmeta db upgrade --db "$DB"
    recmeta train --db "$DB" --interactions app_events --user-col uid --item-col sku \\
        --rating-col stars --time-col ts --users app_users --user-key uid \\
        --items app_items --item-key sku --out models/nightly
    recmeta score --db "$DB" --model models/nightly --interactions app_events \\
        --user-col uid --item-col sku --rating-col stars --time-col ts \\
        --users app_users --user-key uid --items app_items --item-key sku -n 20 \\
        > score.json || recmeta score --db "$DB" --resume "$(jq .run_id score.json)"

Run: ``python examples/nightly_job.py --dir /tmp/nightly``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import sqlalchemy as sa

from recmeta import make_synthetic
from recmeta.adapters import migrate, runs, training
from recmeta.adapters.scoring import NightlyJob, ScoreSettings
from recmeta.adapters.sql import Entities, Interactions, SqlReader, SqlSource

SOURCE = SqlSource(
    interactions=Interactions("app_events", user="uid", item="sku", rating="stars", time="ts"),
    users=Entities("app_users", key="uid"),
    items=Entities("app_items", key="sku"),
)


def fill_with_synthetic_data(engine: sa.Engine, n_users: int, n_items: int) -> None:
    """Stand-in for the application's own tables."""
    data = make_synthetic(n_users, n_items, random_state=0)
    data.interactions.rename(columns={"user_id": "uid", "item_id": "sku", "rating": "stars",
                                      "timestamp": "ts"}).to_sql("app_events", engine,
                                                                 index=False)
    data.users.rename(columns={"user_id": "uid"}).to_sql("app_users", engine, index=False)
    data.items.rename(columns={"item_id": "sku"}).to_sql("app_items", engine, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("nightly-example"))
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / "app.db"
    db.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{db}")
    fill_with_synthetic_data(engine, args.users, args.items)

    # 1. recmeta's own tables (registry, runs, recommendations) beside the application's
    migrate.upgrade(engine)
    # 2. train on the mapped tables, save, register
    reader = SqlReader(engine, SOURCE)
    X, y, _ = training.frame_from_sql(reader)
    model_dir = args.dir / "model"
    params = {"user_features": reader.user_features, "item_features": reader.item_features,
              "max_epochs": args.epochs, "random_state": 0, "verbose": 0}
    model, metrics = training.fit_and_save(X, y, params, model_dir)
    model_id = training.register(engine, model_dir, model, metrics, name="nightly")
    # 3. the nightly job: batches of users, top-20 each, one transaction per batch
    job = NightlyJob.start(engine, SOURCE, str(model_id), ScoreSettings(n=20, batch_size=250))
    summary = job.run(progress=False)
    print(json.dumps(summary, indent=2))
    # 4. what the application reads
    print(runs.read(engine, summary["run_id"]).head(10).to_string(index=False))


if __name__ == "__main__":
    main()
