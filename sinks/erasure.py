"""Erasure in ClickHouse: this process holds the (embedded) engine, so it erases the user's rows when the
erasure job's control record arrives, and acknowledges."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from clickhouse_connect.driver.client import Client

from models.erasure import ErasureAck, ErasureComponent, ErasureControl
from sinks.answering import AnsweringService
from sinks.clickhouse.schema import erase_user
from sinks.consumer import SinkOptions
from streams.catalog import PRIVACY_ERASURE_ACKS, PRIVACY_ERASURES
from streams.codec import encode_key

# The job writes a control record to every partition; ClickHouse is one store, erased once, on this one's.
ANALYTICS_PARTITION = 0


class ErasureService(AnsweringService):
    """Reads `privacy.erasures`; erases on the record of ANALYTICS_PARTITION and passes over the other
    partitions' copies. A redelivered record deletes nothing more and is acknowledged again."""

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
        super().__init__(
            PRIVACY_ERASURES,
            "erasures",
            client,
            database,
            bootstrap=bootstrap,
            namespace=namespace,
            producer=producer,
            options=options,
        )
        self._acks_topic = PRIVACY_ERASURE_ACKS.name_in(namespace)

    async def apply(self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        await super().apply(
            {tp: records for tp, records in fetched.items() if tp.partition == ANALYTICS_PARTITION}
        )
        for tp, records in fetched.items():
            if tp.partition != ANALYTICS_PARTITION:
                for record in records:
                    self.consumer.done(tp, record.offset)

    async def answer(self, request: ErasureControl) -> None:
        removed = await asyncio.to_thread(erase_user, self.client, request.user_id, self.database)
        ack = ErasureAck(
            erasure_id=request.erasure_id,
            component=ErasureComponent.analytics,
            partition=ANALYTICS_PARTITION,
            removed=removed,
        )
        await self.producer.send_and_wait(
            self._acks_topic, PRIVACY_ERASURE_ACKS.codec.encode(ack), encode_key(str(request.erasure_id))
        )
