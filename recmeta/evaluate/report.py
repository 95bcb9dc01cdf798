"""Summaries of evaluation results: tables (mean ± spread over seeds), verdicts, Markdown.

The plots live in :mod:`recmeta.evaluate.plots` (they need matplotlib, the ``report`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..datasets import MELU_STATES
from .methods import CLASSIC, METHODS, RANKERS
from .protocols import Results

LOWER_IS_BETTER = ("MAE", "RMSE")

MELU_PAPER = {  # MeLU-5 in the paper's Table 2: MAE, nDCG@1, nDCG@3
    "warm_state": (0.7567, 0.8870, 0.8919),
    "user_cold_state": (0.7854, 0.8803, 0.8812),
    "item_cold_state": (0.9275, 0.7697, 0.8005),
    "user_and_item_cold_state": (0.9235, 0.7752, 0.8008),
}
PAPER = "MeLU-5 (paper)"
PAPER_COLUMN = {"MAE": 0, "nDCG@1": 1, "nDCG@3": 2}  # the metric's place in MELU_PAPER
STATE_NAMES = {"warm_state": "warm", "user_cold_state": "user cold",
               "item_cold_state": "item cold", "user_and_item_cold_state": "user+item cold"}
META = ("metasgd", "maml", "fomaml", "metasgd-implicit")  # meta-learned: judged, not rivals
# Under this many evaluated users the targets show margins, not verdicts. Every metric is a
# mean over users; on ML-100K's new users (k = 5) one user's MAE or nDCG@10 has a standard
# deviation of 0.21 to 0.26, and the per-user difference between two methods one of 0.06
# (bias against ALS, MAE) to 0.26 (bias against popularity, nDCG@10). Over n users a
# difference's standard error is that over sqrt(n): under 100 users 0.006 to 0.026 or more,
# as large as the margins the verdicts turn on (0.002 to 0.02 on MovieLens), so a "yes" or
# "NO" there would say more about which users were drawn than about the methods.
MIN_USERS = 100


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (over seeds) and number of seeds of every metric."""
    keys = ["protocol", "dataset", "setting", "method", "metric"]
    out = metrics.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"])
    return out.reset_index().rename(columns={"count": "seeds"})


def table(summary: pd.DataFrame, protocol: str, dataset: str, metric: str,
          columns: Sequence | None = None) -> pd.DataFrame:
    """Methods as rows, settings (states or k) as columns, ``"mean ± std"`` strings."""
    rows = summary[(summary.protocol == protocol) & (summary.dataset == dataset)
                   & (summary.metric == metric)]
    if rows.empty:
        return pd.DataFrame()
    cells = rows.assign(cell=[_cell(m, s) for m, s in zip(rows["mean"], rows["std"],
                                                           strict=True)])
    wide = cells.pivot(index="method", columns="setting", values="cell")
    order = [m for m in METHODS if m in wide.index] + [m for m in wide.index if m not in METHODS]
    wide = wide.loc[order]
    if columns is not None:
        wide = wide[[c for c in columns if c in wide.columns]]
    return wide


def melu_table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Protocol (a) for one metric, with MeLU-5's published figure as the last row."""
    wide = table(summary, "melu", "ml-1m", metric, MELU_STATES)
    if wide.empty:
        return wide
    index = PAPER_COLUMN.get(metric)
    if index is not None:
        wide.loc[PAPER] = [f"{MELU_PAPER[s][index]:.4f}" for s in wide.columns]
    return wide.rename(columns=STATE_NAMES)


def targets(summary: pd.DataFrame) -> pd.DataFrame:
    """Each meta-learned method against its targets, one row per comparison.

    Protocol (a): MAE and nDCG@3 against the best classic baseline, and against MeLU-5's
    published figures. Protocol (b), ``k >= 3``: MAE and nDCG@10 against the best baseline
    (every method that is not meta-learned). ``margin`` is positive where the method is
    better.

    Returns
    -------
    DataFrame with columns protocol, dataset, method, metric, setting, value, rival,
    rival_value, margin
    """
    rows = []
    melu = summary[summary.protocol == "melu"]
    for metric in ("MAE", "nDCG@3"):
        rows += _compare(melu, metric, CLASSIC)
        rows += _against_paper(melu, metric)
    curves = summary[(summary.protocol == "curves") & summary.setting.map(
        lambda k: isinstance(k, int | np.integer) and k >= 3)]
    for metric in ("MAE", "nDCG@10"):
        rows += _compare(curves, metric, [m for m in METHODS if m not in META])
    columns = ["protocol", "dataset", "method", "metric", "setting", "value", "rival",
               "rival_value", "margin"]
    return pd.DataFrame(rows, columns=columns)


def target_tables(found: pd.DataFrame, counts: pd.DataFrame | None = None
                  ) -> list[tuple[str, pd.DataFrame, str]]:
    """:func:`targets` as Markdown-ready tables: a row per method and metric, a column per
    state or k; cells ``"yes +0.0123 (als)"`` where the method wins, ``"NO -0.0123"`` not.

    Each comes with its title and a caveat: where ``counts`` (:class:`Results`' counts) say
    a figure averages over fewer than ``MIN_USERS`` users, the cells are the margins alone,
    ``"+0.0123 (als)"``, and the caveat says why; else it is ""."""
    out = []
    for (protocol, dataset), part in found.groupby(["protocol", "dataset"], sort=False):
        title = f"{'(a) MeLU states' if protocol == 'melu' else '(b) ' + dataset}"
        fewest = _fewest_users(counts, protocol, dataset)
        few = fewest is not None and fewest < MIN_USERS
        cells = part.assign(
            row=part.method + " " + part.metric + np.where(
                part.rival == PAPER, " vs MeLU-5", ""),
            cell=[("" if few else f"{'yes' if m > 0 else 'NO'} ") + f"{m:+.4f}"
                  + ("" if r == PAPER else f" ({r})")
                  for m, r in zip(part.margin, part.rival, strict=True)])
        wide = cells.pivot(index="row", columns="setting", values="cell")
        wide = wide.loc[list(dict.fromkeys(cells.row))]
        order = MELU_STATES if protocol == "melu" else sorted(wide.columns)
        wide = wide[[c for c in order if c in wide.columns]]
        wide = wide.rename(columns=lambda c: STATE_NAMES.get(c, f"k={c}"))
        caveat = (f"Only {fewest} {'user was' if fewest == 1 else 'users were'} evaluated in "
                  f"{title}: differences between methods are not meaningful at that size "
                  f"(under {MIN_USERS} users, a mean over users moves from one draw of users "
                  f"to the next by a few hundredths or more, as much as methods usually "
                  f"differ by), so no `yes` or `NO` is given; the margins are shown for "
                  f"reference." if few else "")
        out.append((title, wide.rename_axis("method, metric"), caveat))
    return out


def _fewest_users(counts: pd.DataFrame | None, protocol: str, dataset: str) -> int | None:
    """The fewest users any figure of one protocol and data set averages over, in any
    split (users scored, and in (b) users ranked); None where nothing was counted."""
    if counts is None:
        return None
    rows = counts[(counts.protocol == protocol) & (counts.dataset == dataset)]
    sizes = pd.concat([rows["users"], rows["ranked_users"]]).dropna()
    return int(sizes.min()) if len(sizes) else None



def _compare(rows: pd.DataFrame, metric: str, rivals) -> list[tuple]:
    lower = metric in LOWER_IS_BETTER
    out = []
    for (protocol, dataset, setting), part in rows[rows.metric == metric].groupby(
            ["protocol", "dataset", "setting"], sort=False):
        rival = part[part.method.isin(rivals) & part["mean"].notna()]
        if rival.empty:
            continue
        best = rival.loc[rival["mean"].idxmin() if lower else rival["mean"].idxmax()]
        for method in (m for m in META if m in set(part.method)):
            value = float(part.loc[part.method == method, "mean"].iloc[0])
            margin = (best["mean"] - value) if lower else (value - best["mean"])
            out.append((protocol, dataset, method, metric, setting, value, best["method"],
                        float(best["mean"]), float(margin)))
    return out


def _against_paper(rows: pd.DataFrame, metric: str) -> list[tuple]:
    column = PAPER_COLUMN[metric]
    out = []
    for row in rows[(rows.metric == metric) & rows.method.isin(META)].itertuples():
        ref = MELU_PAPER[row.setting][column]
        margin = (ref - row.mean) if metric in LOWER_IS_BETTER else (row.mean - ref)
        out.append((row.protocol, row.dataset, row.method, metric, row.setting, row.mean,
                    PAPER, ref, margin))
    return out


def timing_table(timings: pd.DataFrame) -> pd.DataFrame:
    """Per protocol, dataset and method, means over seeds: fit seconds, epochs run, epochs to
    the best validation loss (the state kept: epochs to converge), seconds per epoch; and
    the ALS blend's weight in each seed's fit (timings written before it was recorded have
    none)."""
    if timings.empty:
        return timings
    if "blend_weight" not in timings:
        timings = timings.assign(blend_weight=np.nan)
    frame = timings.assign(per_epoch=timings.seconds / timings.n_epochs.replace(0, np.nan))
    out = frame.groupby(["protocol", "dataset", "method"], sort=False).agg(
        fit_s=("seconds", "mean"), epochs_run=("n_epochs", "mean"),
        epochs_to_best=("best_epoch", "mean"), s_per_epoch=("per_epoch", "mean"),
        blend_weights=("blend_weight", _weights))
    return out.round(2).reset_index()


def count_table(counts: pd.DataFrame) -> pd.DataFrame:
    """Per protocol, dataset and setting: the seeds, and the users, query ratings and users
    ranked that each seed's split scored, ``"n"`` where the seeds agree, ``"low–high"``
    where they do not (the curves draw their new users per seed)."""
    if counts.empty:
        return counts
    out = counts.groupby(["protocol", "dataset", "setting"], sort=False).agg(
        seeds=("seed", "nunique"), users=("users", _span),
        query_ratings=("query_ratings", _span), ranked_users=("ranked_users", _span))
    out = out.reset_index()
    out["setting"] = out["setting"].map(lambda s: STATE_NAMES.get(s, s))
    return out.rename(columns={"query_ratings": "query ratings",
                               "ranked_users": "users ranked"})


def _span(values: pd.Series) -> str:
    """``"n"``, or ``"low–high"`` over the seeds ("" where none was counted)."""
    values = values.dropna()
    if values.empty:
        return ""
    low, high = int(values.min()), int(values.max())
    return f"{low}" if low == high else f"{low}–{high}"


def _weights(values: pd.Series) -> str:
    """The seeds' blend weights, in seed order ("" when no seed's fit recorded one)."""
    values = values.to_numpy(dtype=float)
    return "" if np.isnan(values).all() else " / ".join(
        "-" if np.isnan(v) else f"{v:g}" for v in values)


def markdown(results: Results, title: str = "recmeta evaluation", notes: str = "",
             images: Sequence[str] = ()) -> str:
    """The whole report as Markdown: tables, timings, verdicts and plot links."""
    summary = summarise(results.metrics)
    parts = [f"# {title}", notes.strip(), _legend()]
    if len(results.counts):
        parts.append("## Test users\n\n" + _counts_legend() + "\n\n"
                     + _md(count_table(results.counts), index=False))
    if (summary.protocol == "melu").any():
        parts.append("## (a) MeLU's four states (ML-1M)")
        for metric in ("MAE", "RMSE", "nDCG@1", "nDCG@3"):
            parts.append(f"### {metric}\n\n" + _md(melu_table(summary, metric)))
    curves = summary[summary.protocol == "curves"]
    for dataset in dict.fromkeys(curves.dataset):
        parts.append(f"## (b) New users, metric against support size k ({dataset})")
        if _ranked_alone(curves[curves.dataset == dataset]):
            parts.append(_binary_note(dataset))
        for metric in dict.fromkeys(curves[curves.dataset == dataset].metric):
            wide = table(summary, "curves", dataset, metric)
            parts.append(f"### {metric}\n\n" + _md(wide.rename(columns=lambda k: f"k={k}")))
    parts.append("## Fitting cost\n\n" + _md(timing_table(results.timings), index=False))
    found = targets(summary)
    if len(found):
        parts.append("## Targets\n\nEach meta-learned method against its bar: in (a) the best "
                     "classic baseline (and MeLU-5's published figure), in (b) the best "
                     "baseline (every method not meta-learned). `yes`: better, by the "
                     "margin shown; `NO`: not (with fewer than "
                     f"{MIN_USERS} users evaluated, the margins alone). `metasgd-implicit` "
                     "learns from who rated what, not how, so it predicts no rating and has "
                     "no MAE.")
        parts += [f"### {title}\n\n" + (f"{caveat}\n\n" if caveat else "") + _md(wide)
                  for title, wide, caveat in target_tables(found, results.counts)]
    if images:
        parts.append("## Plots\n\n" + "\n\n".join(f"![{Path(p).stem}]({Path(p).name})"
                                                  for p in images))
    return "\n\n".join(p for p in parts if p) + "\n"


def _ranked_alone(rows: pd.DataFrame) -> bool:
    """Whether one data set's curves ran on 0/1 feedback: a method that predicts ratings
    ran, yet no MAE was computed (:func:`~recmeta.evaluate.support_curves` computes none on
    such data). Read from the results, so a merged report says it too."""
    return not (rows.metric == "MAE").any() and (~rows.method.isin(RANKERS)).any()


def _binary_note(dataset: str) -> str:
    return (f"`{dataset}` holds 0/1 feedback (every rating 0 or 1): the methods are compared "
            f"on ranking alone (nDCG@10 and Recall@10). No MAE or RMSE: on such data the "
            f"neural methods predict the probability of an interaction, learnt with sampled "
            f"negatives, and the rating baselines a mean of 0s and 1s, so their errors do not "
            f"compare.")


def _legend() -> str:
    return ("Cells are mean ± standard deviation over seeds. MAE and RMSE: lower is better; "
            "nDCG and Recall: higher is better. `popularity` ranks items and predicts no "
            "rating, so it has no MAE.")


def _counts_legend() -> str:
    return ("What each split scored, per seed (a range where the seeds differ). Every metric "
            "is a mean over these users, so the fewer they are, the noisier it is. `query "
            "ratings`: the held-out ratings that MAE and RMSE (and in (a) nDCG) are computed "
            "on. `users ranked`: in (b), the users with a relevant candidate (a query rating "
            "of 4 or more, a 1 on 0/1 feedback, or of `relevant_from` where set), the only "
            "ones nDCG@10 and Recall@10 average over.")


def _cell(mean: float, std: float) -> str:
    return f"{mean:.4f}" if not np.isfinite(std) else f"{mean:.4f} ± {std:.4f}"


def _md(frame: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as a Markdown table (no optional ``tabulate`` dependency)."""
    if frame.empty:
        return "_no results_"
    frame = frame.reset_index() if index else frame
    header = [str(c) for c in frame.columns]
    rows = [["" if pd.isna(v) else str(v) for v in row] for row in frame.to_numpy().tolist()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def write_report(results: Results, folder: str | Path, title: str = "recmeta evaluation",
                 notes: str = "", plots: bool = True) -> Path:
    """Write ``report.md``, ``metrics.csv``, ``timings.csv``, ``counts.csv`` and the PNG plots
    to ``folder``.

    Returns
    -------
    Path
        The Markdown report.
    """
    from . import plots as plots_

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results.metrics.to_csv(folder / "metrics.csv", index=False)
    results.timings.to_csv(folder / "timings.csv", index=False)
    results.counts.to_csv(folder / "counts.csv", index=False)
    images = []
    if plots:
        if (results.metrics.protocol == "melu").any():
            images.append(plots_.melu_states(results.metrics, folder / "melu_states.png"))
        curves = results.metrics[results.metrics.protocol == "curves"]
        for dataset in dict.fromkeys(curves.dataset):
            images.append(plots_.curves(results.metrics, dataset,
                                        folder / f"curves_{dataset}.png"))
    path = folder / "report.md"
    path.write_text(markdown(results, title, notes, images), encoding="utf-8")
    return path
