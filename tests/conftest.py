"""Shared fixtures."""

from __future__ import annotations

import os
import uuid

import pytest

# ------------------------------------------------------------------ database engines
# SQL tests run on a SQLite file (always) and on PostgreSQL from RECMETA_PG_URL. Without
# that variable, or when the server cannot be reached, the PostgreSQL tests skip and say
# why; with RECMETA_REQUIRE_PG=1 (CI) they fail instead. Every PostgreSQL test gets a fresh
# schema (search_path), dropped afterwards, so tests never see each other's tables.

PG_ENV, REQUIRE_PG_ENV = "RECMETA_PG_URL", "RECMETA_REQUIRE_PG"


def _no_postgres(reason: str):
    if os.environ.get(REQUIRE_PG_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_PG_ENV}=1: PostgreSQL is required here)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The PostgreSQL server of RECMETA_PG_URL, checked once per session."""
    url = os.environ.get(PG_ENV)
    if not url:
        _no_postgres(f"{PG_ENV} is not set: no PostgreSQL to test against (set it to e.g. "
                     f"postgresql+psycopg://recmeta:recmeta@127.0.0.1:5432/recmeta_test)")
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        _no_postgres(f"PostgreSQL at {PG_ENV} cannot be reached: {type(exc).__name__}: "
                     f"{str(exc).splitlines()[0] if str(exc) else ''}")
    return url


@pytest.fixture
def pg_url(pg_server_url: str):
    """A PostgreSQL URL whose search_path is a fresh schema of its own."""
    import sqlalchemy as sa

    schema = f"recmeta_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server_url, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.schema.CreateSchema(schema))
    url = sa.engine.make_url(pg_server_url).update_query_dict(
        {"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.schema.DropSchema(schema, cascade=True))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A SQLite file of its own."""
    return f"sqlite:///{tmp_path / 'recmeta-test.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """Each SQL test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(db_url: str):
    """An engine on :func:`db_url`, disposed afterwards."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sql_data():
    """A small synthetic data set for the SQL tests."""
    from recmeta import make_synthetic

    return make_synthetic(n_users=40, n_items=30, ratings_per_user=(3, 12), random_state=0)


@pytest.fixture(scope="session")
def sql_model_dir(tmp_path_factory, sql_data):
    """A tiny model fitted on :func:`sql_data` (integer ids), saved; its directory."""
    from recmeta import MetaRecommender

    model = MetaRecommender(embedding_dim=4, hidden=(8,), max_epochs=1, inner_steps=2,
                            random_state=0, verbose=0)
    path = tmp_path_factory.mktemp("sql-model") / "model"
    model.fit(sql_data.X, sql_data.y).save(path)
    return path


@pytest.fixture
def filled_engine(engine, sql_data):
    """:func:`engine`, migrated, holding :func:`sql_data`: interactions in recmeta's default
    table (ids as text), features in ``app_users`` and ``app_items`` (integer ids)."""
    from recmeta.adapters import migrate

    migrate.upgrade(engine)
    rows = sql_data.interactions.astype({"user_id": str, "item_id": str})
    rows.to_sql("recmeta_interactions", engine, if_exists="append", index=False)
    sql_data.users.to_sql("app_users", engine, index=False)
    sql_data.items.to_sql("app_items", engine, index=False)
    return engine


@pytest.fixture
def null_id_engine(filled_engine):
    """:func:`filled_engine` plus ``events``: its interactions and five rows lacking an id,
    as an application's own table may hold them (recmeta's refuses NULL ids): three without
    a user id, two without an item id (users 3 and 4, the latter's rating NULL too)."""
    import sqlalchemy as sa

    with filled_engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE events AS SELECT user_id, item_id, rating, '
                             '"timestamp" FROM recmeta_interactions'))
        conn.execute(sa.text(
            "INSERT INTO events VALUES (NULL, '1', 4, 2000000000), (NULL, '2', 5, 2000000000), "
            "(NULL, NULL, 3, 2000000000), ('3', NULL, 4, 2000000000), "
            "('4', NULL, NULL, 2000000000)"))
    return filled_engine
