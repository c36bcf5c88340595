"""Apache Kafka as a single-node KRaft broker+controller, its jars fetched from Maven Central."""

from __future__ import annotations

import base64
import shutil
import uuid
from pathlib import Path
from typing import ClassVar

from aiokafka.admin import AIOKafkaAdminClient

from infra.stack.process import run_step, say
from infra.stack.service import Launch, NativeService, port_open
from settings import Settings

KAFKA_VERSION = "4.4.0"
SCALA_VERSION = "2.13"
# Kafka's pom names slf4j-api 1.7 but no binding; the 1.x bridge routes it to log4j2 as the tarball does.
LOG4J_VERSION = "2.25.3"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
HEAP_OPTS = ["-Xms256m", "-Xmx768m"]
COMPLETE_MARKER = ".complete"
# How long the log cleaner sleeps when no log needs cleaning (Kafka's default is 15 s): it adds to the bound
# on how long a superseded changelog value survives (DEEP_ERASURE_COMPACTION_MS), which a test stack makes
# seconds short.
LOG_CLEANER_BACKOFF_MS = 1000


def kafka_home(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{KAFKA_VERSION}"


def render_pom() -> str:
    """A pom whose runtime dependency closure is exactly the broker's classpath."""
    deps = [
        ("org.apache.kafka", f"kafka_{SCALA_VERSION}", KAFKA_VERSION),
        ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
        ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
    ]
    dependencies = "\n".join(
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency>"
        for group, artifact, version in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.deep-system</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


def render_server_properties(settings: Settings, data_dir: Path) -> str:
    host, port, controller = settings.kafka_host, settings.kafka_port, settings.kafka_controller_port
    return f"""# Rendered from settings by infra/stack/kafka.py on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}
advertised.listeners=PLAINTEXT://{host}:{port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir}
num.partitions=12
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.backoff.ms={LOG_CLEANER_BACKOFF_MS}
"""


def render_log4j2(log_file: Path) -> str:
    return f"""status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""


def new_cluster_id(value: uuid.UUID) -> str:
    """Kafka's textual Uuid: URL-safe base64 of the 16 bytes, unpadded."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


class Kafka(NativeService):
    name = "kafka"
    start_timeout: ClassVar[float] = 120.0

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        host = self.settings.kafka_host
        return [(host, self.settings.kafka_port), (host, self.settings.kafka_controller_port)]

    @property
    def libs(self) -> Path:
        return kafka_home(self.settings) / "libs"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def server_properties(self) -> Path:
        return self.dir / "server.properties"

    @property
    def log4j2_properties(self) -> Path:
        return self.dir / "log4j2.properties"

    def missing_packages(self) -> list[str]:
        needed = {"java": "openjdk-17-jre-headless"}
        if not (self.libs / COMPLETE_MARKER).exists():
            needed["mvn"] = "maven"
        return [package for binary, package in needed.items() if shutil.which(binary) is None]

    def prepare(self) -> None:
        self._fetch_jars()
        self.server_properties.write_text(render_server_properties(self.settings, self.data_dir))
        self.log4j2_properties.write_text(render_log4j2(self.log_file))
        if not (self.data_dir / "meta.properties").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            run_step(
                self.name,
                "formatting KRaft storage",
                [
                    *self._java(),
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    new_cluster_id(uuid.uuid4()),
                    "-c",
                    str(self.server_properties),
                ],
                log_file=self.install_log,
            )

    def _fetch_jars(self) -> None:
        if (self.libs / COMPLETE_MARKER).exists():
            return
        home = kafka_home(self.settings)
        home.mkdir(parents=True, exist_ok=True)
        (home / "pom.xml").write_text(render_pom())
        # Fetch into a scratch folder and rename, so an interrupted fetch never passes for a complete one.
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        run_step(
            self.name,
            f"fetching Kafka {KAFKA_VERSION} jars from Maven Central into {self.libs}",
            [
                "mvn",
                "-B",
                "-q",
                "-f",
                str(home / "pom.xml"),
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            log_file=self.install_log,
        )
        (staging / COMPLETE_MARKER).write_text(f"kafka {KAFKA_VERSION}\n")
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        say(self.name, f"{len(list(self.libs.glob('*.jar')))} jars ready")

    def _java(self) -> list[str]:
        return [
            "java",
            *HEAP_OPTS,
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j2_properties}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp",
            f"{self.libs}/*",
        ]

    def launch(self) -> Launch:
        return Launch(argv=[*self._java(), "kafka.Kafka", str(self.server_properties)], cwd=self.dir)

    async def check(self) -> None:
        # aiokafka logs every refused connection as an error; only ask it once something listens.
        if not port_open(self.settings.kafka_host, self.settings.kafka_port):
            raise ConnectionError(f"nothing listens on {self.address}")
        admin = AIOKafkaAdminClient(bootstrap_servers=self.address, request_timeout_ms=5000)
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
        finally:
            await admin.close()
        if not cluster.get("brokers"):
            raise RuntimeError("no broker registered with the controller yet")
