"""Evaluation: MeLU's four-state protocol, support-size curves, baselines side by side, and
a Markdown + PNG report::

    from recmeta.datasets import load_movielens_100k
    from recmeta.evaluate import support_curves, write_report

    data = load_movielens_100k("path/to/ml-100k")
    results = support_curves(data, ["bias", "als", "metasgd"], seeds=(0, 1, 2))
    write_report(results, "reports/mine")

Your own ratings: a DataFrame with columns user_id, item_id and rating (numbers, such as 1
to 10, or 0/1 feedback; ids of any type), a row per rating, no missing value::

    import pandas as pd

    ratings = pd.read_csv("my_ratings.csv")
    results = support_curves(ratings, ["bias", "als", "metasgd"], relevant_from=8)
    write_report(results, "reports/mine")

``relevant_from`` is the rating from which a held-out item is relevant to nDCG and Recall
(default 4, MovieLens' 4 of 5; a 1 on 0/1 feedback). With user or item features, pass
``RatingData(ratings, users, items, "mine")`` (:mod:`recmeta.datasets`) instead of the frame.
Ratings that cannot be read so (a column missing, ratings that are not numbers or are
missing, no row) raise :class:`recmeta.DataError`, saying what is wrong.

The same runs from the command line: ``recmeta evaluate --help``; ``recmeta evaluate
--ratings my_ratings.csv`` runs the curves on your file.
"""

from .methods import CLASSIC, METHODS, NEURAL
from .protocols import KS, Results, melu_states, support_curves
from .report import markdown, summarise, targets, write_report
from .splits import new_users, support_query

__all__ = ["CLASSIC", "KS", "METHODS", "NEURAL", "Results", "markdown", "melu_states",
           "new_users", "summarise", "support_curves", "support_query", "targets",
           "write_report"]
