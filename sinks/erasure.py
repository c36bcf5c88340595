"""Erasure and the access export in ClickHouse: this process holds the (embedded) engine, so it erases the
user's rows when the erasure job's control record arrives, and acknowledges; and it answers an export's
request with the rows naming the user."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from clickhouse_connect.driver.client import Client

from models.erasure import (
    AnalyticsExportAnswer,
    AnalyticsExportRequest,
    ErasureAck,
    ErasureComponent,
    ErasureControl,
)
from sinks.answering import AnsweringService
from sinks.clickhouse.schema import erase_user, user_rows
from streams.catalog import PRIVACY_ERASURE_ACKS, PRIVACY_ERASURES, PRIVACY_EXPORT_ANSWERS, PRIVACY_EXPORTS
from streams.codec import encode_key
from streams.sealing import DataKeys, open_payload, seal_payload

log = logging.getLogger(__name__)

# The job writes a control record to every partition; ClickHouse is one store, erased once, on this one's.
ANALYTICS_PARTITION = 0


class ErasureService(AnsweringService):
    """Reads `privacy.erasures`; erases on the record of ANALYTICS_PARTITION and passes over the other
    partitions' copies. A redelivered record deletes nothing more and is acknowledged again."""

    def __init__(self, client: Client, database: str, **kwargs: Any) -> None:
        super().__init__(PRIVACY_ERASURES, "erasures", client, database, **kwargs)
        self._acks_topic = PRIVACY_ERASURE_ACKS.name_in(self.namespace)

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


class ExportService(AnsweringService):
    """Reads `privacy.exports` and answers each request on `privacy.export.answers` (a redelivered request is
    answered again; the export keeps the first answer). An answer is sealed under the user's data key
    (`keys`) as its request was."""

    def __init__(self, client: Client, database: str, *, keys: DataKeys, **kwargs: Any) -> None:
        super().__init__(PRIVACY_EXPORTS, "exports", client, database, **kwargs)
        self.keys = keys
        self._answers_topic = PRIVACY_EXPORT_ANSWERS.name_in(self.namespace)

    async def answer(self, request: AnalyticsExportRequest) -> None:
        opened = await open_payload(request, PRIVACY_EXPORTS.sealing, self.keys)
        if opened is None or opened.user_id is None:
            # The user was erased since: their rows are gone and nothing may be sealed under their key again.
            log.info("export %s: its user was erased; not answered", request.export_id)
            return
        rows = await asyncio.to_thread(user_rows, self.client, opened.user_id, self.database)
        answer = AnalyticsExportAnswer(export_id=request.export_id, user_id=opened.user_id, rows=rows)
        # Sealed as the request was: a clear request is about a user without a key, and none is made here.
        sealed = (
            await seal_payload(answer, PRIVACY_EXPORT_ANSWERS.sealing, self.keys)
            if request.sealed is not None
            else answer
        )
        await self.producer.send_and_wait(
            self._answers_topic,
            PRIVACY_EXPORT_ANSWERS.codec.encode(sealed),
            encode_key(str(request.export_id)),
        )
