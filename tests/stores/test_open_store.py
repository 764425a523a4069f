"""`open_store`: which store a URL, the environment or the default names; and the package's face."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import cadenza.stores
from cadenza._errors import StoreError
from cadenza.stores import DEFAULT_STORE, STORE_ENV, PostgresStore, SQLiteStore, open_store


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory with no store configured."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STORE_ENV, raising=False)
    return tmp_path


def sqlite_path(url: str | Path | None) -> Path:
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    return store.path


def test_sqlite_forms(in_tmp: Path) -> None:
    assert sqlite_path("runs.db") == in_tmp / "runs.db"
    assert sqlite_path(in_tmp / "x" / "runs.db") == in_tmp / "x" / "runs.db"
    assert sqlite_path("/abs/runs.db") == Path("/abs/runs.db")
    assert sqlite_path("sqlite:///abs/runs.db") == Path("/abs/runs.db")
    assert sqlite_path("sqlite://localhost/abs/runs.db") == Path("/abs/runs.db")
    assert sqlite_path("sqlite:rel/runs.db") == in_tmp / "rel" / "runs.db"
    assert sqlite_path("./odd:name.db") == in_tmp / "odd:name.db"
    store = open_store("sqlite:///abs/runs.db")
    assert isinstance(store, SQLiteStore)
    assert sqlite_path(store.url) == store.path  # a store's url opens the same store


def test_postgres_forms() -> None:
    for url in ("postgresql://ana@db:5432/runs", "postgres://ana@db:5432/runs"):
        store = open_store(url)
        assert isinstance(store, PostgresStore)
        assert store.schema is None
    store = open_store("postgresql://ana:pw@db/runs?schema=team_a")
    assert isinstance(store, PostgresStore)
    assert (store.schema, store.url) == ("team_a", "postgresql://ana@db/runs?schema=team_a")


def test_the_environment_names_the_store_when_no_url_is_given(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_ENV, "sqlite:from-env.db")

    assert sqlite_path(None) == in_tmp / "from-env.db"
    assert sqlite_path("explicit.db") == in_tmp / "explicit.db"


async def test_the_default_is_in_the_current_directory_and_created_on_open(in_tmp: Path) -> None:
    store = open_store()

    assert isinstance(store, SQLiteStore)
    assert store.path == in_tmp / DEFAULT_STORE
    assert not store.path.parent.exists()  # open_store only constructs
    async with store:
        pass
    assert store.path.is_file()


@pytest.mark.parametrize(
    "url", ["mysql://ana:s3cret@db/runs", "redis://db", "postgresql:runs", "sqlite://server/runs.db", "sqlite:", ""]
)
def test_other_forms_are_refused_with_the_accepted_ones(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "s3cret" not in message
    if url.startswith(("mysql", "redis", "postgresql")):
        assert "sqlite:///" in message and "postgresql://" in message


def test_every_public_name_resolves() -> None:
    for name in cadenza.stores.__all__:
        assert getattr(cadenza.stores, name) is not None, name
    assert dir(cadenza.stores) == sorted(cadenza.stores.__all__)
    with pytest.raises(AttributeError):
        cadenza.stores.NotAStore  # noqa: B018


async def python_ok(code: str) -> str:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stderr=asyncio.subprocess.PIPE)
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return err.decode()


async def test_importing_the_package_does_not_import_asyncpg() -> None:
    await python_ok("import sys, cadenza.stores; assert 'asyncpg' not in sys.modules, 'asyncpg imported'")


async def test_without_asyncpg_the_postgres_store_names_the_extra() -> None:
    await python_ok(
        "import sys\n"
        "sys.modules['asyncpg'] = None\n"
        "from cadenza._errors import StoreError\n"
        "try:\n"
        "    from cadenza.stores import PostgresStore\n"
        "except StoreError as e:\n"
        "    assert \"pip install 'cadenza[postgres]'\" in str(e), e\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
    )
