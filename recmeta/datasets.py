"""Loaders for public rating data: MovieLens 100K and 1M, and MeLU's cold-start splits.

Each loader reads a copy of the files that the caller owns, from a path the caller gives;
recmeta ships no data (MovieLens may not be redistributed). What comes back is a
:class:`RatingData`: the ratings, one table of user features and one of item features, and
the long frame ``X`` with target ``y`` that :class:`~recmeta.MetaRecommender` takes.

>>> from recmeta.datasets import RatingData
>>> import pandas as pd
>>> data = RatingData(
...     ratings=pd.DataFrame({"user_id": [1, 1], "item_id": [10, 11], "rating": [4.0, 2.0]}),
...     users=pd.DataFrame({"user_id": [1], "gender": ["F"]}),
...     items=pd.DataFrame({"item_id": [10, 11], "genres": ["Drama", "Comedy|Drama"]}))
>>> data.X.columns.tolist()
['user_id', 'item_id', 'gender', 'genres']
>>> data.y.tolist()
[4.0, 2.0]
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from . import columns as C
from .exceptions import DataError

logger = logging.getLogger("recmeta")

MELU_STATES = ("warm_state", "user_cold_state", "item_cold_state", "user_and_item_cold_state")
"""MeLU's four states, in the order of the paper's Table 2."""

MELU_USER_FIELDS = ("gender", "age", "occupation", "zip")
MELU_ITEM_FIELDS = ("rate", "genres", "directors", "actors")
_MELU_VOCABULARIES = {"rate": "m_rate.txt", "genres": "m_genre.txt",
                      "directors": "m_director.txt", "actors": "m_actor.txt",
                      "gender": "m_gender.txt", "age": "m_age.txt",
                      "occupation": "m_occupation.txt", "zip": "m_zipcode.txt"}
_MISSING = ("", "N/A", "nan")


@dataclass
class RatingData:
    """Ratings with user and item features.

    Attributes
    ----------
    ratings : DataFrame
        A row per rating: ``user_id``, ``item_id``, ``rating`` (and ``timestamp`` when the
        files have it).
    users : DataFrame
        A row per user: ``user_id`` and the user feature columns.
    items : DataFrame
        A row per item: ``item_id`` and the item feature columns. Multi-valued fields
        (genres, directors, actors) are strings joined with ``|``.
    name : str
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    name: str = ""

    @property
    def user_features(self) -> list[str]:
        return [c for c in self.users.columns if c != C.USER]

    @property
    def item_features(self) -> list[str]:
        return [c for c in self.items.columns if c != C.ITEM]

    @cached_property
    def X(self) -> pd.DataFrame:
        """The long frame ``fit`` takes: user_id, item_id, user and item feature columns."""
        return self.features(self.ratings)

    @property
    def y(self) -> np.ndarray:
        """The ratings, as floats, in the order of ``X``."""
        return self.ratings[C.RATING].to_numpy(dtype=np.float64)

    def features(self, rows: pd.DataFrame) -> pd.DataFrame:
        """``rows``' user and item ids joined with their features, in the order of ``rows``.

        Parameters
        ----------
        rows : DataFrame with columns user_id and item_id
            Any other columns are dropped. Unknown ids get missing feature values.
        """
        keys = rows[[C.USER, C.ITEM]].reset_index(drop=True)
        users = self.users.set_index(C.USER)
        items = self.items.set_index(C.ITEM)
        out = keys.copy()
        for column in users.columns:
            out[column] = users[column].reindex(keys[C.USER]).to_numpy()
        for column in items.columns:
            out[column] = items[column].reindex(keys[C.ITEM]).to_numpy()
        return out

    def subset(self, ratings: pd.DataFrame, name: str | None = None) -> RatingData:
        """The same users and items tables over other ratings."""
        return RatingData(ratings.reset_index(drop=True), self.users, self.items,
                          self.name if name is None else name)


@dataclass
class MeluData:
    """MeLU's four cold-start states over MovieLens 1M, with MeLU's features.

    Attributes
    ----------
    states : dict of str to DataFrame
        Per state (see ``MELU_STATES``), a row per rating: user_id, item_id, rating.
    users, items : DataFrame
        User features (gender, age, occupation, zip) and item features (rate, genres,
        directors, actors), ids as ints.
    vocabularies : dict of str to list of str
        MeLU's own vocabulary files (``m_*.txt``), one value per line, for reference.
    """

    states: dict[str, pd.DataFrame]
    users: pd.DataFrame
    items: pd.DataFrame
    vocabularies: dict[str, list[str]] = field(default_factory=dict)

    def state(self, name: str) -> RatingData:
        """One state as :class:`RatingData` (its ``X`` and ``y`` are ready for ``fit``)."""
        if name not in self.states:
            raise DataError(f"Unknown MeLU state {name!r}; use one of {list(self.states)}.")
        return RatingData(self.states[name], self.users, self.items, f"melu/{name}")


# ------------------------------------------------------------------------- MovieLens 100K
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
                 "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
                 "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


def load_movielens_100k(path: str | Path) -> RatingData:
    """Read MovieLens 100K from its official files (``u.data``, ``u.user``, ``u.item``).

    Parameters
    ----------
    path : str or Path
        The ``ml-100k`` folder.

    Returns
    -------
    RatingData
        Ratings with ``timestamp``; users with age (int), gender, occupation, zip; items
        with genres (``|``-joined names, from the 19 flags) and release year (float).
    """
    root = _folder(path, ("u.data", "u.user", "u.item"), "ml-100k")
    ratings = pd.read_csv(root / "u.data", sep="\t", header=None,
                          names=[C.USER, C.ITEM, C.RATING, C.TIME],
                          dtype={C.USER: np.int64, C.ITEM: np.int64, C.RATING: np.float64,
                                 C.TIME: np.int64})
    users = pd.read_csv(root / "u.user", sep="|", header=None, encoding="latin-1",
                        names=[C.USER, "age", "gender", "occupation", "zip"],
                        dtype={C.USER: np.int64, "age": np.int64, "gender": str,
                               "occupation": str, "zip": str})
    flags = [f"g{i}" for i in range(len(ML100K_GENRES))]
    raw = pd.read_csv(root / "u.item", sep="|", header=None, encoding="latin-1",
                      names=[C.ITEM, "title", "release_date", "video_release_date", "url",
                             *flags], dtype={C.ITEM: np.int64, "title": str,
                                             "release_date": str})
    genre_flags = raw[flags].to_numpy(dtype=bool)
    names = np.asarray(ML100K_GENRES, dtype=object)
    items = pd.DataFrame({
        C.ITEM: raw[C.ITEM].to_numpy(),
        "genres": ["|".join(names[row]) for row in genre_flags],
        "year": pd.to_datetime(raw["release_date"], format="%d-%b-%Y", errors="coerce")
        .dt.year.to_numpy(dtype=np.float64, na_value=np.nan),
    })
    return RatingData(ratings, users, items, "ml-100k")


# --------------------------------------------------------------------------- MovieLens 1M
def load_movielens_1m(path: str | Path) -> RatingData:
    """Read MovieLens 1M from its official files (``ratings.dat``, ``users.dat``,
    ``movies.dat``).

    Parameters
    ----------
    path : str or Path
        The ``ml-1m`` folder. ``ratings.dat`` may have the timestamp column or not.

    Returns
    -------
    RatingData
        Ratings (with ``timestamp`` when present); users with gender, age (the official age
        group code), occupation (code) and zip; items with genres (``|``-joined, as in the
        file) and year (float, from the title).
    """
    root = _folder(path, ("ratings.dat", "users.dat", "movies.dat"), "ml-1m")
    ratings = _read_colons(root / "ratings.dat")
    if ratings.shape[1] not in (3, 4):
        raise DataError(f"{root / 'ratings.dat'} has {ratings.shape[1]} fields per line; the "
                        f"official format is user::movie::rating[::timestamp].")
    ratings.columns = [C.USER, C.ITEM, C.RATING, C.TIME][: ratings.shape[1]]
    ratings = ratings.astype({C.USER: np.int64, C.ITEM: np.int64, C.RATING: np.float64})
    if C.TIME in ratings:
        ratings[C.TIME] = ratings[C.TIME].astype(np.int64)
    users = _ml1m_users(root / "users.dat")
    movies = _read_colons(root / "movies.dat", encoding="latin-1")
    movies.columns = [C.ITEM, "title", "genres"]
    year = movies["title"].str.extract(r"\((\d{4})\)\s*$", expand=False)
    items = pd.DataFrame({C.ITEM: movies[C.ITEM].astype(np.int64).to_numpy(),
                          "genres": movies["genres"].to_numpy(dtype=object),
                          "year": pd.to_numeric(year).to_numpy(dtype=np.float64,
                                                               na_value=np.nan)})
    return RatingData(ratings, users, items, "ml-1m")


def _ml1m_users(file: Path) -> pd.DataFrame:
    users = _read_colons(file)
    users.columns = [C.USER, "gender", "age", "occupation", "zip"]
    users[C.USER] = users[C.USER].astype(np.int64)
    return users


# --------------------------------------------------------------------------------- MeLU
def load_melu(path: str | Path, states: tuple[str, ...] = MELU_STATES) -> MeluData:
    """Read MeLU's cold-start split files and MeLU's user and item features.

    Parameters
    ----------
    path : str or Path
        The ``melu`` folder (inside ``ml-1m``); the user features come from
        ``../users.dat`` beside it.
    states : tuple of str, default=MELU_STATES
        Which states to read.

    Returns
    -------
    MeluData
        Users: gender, age, occupation and zip (its first five characters, as MeLU).
        Items: rate, genres, directors (without parenthesised notes, as MeLU) and actors,
        multi-valued fields joined with ``|``; ``N/A`` is missing.
        A user's repeated rating of one movie (four users of the warm state, from MeLU's
        merge of duplicate titles) keeps the last one.
    """
    root = _folder(path, ("movies_extrainfos.dat",), "ml-1m/melu")
    unknown = set(states) - set(MELU_STATES)
    if unknown:
        raise DataError(f"Unknown MeLU state(s) {sorted(unknown)}; use {list(MELU_STATES)}.")
    users_file = root.parent / "users.dat"
    if not users_file.is_file():
        raise DataError(f"MeLU's user features come from {users_file}, which is missing: keep "
                        f"the melu folder inside the ml-1m folder, beside users.dat.")
    users = _ml1m_users(users_file)
    users["zip"] = users["zip"].str[:5]
    loaded = {state: _melu_state(root, state) for state in states}
    vocabularies = {name: (root / file).read_text(encoding="utf-8").splitlines()
                    for name, file in _MELU_VOCABULARIES.items() if (root / file).is_file()}
    return MeluData(loaded, users, _melu_items(root / "movies_extrainfos.dat"), vocabularies)


def _melu_state(root: Path, state: str) -> pd.DataFrame:
    files = (root / f"{state}.json", root / f"{state}_y.json")
    for file in files:
        if not file.is_file():
            raise DataError(f"MeLU split file {file} is missing; point the path at the folder "
                            f"holding {state}.json and {state}_y.json.")
    items = json.loads(files[0].read_text())
    ratings = json.loads(files[1].read_text())
    users, movies, values = [], [], []
    for user, movie_list in items.items():
        rated = ratings.get(user)
        if rated is None or len(rated) != len(movie_list):
            raise DataError(f"{files[1].name} does not match {files[0].name} for user {user}: "
                            f"every user needs one rating per movie, in the same order.")
        users.extend([int(user)] * len(movie_list))
        movies.extend(int(m) for m in movie_list)
        values.extend(rated)
    frame = pd.DataFrame({C.USER: np.asarray(users, dtype=np.int64),
                          C.ITEM: np.asarray(movies, dtype=np.int64),
                          C.RATING: np.asarray(values, dtype=np.float64)})
    dup = frame.duplicated([C.USER, C.ITEM], keep="last").to_numpy()
    if dup.any():
        logger.info("%s: %d repeated (user, movie) rating(s); kept the last", state, dup.sum())
        frame = frame.loc[~dup].reset_index(drop=True)
    return frame


def _melu_items(file: Path) -> pd.DataFrame:
    raw = _read_colons(file, encoding="utf-8")
    if raw.shape[1] != 11:
        raise DataError(f"{file} has {raw.shape[1]} fields per line; MeLU's format has 11 "
                        f"(movie_id::title::year::rate::released::genre::director::writers::"
                        f"actor::plot::poster).")
    raw.columns = [C.ITEM, "title", "year", "rate", "released", "genre", "director",
                   "writers", "actors", "plot", "poster"]
    return pd.DataFrame({
        C.ITEM: raw[C.ITEM].astype(np.int64).to_numpy(),
        "rate": [None if v in _MISSING else v for v in raw["rate"]],
        "genres": _joined(raw["genre"]),
        # MeLU drops parenthesised notes from director names: "X (co-director)" -> "X"
        "directors": _joined(raw["director"], strip=re.compile(r"\([^()]*\)")),
        "actors": _joined(raw["actors"]),
    })


def _joined(values: pd.Series, strip: re.Pattern | None = None) -> list:
    """``"a, b"`` lists as ``"a|b"`` strings; a missing list is None."""
    out = []
    for value in values:
        if value in _MISSING:
            out.append(None)
            continue
        parts = [strip.sub("", p) if strip is not None else p for p in value.split(", ")]
        parts = [p.strip().replace("|", "/") for p in parts]
        out.append("|".join(p for p in parts if p and p not in _MISSING) or None)
    return out


# -------------------------------------------------------------------------------- helpers
def _folder(path: str | Path, needed: tuple[str, ...], what: str) -> Path:
    root = Path(path).expanduser()
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise DataError(f"{root} does not look like the {what} folder: {', '.join(missing)} "
                        f"not found. Pass the folder that holds the official files.")
    return root


def _read_colons(file: Path, encoding: str = "latin-1") -> pd.DataFrame:
    """Read a ``::``-separated file as strings (faster than pandas' python engine)."""
    with open(file, encoding=encoding) as handle:
        rows = [line.rstrip("\r\n").split("::") for line in handle if line.strip()]
    return pd.DataFrame(rows, dtype=object)
