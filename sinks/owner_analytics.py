"""The owner console's analytics answered in the sinks process, the one process that holds the (embedded)
ClickHouse: queries from `analytics.queries`, answers on `analytics.answers` under the request id. A query
read twice is answered twice; the asker keeps the first answer and ignores the other."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from models.analytics import OwnerAnalyticsAnswer, OwnerAnalyticsQuery
from sinks.answering import AnsweringService
from sinks.clickhouse.owner_analytics import owner_analytics
from streams.catalog import ANALYTICS_ANSWERS, ANALYTICS_QUERIES

log = logging.getLogger(__name__)


def answer_query(client: Client, database: str, query: OwnerAnalyticsQuery) -> OwnerAnalyticsAnswer:
    try:
        return OwnerAnalyticsAnswer(
            request_id=query.request_id, analytics=owner_analytics(client, database, query)
        )
    except ClickHouseError as exc:
        log.warning("analytics of owner %s failed: %s", query.owner_id, exc)
        return OwnerAnalyticsAnswer(request_id=query.request_id, error="ClickHouse failed to answer")


class OwnerAnalyticsService(AnsweringService):
    """Reads `analytics.queries` in its own group and answers each on `analytics.answers`."""

    def __init__(self, client: Client, database: str, **kwargs: Any) -> None:
        super().__init__(ANALYTICS_QUERIES, "owner-analytics", client, database, **kwargs)
        self._answers_topic = ANALYTICS_ANSWERS.name_in(self.namespace)

    async def answer(self, request: OwnerAnalyticsQuery) -> None:
        answer = await asyncio.to_thread(answer_query, self.client, self.database, request)
        await self.producer.send_and_wait(
            self._answers_topic, ANALYTICS_ANSWERS.codec.encode(answer), request.request_id.encode()
        )
