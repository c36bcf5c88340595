"""Erasure in ClickHouse: this process holds the (embedded) engine, so it erases the user's rows when the
erasure job's control record arrives, and acknowledges."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from clickhouse_connect.driver.client import Client

from models.erasure import ErasureAck, ErasureComponent
from sinks.clickhouse.schema import erase_user
from sinks.consumer import SinkOptions
from streams.catalog import PRIVACY_ERASURE_ACKS, PRIVACY_ERASURES
from streams.codec import CodecError, encode_key
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService

# The job writes a control record to every partition; ClickHouse is one store, erased once, on this one's.
ANALYTICS_PARTITION = 0


class ErasureService(ConsumerService):
    """Reads `privacy.erasures` in its own group; erases on the record of ANALYTICS_PARTITION and skips the
    other partitions' copies. A redelivered record deletes nothing more and is acknowledged again."""

    def __init__(
        self,
        client: Client,
        database: str,
        *,
        bootstrap: str,
        namespace: str,
        producer: AIOKafkaProducer,
        options: SinkOptions = SinkOptions(),
    ) -> None:
        self._client = client
        self._database = database
        self._producer = producer
        self._acks_topic = PRIVACY_ERASURE_ACKS.name_in(namespace)
        group_id = f"{namespace}deep.sinks.erasures"
        self.consumer = AtLeastOnceConsumer(
            self,
            [PRIVACY_ERASURES],
            namespace=namespace,
            bootstrap=bootstrap,
            producer=producer,
            options=ConsumerOptions(
                group_id=group_id,
                client_id=group_id,
                consumer_name="sinks.erasures",
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
                if tp.partition == ANALYTICS_PARTITION:
                    await self._erase(record)
                self.consumer.done(tp, record.offset)

    async def _erase(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            control = PRIVACY_ERASURES.codec.decode(record.value)
        except CodecError as exc:
            await self.consumer.dead_letter(record, str(exc))
            return
        removed = await asyncio.to_thread(erase_user, self._client, control.user_id, self._database)
        ack = ErasureAck(
            erasure_id=control.erasure_id,
            component=ErasureComponent.analytics,
            partition=ANALYTICS_PARTITION,
            removed=removed,
        )
        await self._producer.send_and_wait(
            self._acks_topic, PRIVACY_ERASURE_ACKS.codec.encode(ack), encode_key(str(control.erasure_id))
        )
