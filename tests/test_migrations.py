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
