import numpy as np
import pandas as pd
import pytest

from recmeta.exceptions import DataError
from recmeta.features import PAD, UNKNOWN, FeatureSpace, Field, infer_kind


def test_categorical_vocabulary_reserves_padding_and_unknown():
    field = Field("job", "user", "cat").fit(pd.Series(["b", "a", "b", None]))
    assert field.vocabulary == ["a", "b"]
    codes = field.encode(pd.Series(["a", "b", "zzz", None]))
    assert codes.tolist() == [2, 3, UNKNOWN, UNKNOWN]
    assert field.cardinality == 4


def test_integer_like_values_share_a_key():
    field = Field("age", "user", "cat").fit(pd.Series([25, 35]))
    assert field.encode(pd.Series([25.0, "35", np.int64(25)])).tolist() == [2, 3, 2]


@pytest.mark.parametrize("values", [
    ["a|b", "c", "b|c|a", ""],
    [["a", "b"], ["c"], ["b", "c", "a"], []],
])
def test_multi_valued_from_strings_or_lists(values):
    field = Field("genres", "item", "multi").fit(pd.Series(values))
    assert field.vocabulary == ["a", "b", "c"]
    assert field.max_values == 3
    codes = field.encode(pd.Series([*values, ["a", "new"]]))
    assert codes[0].tolist() == [2, 3, PAD]
    assert codes[3].tolist() == [UNKNOWN, PAD, PAD]  # no value at all: unknown
    assert codes[4].tolist() == [2, UNKNOWN, PAD]


def test_numeric_standardised_and_missing_is_mean():
    field = Field("length", "item", "num").fit(pd.Series([1.0, 3.0, np.nan]))
    assert field.mean == 2.0
    out = field.encode(pd.Series([3.0, np.nan, np.inf]))
    np.testing.assert_allclose(out, [1.0, 0.0, 0.0])


def test_numeric_field_rejects_text():
    with pytest.raises(DataError, match=r"'length'.*not a number"):
        Field("length", "item", "num").fit(pd.Series([1.0, "long"]))


def test_infer_kind():
    assert infer_kind(pd.Series([1.5, 2.0])) == "num"
    assert infer_kind(pd.Series([1, 2])) == "cat"
    assert infer_kind(pd.Series(["x|y", "z"])) == "multi"
    assert infer_kind(pd.Series([["x"], ["y"]])) == "multi"
    assert infer_kind(pd.Series(["M", "F"])) == "cat"
    assert infer_kind(pd.Series([1, None], dtype="Int64")) == "cat"  # a NULL changes nothing


def test_decimals_are_numbers():
    """A SQL NUMERIC column reads as decimal.Decimal: it was learned as a vocabulary of
    categories ('1934', '1935', ...). A new fit learns it as a number; a field fitted as
    categories (an older model) still encodes them as the keys it learned."""
    from decimal import Decimal

    years = pd.Series([Decimal("1934"), Decimal("1990.5"), None], dtype=object)
    assert infer_kind(years) == "num"
    field = Field("year", "item", "num").fit(years)
    assert field.mean == pytest.approx(1962.25)
    assert field.encode(years)[2] == 0.0  # missing: the mean
    older = Field("year", "item", "cat").fit(years)
    assert older.vocabulary == ["1934", "1990.5"]
    assert older.encode(years).tolist() == [2, 3, UNKNOWN]


def test_feature_space_round_trips_through_dict():
    users = pd.DataFrame({"g": ["M", "F"]})
    items = pd.DataFrame({"genres": ["a|b", "c"], "x": [1.0, 2.0]})
    space = FeatureSpace.fit(users, items, {"g": ("user", "cat"), "genres": ("item", "multi"),
                                            "x": ("item", "num")})
    again = FeatureSpace.from_dict(space.to_dict())
    for side, table in (("user", users), ("item", items)):
        a, b = space.encode(side, table), again.encode(side, table)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
