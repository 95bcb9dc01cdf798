"""recmeta's Alembic history: upgrade, downgrade, current; beside the host's; from a wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from recmeta.adapters import migrate
from recmeta.adapters.tables import VERSION_TABLE, metadata
from recmeta.cli import main

ROOT = Path(__file__).resolve().parents[1]
OURS = set(metadata.tables)


def tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


@pytest.fixture
def host_engine(engine):
    """A database where the host application already has its own Alembic history."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) "
                             "NOT NULL PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('host_rev_1')"))
        conn.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)"))
        conn.execute(sa.text("INSERT INTO orders VALUES (1, 9.5)"))
    return engine


def host_untouched(engine) -> bool:
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        orders = conn.execute(sa.text("SELECT id, total FROM orders")).all()
    return version == [("host_rev_1",)] and orders == [(1, 9.5)]


def test_upgrade_downgrade_current_beside_the_host(host_engine):
    assert migrate.current(host_engine) is None
    assert migrate.upgrade(host_engine) == migrate.head() == "0002"
    assert tables(host_engine) >= OURS | {VERSION_TABLE, "orders", "alembic_version"}
    assert migrate.upgrade(host_engine) == "0002"  # idempotent
    assert migrate.downgrade(host_engine, "-1") == "0001"
    assert "recmeta_runs" not in tables(host_engine)
    assert migrate.downgrade(host_engine, "base") is None
    assert not tables(host_engine) & OURS
    assert host_untouched(host_engine)


def test_migrated_schema_is_the_one_the_code_uses(engine):
    migrate.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [d for d in compare_metadata(context, metadata)
                if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
    assert diff == []


def test_require_head_says_what_to_run(engine):
    with pytest.raises(migrate.MigrationError, match=r"has no recmeta tables.*recmeta db upgrade"):
        migrate.require_head(engine)
    migrate.upgrade(engine, "0001")
    with pytest.raises(migrate.MigrationError, match=r"at 0001.*needs revision 0002"):
        migrate.require_head(engine)


def test_db_commands(sqlite_url):
    runner = CliRunner()
    result = runner.invoke(main, ["db", "current", "--db", sqlite_url])
    assert result.exit_code == 0 and "none" in result.output
    result = runner.invoke(main, ["db", "upgrade", "--db", sqlite_url])
    assert result.exit_code == 0 and "0002 (head)" in result.output
    result = runner.invoke(main, ["db", "downgrade", "0001", "--db", sqlite_url])
    assert result.exit_code == 0 and "0001 (head is 0002" in result.output
    result = runner.invoke(main, ["db", "current"], env={"RECMETA_DB": sqlite_url})
    assert result.exit_code == 0 and result.output.startswith("0001")
    result = runner.invoke(main, ["db", "downgrade", "nonsense", "--db", sqlite_url])
    assert result.exit_code == 2 and "nonsense" in result.output
    result = runner.invoke(main, ["db", "upgrade", "--db", "not a url"])
    assert result.exit_code == 2 and "not a database URL" in result.output


def test_db_downgrade_takes_minus_one_as_its_help_says(sqlite_url):
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--db", sqlite_url]).exit_code == 0
    result = runner.invoke(main, ["db", "downgrade", "--db", sqlite_url, "-1"])
    assert result.exit_code == 0 and "0001 (head is 0002" in result.output
    result = runner.invoke(main, ["db", "downgrade", "-1", "--db", sqlite_url])
    assert result.exit_code == 0 and "none (base)" in result.output
    result = runner.invoke(main, ["db", "downgrade", "--db", sqlite_url, "--", "-1"])
    assert result.exit_code == 2  # nothing left to downgrade; `--` still parses
    result = runner.invoke(main, ["db", "downgrade", "-1", "--db", sqlite_url, "--bogus"])
    assert result.exit_code == 2 and "No such option '--bogus'" in result.output


def test_db_downgrade_that_drops_rows_asks_first(sqlite_url, monkeypatch):
    engine = sa.create_engine(sqlite_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO recmeta_interactions (user_id, item_id) "
                             "VALUES ('u', 'i')"))
    runner = CliRunner()
    down = ["db", "downgrade", "base", "--db", sqlite_url]
    # recmeta_runs and recmeta_recommendations are empty: one step down needs no --yes
    assert migrate.rows_dropped(engine, "-1") == {}
    assert migrate.rows_dropped(engine, "base") == {"recmeta_interactions": 1}
    result = runner.invoke(main, down)  # not a terminal: no prompt, --yes needed
    assert result.exit_code == 2, result.output
    assert "drops recmeta_interactions (1 rows)" in result.output and "--yes" in result.output
    assert migrate.current(engine) == "0002"
    monkeypatch.setattr(sys.modules["recmeta.cli.db"], "stdin_is_terminal", lambda: True)
    result = runner.invoke(main, down, input="n\n")
    assert result.exit_code == 1 and "Go ahead?" in result.output
    assert migrate.current(engine) == "0002" and tables(engine) >= OURS
    result = runner.invoke(main, down, input="y\n")
    assert result.exit_code == 0 and "none (base)" in result.output
    assert not tables(engine) & OURS

    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO recmeta_interactions (user_id, item_id) "
                             "VALUES ('u', 'i')"))
    monkeypatch.setattr(sys.modules["recmeta.cli.db"], "stdin_is_terminal", lambda: False)
    result = runner.invoke(main, [*down, "--yes"])
    assert result.exit_code == 0 and not tables(engine) & OURS


def test_each_migration_names_the_tables_its_downgrade_drops(engine):
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    for step in reversed(list(script.walk_revisions())):
        before = tables(engine)
        migrate.upgrade(engine, step.revision)
        created = tables(engine) - before - {VERSION_TABLE}
        migrate.downgrade(engine, "-1")
        migrate.upgrade(engine, step.revision)
        assert set(step.module.drops_on_downgrade) == created, step.revision


@pytest.mark.slow
def test_upgrade_from_an_installed_wheel(tmp_path):
    """Build the wheel from a copy of the sources, install it (no deps) into a fresh virtual
    environment that borrows this one's dependencies, and migrate a new SQLite file."""
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("recmeta", "adapters", "migrations"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", src)
    readme = ROOT / "README.md"
    (src / "README.md").write_text(readme.read_text() if readme.exists() else "recmeta\n")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(tmp_path / "dist"), str(src)], check=True)
    wheel = next((tmp_path / "dist").glob("recmeta-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "recmeta/migrations/script.py.mako" in names
    assert "recmeta/migrations/versions/0002_runs_and_recommendations.py" in names
    assert not any(n.startswith(("adapters/", "migrations/")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # this environment's dependencies, appended after the new one's own site-packages (its
    # .pth files are not run, so an editable recmeta there stays invisible)
    Path(site, "outer_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RECMETA_DB")}
    run = tmp_path / "run"
    run.mkdir()
    url = f"sqlite:///{run / 'fresh.db'}"

    def recmeta(*args: str) -> str:
        done = subprocess.run([venv / "bin" / "recmeta", *args], cwd=run, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "0002 (head)" in recmeta("db", "upgrade", "--db", url)
    assert recmeta("db", "current", "--db", url).startswith("0002")
    where = subprocess.run([python, "-c", "import recmeta.migrations as m; print(m.__file__)"],
                           cwd=run, env=env, check=True, capture_output=True, text=True)
    assert where.stdout.strip().startswith(site)
    assert tables(sa.create_engine(url)) == OURS | {VERSION_TABLE}
