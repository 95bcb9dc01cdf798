"""``recmeta evaluate``: the evaluation protocols on MovieLens or your own data."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import click

from ..evaluate.methods import METHODS
from ..evaluate.protocols import KS
from ..evaluate.runner import DATASETS, PROTOCOLS, EvaluationConfig, run
from ..exceptions import DataError
from ._common import JobError, UsageError, note, parse_value


def _ints(ctx, param, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


def _names(allowed):
    def parse(ctx, param, value: str) -> tuple[str, ...]:
        names = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [n for n in names if n not in allowed]
        if bad:
            raise click.BadParameter(f"unknown {bad}; choose from {', '.join(allowed)}")
        return names
    return parse


def _params(ctx, param, values: tuple[str, ...]) -> dict:
    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE (e.g. max_epochs=10), got {item!r}")
        out[key.strip()] = parse_value(raw)
    return out


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=lambda: os.environ.get("RECMETA_DATA"),
              help="Folder holding ml-100k/ and ml-1m/ (with ml-1m/melu/). "
                   "Default: $RECMETA_DATA.")
@click.option("--protocol", "protocols", default=",".join(PROTOCOLS), show_default=True,
              callback=_names(PROTOCOLS),
              help="melu: MeLU's four states on ML-1M; curves: new users' metric against "
                   "support size.")
@click.option("--dataset", "datasets", default=",".join(DATASETS), show_default=True,
              callback=_names(DATASETS), help="Data sets for the curves.")
@click.option("--ratings", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Your own ratings CSV (user_id, item_id, rating; separated by commas, "
                   "semicolons or tabs): runs the curves on it.")
@click.option("--users", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="With --ratings: user features CSV keyed by user_id.")
@click.option("--items", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="With --ratings: item features CSV keyed by item_id.")
@click.option("--methods", default=",".join(METHODS), show_default=True,
              callback=_names(METHODS), help="Methods to compare.")
@click.option("--seeds", default="0,1,2", show_default=True, callback=_ints)
@click.option("--ks", default=",".join(map(str, KS)), show_default=True, callback=_ints,
              help="Support sizes of the curves.")
@click.option("--relevant-from", type=float,
              help="The curves' nDCG@10 and Recall@10 count a held-out rating at or above "
                   "this as relevant; set it for your own scale. [default: 4, MovieLens' 4 "
                   "of 5; 1 on 0/1 feedback]")
@click.option("--param", "params", multiple=True, callback=_params, metavar="KEY=VALUE",
              help="A MetaRecommender parameter for the neural methods (repeatable), "
                   "e.g. --param max_epochs=10 --param hidden=32,32. Values are JSON or "
                   "Python literals: (32, 32), None, True.")
@click.option("--max-users", type=click.IntRange(min=1),
              help="Evaluate at most this many users per state / data set (quick runs).")
@click.option("--max-train-users", type=click.IntRange(min=1),
              help="Train the curves' methods on at most this many users.")
@click.option("--train-users", type=click.Choice(["eligible", "all"]), default="eligible",
              show_default=True, help="MeLU protocol: learn from the warm users with 13-100 "
                                      "ratings (as MeLU), or from every warm-state rating.")
@click.option("--quick", is_flag=True,
              help="A small sample: seed 0, 200 users, 3 epochs. For a smoke test.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("reports/evaluate"), show_default=True,
              help="Folder for report.md, the CSV results and the PNG plots.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots (no matplotlib needed).")
def evaluate(data_dir, protocols, datasets, ratings, users, items, methods, seeds, ks,
             relevant_from, params, max_users, max_train_users, train_users, quick, out,
             no_plots) -> None:
    """Evaluate meta-learned adaptation against baselines, and write a report.

    Runs MeLU's four-state protocol and the new-user support-size curves on MovieLens (or
    the curves on your own ratings), prints the tables and writes Markdown + PNG plots.
    """
    _check_own_data(ratings, users, items)
    if quick:
        seeds, max_users = seeds[:1], max_users or 200
        params = {"max_epochs": 3, **params}
    config = EvaluationConfig(
        data_dir=data_dir, protocols=protocols, datasets=datasets, ratings=ratings,
        users=users, items=items, methods=methods, seeds=seeds, ks=ks,
        relevant_from=relevant_from, neural_params=params,
        max_users=max_users, max_train_users=max_train_users, train_users=train_users,
        out=out, plots=not no_plots)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line(warnings.showwarning)
            _, path = run(config, progress=lambda line: click.echo(line, err=True))
    except DataError as exc:
        raise UsageError(str(exc)) from None
    except ImportError as exc:
        raise JobError(str(exc)) from None
    click.echo(path.read_text(encoding="utf-8"))
    click.echo(f"Report written to {path}", err=True)


def _one_line(show):
    """A ``showwarning`` that says each UserWarning (recmeta's, about the data) as one line
    on stderr, ``recmeta: warning: ...``, and hands other warnings to ``show``."""
    def say(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning):
            note(f"warning: {message}")
        else:
            show(message, category, filename, lineno, file, line)
    return say


def _check_own_data(ratings, users, items) -> None:
    """With --ratings only the curves run, on that file: options that choose MovieLens'
    protocols or data sets, given on the command line, would be ignored, so say so."""
    ctx = click.get_current_context()
    given = [f"--{name}" for name in ("protocol", "dataset")
             if ctx.get_parameter_source(name + "s") is not click.core.ParameterSource.DEFAULT]
    if ratings is not None and given:
        raise UsageError(f"{' and '.join(given)} choose among MovieLens' protocols and data "
                         f"sets; with --ratings the support-size curves run on your file "
                         f"alone. Leave {' and '.join(given)} out.")
    if ratings is None and (users or items):
        raise UsageError("--users and --items describe the users and items of --ratings; "
                         "give --ratings too (MovieLens brings its own features).")
