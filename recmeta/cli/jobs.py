"""``recmeta train | score | recommend | demo``: the jobs.

The work is done in :mod:`recmeta.adapters`; these commands parse options, call it, and
print: JSON on stdout for machines (``train``, ``score``), people's lines on stderr.
Exit codes: 0 success; 1 the job failed (a run is marked failed, resume it with
``--resume RUN_ID``; or the database could not be reached); 2 bad usage or input.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import warnings
from pathlib import Path

import click

from ._common import (
    CANDIDATE_OPTIONS,
    SOURCE_OPTIONS,
    JobError,
    UsageError,
    db_option,
    handle_errors,
    make_engine,
    note,
    options,
    parse_params,
    print_json,
    refused_right,
    source_from,
)

RESUME_TAKES_NOTHING_ELSE = ("model", "n", "batch_size", "history", "include_seen",
                             "skip_cold")


@click.command()
@click.option("--db", "db_url", envvar="RECMETA_DB", metavar="URL", default=None,
              help="Database to train from and register in (env RECMETA_DB).")
@click.option("--file", "file", type=click.Path(dir_okay=False), default=None,
              help="Train from a CSV/Parquet file instead (a row per interaction, feature "
                   "columns inline); registered only when --db is given too.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Model directory to write.")
@click.option("--name", default=None, help="Name of the model in the registry.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A MetaRecommender parameter, e.g. --param max_epochs=10 --param "
                   "hidden=32,32 (repeatable). Values are JSON or Python literals: (32, 32), "
                   "None, True.")
@options(SOURCE_OPTIONS)
@handle_errors
def train(db_url, file, out, name, params, **source) -> None:
    """Train a model from the database (or a file), save it to --out and register it.

    Prints a JSON summary: the model id in the registry, the directory, the metrics, the
    rows dropped for a NULL user id, a NULL item id (both warned about on stderr) or a
    rating that is NULL, NaN or not a number, such as 'n/a' (rows_dropped_null_user_id,
    rows_dropped_null_item_id, rows_dropped_null_rating), and per feature table
    (feature_tables) the rows whose key is NULL, which are not used, and the keys on more
    than one row, of which the row `recmeta score` uses is used; and every warning (those,
    and fit's, such as duplicate rows), also written to stderr (warnings).
    """
    from recmeta.adapters import registry, training
    from recmeta.adapters.migrate import require_head
    from recmeta.adapters.sql import SqlReader
    from recmeta.frames import DUPLICATES_ADVICE

    if db_url is None and file is None:
        raise UsageError("Give --db URL (train from its tables) or --file PATH.")
    engine = make_engine(db_url) if db_url else None
    if engine is not None:
        require_head(engine)  # before reading or training: the registry must be there
        refused = registry.refused_rights(engine)  # and take the model's row, once trained
        if refused:
            raise JobError(refused_right(
                f"the role of --db lacks {' and '.join(refused)}, so the model could not be "
                f"registered; nothing was trained or written"))
    spec = source_from(source)
    said = []

    def warn(text: str) -> None:
        note(f"warning: {text}")
        said.append(text)

    if file is not None:
        mapping = {"user": spec.interactions.user, "item": spec.interactions.item,
                   "rating": spec.interactions.rating, "time": spec.interactions.time}
        X, y, counts = training.frame_from_file(file, mapping)
        params = {"user_features": "auto", "item_features": "auto", **parse_params(params)}
    else:
        reader = SqlReader(engine, spec)
        X, y, counts = training.frame_from_sql(reader)
        for warning in _feature_tables(reader, counts["feature_tables"]):
            warn(warning)
        params = {"user_features": reader.user_features, "item_features": reader.item_features,
                  **parse_params(params)}
    where = repr(str(file)) if file is not None else f"table {spec.interactions.table!r}"
    for count, side, column in ((counts["rows_dropped_null_user_id"], "user",
                                 spec.interactions.user),
                                (counts["rows_dropped_null_item_id"], "item",
                                 spec.interactions.item)):
        if count:
            warn(f"{count} row(s) of {where} have a NULL {side} id (column {column!r}): they "
                 f"were not trained on.")
    with warnings.catch_warnings(record=True) as caught:  # fit's, in recmeta's words
        warnings.simplefilter("always", UserWarning)
        model, metrics = training.fit_and_save(X, y, params, out)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            warn(str(warning.message).replace(
                DUPLICATES_ADVICE, f"Keep one row per user and item in {where} to silence "
                                   f"this."))
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    model_id = training.register(engine, out, model, metrics, name)
    older = registry.registered_before(engine, out, model_id)
    if older:
        warn(f"{out} held model {', '.join(map(str, older))} of the registry, which this "
             f"model replaced: score and recommend refuse that id from now on (use "
             f"--model {model_id}). Train each model into a directory of its own to keep "
             f"older ids usable.")
    print_json({"model_id": model_id, "artifact": str(Path(out).resolve()),
                "metrics": metrics, **counts, "warnings": said})


@click.command()
@db_option
@click.option("--model", default=None, metavar="ID|DIR",
              help="Registry id or model directory (registered on first use).")
@options(SOURCE_OPTIONS + CANDIDATE_OPTIONS)
@click.option("-n", "--n", default=10, show_default=True, type=click.IntRange(min=1),
              help="Recommendations written per user.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1),
              help="Users per batch; each batch is one transaction. Peak memory grows with "
                   "it; small batches are slower (each one reads, adapts and commits on its "
                   "own).")
@click.option("--history", default=None, type=click.IntRange(min=1),
              help="Latest interactions read per user [default: the model's max_history].")
@click.option("--include-seen", is_flag=True, help="Allow items from the user's history.")
@click.option("--skip-cold", is_flag=True,
              help="Skip users with no usable history instead of scoring them from features.")
@click.option("--resume", type=int, default=None, metavar="RUN_ID",
              help="Continue a killed or failed run, with the options it was started with.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr [default: when stderr is a terminal].")
@click.pass_context
@handle_errors
def score(ctx, db_url, model, n, batch_size, history, include_seen, skip_cold, resume,
          progress, **source) -> None:
    """Score every user in batches and write top-N to recmeta_recommendations.

    Each batch's rows and the run's checkpoint commit in one transaction, so a run killed
    at any point resumes (--resume RUN_ID) to exactly the rows of an uninterrupted run.
    Prints a JSON summary on stdout: users scored and skipped (and why), history rows
    dropped (and why), recommendations written, timings, and warnings (also on stderr: a
    run that read no interactions at all names the options that map your tables).

    Users come from --users when given (so users without history are scored too), else
    from the interactions. History rows with a NULL user or item id, a rating that is
    NULL, NaN or not a number (such as 'n/a'; counted as null_rating), a rating off the
    model's scale (off_scale), or an item neither the model nor --items knows, are
    dropped; a user left with no history is scored by the meta-learned initialisation on
    its features (or skipped with --skip-cold).

    Exit codes: 0 finished; 1 failed, or stopped by SIGTERM or SIGINT (the run, once it
    exists, is marked failed and the summary printed: fix the cause, then --resume RUN_ID;
    also when the database cannot be reached); 2 bad usage or input (a missing table or
    column, an unknown model or run; nothing written).
    """
    from recmeta.adapters.runs import RunConflict
    from recmeta.adapters.scoring import JobFailed, NightlyJob, ScoreSettings

    engine = make_engine(db_url)
    if resume is not None:
        _only_resume(ctx, list(source))
    elif model is None:
        raise UsageError("Give --model ID|DIR (the model to score with), or --resume RUN_ID.")
    job = None
    # set before the run is created: a signal from then on marks it failed, resumable
    with _sigterm_raises():
        try:
            if resume is not None:
                job = NightlyJob.resume(engine, resume)
                note(_resuming(job))
            else:
                settings = ScoreSettings(n, batch_size, history, not include_seen, skip_cold)
                job = NightlyJob.prepare(engine, source_from(source), model, settings)
                job.create()
                note(f"run {job.run_id} started with model {job.entry.id} (resume it with "
                     f"--resume {job.run_id})")
            summary = job.run(progress)
        except JobFailed as exc:
            print_json(_warned(job, exc.summary))
            raise JobError(str(exc)) from None
        except RunConflict as exc:  # the run goes on in the other process: as it stands
            if job is not None:
                print_json(_conflict(engine, job, exc))
            raise JobError(str(exc)) from None
        except (KeyboardInterrupt, Terminated) as exc:
            summary = _stopped(engine, job, resume, exc)
    print_json(_warned(job, summary))


def _resuming(job) -> str:
    """What ``--resume`` is about to do, from the run as it found it: a finished run is
    not resumed (its summary is printed as it stands); a run marked running was killed,
    or another process still works on it, of which only one can go on."""
    state, run = job.state, job.run_id
    if state.status == "finished":
        return f"run {run} is already finished: there is nothing to resume; its summary follows"
    said = (f"resuming run {run} with model {job.entry.id} after its {state.batches_done} "
            f"committed batch(es)")
    if state.status == "running":
        said += ("; it is marked running: it was killed, or another process still works on "
                 "it, and then the first of the two to commit a batch goes on and the other "
                 "stops with exit 1")
    return said


def _conflict(engine, job, exc) -> dict:
    """The summary a process prints when another one took its run over (:class:`RunConflict`):
    the run as it stands, counts included, with the conflict as its ``error``, which says
    that those counts are the run's, and how many recommendations this process committed."""
    from recmeta.adapters.summary import stored_summary

    summary = stored_summary(engine, job.run_id, resumed=job.resumed)
    error = (f"{str(exc).rstrip('.')}. The counts are run {job.run_id}'s as the database holds "
             f"it, from every process that worked on it; this process committed "
             f"{job.written} of its recommendations.")
    return {**summary, "error": error, "warnings": []}


def _stopped(engine, job, resume: int | None, exc: BaseException) -> dict:
    """After SIGINT or SIGTERM: the run is marked failed (by :meth:`NightlyJob.run`, else by
    :meth:`NightlyJob.stopped`), its committed batches stand, its summary is printed and a
    JobError raised; the summary of a run that had just finished is returned instead."""
    from recmeta.adapters.summary import stored_summary

    name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
    if job is None and resume is not None:  # stopped while loading the run: it is as it was
        summary = {**stored_summary(engine, resume, resumed=True), "warnings": []}
    elif job is not None and (summary := job.stopped(exc)) is not None:
        if summary["status"] == "finished":
            return summary
        summary = _warned(job, summary)
    else:
        raise JobError(f"Stopped by {name} before a run was created: there is nothing to "
                       f"resume.") from None
    print_json(summary)
    raise JobError(f"Run {summary['run_id']} stopped by {name}. Resume it with --resume "
                   f"{summary['run_id']}.") from None


def _warned(job, summary: dict) -> dict:
    """``summary`` with its ``warnings`` (also noted on stderr): a finished run that read no
    interactions at all most likely read the wrong table (e.g. recmeta's own, empty one);
    users the users table lacks, and history rows dropped for any reason (no user or item
    id, no usable rating, off the scale, an unknown item, a repeated pair), are data to
    fix: each count of the summary's ``dropped`` has its warning."""
    warnings = []
    where = job.source.interactions
    if summary["status"] == "finished" and summary["history_rows"]["read"] == 0:
        warnings.append(
            f"no interactions were read from table {where.table!r} (user column "
            f"{where.user!r}, item column {where.item!r}): {summary['users']['seen']} users "
            f"seen, none with a history. If your interactions are elsewhere, map them with "
            f"--interactions, --user-col, --item-col, --rating-col and --time-col (and "
            f"--users/--items for the feature tables).")
    missing = summary["users"].get("not_in_users_table", 0)
    if missing:
        warnings.append(
            f"{missing} user(s) with interactions have no row in the users table "
            f"({job.source.users.table!r}), which decides who is scored: they were not scored.")
    dropped = summary["history_rows"]["dropped"]
    if dropped.get("null_user_id"):
        warnings.append(
            f"{dropped['null_user_id']} row(s) of table {where.table!r} have a NULL user id "
            f"(column {where.user!r}): they belong to no user, and were not read.")
    if dropped.get("null_item_id"):
        warnings.append(
            f"{dropped['null_item_id']} history row(s) read from table {where.table!r} have a "
            f"NULL item id (column {where.item!r}): they were dropped.")
    if dropped.get("null_rating"):
        warnings.append(
            f"{dropped['null_rating']} history row(s) read from table {where.table!r} have a "
            f"rating (column {where.rating!r}) that is NULL, NaN or not a number: they were "
            f"dropped.")
    if dropped.get("off_scale"):
        span = getattr(job.model, "target_range_", None)
        scale = ("0/1" if job.model.objective_ == "binary" else
                 f"{span[0]:g} to {span[1]:g}" if span is not None else "its scale")
        warnings.append(
            f"{dropped['off_scale']} history row(s) read from table {where.table!r} have a "
            f"rating (column {where.rating!r}) off the scale the model was fitted on "
            f"({scale}): they were dropped. A rating column on another scale needs "
            f"rescaling, or a model fitted on it.")
    if dropped.get("unknown_item"):
        described = (f"nor the items table ({job.source.items.table!r}) knows"
                     if job.source.items is not None else
                     "knows, and no items table (--items) describes")
        warnings.append(
            f"{dropped['unknown_item']} history row(s) read from table {where.table!r} have an "
            f"item (column {where.item!r}) that neither the model {described}: they were "
            f"dropped. Add those items to the items table with their features (a new item is "
            f"read from them), or retrain the model.")
    if dropped.get("duplicate"):
        warnings.append(
            f"{dropped['duplicate']} history row(s) read from table {where.table!r} repeat a "
            f"(user, item) pair: the latest row of each pair was used, the others dropped.")
    unknown = summary.get("candidates", {}).get("dropped_unknown", 0)
    if unknown:
        table = (job.source.candidates or job.source.items).table
        fields = ", ".join(map(repr, job.model.schema_.item_fields)) or "none"
        warnings.append(
            f"{unknown} item(s) of the candidates table {table!r} are unknown to the model, "
            f"and the table lacks the item features that would score new items ({fields}): "
            f"they were not ranked. Add those columns to it, or retrain the model.")
    warnings.extend(_feature_tables(job.reader, summary.get("feature_tables", {})))
    for warning in warnings:
        note(f"warning: {warning}")
    return {**summary, "warnings": warnings}


def _feature_tables(reader, counts: dict) -> list[str]:
    """Warnings of feature tables with rows without a key, or keys on more than one row
    (saying which row is used); ``counts`` as ``feature_tables`` of score's summary and
    train's output holds them. Score and train use the same rows, so say the same."""
    from recmeta.adapters.summary import TABLE_NAMES

    warnings = []
    for side, name in TABLE_NAMES.items():
        found = counts.get(name, {})
        spec = getattr(reader.source, name)
        if found.get("null_keys"):
            warnings.append(
                f"{found['null_keys']} row(s) of the {name} table {spec.table!r} have a NULL "
                f"key ({spec.key!r}): they were not read.")
        for column in found.get("row_number_columns", []):
            flag = "--user-features" if side == "user" else "--item-features"
            warnings.append(
                f"The column {column!r} of the {name} table {spec.table!r} numbers its rows "
                f"(each of 0 or 1 to the number of rows once; pandas' to_sql writes its index "
                f"so unless given index=False): it was read as a feature, which describes no "
                f"{side}. Drop it, or name the features to read with {flag}.")
        count, first = found.get("duplicate_keys", 0), found.get("first_duplicates", [])
        if not count:
            continue
        tie = reader.tie_break(side)
        used = (f"the one with the greatest {tie!r} (the table's primary key)" if tie else
                "and which one is not defined (no single-column primary key orders them)")
        keys = ", ".join(repr(key) for key in first) + (", ..." if count > len(first) else "")
        warnings.append(
            f"{count} key(s) of the {name} table {spec.table!r} are on more than one row "
            f"({spec.key} {keys}): one row of each is used, {used}. Make {spec.key!r} "
            f"unique there.")
    return warnings


class Terminated(BaseException):
    """SIGTERM (what systemd and Kubernetes send), raised like KeyboardInterrupt for SIGINT."""


@contextlib.contextmanager
def _sigterm_raises():
    """While inside, SIGTERM raises :class:`Terminated` (once; a second one is ignored while
    the run is marked failed). Only the main thread can set a handler; elsewhere, nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _only_resume(ctx: click.Context, source_names: list[str]) -> None:
    given = [name for name in (*RESUME_TAKES_NOTHING_ELSE, *source_names)
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
    if given:
        opts = {param.name: "/".join(param.opts) for param in ctx.command.params}
        flags = ", ".join(opts[name] for name in given)
        raise UsageError(f"--resume continues a run with the options it was started with; "
                         f"drop {flags}.")


@click.command()
@db_option
@click.option("--model", required=True, metavar="ID|DIR", help="Registry id or directory.")
@click.option("--user", required=True, help="The user's id, as the database holds it.")
@options(SOURCE_OPTIONS + CANDIDATE_OPTIONS)
@click.option("-n", "--n", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--history", default=None, type=click.IntRange(min=1),
              help="Latest interactions read [default: the model's max_history].")
@click.option("--include-seen", is_flag=True, help="Allow items from the user's history.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handle_errors
def recommend(db_url, model, user, n, history, include_seen, as_json, **source) -> None:
    """Recommend for one user now, from its history in the database: for looking and
    debugging. The same code path as one user of `recmeta score`."""
    from recmeta.adapters.recommend import recommend_one

    result = recommend_one(make_engine(db_url), source_from(source), model, user, n,
                           history, not include_seen)
    if as_json:
        print_json(result)
        return
    click.echo(f"user {user}: {result['explanation']}")
    click.echo(f"{'rank':>4}  {'item_id':<20} {'score':>8}")
    for row in result["recommendations"]:
        click.echo(f"{row['rank']:>4}  {row['item_id']!s:<20} {row['score']:>8.4f}")


@click.command()
@click.option("--dir", "directory", default="recmeta-demo", show_default=True,
              type=click.Path(file_okay=False),
              help="Where the demo writes its SQLite file and model (replaced each run).")
@click.option("--users", default=2000, show_default=True, type=click.IntRange(min=20))
@click.option("--items", default=600, show_default=True, type=click.IntRange(min=20))
@click.option("--new-users", default=0.2, show_default=True, type=click.FloatRange(0, 0.9),
              help="Share of users who arrive after training (scored as new users).")
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="CPU threads for torch; one is fastest for this small model, and the "
                   "least disturbed by other work on the machine.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr [default: when stderr is a terminal].")
@handle_errors
def demo(directory, users, items, new_users, epochs, seed, threads, progress) -> None:
    """The nightly job end to end on SQLite: synthetic data, migrate, train, score.

    Creates DIR/demo.db with deterministic synthetic users, items and ratings, migrates
    it, trains a model on the users of day one, lets new users arrive, runs the nightly
    job for everyone, and compares the ranking quality with a popularity baseline.
    """
    import torch

    from recmeta.adapters.demo import DemoOptions, run_demo

    from ._report import demo_report

    torch.set_num_threads(threads)
    report = run_demo(DemoOptions(Path(directory), users, items, new_users, epochs, seed),
                      progress=progress, log=note)
    click.echo(demo_report(report))
