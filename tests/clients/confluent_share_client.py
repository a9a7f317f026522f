"""A Kafka share consumer (KIP-932) from confluent-kafka (librdkafka's ShareConsumer), driven
by tests/kafka_share_groups.rs against ringmq. It prints one JSON line per record it gets
(topic, partition, offset, value, delivery count when librdkafka gives it) and what it did
with it, so the test can check who got what.

usage: confluent_share_client.py BOOTSTRAP GROUP TOPIC MODE SECONDS [MAX]

MODE: what to do with each record: accept, release-once (release a record the first time it
is seen, accept it after), reject, hold (acknowledge nothing and keep polling: a consumer that
will be killed). Polls until SECONDS pass or MAX records were accepted, then closes.
"""

import json
import sys
import time

from confluent_kafka import AcknowledgeType, ShareConsumer


def main():
    bootstrap, group, topic, mode, seconds = sys.argv[1:6]
    wanted = int(sys.argv[6]) if len(sys.argv) > 6 else None
    consumer = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
            "client.id": "share-" + mode,
            # A few records per fetch, so that several consumers of one partition each get some.
            "max.poll.records": 5,
        }
    )
    consumer.subscribe([topic])
    print(json.dumps({"event": "subscribed"}), flush=True)
    deadline = time.time() + float(seconds)
    accepted = 0
    seen = set()
    while time.time() < deadline and (wanted is None or accepted < wanted):
        messages = consumer.poll(0.5)
        for message in messages:
            if message.error():
                print(json.dumps({"event": "error", "error": str(message.error())}), flush=True)
                continue
            key = (message.partition(), message.offset())
            if mode == "accept":
                action = "accept"
            elif mode == "release-once":
                action = "accept" if key in seen else "release"
            elif mode == "reject":
                action = "reject"
            else:
                action = "hold"
            seen.add(key)
            count = None
            if hasattr(message, "delivery_count"):
                try:
                    count = message.delivery_count()
                except Exception:  # noqa: BLE001 - an older binding without it
                    count = None
            print(
                json.dumps(
                    {
                        "event": "record",
                        "partition": message.partition(),
                        "offset": message.offset(),
                        "value": message.value().decode(),
                        "delivery_count": count,
                        "action": action,
                        "time": time.time(),
                    }
                ),
                flush=True,
            )
            if action == "accept":
                # Work takes a moment: the others fetch meanwhile.
                time.sleep(0.05)
                consumer.acknowledge(message, AcknowledgeType.ACCEPT)
                accepted += 1
            elif action == "release":
                consumer.acknowledge(message, AcknowledgeType.RELEASE)
            elif action == "reject":
                consumer.acknowledge(message, AcknowledgeType.REJECT)
        if mode != "hold" and messages:
            consumer.commit_sync()
    if mode != "hold":
        consumer.commit_sync()
    consumer.close()
    print(json.dumps({"event": "closed", "accepted": accepted}), flush=True)


if __name__ == "__main__":
    main()
