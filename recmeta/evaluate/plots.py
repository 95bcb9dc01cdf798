"""PNG plots of evaluation results (matplotlib, the ``report`` extra).

- one figure per dataset of protocol (b): each metric against the support size ``k``, a
  line per method with the spread over seeds as error bars;
- one figure of protocol (a): each method's MAE and nDCG@3 per state, beside MeLU-5's
  published figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..datasets import MELU_STATES
from .methods import METHODS
from .report import MELU_PAPER, STATE_NAMES, summarise


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("Plots need matplotlib: pip install 'recmeta[report]', or write "
                          "the report without plots.") from exc
    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _methods(frame: pd.DataFrame) -> list[str]:
    present = set(frame.method)
    return [m for m in METHODS if m in present] + sorted(present - set(METHODS))


def _colour(method: str) -> str:
    """One colour per method in every figure (matplotlib's ten-colour cycle)."""
    return f"C{METHODS.index(method) % 10}" if method in METHODS else "0.5"


def _legend(fig, axes) -> None:
    """One legend for the figure, every method once, to the right of the panels."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="center right", fontsize=8)


def curves(metrics: pd.DataFrame, dataset: str, path: Path) -> Path:
    """Protocol (b) for ``dataset``: a panel per metric, metric against k."""
    plt = _pyplot()
    summary = summarise(metrics)
    rows = summary[(summary.protocol == "curves") & (summary.dataset == dataset)]
    names = list(dict.fromkeys(rows.metric))
    n_cols = min(len(names), 2)
    n_rows = -(-len(names) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.6 * n_cols + 1.6, 3.4 * n_rows),
                             squeeze=False)
    panels = axes.ravel()
    for ax in panels[len(names):]:
        ax.set_visible(False)
    for ax, metric in zip(panels, names, strict=False):
        part = rows[rows.metric == metric]
        for method in _methods(part):
            line = part[part.method == method].sort_values("setting")
            ax.errorbar(line.setting.astype(int), line["mean"], yerr=line["std"].fillna(0.0),
                        marker="o", ms=3, capsize=2, label=method, color=_colour(method),
                        ls="-" if method in ("metasgd", "maml", "fomaml") else "--")
        ax.set_xticks(sorted(part.setting.astype(int).unique()))
        ax.set_xlabel("support size k")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    fig.suptitle(f"New users on {dataset}")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    _legend(fig, panels[: len(names)])
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def melu_states(metrics: pd.DataFrame, path: Path) -> Path:
    """Protocol (a): MAE and nDCG@3 per state and method, MeLU-5's figures as black marks."""
    plt = _pyplot()
    summary = summarise(metrics)
    rows = summary[summary.protocol == "melu"]
    states = [s for s in MELU_STATES if s in set(rows.setting)]
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 3.8))
    for ax, (metric, col) in zip(axes, (("MAE", 0), ("nDCG@3", 2)), strict=True):
        part = rows[rows.metric == metric]
        methods = _methods(part)
        width = 0.8 / max(len(methods), 1)
        x = np.arange(len(states))
        for j, method in enumerate(methods):
            line = part[part.method == method].set_index("setting").reindex(states)
            ax.bar(x + j * width - 0.4 + width / 2, line["mean"], width,
                   yerr=line["std"].fillna(0.0), label=method, color=_colour(method))
        ax.scatter(x, [MELU_PAPER[s][col] for s in states], marker="_", s=600, c="k",
                   zorder=3, label="MeLU-5 (paper)")
        ax.set_xticks(x, [STATE_NAMES[s] for s in states])
        ax.set_title(metric)
        low = part["mean"].min() if len(part) else 0.0
        ax.set_ylim(bottom=max(0.0, low - 0.1))
    fig.suptitle("MeLU's four states (ML-1M)")
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    _legend(fig, axes)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
