"""One evaluation run from a config: load the data, run the protocols, write the report.

The ``recmeta evaluate`` command and ``benchmarks/evaluate.py`` both go through :func:`run`.
"""

from __future__ import annotations

import logging
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from .. import columns as C
from ..datasets import RatingData, load_melu, load_movielens_1m, load_movielens_100k
from ..exceptions import DataError
from ..frames import not_utf8
from .methods import METHODS
from .protocols import KS, RELEVANT_FROM, Results, melu_states, relevance_threshold, support_curves
from .report import write_report
from .splits import check_ratings

logger = logging.getLogger("recmeta")

PROTOCOLS = ("melu", "curves")
DATASETS = ("ml-100k", "ml-1m")


@dataclass
class EvaluationConfig:
    """What to run. Paths: ``data_dir`` holds ``ml-100k/`` and ``ml-1m/`` (with ``melu/``);
    ``ratings`` (and optional ``users``, ``items``) name your own CSV files instead."""

    data_dir: Path | None = None
    protocols: tuple[str, ...] = PROTOCOLS
    datasets: tuple[str, ...] = DATASETS
    ratings: Path | None = None
    users: Path | None = None
    items: Path | None = None
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    ks: tuple[int, ...] = KS
    relevant_from: float | None = None  # None: 4 (MovieLens' 4 of 5), 1 on 0/1 feedback
    neural_params: dict = field(default_factory=dict)
    max_users: int | None = None
    max_train_users: int | None = None
    train_users: str = "eligible"
    out: Path = Path("reports/evaluate")
    plots: bool = True
    notes: str = ""

    def check(self) -> None:
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        bad += [d for d in self.datasets if d not in DATASETS]
        bad += [m for m in self.methods if m not in METHODS]
        if bad:
            raise DataError(f"Unknown protocol, dataset or method {bad}; protocols are "
                            f"{PROTOCOLS}, datasets {DATASETS}, methods {METHODS}.")
        if self.ratings is None and self.data_dir is None:
            raise DataError("No data: give the folder holding ml-100k/ and ml-1m/ "
                            "(--data-dir, or RECMETA_DATA), or your own --ratings CSV.")
        if self.ratings is None and self.data_dir is not None and not self.data_dir.is_dir():
            raise DataError(f"Data folder {self.data_dir} does not exist; point --data-dir "
                            f"(or RECMETA_DATA) at the folder holding ml-100k/ and ml-1m/.")


def run(config: EvaluationConfig, progress: Callable[[str], None] | None = None
        ) -> tuple[Results, Path]:
    """Run every protocol of ``config`` and write the report; returns results and its path."""
    config.check()
    started = time.perf_counter()
    results = Results()
    relevant = RELEVANT_FROM if config.relevant_from is None else config.relevant_from
    if config.ratings is not None:
        data = own_data(config.ratings, config.users, config.items)
        results += _curves(data, config, progress)
        relevant = relevance_threshold(data.ratings, config.relevant_from)
    else:
        if "melu" in config.protocols:
            melu = load_melu(config.data_dir / "ml-1m" / "melu")
            # MeLU's protocol ranks rated items by predicted rating: no implicit models
            rating_methods = [m for m in config.methods if not m.endswith("-implicit")]
            results += melu_states(melu, rating_methods, config.seeds,
                                   train_users=config.train_users,
                                   neural_params=config.neural_params,
                                   max_users=config.max_users, progress=progress)
        if "curves" in config.protocols:
            for name in config.datasets:
                results += _curves(load_named(config.data_dir, name), config, progress)
    notes = _notes(config, time.perf_counter() - started, relevant)
    path = write_report(results, config.out, notes=notes, plots=config.plots)
    return results, path


def load_named(data_dir: Path, name: str) -> RatingData:
    """``ml-100k`` or ``ml-1m`` from ``data_dir``."""
    if name == "ml-100k":
        return load_movielens_100k(data_dir / "ml-100k")
    return load_movielens_1m(data_dir / "ml-1m")


def own_data(ratings: Path, users: Path | None = None, items: Path | None = None
             ) -> RatingData:
    """Your own CSV files: ratings (user_id, item_id, rating), and optional feature tables
    keyed by user_id and item_id (multi-valued fields as ``"a|b"`` strings), each separated
    by commas, semicolons or tabs (see :func:`read_table`).

    Ids are read as text, as written (``007`` and ``7`` are two users, not one); a (user,
    item) pair on several rows keeps its last row, with a warning (else it could be in a
    user's support set and its query set at once)."""
    ids = {C.USER: str, C.ITEM: str}
    frame = read_table(ratings, dtype=ids)
    missing = [c for c in (C.USER, C.ITEM, C.RATING) if c not in frame]
    if missing:
        raise DataError(f"{ratings} has no column {missing} (its columns are "
                        f"{list(frame.columns)[:10]}); it needs user_id, item_id and rating "
                        f"(rename yours to these), in a file separated by commas, semicolons "
                        f"or tabs.")
    frame = frame[[C.USER, C.ITEM, C.RATING]]
    frame[C.RATING] = _decimal_commas(frame[C.RATING])
    check_ratings(frame, str(ratings))
    repeated = frame.duplicated([C.USER, C.ITEM], keep="last")
    if repeated.any():
        warnings.warn(f"{ratings} has {int(repeated.sum())} repeated (user_id, item_id) "
                      f"row(s): the last of each pair is kept.", UserWarning, stacklevel=2)
        frame = frame.loc[~repeated].reset_index(drop=True)
    return RatingData(frame, _features(users, C.USER, frame), _features(items, C.ITEM, frame),
                      own_name(ratings))


def _decimal_commas(values: pd.Series) -> pd.Series:
    """Ratings written with a decimal comma (``4,5``, as spreadsheets save semicolon-separated
    files in many locales) as numbers; anything else as it is."""
    if pd.api.types.is_numeric_dtype(values):
        return values
    text = values.dropna().astype(str).str.strip()
    if not text.str.fullmatch(r"-?\d+(,\d+)?").all():
        return values
    return pd.to_numeric(text.str.replace(",", ".", regex=False)).reindex(values.index)


def _features(path: Path | None, key: str, ratings: pd.DataFrame) -> pd.DataFrame:
    """A feature table keyed by ``key`` (ids as text, as the ratings'), or the ids alone."""
    if not path:
        return pd.DataFrame({key: ratings[key].unique()})
    table = read_table(path, dtype={key: str})
    if key not in table:
        raise DataError(f"{path} has no column {key!r}; a feature table needs its key column "
                        f"{key!r}, named as in the ratings file, beside the feature columns "
                        f"(its columns are {list(table.columns)[:10]}).")
    return table


def read_table(path: Path, dtype: dict) -> pd.DataFrame:
    """A CSV file separated by whichever of commas, semicolons and tabs its header line holds
    most of: commas as a rule, semicolons as spreadsheets save CSV in many locales, tabs."""
    with open(path, encoding="utf-8", errors="replace") as file:
        header = file.readline()
    try:
        return pd.read_csv(path, dtype=dtype, sep=max((",", ";", "\t"), key=header.count))
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; give it a header line (user_id, item_id, rating "
                        f"for ratings) and a row per rating or entity.") from None
    except UnicodeDecodeError as exc:
        raise DataError(not_utf8(path, exc)) from None


def own_name(ratings: Path) -> str:
    """The data set name of your ratings file in the report: its name without ``.csv``."""
    return Path(ratings).stem


def _curves(data: RatingData, config: EvaluationConfig, progress) -> Results:
    return support_curves(data, config.methods, config.seeds, ks=config.ks,
                          relevant_from=config.relevant_from,
                          neural_params=config.neural_params,
                          max_test_users=config.max_users,
                          max_train_users=config.max_train_users, progress=progress)


def _notes(config: EvaluationConfig, seconds: float, relevant_from: float) -> str:
    """The report's header: where and how long it ran, and the settings of what ran
    (``relevant_from``: the threshold the curves used, set or not)."""
    settings = asdict(config) | _what_ran(config) | {"relevant_from": relevant_from}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()
                if v not in (None, {}, (), "") and k != "notes"}
    lines = [f"- `{k}`: {v}" for k, v in settings.items()]
    return (f"Run on {platform.machine()} / {platform.system()} with Python "
            f"{platform.python_version()} in {seconds / 60:.1f} min. {config.notes}\n\n"
            + "\n".join(lines))


def _what_ran(config: EvaluationConfig) -> dict:
    """The settings the header names in place of the config's: a ``ratings`` run is the
    curves on that file alone, whatever ``protocols`` and ``datasets`` (their defaults, as a
    rule) say; ``datasets`` are the curves' and ``train_users`` MeLU's, named only where
    those ran. None: not named."""
    if config.ratings is not None:
        return {"protocols": ("curves",), "datasets": (own_name(config.ratings),),
                "train_users": None}
    return {"datasets": config.datasets if "curves" in config.protocols else None,
            "train_users": config.train_users if "melu" in config.protocols else None}
