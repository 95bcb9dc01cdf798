"""Column names used across recmeta, in one place.

Every frame recmeta returns uses these names; every frame it reads may use others, named
through the estimator's ``user_col`` / ``item_col`` / ``time_col`` parameters.
"""

USER = "user_id"
ITEM = "item_id"
RATING = "rating"
TIME = "timestamp"
SCORE = "score"
RANK = "rank"

RECOMMENDATION_COLUMNS = (USER, ITEM, SCORE, RANK)
