"""One user, now: read its history from the database, adapt, rank. For looking and debugging.

It runs the nightly job's own code for a batch of one (:class:`~.batch.BatchScorer`), so
what it shows is what ``recmeta score`` would write for that user.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import registry
from .batch import BatchScorer, Counts, check_feedback
from .ids import for_column, plain_id
from .sql import SqlReader, SqlSource

if TYPE_CHECKING:
    from recmeta import MetaRecommender


def load_model(engine: sa.Engine, model: str) -> MetaRecommender:
    """A model from its directory, or from the registry by id (refused when its directory
    was overwritten since it was registered, as ``recmeta score`` refuses it)."""
    from recmeta import MetaRecommender

    if Path(model).is_dir():
        return MetaRecommender.load(model)
    with engine.connect() as conn:
        entry = registry.get_unchanged(conn, int(model)) if str(model).isdigit() else None
    if entry is None:
        return MetaRecommender.load(model)  # fails with the loader's own message
    return MetaRecommender.load(entry.artifact)


def recommend_one(engine: sa.Engine, source: SqlSource, model: str, user: str, n: int = 10,
                  history: int | None = None, exclude_seen: bool = True) -> dict:
    """Top-``n`` for ``user`` (an id as text, matched to the column's type).

    Returns
    -------
    dict
        ``user``, ``recommendations`` (a list of ``{rank, item_id, score}``), ``counts``
        (as in the nightly job's summary) and a one-line ``explanation``.
    """
    fitted = load_model(engine, model)
    reader = SqlReader(engine, source)
    matched = for_column([user], reader.user)  # [] when it cannot be an id of that column
    with engine.connect() as conn:
        check_feedback(fitted, source.interactions.rating, reader.rating_sample(conn))
        last_n = history or fitted.max_history
        rows = reader.histories(conn, matched, last_n)
        older = reader.older_items(conn, rows, last_n) if exclude_seen else None
        user_table = reader.features(conn, "user", [user])
        items = reader.features(conn, "item")
        candidates = reader.features(conn, "candidates")
    scorer = BatchScorer(fitted, n, exclude_seen, False, items,
                         candidates if candidates is not None else items)
    # as the job's batches hold them (a UUID as its text): the history's ids are read so
    recs, counts = scorer.score([plain_id(u) for u in matched] or [user], rows, user_table,
                                older)
    described = user_table is not None and len(user_table) > 0
    nowhere = counts.users_new and not counts.rows_read and not described
    return {"user": user, "explanation": explain(counts, scorer.n_candidates(), nowhere,
                                                 fitted.max_history),
            "counts": counts.to_dict(),
            "recommendations": [{"rank": int(r), "item_id": i, "score": float(s)} for i, s, r
                                in zip(recs["item_id"], recs["score"], recs["rank"],
                                       strict=True)]}


def explain(counts: Counts, n_candidates: int, nowhere: bool = False,
            max_history: int | None = None) -> str:
    """What happened to one user, in a sentence; ``nowhere``: the id is in neither the
    model, the interactions nor the users table (a typo, or another id column?);
    ``max_history``: the model's, the most rows a user is adapted on."""
    dropped = counts.rows_read - counts.rows_used
    rows = f"{counts.rows_used} history row(s) used" + (f", {dropped} dropped" if dropped else "")
    if max_history is not None and counts.rows_used > max_history:
        rows += f" (adapted on the latest {max_history}, the model's max_history)"
    if counts.users_cold:
        who = "no usable history: scored by the meta-learned initialisation on its features"
        if nowhere:
            who = ("unknown: not in the model, the interactions nor the users table (check "
                   "the id), so " + who)
    elif counts.users_new:
        who = "new to the model: adapted on its database history alone"
    else:
        who = "known to the model, adapted on its database history"
    if counts.skipped_no_candidates:
        who += "; no candidate left to recommend (all seen)"
    return f"{rows}; {who}; ranked among {n_candidates} items"
