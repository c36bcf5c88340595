"""The one place that reads the environment.

Every default works on a fresh machine with `deep stack up`: services listen on 127.0.0.1 on ports
chosen not to collide with a system-wide PostgreSQL or Redis, and all data lives under one state
directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WIKIPEDIA_URL_TEMPLATE = "https://{lang}.wikipedia.org"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "").lower()
    if raw == "":
        return default
    if raw not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError(f"environment variable {name} must be true or false, got {raw!r}")
    return raw in ("1", "true", "yes")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def _wiki_url(raw: str) -> str:
    if raw and (not raw.startswith(("http://", "https://")) or "{lang}" not in raw):
        raise ValueError(
            f"environment variable WIKIPEDIA_URL must be an http(s) URL with {{lang}}, like "
            f"{WIKIPEDIA_URL_TEMPLATE}; got {raw!r}"
        )
    return raw.rstrip("/")


def _env_bounded(
    name: str, default: int, *, minimum: int, maximum: int | None = None, unit: str = "days"
) -> int:
    value = _env_int(name, default)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise ValueError(f"environment variable {name} must be {bounds} ({unit}), got {value}")
    return value


# The OAuth2 application the local Discord emulator registers at start (`deep emulator`): its credentials
# exist only in the emulator; production sets DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET of a real app.
LOCAL_CLIENT_ID = "1400000000000000001"
LOCAL_CLIENT_SECRET = "local-emulator-client-secret"

# ClickHouse's TTL counts in DateTime, which ends in 2106: a longer retention would wrap round and expire
# every row at once.
MAX_ANALYTICS_DAYS = 3650


@dataclass(frozen=True)
class Retention:
    """How long each store keeps what it holds, in days; the code owning the store applies it (docs/DATA.md
    lists every store). Stores without a field here are bounded by their own rule (DATA.md says which)."""

    # `discord.events`: every message's content. Replays and Parquet exports read it: it bounds their reach.
    events_days: int = 7
    # `deadletter.*`: copies of the records a consumer could not process, content included.
    dead_letters_days: int = 14
    # ClickHouse's per-record tables (ids, kinds, sizes, times; never content): a TTL on each.
    analytics_days: int = 90
    # Long-term memory (Weaviate): the memory writer's sweep deletes memories older than this; 0 keeps
    # them until their deployment or the person's erasure removes them.
    memories_days: int = 365
    # The compacted topics (the processors' changelogs): a value superseded there (an erased person's, say)
    # is gone within this bound, plus the broker's cleaner backoff. Short on a test stack.
    erased_within_ms: int = 3_600_000


@dataclass(frozen=True)
class ProducerBatching:
    """How a producer groups records into produce requests. The broker's CPU goes per request and per
    partition batch far more than per record: fewer, larger requests cost it less. A record waits up to
    linger_ms for its batch to fill; a reply crosses two producers (the gateway's, the processors')."""

    linger_ms: int
    max_batch_bytes: int


# The gateway forwards every message of every guild: its requests are most of the broker's produce load. Its
# fleet holds the linger itself and hands aiokafka each burst at once (gateways/forwarder.py).
GATEWAY_PRODUCER = ProducerBatching(linger_ms=5, max_batch_bytes=256 * 1024)


def load_producer_batching(prefix: str, default: ProducerBatching) -> ProducerBatching:
    return ProducerBatching(
        linger_ms=_env_bounded(
            f"{prefix}_LINGER_MS", default.linger_ms, minimum=0, maximum=1000, unit="milliseconds"
        ),
        max_batch_bytes=_env_bounded(
            f"{prefix}_MAX_BATCH_BYTES", default.max_batch_bytes, minimum=1024, unit="bytes"
        ),
    )


@dataclass(frozen=True)
class FetchBatching:
    """How a consumer's fetches wait on the broker: it answers once it holds min_bytes for the fetch or
    max_wait_ms passed. Every answer is a request the broker serves: small fetches, one per produce request,
    cost it more than the records they carry."""

    min_bytes: int
    max_wait_ms: int


# aiokafka's own: a fetch is answered as soon as anything is there (a reader on a reply's path).
IMMEDIATE_FETCH = FetchBatching(min_bytes=1, max_wait_ms=500)
# The readers of every message that no reply waits for (the memory writer, the analytics sinks): records
# reach them up to half a second later, in a few large fetches rather than one per gateway produce request.
BULK_FETCH = FetchBatching(min_bytes=256 * 1024, max_wait_ms=500)


def load_fetch_batching(prefix: str, default: FetchBatching) -> FetchBatching:
    return FetchBatching(
        min_bytes=_env_bounded(f"{prefix}_MIN_BYTES", default.min_bytes, minimum=1, unit="bytes"),
        max_wait_ms=_env_bounded(
            f"{prefix}_MAX_WAIT_MS", default.max_wait_ms, minimum=1, maximum=30_000, unit="milliseconds"
        ),
    )


@dataclass(frozen=True)
class ProcessorsFlow:
    """How a processors worker takes its input: events in batches (a batch's table writes reach the
    changelogs once per key, its offsets are acked after its outputs), and the consumer's fetches."""

    # At most this many events a batch; a batch waits at most batch_wait_ms for more (an event's added
    # latency at low rates).
    batch_max_events: int = 500
    batch_wait_ms: int = 10
    # The broker answers a fetch when it has this many bytes or fetch_max_wait_ms passed. aiokafka keeps one
    # fetch in flight per broker, and one sent while the busy partitions' records were still buffered asks
    # only for quiet partitions: the broker holds it the whole wait while the busy ones' next records wait
    # behind it. Faust's 1,500 ms left a worker under a backlog idle for up to a second at a time; with
    # 100 ms it reads about 35 % more Mode-1 events a second (an idle worker fetches ten times a second).
    fetch_min_bytes: int = 1
    fetch_max_wait_ms: int = 100
    # The worker's producer: its actions, decisions and the tables' changelog writes. Batches up to 256 KiB
    # (Faust's own is 16 KiB): under a backlog a worker read about 15 % more Mode-1 events a second (the
    # linger, not the size, bounds a reply's wait).
    producer: ProducerBatching = ProducerBatching(linger_ms=5, max_batch_bytes=256 * 1024)


def load_processors_flow() -> ProcessorsFlow:
    return ProcessorsFlow(
        batch_max_events=_env_positive("DEEP_PROCESSORS_BATCH_MAX_EVENTS", ProcessorsFlow.batch_max_events),
        batch_wait_ms=_env_positive("DEEP_PROCESSORS_BATCH_WAIT_MS", ProcessorsFlow.batch_wait_ms),
        fetch_min_bytes=_env_positive("DEEP_PROCESSORS_FETCH_MIN_BYTES", ProcessorsFlow.fetch_min_bytes),
        fetch_max_wait_ms=_env_positive(
            "DEEP_PROCESSORS_FETCH_MAX_WAIT_MS", ProcessorsFlow.fetch_max_wait_ms
        ),
        producer=load_producer_batching("DEEP_PROCESSORS_PRODUCER", ProcessorsFlow.producer),
    )


def load_retention() -> Retention:
    return Retention(
        events_days=_env_bounded("DEEP_RETENTION_EVENTS_DAYS", Retention.events_days, minimum=1),
        dead_letters_days=_env_bounded(
            "DEEP_RETENTION_DEAD_LETTERS_DAYS", Retention.dead_letters_days, minimum=1
        ),
        analytics_days=_env_bounded(
            "DEEP_RETENTION_ANALYTICS_DAYS", Retention.analytics_days, minimum=1, maximum=MAX_ANALYTICS_DAYS
        ),
        memories_days=_env_bounded("DEEP_RETENTION_MEMORIES_DAYS", Retention.memories_days, minimum=0),
        # Every superseded value costs a segment roll and a cleaning pass at most this often: under a
        # second the broker would do little else.
        erased_within_ms=_env_bounded(
            "DEEP_ERASURE_COMPACTION_MS", Retention.erased_within_ms, minimum=1000, unit="milliseconds"
        ),
    )


@dataclass(frozen=True)
class Settings:
    # Where the native stack keeps its data and logs, and where downloads are cached across clones.
    state_dir: Path
    cache_dir: Path

    kafka_host: str
    kafka_port: int
    kafka_controller_port: int
    # Prepended to every topic name of the catalog; lets tests and tenants share one broker.
    topic_namespace: str

    postgres_host: str
    postgres_port: int
    postgres_db: str
    postgres_user: str
    postgres_password: str
    # Tables live in this schema when set (a tenant, a test run, the demo); empty: the default search path.
    postgres_schema: str

    redis_host: str
    redis_port: int

    # Empty: the embedded ClickHouse engine (chdb) under state_dir. A URL: a ClickHouse server.
    clickhouse_url: str

    # Empty: the Weaviate server `deep stack up` runs on 127.0.0.1. A URL (http://host:port): another one,
    # whose gRPC port is weaviate_grpc_port.
    weaviate_url: str
    weaviate_port: int
    weaviate_grpc_port: int
    # The local server's cluster ports: gossip, data, Raft and Raft RPC, from this one up.
    weaviate_cluster_port: int

    # Token vault keys: "kid1:base64key,kid2:base64key"; the first is used to encrypt.
    token_keys: str = field(repr=False)

    discord_api_base: str
    discord_gateway_url: str
    # Persona images may come from private addresses (a development machine serving them on 127.0.0.1);
    # off, an owner's image URL can never make the gateway reach inside its own network.
    media_allow_private: bool
    # The music library: audio files whose titles /play offers as a member types (and that voice plays
    # from). One folder for the platform, not per agent: an owner's configuration never names server paths.
    music_library_dir: Path
    # ElevenLabs, which speaks an agent's replies in voice channels when its owner chose an ElevenLabs voice
    # (without one, the offline espeak-ng speaks): the API's base URL (no /v1) and its key.
    elevenlabs_url: str
    elevenlabs_api_key: str = field(repr=False)
    # Where Parquet exports of the events are kept: an erasure rewrites every file under it without the
    # erased user's rows (an export written elsewhere is out of the platform's reach).
    parquet_exports_dir: Path
    # The public base URL of the interactions receiver (`deep gateway interactions`): each bot's application
    # gets `<url>/<bot id>` as its Interactions Endpoint URL, so Discord POSTs slash commands there and no
    # runner crash can leave one unacknowledged. Empty: interactions come over the gateway session.
    interactions_url: str

    openai_base_url: str
    openai_api_key: str = field(repr=False)
    # Inference endpoint pool: "name=url|models|max_concurrency;..." (inference/config.py).
    inference_endpoints: str
    # Bearer token of the vLLM pool (vllm serve --api-key / VLLM_API_KEY on the servers).
    inference_api_key: str = field(repr=False)
    # The embedded model server (infra/stack/model_server.py): `deep stack up` builds and starts it, and
    # the inference pool uses it when no other endpoint is configured. Off: no build, no server, and
    # without an endpoint every reply comes from the offline persona responder.
    local_model: bool
    local_model_port: int

    # Where the knowledge tool looks facts up: a MediaWiki base URL with `{lang}` for the language (the API
    # is under /w/api.php). Empty: Wikipedia itself, WIKIPEDIA_URL_TEMPLATE.
    wikipedia_url: str
    # How Wikimedia can reach this platform's operators (an email or a URL), sent in the User-Agent as
    # their etiquette asks of every client.
    wikipedia_contact: str

    api_host: str
    api_port: int

    # Owner console sign-in with Discord OAuth2 (api/console/): where Discord's /oauth2/authorize and /api
    # routes are (the emulator locally, https://discord.com in production), the application's client
    # credentials, and the callback URL registered with it.
    discord_oauth_url: str
    discord_client_id: str
    discord_client_secret: str = field(repr=False)
    discord_redirect_url: str
    # How long a console sign-in lasts.
    console_session_hours: int
    # Where the console is served; Stripe Checkout returns the owner there.
    console_url: str

    # Billing: the Stripe API (stripe-mock, which `deep stack up` runs, by default) and its keys. The local
    # defaults are test-mode values stripe-mock accepts (it checks their form only); production sets its own.
    stripe_api_base: str
    stripe_mock_port: int
    stripe_secret_key: str = field(repr=False)
    stripe_webhook_secret: str = field(repr=False)

    log_level: str

    # A file holding an ISO-8601 time that the processors (their timers) and the emulators take for "now";
    # None: the wall clock. Lets tests run a day of routines in seconds, never set in production.
    clock_file: Path | None = None

    retention: Retention = field(default_factory=Retention)
    processors_flow: ProcessorsFlow = field(default_factory=ProcessorsFlow)
    gateway_producer: ProducerBatching = GATEWAY_PRODUCER
    bulk_fetch: FetchBatching = BULK_FETCH

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def postgres_dsn(self) -> str:
        dsn = (
            f"postgresql://{self.postgres_user}:{self.postgres_password}"
            f"@{self.postgres_host}:{self.postgres_port}/{self.postgres_db}"
        )
        # asyncpg passes unknown DSN parameters on as server settings.
        return f"{dsn}?search_path={self.postgres_schema}" if self.postgres_schema else dsn

    @property
    def local_model_url(self) -> str:
        return f"http://127.0.0.1:{self.local_model_port}/v1"

    @property
    def local_model_serves(self) -> bool:
        """The embedded model answers the agents: it is on and no other endpoint is configured."""
        return self.local_model and not (
            self.openai_base_url or self.openai_api_key or self.inference_endpoints
        )

    @property
    def stripe_mock_url(self) -> str:
        return f"http://127.0.0.1:{self.stripe_mock_port}"

    @property
    def stripe_mock_serves(self) -> bool:
        """Billing talks to the local stripe-mock, which `deep stack up` then runs."""
        return self.stripe_api_base == self.stripe_mock_url

    @property
    def wikipedia_url_template(self) -> str:
        return self.wikipedia_url or WIKIPEDIA_URL_TEMPLATE

    @property
    def redis_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/0"

    @property
    def weaviate_http_url(self) -> str:
        return self.weaviate_url or f"http://127.0.0.1:{self.weaviate_port}"

    @property
    def clickhouse_path(self) -> Path:
        return self.state_dir / "clickhouse"


def _interactions_url(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"DEEP_INTERACTIONS_URL: {value!r} is not an http(s) URL")
    return value.rstrip("/")


def _env_positive(name: str, default: int) -> int:
    value = _env_int(name, default)
    if value < 1:
        raise ValueError(f"environment variable {name} must be at least 1, got {value}")
    return value


def _http_url(name: str, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"environment variable {name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def load_settings() -> Settings:
    state_dir = Path(_env("DEEP_STATE_DIR", str(REPO_ROOT / ".state"))).resolve()
    api_host = _env("DEEP_API_HOST", "127.0.0.1")
    api_port = _env_int("DEEP_API_PORT", 8080)
    stripe_mock_port = _env_int("STRIPE_MOCK_PORT", 12111)
    return Settings(
        state_dir=state_dir,
        cache_dir=Path(_env("DEEP_CACHE_DIR", str(Path.home() / ".cache" / "deep-system"))).resolve(),
        kafka_host=_env("KAFKA_HOST", "127.0.0.1"),
        kafka_port=_env_int("KAFKA_PORT", 19092),
        kafka_controller_port=_env_int("KAFKA_CONTROLLER_PORT", 19093),
        topic_namespace=_env("DEEP_TOPIC_NAMESPACE", ""),
        postgres_host=_env("POSTGRES_HOST", "127.0.0.1"),
        postgres_port=_env_int("POSTGRES_PORT", 15432),
        postgres_db=_env("POSTGRES_DB", "deep"),
        postgres_user=_env("POSTGRES_USER", "deep"),
        postgres_password=_env("POSTGRES_PASSWORD", "deep"),
        postgres_schema=_env("DEEP_POSTGRES_SCHEMA", ""),
        redis_host=_env("REDIS_HOST", "127.0.0.1"),
        redis_port=_env_int("REDIS_PORT", 16379),
        clickhouse_url=_env("CLICKHOUSE_URL", ""),
        weaviate_url=_env("WEAVIATE_URL", ""),
        weaviate_port=_env_int("WEAVIATE_PORT", 18480),
        weaviate_grpc_port=_env_int("WEAVIATE_GRPC_PORT", 18481),
        weaviate_cluster_port=_env_int("WEAVIATE_CLUSTER_PORT", 18946),
        token_keys=_env("DEEP_TOKEN_KEYS", ""),
        discord_api_base=_env("DISCORD_API_BASE", "https://discord.com/api/v10"),
        discord_gateway_url=_env("DISCORD_GATEWAY_URL", "wss://gateway.discord.gg"),
        media_allow_private=_env_bool("DEEP_MEDIA_ALLOW_PRIVATE", False),
        music_library_dir=Path(_env("DEEP_MUSIC_LIBRARY", str(state_dir / "music"))).resolve(),
        parquet_exports_dir=Path(_env("DEEP_PARQUET_EXPORTS_DIR", str(state_dir / "exports"))).resolve(),
        interactions_url=_interactions_url(_env("DEEP_INTERACTIONS_URL", "")),
        elevenlabs_url=_env("ELEVENLABS_URL", "https://api.elevenlabs.io"),
        elevenlabs_api_key=_env("ELEVENLABS_API_KEY", ""),
        openai_base_url=_env("OPENAI_BASE_URL", ""),
        openai_api_key=_env("OPENAI_API_KEY", ""),
        inference_endpoints=_env("INFERENCE_ENDPOINTS", ""),
        inference_api_key=_env("INFERENCE_API_KEY", ""),
        local_model=_env_bool("DEEP_LOCAL_MODEL", True),
        local_model_port=_env_int("DEEP_LOCAL_MODEL_PORT", 18000),
        wikipedia_url=_wiki_url(_env("WIKIPEDIA_URL", "")),
        wikipedia_contact=_env("WIKIPEDIA_CONTACT", ""),
        api_host=api_host,
        api_port=api_port,
        discord_oauth_url=_http_url("DISCORD_OAUTH_URL", _env("DISCORD_OAUTH_URL", "http://127.0.0.1:7990")),
        discord_client_id=_env("DISCORD_CLIENT_ID", LOCAL_CLIENT_ID),
        discord_client_secret=_env("DISCORD_CLIENT_SECRET", LOCAL_CLIENT_SECRET),
        discord_redirect_url=_http_url(
            "DISCORD_REDIRECT_URL",
            _env("DISCORD_REDIRECT_URL", f"http://{api_host}:{api_port}/auth/discord/callback"),
        ),
        console_session_hours=_env_positive("DEEP_CONSOLE_SESSION_HOURS", 168),
        console_url=_http_url(
            "DEEP_CONSOLE_URL", _env("DEEP_CONSOLE_URL", f"http://{api_host}:{api_port}/console/")
        ),
        stripe_api_base=_http_url(
            "STRIPE_API_BASE", _env("STRIPE_API_BASE", f"http://127.0.0.1:{stripe_mock_port}")
        ),
        stripe_mock_port=stripe_mock_port,
        stripe_secret_key=_env("STRIPE_SECRET_KEY", "sk_test_123"),
        stripe_webhook_secret=_env("STRIPE_WEBHOOK_SECRET", "whsec_local_stripe_mock"),
        log_level=_env("DEEP_LOG_LEVEL", "INFO"),
        clock_file=Path(clock_file).resolve() if (clock_file := _env("DEEP_CLOCK_FILE", "")) else None,
        retention=load_retention(),
        processors_flow=load_processors_flow(),
        gateway_producer=load_producer_batching("DEEP_GATEWAY_PRODUCER", GATEWAY_PRODUCER),
        bulk_fetch=load_fetch_batching("DEEP_BULK_FETCH", BULK_FETCH),
    )


@dataclass(frozen=True)
class ConformanceTarget:
    """The Discord-compatible server the conformance suite (tests/conformance) checks. All empty: the suite
    starts the Discord emulator itself."""

    # wss://... as GET /gateway would answer; the REST base (".../api/v10"); the driver's control hook.
    gateway_url: str
    api_base: str
    driver_url: str
    # How long the server keeps interaction tokens (Discord: 15 minutes); longer than a minute is not waited.
    token_ttl_s: float

    @property
    def external(self) -> bool:
        return bool(self.gateway_url or self.api_base or self.driver_url)


def load_conformance_target() -> ConformanceTarget:
    target = ConformanceTarget(
        gateway_url=_env("DISCORD_CONFORMANCE_GATEWAY_URL", ""),
        api_base=_env("DISCORD_CONFORMANCE_API_BASE", ""),
        driver_url=_env("DISCORD_CONFORMANCE_DRIVER_URL", ""),
        token_ttl_s=float(_env_int("DISCORD_CONFORMANCE_TOKEN_TTL_S", 900)),
    )
    if target.external and not (target.gateway_url and target.api_base and target.driver_url):
        raise ValueError(
            "DISCORD_CONFORMANCE_GATEWAY_URL, DISCORD_CONFORMANCE_API_BASE and "
            "DISCORD_CONFORMANCE_DRIVER_URL are set together (or none of them, for the emulator)"
        )
    return target


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once. Tests that change the environment call load_settings()."""
    return load_settings()
