"""aiokafka (asyncio, PyPI) against a broker: `aiokafka_client.py BOOTSTRAP SCENARIO`.

Prints one JSON object per line on stdout (what tests/kafka_clients.rs checks); logs on stderr.
Scenarios (the same in every client's script):
  roundtrip  creates topic "keyed" (3 partitions) through the admin API, produces 1,000 keyed
             messages, consumes them back as group "keyed-group", commits, leaves.
  rebalance  creates topic "churn" (6 partitions); two members of group "churn-group" consume
             while 20,000 messages are produced; a third member joins a third of the way in.
             Every member commits in its revoke callback and at its end (no auto-commit).
"""

import asyncio
import json
import logging
import os
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOTSTRAP, SCENARIO = sys.argv[1], sys.argv[2]
# The client's own log on stderr (shown when a test fails); CLIENT_LOG=DEBUG for more.
logging.basicConfig(
    stream=sys.stderr,
    level=os.environ.get("CLIENT_LOG", "INFO"),
    format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s",
)


def emit(**fields):
    print(json.dumps(fields), flush=True)


async def create_topic(name, partitions):
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="aiokafka-admin")
    await admin.start()
    await admin.create_topics([NewTopic(name, partitions, 1)])
    await admin.close()
    emit(event="created", topic=name, partitions=partitions)


def consumer(group, name="consumer"):
    return AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id=group,
        client_id=f"aiokafka-{name}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=200,
        max_poll_records=100,
    )


async def roundtrip():
    await create_topic("keyed", 3)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    await producer.start()
    futures = [
        (n, await producer.send("keyed", key=b"key-%d" % (n % 20), value=b"%d" % n))
        for n in range(1000)
    ]
    for n, future in futures:
        metadata = await future
        emit(event="produced", value=str(n), partition=metadata.partition, offset=metadata.offset)
    await producer.stop()

    member = consumer("keyed-group")
    member.subscribe(["keyed"])
    await member.start()
    received = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while received < 1000 and loop.time() < deadline:
        for records in (await member.getmany(timeout_ms=200)).values():
            for record in records:
                received += 1
                emit(
                    event="consumed",
                    key=record.key.decode(),
                    value=record.value.decode(),
                    partition=record.partition,
                    offset=record.offset,
                )
    await member.commit()
    emit(event="committed")
    await member.stop()


class CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, name, member):
        self.name, self.member = name, member

    async def on_partitions_revoked(self, revoked):
        partitions = sorted(tp.partition for tp in revoked)
        try:
            if revoked:
                await self.member.commit()
            emit(event="revoked", member=self.name, partitions=partitions, commit="ok")
        except Exception as error:  # reported, and the test fails on it
            emit(event="revoked", member=self.name, partitions=partitions, commit=repr(error))

    async def on_partitions_assigned(self, assigned):
        emit(event="assigned", member=self.name, partitions=sorted(tp.partition for tp in assigned))


async def rebalance():
    total = 20_000
    await create_topic("churn", 6)
    seen = set()
    assigned = {}
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def run_member(name):
        member = consumer("churn-group", name)
        member.subscribe(["churn"], listener=CommitOnRevoke(name, member))
        await member.start()
        deadline = loop.time() + 120
        while not done.is_set() and loop.time() < deadline:
            batch = await member.getmany(timeout_ms=100)
            assigned[name] = len(member.assignment())
            for records in batch.values():
                for record in records:
                    emit(
                        event="consumed",
                        member=name,
                        value=record.value.decode(),
                        partition=record.partition,
                        offset=record.offset,
                    )
                    seen.add(record.value)
                    if len(seen) == total:
                        done.set()
        # The last commit: while another member's leaving rebalances the group it may be
        # refused (REBALANCE_IN_PROGRESS); the consumer rejoins in the background, then again.
        failures = []
        for _ in range(50):
            try:
                await member.commit()
                break
            except Exception as error:
                failures.append(repr(error))
                await asyncio.sleep(0.1)
        emit(event="closed", member=name, commit="ok" if len(failures) < 50 else failures[-1],
             retries=failures)
        await member.stop()

    members = [asyncio.create_task(run_member(name)) for name in ("m1", "m2")]
    deadline = loop.time() + 30
    while not (assigned.get("m1") and assigned.get("m2")) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    emit(event="members_ready", members=2, ready=bool(assigned.get("m1") and assigned.get("m2")))

    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    await producer.start()
    # 20,000 messages over about 4 s, so the group consumes while they arrive.
    for n in range(total):
        await producer.send("churn", key=b"key-%d" % (n % 100), value=b"%d" % n)
        if n == total // 3:
            members.append(asyncio.create_task(run_member("m3")))
            emit(event="joining", member="m3", produced=n)
        if n % 500 == 499:
            await producer.flush()
            await asyncio.sleep(0.1)
    await producer.flush()
    await producer.stop()
    emit(event="produced", count=total)
    await asyncio.gather(*members)
    emit(event="done", distinct=len(seen))


asyncio.run({"roundtrip": roundtrip, "rebalance": rebalance}[SCENARIO]())
