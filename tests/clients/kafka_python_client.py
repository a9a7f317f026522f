"""kafka-python (pure Python, PyPI) against a broker: `kafka_python_client.py BOOTSTRAP SCENARIO`.

Prints one JSON object per line on stdout (what tests/kafka_clients.rs checks); logs on stderr.
Scenarios (the same in every client's script):
  roundtrip  creates topic "keyed" (3 partitions) through the admin API, produces 1,000 keyed
             messages, consumes them back as group "keyed-group", commits, leaves.
  rebalance  creates topic "churn" (6 partitions); two members of group "churn-group" consume
             while 20,000 messages are produced; a third member joins a third of the way in.
             Every member commits in its revoke callback and at its end (no auto-commit).
"""

import json
import logging
import os
import sys
import threading
import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener

BOOTSTRAP, SCENARIO = sys.argv[1], sys.argv[2]
# The client's own log on stderr (shown when a test fails); CLIENT_LOG=DEBUG for more.
logging.basicConfig(
    stream=sys.stderr,
    level=os.environ.get("CLIENT_LOG", "INFO"),
    format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s",
)
LOCK = threading.Lock()
TOPIC = {"keyed-group": "keyed", "churn-group": "churn"}


def emit(**fields):
    with LOCK:
        print(json.dumps(fields), flush=True)


def create_topic(name, partitions):
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="kafka-python-admin")
    admin.create_topics([NewTopic(name, partitions, 1)])
    admin.close()
    emit(event="created", topic=name, partitions=partitions)


def consumer(group, name="consumer"):
    member = KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id=group,
        client_id=f"kafka-python-{name}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=200,
        max_poll_records=100,
    )
    # Learn the topic's partitions before joining. A kafka-python 3.0.12 leader that first
    # assigns without them rejoins when they arrive (its metadata changed), and if poll() times
    # out while that join is in flight the join's result is never applied: no assignment, no
    # heartbeats, and the coordinator expires the member 6 s later (its SyncGroup was answered,
    # error_code 0). Seen in about 1 run in 10 before this call.
    member.partitions_for_topic(TOPIC[group])
    return member


def roundtrip():
    create_topic("keyed", 3)
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    futures = [
        (n, producer.send("keyed", key=b"key-%d" % (n % 20), value=b"%d" % n)) for n in range(1000)
    ]
    for n, future in futures:
        metadata = future.get(timeout=30)
        emit(event="produced", value=str(n), partition=metadata.partition, offset=metadata.offset)
    producer.close()

    member = consumer("keyed-group")
    member.subscribe(["keyed"])
    received = 0
    deadline = time.time() + 60
    while received < 1000 and time.time() < deadline:
        for records in member.poll(timeout_ms=200).values():
            for record in records:
                received += 1
                emit(
                    event="consumed",
                    key=record.key.decode(),
                    value=record.value.decode(),
                    partition=record.partition,
                    offset=record.offset,
                )
    member.commit()
    emit(event="committed")
    member.close()


class CommitOnRevoke(AsyncConsumerRebalanceListener):
    """kafka-python 3 runs rebalance callbacks on its I/O thread, where the blocking commit()
    is refused: the async listener awaits commit_async() instead, before the member rejoins."""

    def __init__(self, name, member):
        self.name, self.member = name, member

    async def on_partitions_revoked(self, revoked):
        partitions = sorted(tp.partition for tp in revoked)
        try:
            if revoked:
                await self.member.commit_async()
            emit(event="revoked", member=self.name, partitions=partitions, commit="ok")
        except Exception as error:  # reported, and the test fails on it
            emit(event="revoked", member=self.name, partitions=partitions, commit=repr(error))

    async def on_partitions_assigned(self, assigned):
        emit(event="assigned", member=self.name, partitions=sorted(tp.partition for tp in assigned))


def rebalance():
    total = 20_000
    create_topic("churn", 6)
    seen = set()
    assigned = {}
    done = threading.Event()

    def run_member(name):
        member = consumer("churn-group", name)
        member.subscribe(["churn"], listener=CommitOnRevoke(name, member))
        deadline = time.time() + 120
        while not done.is_set() and time.time() < deadline:
            batch = member.poll(timeout_ms=100)
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
                    with LOCK:
                        seen.add(record.value)
                        if len(seen) == total:
                            done.set()
        # The last commit: while another member's leaving rebalances the group it is refused
        # (REBALANCE_IN_PROGRESS once the round completes); poll() finishes the round, then again.
        failures = []
        for _ in range(50):
            try:
                member.commit()
                break
            except Exception as error:
                failures.append(repr(error))
                member.poll(timeout_ms=100)
        emit(event="closed", member=name, commit="ok" if len(failures) < 50 else failures[-1],
             retries=failures)
        member.close()

    threads = [threading.Thread(target=run_member, args=(name,)) for name in ("m1", "m2")]
    for thread in threads:
        thread.start()
    deadline = time.time() + 30
    while not (assigned.get("m1") and assigned.get("m2")) and time.time() < deadline:
        time.sleep(0.05)
    emit(event="members_ready", members=2, ready=bool(assigned.get("m1") and assigned.get("m2")))

    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    # 20,000 messages over about 4 s, so the group consumes while they arrive.
    for n in range(total):
        producer.send("churn", key=b"key-%d" % (n % 100), value=b"%d" % n)
        if n == total // 3:
            third = threading.Thread(target=run_member, args=("m3",))
            third.start()
            threads.append(third)
            emit(event="joining", member="m3", produced=n)
        if n % 500 == 499:
            producer.flush()
            time.sleep(0.1)
    producer.flush()
    producer.close()
    emit(event="produced", count=total)
    for thread in threads:
        thread.join()
    emit(event="done", distinct=len(seen))


{"roundtrip": roundtrip, "rebalance": rebalance}[SCENARIO]()
