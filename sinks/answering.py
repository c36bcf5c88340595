"""Requests the sinks process answers because it holds ClickHouse (`/stats`, the console's analytics): a
consumer in a group of its own per kind of request, answering each record in turn."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from clickhouse_connect.driver.client import Client

from sinks.consumer import SinkOptions
from streams.catalog import TopicSpec
from streams.codec import CodecError
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService


class AnsweringService(ConsumerService):
    """Reads `requests` in the group `deep.sinks.<name>` and answers each (`answer`); a record that does not
    decode goes to the dead letters."""

    def __init__(
        self,
        requests: TopicSpec,
        name: str,
        client: Client,
        database: str,
        *,
        bootstrap: str,
        namespace: str,
        producer: AIOKafkaProducer,
        options: SinkOptions = SinkOptions(),
    ) -> None:
        self.client = client
        self.database = database
        self.producer = producer
        self.namespace = namespace
        self.requests = requests
        self.answered = 0
        self.group_id = f"{namespace}deep.sinks.{name}"
        self.consumer = AtLeastOnceConsumer(
            self,
            [requests],
            namespace=namespace,
            bootstrap=bootstrap,
            producer=producer,
            options=ConsumerOptions(
                group_id=self.group_id,
                client_id=self.group_id,
                consumer_name=f"sinks.{name}",
                instance_id=options.instance_id,
            ),
        )

    def stop(self) -> None:
        self.consumer.stop()

    async def run(self) -> None:
        await self.consumer.start()
        try:
            await self.consumer.run()
        finally:
            await self.consumer.close()

    async def apply(self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in fetched.items():
            for record in records:
                try:
                    request = self.requests.codec.decode(record.value)
                except CodecError as exc:
                    await self.consumer.dead_letter(record, str(exc))
                else:
                    await self.answer(request)
                    self.answered += 1
                self.consumer.done(tp, record.offset)

    @abstractmethod
    async def answer(self, request: Any) -> None:
        """Answer one request (its effects idempotent: a request may be read twice)."""
