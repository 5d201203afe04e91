"""Tests for swarmrank.store: saving and reading rounds, migrations, SQLite settings and errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from swarmrank import store as store_mod
from swarmrank.errors import AmbiguousRoundId, RoundNotFound, StorageError
from swarmrank.result import Answer, Candidate, Cost, Judgment, PhaseCost, Ranking, RoundResult
from swarmrank.settings import Settings
from swarmrank.store import Base, RoundSummary, Store, make_engine, migrate, migrations
from swarmrank.store import rounds as rounds_mod
from swarmrank.store.migrations import revisions

T0 = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=timezone.utc)


def make_round(
    round_id: str = "3f2a9c0d1e4b4f6a8b7c6d5e4f3a2b1c",
    *,
    created_at: datetime = T0,
    protocol: str = "peer-rank",
    swarm: str = "default",
    question: str = "What is 17 * 23?",
) -> RoundResult:
    """A realistic peer-rank round: 3 answers (one red-flagged), 2 candidates, 4 judgments."""
    answers = [
        Answer(node="alpha", text="17 * 23 = 391. **391**", value="391", candidate=0, confidence=0.9,
               prompt_tokens=41, completion_tokens=12, seconds=0.8),
        Answer(node="beta", text="I think it is 381.", value="381", candidate=1,
               prompt_tokens=41, completion_tokens=9, seconds=0.7),
        Answer(node="gamma", text="I cannot help with that.", value=None, excluded="refused",
               prompt_tokens=41, completion_tokens=7, seconds=0.5),
    ]
    candidates = [
        Candidate(answer="391", text=answers[0].text, nodes=["alpha"], strength=0.81, log_strength=0.72,
                  stderr=0.31, votes=1.0),
        Candidate(answer="381", text=answers[1].text, nodes=["beta"], strength=0.19, log_strength=-0.72,
                  stderr=0.31, votes=1.0),
    ]
    judgments = [
        Judgment(judge="gamma", first=0, second=1, verdict="A", reasoning="391 is right.", probability=0.93,
                 prompt_tokens=120, completion_tokens=20, seconds=1.1),
        Judgment(judge="gamma", first=1, second=0, verdict="B", reasoning="B computes correctly.", retried=True,
                 prompt_tokens=240, completion_tokens=40, seconds=2.0),
        Judgment(judge="delta", first=0, second=1, verdict="A", reasoning="A.", weight=0.5,
                 prompt_tokens=118, completion_tokens=4, seconds=0.9),
        Judgment(judge="delta", first=1, second=0, verdict="U", reasoning="Cannot tell.", weight=0.5,
                 prompt_tokens=118, completion_tokens=6, seconds=0.9),
    ]
    cost = Cost(
        phases={
            "answer": PhaseCost(calls=3, prompt_tokens=123, completion_tokens=28, seconds=0.8),
            "judge": PhaseCost(calls=4, failures=1, prompt_tokens=596, completion_tokens=70, seconds=2.0),
        },
        wall_seconds=2.9,
    )
    return RoundResult(
        round_id=round_id, created_at=created_at, question=question, task_type="number", protocol=protocol,
        schedule="cluster", answer="391", answer_text=answers[0].text, winner=0, confidence=0.81,
        answers=answers, candidates=candidates, judgments=judgments,
        rankings=[Ranking(judge="delta", order=[0, 1], reasoning="391 first")],
        notes=["gamma's answer was excluded: refused"], cost=cost, swarm=swarm,
    )


def rid(n: int) -> str:
    """A distinct 32-hex round id; ids from rid(0x1000..) share no 4-char prefix with make_round's default."""
    return f"{n:032x}"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'swarmrank.db'}"


@pytest.fixture
def store(db_url: str):
    with Store(db_url) as s:
        yield s


def scalar(s: Store, sql: str, **params: object) -> object:
    with s.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


# -- saving and reading -------------------------------------------------------------------------


def test_saved_round_reads_back_equal(store: Store) -> None:
    result = make_round()
    store.save_round(result)
    got = store.get_round(result.round_id)
    assert got.model_dump() == result.model_dump()
    assert got.cost.calls == 7 and got.winning_nodes == ["alpha"]


def test_round_columns_hold_the_queryable_summary(store: Store) -> None:
    store.save_round(make_round())
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT protocol, schedule, answer, winner, calls, prompt_tokens, "
                                "completion_tokens, wall_seconds, schema_version FROM rounds")).one()
    assert tuple(row) == ("peer-rank", "cluster", "391", 0, 7, 719, 98, 2.9, 1)


def test_child_rows_are_queryable_by_node_and_judge(store: Store) -> None:
    result = make_round()
    store.save_round(result)
    with store.engine.connect() as conn:
        per_judge = dict(conn.execute(text("SELECT judge, COUNT(*) FROM judgments GROUP BY judge")).all())
        orders = conn.execute(text("SELECT first, second FROM judgments WHERE judge = 'gamma' ORDER BY position")).all()
        excluded = conn.execute(text("SELECT node, excluded, value FROM answers WHERE excluded IS NOT NULL")).all()
        nodes = conn.execute(text("SELECT nodes FROM candidates ORDER BY position")).scalars().all()
        retried = conn.execute(text("SELECT retried FROM judgments WHERE position = 1")).scalar()
    assert per_judge == {"gamma": 2, "delta": 2}
    assert [tuple(o) for o in orders] == [(0, 1), (1, 0)]
    assert [tuple(e) for e in excluded] == [("gamma", "refused", None)]
    assert nodes == ['["alpha"]', '["beta"]']
    assert bool(retried) is True


def test_round_survives_a_new_store_on_the_same_file(db_url: str) -> None:
    result = make_round()
    with Store(db_url) as first:
        first.save_round(result)
    with Store(db_url) as second:
        assert second.count_rounds() == 1
        assert second.get_round(result.round_id).model_dump() == result.model_dump()


def test_round_is_readable_from_another_process(store: Store, db_url: str) -> None:
    result = make_round()
    store.save_round(result)
    code = textwrap.dedent(f"""
        from swarmrank.store import Store
        with Store({db_url!r}) as s:
            print(s.get_round({result.round_id[:8]!r}).model_dump_json())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert RoundResult.model_validate_json(proc.stdout).model_dump() == result.model_dump()


def test_created_at_is_stored_in_utc_and_comes_back_aware(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2025, 3, 14, 11, 0, tzinfo=plus_two)  # 09:00 UTC
    store.save_round(make_round(rid(0x1001), created_at=local))
    store.save_round(make_round(rid(0x1002), created_at=datetime(2025, 3, 14, 10, 0, tzinfo=timezone.utc)))
    newest, older = store.list_rounds()
    assert newest.round_id == rid(0x1002)  # 10:00 UTC is later than 11:00+02:00
    assert older.created_at == local and older.created_at.tzinfo == timezone.utc
    assert store.get_round(rid(0x1001)).created_at == local


def test_round_without_judgments_or_winner_saves(store: Store) -> None:
    result = make_round().model_copy(update={"judgments": [], "candidates": [], "winner": None, "answer": None,
                                             "answers": [], "rankings": []})
    store.save_round(result)
    assert store.get_round(result.round_id).model_dump() == result.model_dump()
    assert scalar(store, "SELECT COUNT(*) FROM judgments") == 0


# -- lookup by prefix ---------------------------------------------------------------------------


def test_unique_prefix_finds_the_round(store: Store) -> None:
    result = make_round()
    store.save_round(result)
    store.save_round(make_round(rid(0x1001)))
    assert store.get_round(result.round_id[:4]).round_id == result.round_id
    assert store.get_round(f"  {result.round_id[:10]} ").round_id == result.round_id


def test_ambiguous_prefix_says_how_many_match(store: Store) -> None:
    for n in (0xABCD1, 0xABCD2, 0xABCD3):
        store.save_round(make_round(f"abcd{n:028x}"))
    with pytest.raises(AmbiguousRoundId, match=r"abcd is ambiguous: 3 rounds in database sqlite:///.* match") as info:
        store.get_round("abcd")
    assert (info.value.key, info.value.matches) == ("abcd", 3)


def test_unknown_round_is_a_storage_error(store: Store) -> None:
    store.save_round(make_round())
    with pytest.raises(RoundNotFound, match=r"no round 0000ffff") as info:
        store.get_round("0000ffff")
    assert info.value.key == "0000ffff" and isinstance(info.value, StorageError)


def test_prefix_shorter_than_four_characters_is_refused(store: Store) -> None:
    result = make_round()
    store.save_round(result)
    with pytest.raises(StorageError, match="at least 4 characters"):
        store.get_round(result.round_id[:3])


def test_prefix_is_literal_not_a_like_pattern(store: Store) -> None:
    store.save_round(make_round("ab%_0001"))
    with pytest.raises(StorageError, match="no round"):
        store.get_round("a%_%")
    assert store.get_round("ab%_").round_id == "ab%_0001"


# -- listing ------------------------------------------------------------------------------------


def test_list_rounds_is_newest_first_and_limited(store: Store) -> None:
    for i in range(5):
        store.save_round(make_round(rid(0x1000 + i), created_at=T0 + timedelta(minutes=i)))
    listed = store.list_rounds(limit=3)
    assert [s.round_id for s in listed] == [rid(0x1004), rid(0x1003), rid(0x1002)]
    assert listed[0] == RoundSummary(round_id=rid(0x1004), created_at=T0 + timedelta(minutes=4), protocol="peer-rank",
                                     question="What is 17 * 23?", answer="391", confidence=0.81, calls=7,
                                     wall_seconds=2.9)
    assert store.count_rounds() == 5


def test_list_rounds_filters_by_protocol_and_swarm(store: Store) -> None:
    store.save_round(make_round(rid(0x1001), protocol="majority"))
    store.save_round(make_round(rid(0x1002), protocol="peer-rank", created_at=T0 + timedelta(seconds=1)))
    store.save_round(make_round(rid(0x1003), protocol="majority", swarm="lab", created_at=T0 + timedelta(seconds=2)))
    assert [s.round_id for s in store.list_rounds(protocol="majority")] == [rid(0x1003), rid(0x1001)]
    assert [s.round_id for s in store.list_rounds(protocol="majority", swarm="default")] == [rid(0x1001)]
    assert store.list_rounds(protocol="council") == []
    assert store.count_rounds(protocol="majority") == 2


def test_empty_store_lists_nothing(store: Store) -> None:
    assert store.list_rounds() == [] and store.count_rounds() == 0


# -- integrity ----------------------------------------------------------------------------------


def test_saving_the_same_round_twice_fails_and_keeps_one_copy(store: Store) -> None:
    result = make_round()
    store.save_round(result)
    with pytest.raises(StorageError, match=f"round {result.round_id} is already saved"):
        store.save_round(result.model_copy(update={"answer": "381"}))
    assert store.count_rounds() == 1
    assert scalar(store, "SELECT COUNT(*) FROM answers") == 3
    assert store.get_round(result.round_id).answer == "391"


@pytest.mark.parametrize("error", [
    OperationalError("INSERT INTO judgments", {}, Exception("disk I/O error")),
    RuntimeError("bug while writing judgments"),
])
def test_failure_in_the_middle_of_save_leaves_no_partial_round(store: Store, monkeypatch, error) -> None:
    def broken(conn, result):  # runs after the round, answers and candidates were inserted
        raise error

    monkeypatch.setattr(rounds_mod, "_insert_judgments", broken)
    expected = StorageError if isinstance(error, OperationalError) else RuntimeError
    with pytest.raises(expected):
        store.save_round(make_round())
    for table in ("rounds", "answers", "candidates", "judgments"):
        assert scalar(store, f"SELECT COUNT(*) FROM {table}") == 0, table


def test_deleting_a_round_cascades_to_its_rows(store: Store) -> None:
    store.save_round(make_round())
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM rounds"))
    for table in ("answers", "candidates", "judgments"):
        assert scalar(store, f"SELECT COUNT(*) FROM {table}") == 0, table


def test_concurrent_writers_on_one_file_all_succeed(db_url: str) -> None:
    stores = [Store(db_url), Store(db_url)]
    stores[0].count_rounds()  # migrate once up front
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for i in range(8):
                stores[k % 2].save_round(make_round(rid(0x2000 + 100 * k + i)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stores[1].count_rounds() == 32
    for s in stores:
        s.close()


# -- migrations and SQLite settings -------------------------------------------------------------


def test_migrate_is_idempotent_and_records_the_alembic_revision(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        assert migrate(engine) == revisions() == ["m001_initial", "m002_eval", "m003_ledger", "m004_api_keys",
                                                       "m005_eval_dollars", "m006_trusted_rounds"]
        assert migrate(engine) == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
                "m006_trusted_rounds"]
        assert "_migrations" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_failing_migration_rolls_back_the_whole_run(tmp_path: Path, monkeypatch) -> None:
    scripts = tmp_path / "migrations"
    shutil.copytree(Path(migrations.__file__).parent, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "m099_broken.py").write_text(textwrap.dedent("""
        from alembic import op

        revision = "m099_broken"
        down_revision = "m006_trusted_rounds"
        branch_labels = depends_on = None

        def upgrade():
            op.execute("CREATE TABLE half_done (x INTEGER)")
            op.execute("SELECT * FROM no_such_table")
    """))
    monkeypatch.setattr(migrations, "HERE", scripts)
    migrations._script.cache_clear()
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        with pytest.raises(StorageError, match="could not migrate"):
            migrate(engine)
        tables = set(inspect(engine).get_table_names())
        assert not tables & {"rounds", "answers", "half_done", "alembic_version"}  # one transaction: all rolled back
    finally:
        engine.dispose()
        migrations._script.cache_clear()


def legacy_database(url: str, applied: str) -> None:
    """A database as the pre-alembic runner left it: migrated up to ``applied``, recorded in ``_migrations``."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(connection=conn), applied)
            conn.execute(text("DROP TABLE alembic_version"))
            conn.execute(text("CREATE TABLE _migrations (name VARCHAR(200) PRIMARY KEY, applied_at TIMESTAMP)"))
            for name in revisions()[:revisions().index(applied) + 1]:
                conn.execute(text("INSERT INTO _migrations (name, applied_at) VALUES (:n, CURRENT_TIMESTAMP)"),
                             {"n": name})
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_database_of_the_old_migration_runner_is_adopted_and_upgraded(backend, tmp_path, request) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'old.db'}"
    legacy_database(url, "m001_initial")  # the oldest schema: rounds only
    with Store(url) as old:
        with old.engine.begin() as conn:  # the schema is current once a Store touches it...
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == "m006_trusted_rounds"
        tables = set(inspect(old.engine).get_table_names())
    assert {"rounds", "eval_runs", "ledger", "api_keys"} <= tables and "_migrations" not in tables
    with Store(url) as again:  # ...and stays so
        again.save_round(make_round())
        assert again.count_rounds() == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_migration_goes_down_and_up_again(backend, tmp_path, request) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'updown.db'}"
    engine = make_engine(url)
    try:
        assert migrate(engine) == revisions()
        with engine.begin() as conn:
            command.downgrade(migrations.alembic_config(connection=conn), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert migrate(engine) == revisions()
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_mapped_classes(store: Store) -> None:
    import swarmrank.eval.store
    import swarmrank.ledger
    import swarmrank.server.keys  # noqa: F401 - their tables join Base's metadata

    insp = inspect(store.engine)
    assert {t.name for t in Base.metadata.sorted_tables} == set(insp.get_table_names()) - {"alembic_version"}
    for table in Base.metadata.sorted_tables:
        assert {c["name"] for c in insp.get_columns(table.name)} == set(table.c.keys()), table.name
        assert {i["name"] for i in insp.get_indexes(table.name)} == {i.name for i in table.indexes}, table.name
    assert {i["name"] for i in insp.get_indexes("answers")} == {"ix_answers_node"}
    assert {i["name"] for i in insp.get_indexes("judgments")} == {"ix_judgments_judge"}
    assert {i["name"] for i in insp.get_indexes("rounds")} == {"ix_rounds_created_at"}


def test_sqlite_file_uses_wal_foreign_keys_and_busy_timeout(store: Store, db_url: str) -> None:
    assert not Path(db_url.removeprefix("sqlite:///")).parent.exists()  # nothing made before first use
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == store_mod.SQLITE_BUSY_TIMEOUT_MS
    assert Path(db_url.removeprefix("sqlite:///")).is_file()


def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    with Store("sqlite://") as s:
        s.save_round(make_round())
        assert s.count_rounds() == 1


# -- choosing the database ----------------------------------------------------------------------


def test_open_prefers_env_over_config_over_default(tmp_path: Path) -> None:
    env_url, config_url = f"sqlite:///{tmp_path / 'env.db'}", f"sqlite:///{tmp_path / 'config.db'}"
    home = tmp_path / "home"
    assert Store.open(Settings(home=home, db_url=env_url), config_url).url == env_url
    assert Store.open(Settings(home=home), config_url).url == config_url
    assert Store.open(Settings(home=home)).url == f"sqlite:///{home / 'swarmrank.db'}"


def test_settings_read_only_the_swarmrank_variables_and_keywords_override_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DB_URL", "sqlite:///not-ours.db")
    monkeypatch.setenv("SWARMRANK_HOME", str(tmp_path / "h"))
    assert Settings().db_url is None and Settings().home == tmp_path / "h"
    monkeypatch.setenv("SWARMRANK_DB", "sqlite:///ours.db")
    assert Settings.from_env().db_url == "sqlite:///ours.db"
    assert Settings(db_url="sqlite:///given.db").db_url == "sqlite:///given.db"
    monkeypatch.setenv("SWARMRANK_DB", "")  # an empty variable counts as unset
    assert Settings().db_url is None


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://host/db"])
def test_bad_url_is_a_storage_error(url: str) -> None:
    with pytest.raises(StorageError) as info:
        Store(url).count_rounds()
    assert "\n" not in str(info.value)


def test_unreachable_server_is_a_storage_error_without_the_password() -> None:
    url = "postgresql+psycopg://swarm:hunter2@127.0.0.1:1/swarmrank?connect_timeout=2"
    with pytest.raises(StorageError) as info:
        Store(url).count_rounds()
    message = str(info.value)
    assert "hunter2" not in message and "swarm:***@127.0.0.1:1/swarmrank" in message
    assert "could not connect" in message or "driver" in message  # driver: psycopg is an optional extra
    assert "\n" not in message


def test_path_under_a_file_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("not a directory")
    with pytest.raises(StorageError, match="plain-file"):
        Store(f"sqlite:///{tmp_path / 'plain-file' / 'swarmrank.db'}").count_rounds()


def test_directory_as_database_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"unable to open database file") as info:
        Store(f"sqlite:///{tmp_path}").save_round(make_round())
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_corrupt_result_json_is_a_storage_error(store: Store) -> None:
    result = make_round()
    store.save_round(result)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE rounds SET result_json = '{\"round_id\": 1}'"))
    with pytest.raises(StorageError, match="cannot be read"):
        store.get_round(result.round_id)


@pytest.mark.skipif(not os.environ.get("SWARMRANK_TEST_PG"), reason="set SWARMRANK_TEST_PG to a Postgres URL")
def test_round_trip_on_postgres() -> None:  # pragma: no cover - needs a server
    with Store(os.environ["SWARMRANK_TEST_PG"]) as s:
        result = make_round(rid(0x7E57) + os.urandom(2).hex(), created_at=datetime.now(timezone.utc))
        s.save_round(result)
        assert s.get_round(result.round_id).model_dump() == result.model_dump()
        assert s.list_rounds(limit=1)[0].round_id == result.round_id
        with pytest.raises(StorageError, match="already saved"):
            s.save_round(result)
        with s.engine.begin() as conn:
            conn.execute(text("DELETE FROM rounds WHERE id = :id"), {"id": result.round_id})
