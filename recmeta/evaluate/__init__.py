"""Evaluation: MeLU's four-state protocol, support-size curves, baselines side by side, and
a Markdown + PNG report::

    from recmeta.datasets import load_movielens_100k
    from recmeta.evaluate import support_curves, write_report

    data = load_movielens_100k("path/to/ml-100k")
    results = support_curves(data, ["bias", "als", "metasgd"], seeds=(0, 1, 2))
    write_report(results, "reports/mine")

The same runs from the command line: ``recmeta evaluate --help``.
"""

from .methods import CLASSIC, METHODS, NEURAL
from .protocols import KS, Results, melu_states, support_curves
from .report import markdown, summarise, targets, write_report
from .splits import new_users, support_query

__all__ = ["CLASSIC", "KS", "METHODS", "NEURAL", "Results", "markdown", "melu_states",
           "new_users", "summarise", "support_curves", "support_query", "targets",
           "write_report"]
