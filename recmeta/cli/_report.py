"""The demo's summary, as text for people."""

from __future__ import annotations

GROUPS = (("day_one", "day-one users"), ("new", "new users"))


def demo_report(report: dict) -> str:
    """A short summary of :func:`recmeta.adapters.demo.run_demo`'s report."""
    o, run, t = report["options"], report["run"], report["timings_s"]
    users = run["users"]
    lines = [
        "recmeta demo: the nightly job on SQLite, end to end",
        f"  data      {o.n_users:,} users ({report['n_new']:,} arrive after training) x "
        f"{o.n_items:,} items, {report['n_ratings']:,} ratings -> {report['db']} "
        f"(recmeta tables at {report['revision']})  {t['data']:.1f} s",
        f"  train     {o.n_users - report['n_new']:,} users, {report['epochs']} epochs -> "
        f"{report['model_dir']} (model {report['model_id']} in the registry)  "
        f"{t['train']:.1f} s",
        f"  score     run {run['run_id']}: {users['scored']:,} users scored ({users['new']:,} "
        f"new to the model), {run['recommendations_written']:,} recommendations written, "
        f"{run['users_per_s']} users/s  {t['score']:.1f} s",
        f"  quality   each user's {o.holdout} held-out (latest) ratings ranked; MeLU's nDCG@k, "
        f"higher is better",
    ]
    lines += _quality(report["quality"])
    lines += [
        f"  total     {sum(t.values()):.1f} s",
        "next:",
        f"  recmeta recommend --db {report['url']} --model {report['model_id']} "
        f"--user 7 --users demo_users --items demo_items",
        f"  recmeta score --db {report['url']} --model {report['model_id']} -n 20 "
        f"--users demo_users --items demo_items",
    ]
    return "\n".join(lines)


def _quality(quality: dict) -> list[str]:
    groups = [(key, label) for key, label in GROUPS if key in quality]
    metrics = list(next(iter(quality.values()))["recmeta"])
    width = 9 * len(metrics)
    lines = [" " * 16 + "   ".join(f"{label:>{width}}" for _, label in groups),
             " " * 16 + "   ".join("".join(f"{m.replace('ndcg', 'nDCG'):>9}" for m in metrics)
                                  for _ in groups)]
    for name in ("recmeta", "popularity"):
        cells = "   ".join("".join(f"{quality[key][name][m]:>9.4f}" for m in metrics)
                           for key, _ in groups)
        lines.append(f"    {name:<12}{cells}")
    return lines
