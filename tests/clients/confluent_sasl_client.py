"""confluent-kafka (librdkafka with OpenSSL and SASL) authenticating against a broker:
`confluent_sasl_client.py BOOTSTRAP MECHANISM USER PASSWORD TOPIC [CA_FILE]`.

Produces 20 values to TOPIC and reads them back as a group; prints "ok" when it read exactly
what it wrote. With CA_FILE, connects with SASL_SSL and checks the broker's certificate against
it; without, SASL_PLAINTEXT. Exits non-zero with the client's error on stderr otherwise.
"""

import sys

from confluent_kafka import Consumer, KafkaException, Producer

bootstrap, mechanism, user, password, topic = sys.argv[1:6]
ca_file = sys.argv[6] if len(sys.argv) > 6 else None
common = {
    "bootstrap.servers": bootstrap,
    "security.protocol": "SASL_SSL" if ca_file else "SASL_PLAINTEXT",
    "sasl.mechanism": mechanism,
    "sasl.username": user,
    "sasl.password": password,
}
if ca_file:
    common["ssl.ca.location"] = ca_file
errors = []


def on_error(error):
    errors.append(error)
    # A refused authentication or TLS handshake is final: librdkafka would otherwise retry
    # until its timeout.
    if "uthentication" in str(error) or "SSL handshake failed" in str(error):
        raise KafkaException(error)


producer = Producer({**common, "acks": "all", "message.timeout.ms": 15000, "error_cb": on_error})
delivered = []
for n in range(20):
    producer.produce(topic, value=b"v%d" % n, partition=0,
                     on_delivery=lambda err, msg: delivered.append(err))
producer.flush(20)
if len(delivered) != 20 or any(delivered):
    sys.exit(f"delivered {delivered}; errors {errors}")
consumer = Consumer({**common, "group.id": "confluent-" + topic, "auto.offset.reset": "earliest",
                     "error_cb": on_error})
consumer.subscribe([topic])
values = []
for _ in range(200):
    message = consumer.poll(0.1)
    if message is None:
        continue
    if message.error():
        sys.exit(str(message.error()))
    values.append(message.value())
    if len(values) == 20:
        break
consumer.close()
if values != [b"v%d" % n for n in range(20)]:
    sys.exit(f"read {values}")
print("ok")
