"""A skeleton member in a process of its own, for the kill test.

`python -m tests.streams.consumer_process NAMESPACE GROUP KILL_AFTER`: consumes discord.actions, finishes
each fetched batch's records in reverse order (out of order on purpose), prints each finished offset, commits
every 50 ms, and kills its own process (SIGKILL) once KILL_AFTER records are finished: work fetched but not
finished, and finished but not committed, is left behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from settings import load_settings
from streams.catalog import DISCORD_ACTIONS
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService, Fetch


class FinishingInReverse(ConsumerService):
    def __init__(self, kill_after: int, namespace: str, producer: AIOKafkaProducer, group: str) -> None:
        self.kill_after = kill_after
        self.finished = 0
        self.consumer = AtLeastOnceConsumer(
            self,
            [DISCORD_ACTIONS],
            namespace=namespace,
            bootstrap=load_settings().kafka_bootstrap,
            producer=producer,
            options=ConsumerOptions(
                group_id=group,
                client_id="doomed",
                consumer_name="skeleton-test",
                fetch=Fetch(timeout_s=0.05, max_records=10),
                commit_interval_s=0.05,
                session_timeout_ms=6000,
                heartbeat_interval_ms=1000,
            ),
        )

    async def apply(self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in fetched.items():
            for record in reversed(records):
                if self.finished == self.kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                self.consumer.done(tp, record.offset)
                print(record.offset, flush=True)
                self.finished += 1


async def main(namespace: str, group: str, kill_after: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=load_settings().kafka_bootstrap)
    await producer.start()
    service = FinishingInReverse(kill_after, namespace, producer, group)
    await service.consumer.start()
    await service.consumer.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
