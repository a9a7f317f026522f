"""boto3 (AWS's own SDK: its JSON-protocol client, its SigV4 signer, its MD5 checks) against
ringmq's SQS door. Usage: sqs_client.py ENDPOINT SCENARIO [ACCESS_KEY SECRET]. Each scenario
prints one JSON object of what it saw; tests/sqs.rs checks it. botocore verifies every
MD5OfMessageBody / MD5OfMessageAttributes it is sent and raises if one is wrong, so a scenario
that finishes has had all of them checked."""

import hashlib
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import boto3
import botocore.exceptions
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ENDPOINT, SCENARIO = sys.argv[1], sys.argv[2]
KEY, SECRET = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else ("AKIDTEST", "secret")
sqs = boto3.client(
    "sqs",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id=KEY,
    aws_secret_access_key=SECRET,
    config=Config(retries={"max_attempts": 1}, read_timeout=60),
)
out = {}


def code(call):
    """The error code a call fails with (None if it succeeds)."""
    try:
        call()
    except botocore.exceptions.ClientError as error:
        return error.response["Error"]["Code"]
    return None


def receive(url, **kwargs):
    return sqs.receive_message(QueueUrl=url, **kwargs).get("Messages", [])


def lifecycle():
    urls = [sqs.create_queue(QueueName=f"life-{i}")["QueueUrl"] for i in range(3)]
    url = urls[0]
    out["url"] = url
    out["again"] = sqs.create_queue(QueueName="life-0")["QueueUrl"]
    out["conflict"] = code(lambda: sqs.create_queue(QueueName="life-0", Attributes={"DelaySeconds": "5"}))
    out["get_url"] = sqs.get_queue_url(QueueName="life-1")["QueueUrl"]
    page = sqs.list_queues(QueueNamePrefix="life-", MaxResults=2)
    rest = sqs.list_queues(QueueNamePrefix="life-", MaxResults=2, NextToken=page["NextToken"])
    out["pages"] = [page["QueueUrls"], rest["QueueUrls"], "NextToken" in rest]
    attributes = {
        "color": {"DataType": "String", "StringValue": "rød"},
        "count": {"DataType": "Number", "StringValue": "42"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xffbytes"},
        "kind.custom": {"DataType": "String.custom", "StringValue": "x"},
    }
    sent = []
    for i in range(5):
        body = f"message {i} <&> \"quoted\" ✓"
        sent.append(sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)["MessageId"])
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    out["available_before"] = counts["Attributes"]["ApproximateNumberOfMessages"]
    got = []
    while len(got) < 5:
        batch = receive(url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"], WaitTimeSeconds=1)
        if not batch:
            break
        got.extend(batch)
    out["received"] = sorted(m["Body"] for m in got)
    out["ids_match"] = sorted(m["MessageId"] for m in got) == sorted(sent)
    out["attributes"] = got[0]["MessageAttributes"]["count"]["StringValue"], got[0]["MessageAttributes"]["blob"]["BinaryValue"].hex()
    only = receive(url) or []
    out["nothing_left_visible"] = len(only)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    out["not_visible"] = attrs["ApproximateNumberOfMessagesNotVisible"]
    out["arn"] = attrs["QueueArn"]
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    out["deleted"] = len(deleted.get("Successful", []))
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    out["after_delete"] = [attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]]
    sqs.send_message(QueueUrl=url, MessageBody="to purge")
    sqs.purge_queue(QueueUrl=url)
    out["after_purge"] = len(receive(url, WaitTimeSeconds=1))
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "7", "ReceiveMessageWaitTimeSeconds": "2"})
    sqs.tag_queue(QueueUrl=url, Tags={"team": "a", "env": "test"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["env"])
    out["tags"] = sqs.list_queue_tags(QueueUrl=url).get("Tags")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout", "ReceiveMessageWaitTimeSeconds"])
    out["set"] = attrs["Attributes"]
    out["bad_attribute"] = code(lambda: sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99999"}))
    sqs.delete_queue(QueueUrl=url)
    out["gone"] = code(lambda: sqs.get_queue_url(QueueName="life-0"))
    out["send_to_gone"] = code(lambda: sqs.send_message(QueueUrl=url, MessageBody="x"))


def long_poll():
    url = sqs.create_queue(QueueName="poll")["QueueUrl"]
    started = time.monotonic()
    out["empty"] = len(receive(url, WaitTimeSeconds=1))
    out["empty_waited"] = time.monotonic() - started
    timer = threading.Timer(1.0, lambda: sqs.send_message(QueueUrl=url, MessageBody="late"))
    started = time.monotonic()
    timer.start()
    got = receive(url, WaitTimeSeconds=10)
    out["woken_after"] = time.monotonic() - started
    out["body"] = [m["Body"] for m in got]
    timer.join()


def visibility():
    url = sqs.create_queue(QueueName="vis", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="again")
    first = receive(url, AttributeNames=["ApproximateReceiveCount"])
    out["hidden"] = len(receive(url))
    time.sleep(1.5)
    second = receive(url, AttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=2)
    out["counts"] = [first[0]["Attributes"]["ApproximateReceiveCount"], second[0]["Attributes"]["ApproximateReceiveCount"]]
    out["same_id"] = first[0]["MessageId"] == second[0]["MessageId"]
    out["stale_delete"] = code(lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"]))
    out["garbage_delete"] = code(lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle"))
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=second[0]["ReceiptHandle"], VisibilityTimeout=3)
    time.sleep(1.5)
    out["extended_hidden"] = len(receive(url))
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=second[0]["ReceiptHandle"], VisibilityTimeout=0)
    third = receive(url, AttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=2)
    out["released_count"] = third[0]["Attributes"]["ApproximateReceiveCount"]
    batch = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "good", "ReceiptHandle": third[0]["ReceiptHandle"], "VisibilityTimeout": 30},
        {"Id": "stale", "ReceiptHandle": first[0]["ReceiptHandle"], "VisibilityTimeout": 30},
    ])
    out["batch_visibility"] = [[e["Id"] for e in batch["Successful"]], [(e["Id"], e["Code"]) for e in batch["Failed"]]]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=third[0]["ReceiptHandle"])


def dead_letters():
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"})
    src = sqs.create_queue(QueueName="src", Attributes={"VisibilityTimeout": "1", "RedrivePolicy": policy})["QueueUrl"]
    later = sqs.create_queue(QueueName="later", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=later, Attributes={"RedrivePolicy": policy})
    for url in (src, later):
        sqs.send_message(QueueUrl=url, MessageBody=f"poison from {url.rsplit('/', 1)[1]}",
                         MessageAttributes={"a": {"DataType": "String", "StringValue": "kept"}})
    counts = []
    for _ in range(2):
        for url in (src, later):
            got = receive(url, AttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=3)
            counts.append(got[0]["Attributes"]["ApproximateReceiveCount"] if got else None)
        time.sleep(1.2)
    out["counts"] = counts
    dead = []
    deadline = time.monotonic() + 10
    while len(dead) < 2 and time.monotonic() < deadline:
        dead.extend(receive(dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]))
    out["dead"] = sorted(m["Body"] for m in dead)
    out["dead_attribute"] = sorted(m.get("MessageAttributes", {}).get("a", {}).get("StringValue", "") for m in dead)
    out["source_empty"] = len(receive(src, WaitTimeSeconds=1))
    out["sources"] = sorted(sqs.list_dead_letter_source_queues(QueueUrl=dlq).get("queueUrls", []))
    out["urls"] = [src, later]
    for m in dead:
        sqs.change_message_visibility(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    task = sqs.start_message_move_task(SourceArn=arn)
    out["task"] = bool(task.get("TaskHandle"))
    back = []
    deadline = time.monotonic() + 15
    while len(back) < 2 and time.monotonic() < deadline:
        for url in (src, later):
            back.extend(m["Body"] for m in receive(url, WaitTimeSeconds=1))
    out["back"] = sorted(back)
    deadline = time.monotonic() + 10
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=arn, MaxResults=10)["Results"]
        if tasks[0]["Status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out["tasks"] = [(t["Status"], t.get("ApproximateNumberOfMessagesMoved")) for t in tasks]


def delays():
    url = sqs.create_queue(QueueName="delays")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=2)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    out["first"] = [m["Body"] for m in receive(url, MaxNumberOfMessages=10, WaitTimeSeconds=1)]
    out["delayed"] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]["ApproximateNumberOfMessagesDelayed"]
    started = time.monotonic()
    got = receive(url, WaitTimeSeconds=5)
    out["second"] = [m["Body"] for m in got]
    out["waited"] = time.monotonic() - started
    slow = sqs.create_queue(QueueName="slow", Attributes={"DelaySeconds": "2"})["QueueUrl"]
    sqs.send_message(QueueUrl=slow, MessageBody="queue delay")
    out["queue_delay_hidden"] = len(receive(slow))
    out["queue_delay_later"] = [m["Body"] for m in receive(slow, WaitTimeSeconds=5)]
    out["too_long"] = code(lambda: sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=901))


def fifo():
    url = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    out["not_fifo_name"] = code(lambda: sqs.create_queue(QueueName="plain", Attributes={"FifoQueue": "true"}))
    sequence = []
    for i in range(4):
        for group in ("g1", "g2"):
            r = sqs.send_message(QueueUrl=url, MessageBody=f"{group}-{i}", MessageGroupId=group)
            sequence.append(int(r["SequenceNumber"]))
    out["sequence_increases"] = sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
    out["no_group"] = code(lambda: sqs.send_message(QueueUrl=url, MessageBody="x"))
    seen = {"g1": [], "g2": []}
    rounds = 0
    while sum(len(v) for v in seen.values()) < 8 and rounds < 30:
        rounds += 1
        got = receive(url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1)
        for m in got:
            seen[m["Attributes"]["MessageGroupId"]].append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    out["order"] = seen
    if len(sys.argv) > 5 and sys.argv[5] == "dedup":
        first = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g3")
        again = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g3")
        explicit = sqs.send_message(QueueUrl=url, MessageBody="other", MessageGroupId="g3", MessageDeduplicationId="d1")
        explicit_again = sqs.send_message(QueueUrl=url, MessageBody="other body", MessageGroupId="g3", MessageDeduplicationId="d1")
        out["dedup_ids"] = [first["MessageId"] == again["MessageId"], explicit["MessageId"] == explicit_again["MessageId"]]
        got = []
        for _ in range(6):
            for m in receive(url, MaxNumberOfMessages=10, WaitTimeSeconds=1):
                got.append(m["Body"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        out["dedup_bodies"] = got


def batches():
    url = sqs.create_queue(QueueName="batches")["QueueUrl"]
    out["not_distinct"] = code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "1"}, {"Id": "a", "MessageBody": "2"}]))
    out["too_many"] = code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(11)]))
    out["empty"] = code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=[]))
    out["bad_id"] = code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "no spaces", "MessageBody": "x"}]))
    result = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "ok1", "MessageBody": "first", "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}},
        {"Id": "badchar", "MessageBody": "nul \u0000 here"},
        {"Id": "ok2", "MessageBody": "second", "DelaySeconds": 0},
        {"Id": "baddelay", "MessageBody": "x", "DelaySeconds": 1000},
    ])
    out["sent"] = sorted(e["Id"] for e in result["Successful"])
    out["failed"] = sorted((e["Id"], e["Code"], e["SenderFault"]) for e in result["Failed"])
    got = receive(url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"])
    out["bodies"] = sorted(m["Body"] for m in got)
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": f"m{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)] + [{"Id": "bogus", "ReceiptHandle": "AAAA"}])
    out["deleted"] = sorted(e["Id"] for e in deleted["Successful"])
    out["delete_failed"] = [(e["Id"], e["Code"]) for e in deleted["Failed"]]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "x", "MessageBody": "third"}, {"Id": "y", "MessageBody": "fourth"}])
    got = []
    while len(got) < 2:
        got.extend(receive(url, MaxNumberOfMessages=10, WaitTimeSeconds=1))
    handles = [m["ReceiptHandle"] for m in got]
    twice = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": handles[0]},
        {"Id": "again", "ReceiptHandle": handles[0]},
        {"Id": "b", "ReceiptHandle": handles[-1]},
    ])
    out["twice"] = [sorted(e["Id"] for e in twice["Successful"]), [(e["Id"], e["Code"]) for e in twice["Failed"]]]
    out["left"] = len(receive(url, WaitTimeSeconds=1))


def signed_query(params, key=KEY, secret=SECRET, path="/", service="sqs", region="us-east-1"):
    """A query-protocol request signed by botocore's SigV4 signer: (status, XML root)."""
    body = urllib.parse.urlencode(params)
    request = AWSRequest(method="POST", url=ENDPOINT + path, data=body.encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    prepared = urllib.request.Request(ENDPOINT + path, data=body.encode(), method="POST", headers=dict(request.headers))
    try:
        with urllib.request.urlopen(prepared) as answer:
            return answer.status, ET.fromstring(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, ET.fromstring(error.read())


def text(root, name):
    found = [e.text for e in root.iter() if e.tag.split("}")[-1] == name]
    return found


def query():
    status, root = signed_query({"Action": "CreateQueue", "QueueName": "xmlq", "Attribute.1.Name": "VisibilityTimeout", "Attribute.1.Value": "5", "Version": "2012-11-05"})
    url = text(root, "QueueUrl")[0]
    out["create"] = [status, url]
    body = "query <body> & more"
    status, root = signed_query({"Action": "SendMessage", "QueueUrl": url, "MessageBody": body,
                                 "MessageAttribute.1.Name": "color", "MessageAttribute.1.Value.DataType": "String",
                                 "MessageAttribute.1.Value.StringValue": "blue"})
    out["send_md5"] = text(root, "MD5OfMessageBody")[0] == hashlib.md5(body.encode()).hexdigest()
    sent_attributes_md5 = text(root, "MD5OfMessageAttributes")[0]
    status, root = signed_query({"Action": "ReceiveMessage", "QueueUrl": url, "AttributeName.1": "All", "MessageAttributeName.1": "All"})
    out["receive"] = [status, text(root, "Body"), text(root, "StringValue")]
    out["receive_md5"] = text(root, "MD5OfBody")[0] == hashlib.md5(body.encode()).hexdigest()
    out["attributes_md5"] = text(root, "MD5OfMessageAttributes")[0] == sent_attributes_md5
    names = text(root, "Name")
    out["system_attributes"] = "ApproximateReceiveCount" in names and "SentTimestamp" in names
    status, root = signed_query({"Action": "GetQueueAttributes", "AttributeName.1": "VisibilityTimeout"}, path="/000000000000/xmlq")
    out["by_path"] = [status, text(root, "Value")]
    status, root = signed_query({"Action": "GetQueueUrl", "QueueName": "missing"})
    out["error"] = [status, text(root, "Code"), text(root, "Type")]
    status, root = signed_query({"Action": "ListQueues"})
    out["list"] = text(root, "QueueUrl")
    status, root = signed_query({"Action": "NoSuchAction"})
    out["unknown_action"] = [status, text(root, "Code")]


def signatures():
    out["right"] = sqs.create_queue(QueueName="signed")["QueueUrl"].endswith("/signed")
    wrong = boto3.client("sqs", endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id=KEY,
                         aws_secret_access_key="wrong", config=Config(retries={"max_attempts": 1}))
    out["wrong_secret"] = code(lambda: wrong.list_queues())
    unknown = boto3.client("sqs", endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id="AKIDUNKNOWN",
                           aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))
    out["unknown_key"] = code(lambda: unknown.list_queues())
    bob = boto3.client("sqs", endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id="AKIDBOB",
                       aws_secret_access_key="bob-secret", config=Config(retries={"max_attempts": 1}))
    out["bob_create"] = code(lambda: bob.create_queue(QueueName="bobs"))
    out["bob_send"] = code(lambda: bob.send_message(QueueUrl=ENDPOINT + "/000000000000/signed", MessageBody="x"))
    out["bob_lists"] = bob.list_queues().get("QueueUrls", [])
    status, root = signed_query({"Action": "ListQueues"}, secret="wrong")
    out["query_wrong"] = [status, text(root, "Code")]
    status, root = signed_query({"Action": "ListQueues"})
    out["query_right"] = status
    # Signatures right for another service or region are refused as AWS does.
    status, root = signed_query({"Action": "ListQueues"}, service="sns")
    out["other_service"] = [status, text(root, "Code"), text(root, "Message")]
    status, root = signed_query({"Action": "ListQueues"}, region="eu-west-1")
    out["other_region"] = [status, text(root, "Code"), text(root, "Message")]
    elsewhere = boto3.client("sqs", endpoint_url=ENDPOINT, region_name="eu-west-1", aws_access_key_id=KEY,
                             aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))
    out["other_region_boto3"] = code(lambda: elsewhere.list_queues())
    unsigned = urllib.request.Request(ENDPOINT + "/", data=b"Action=ListQueues", method="POST",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        urllib.request.urlopen(unsigned)
        out["unsigned"] = 200
    except urllib.error.HTTPError as error:
        out["unsigned"] = [error.code, text(ET.fromstring(error.read()), "Code")]


def md5_of_attributes(attributes):
    """AWS's documented encoding, computed here independently of the broker: per attribute
    sorted by name, 4-byte big-endian length and bytes of the name, of the data type, a transport
    byte (1 String/Number, 2 Binary), then length and bytes of the value."""
    encoded = b""
    for name in sorted(attributes):
        attribute = attributes[name]
        kind = attribute["DataType"]
        binary = kind.startswith("Binary")
        value = attribute["BinaryValue"] if binary else attribute["StringValue"].encode()
        for part in (name.encode(), kind.encode()):
            encoded += len(part).to_bytes(4, "big") + part
        encoded += (b"\x02" if binary else b"\x01") + len(value).to_bytes(4, "big") + value
    return hashlib.md5(encoded).hexdigest()


def md5s():
    url = sqs.create_queue(QueueName="md5s")["QueueUrl"]
    body = "caf\u00e9 \U0001F600 <&>"
    attributes = {
        "zeta": {"DataType": "String", "StringValue": "last \u00e9"},
        "alpha": {"DataType": "Number", "StringValue": "12.50"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
        "custom": {"DataType": "String.custom-type", "StringValue": "v"},
    }
    expected = [hashlib.md5(body.encode()).hexdigest(), md5_of_attributes(attributes)]
    sent = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
    got = receive(url, MessageAttributeNames=["All"], WaitTimeSeconds=2)
    out["expected"] = expected
    out["sent"] = [sent["MD5OfMessageBody"], sent["MD5OfMessageAttributes"]]
    out["received"] = [[m["MD5OfBody"], m["MD5OfMessageAttributes"]] for m in got]


def senders():
    """alice sends, carol receives: SenderId names alice."""
    url = sqs.create_queue(QueueName="senders")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="from alice")
    carol = boto3.client("sqs", endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id="AKIDCAROL",
                         aws_secret_access_key="carol-secret", config=Config(retries={"max_attempts": 1}))
    got = carol.receive_message(QueueUrl=url, AttributeNames=["SenderId"], WaitTimeSeconds=2).get("Messages", [])
    out["senders"] = [m["Attributes"]["SenderId"] for m in got]


def arn_of(url):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def available(url):
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])


def tasks_of(arn):
    return sqs.list_message_move_tasks(SourceArn=arn, MaxResults=10)["Results"]


def move_cancel():
    """A slow move task records its progress while it runs, and is cancelled midway."""
    src, dst = (sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("mv-src", "mv-dst"))
    src_arn = arn_of(src)
    for batch in range(3):
        sqs.send_message_batch(QueueUrl=src, Entries=[{"Id": str(i), "MessageBody": f"m{batch}-{i}"} for i in range(10)])
    handle = sqs.start_message_move_task(SourceArn=src_arn, DestinationArn=arn_of(dst),
                                         MaxNumberOfMessagesPerSecond=1)["TaskHandle"]
    time.sleep(3.5)
    running = tasks_of(src_arn)[0]
    out["running"] = [running["Status"], running["ApproximateNumberOfMessagesMoved"]]
    out["cancel_moved"] = sqs.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"]
    deadline = time.monotonic() + 10
    while tasks_of(src_arn)[0]["Status"] != "CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.1)
    final = tasks_of(src_arn)[0]
    out["final"] = [final["Status"], final["ApproximateNumberOfMessagesMoved"], "TaskHandle" in final]
    out["cancel_again"] = code(lambda: sqs.cancel_message_move_task(TaskHandle=handle))
    out["bogus"] = code(lambda: sqs.cancel_message_move_task(TaskHandle="bm90IGEgaGFuZGxl"))
    out["counts"] = [available(dst), available(src)]
    # A queue's move tasks go with it: a new queue of its name has none.
    sqs.delete_queue(QueueUrl=src)
    src = sqs.create_queue(QueueName="mv-src")["QueueUrl"]
    out["after_delete"] = tasks_of(arn_of(src))


def move_stale_before():
    """A RUNNING task record as a crashed broker leaves it (its runner an earlier run of shard
    0), written through the Kafka door (argv[5]) into the store's topic."""
    from kafka import KafkaProducer
    src = sqs.create_queue(QueueName="stale-src")["QueueUrl"]
    src_arn = arn_of(src)
    record = {"TaskHandle": "c3RhbGU=", "Status": "RUNNING", "SourceArn": src_arn,
              "MaxNumberOfMessagesPerSecond": 10, "ApproximateNumberOfMessagesMoved": 7,
              "ApproximateNumberOfMessagesToMove": 20, "StartedTimestamp": 1, "_runner": "0:0000000000000000"}
    producer = KafkaProducer(bootstrap_servers=sys.argv[5])
    producer.send("__sqs_queues", key=b"task:stale-src:00000000000000000001:00000000deadbeef",
                  value=json.dumps(record).encode()).get(timeout=10)
    producer.close()
    out["written"] = True


def move_stale_after():
    src_arn = arn_of(sqs.get_queue_url(QueueName="stale-src")["QueueUrl"])
    deadline = time.monotonic() + 10
    while tasks_of(src_arn)[0]["Status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    task = tasks_of(src_arn)[0]
    out["after"] = [task["Status"], task["ApproximateNumberOfMessagesMoved"], task.get("FailureReason", ""),
                    sorted(name for name in task if name.startswith("_"))]


def store_bounds():
    """Records for queues that do not exist (written through the Kafka door, argv[5]) take no
    room in the store; queues do, up to the test's sqs.store_keys_max (20)."""
    from kafka import KafkaProducer
    for i in range(5):
        sqs.create_queue(QueueName=f"real-{i}")
    producer = KafkaProducer(bootstrap_servers=sys.argv[5])
    meta = json.dumps({"attributes": {}, "tags": {}, "created_s": 1, "modified_s": 1}).encode()
    task = json.dumps({"Status": "RUNNING", "_runner": "0:0000000000000000"}).encode()
    for i in range(30):
        producer.send("__sqs_queues", key=f"ghost-{i}".encode(), value=meta)
        producer.send("__sqs_queues", key=f"task:ghost-{i}:00000000000000000001:{i:016x}".encode(), value=task)
    producer.flush(timeout=10)
    producer.close()
    created, refused = 0, None
    for i in range(30):
        refused = code(lambda: sqs.create_queue(QueueName=f"more-{i}"))
        if refused:
            break
        created += 1
    out["created"] = created
    out["refused"] = refused
    out["again"] = code(lambda: sqs.create_queue(QueueName="real-0"))
    out["listed"] = len(sqs.list_queues(QueueNamePrefix="ghost").get("QueueUrls", []))


def durable_before():
    dlq = sqs.create_queue(QueueName="kept-dlq")["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:kept-dlq", "maxReceiveCount": 4})
    url = sqs.create_queue(QueueName="kept", Attributes={"VisibilityTimeout": "17", "DelaySeconds": "0"},
                           tags={"owner": "me"})["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": policy, "ReceiveMessageWaitTimeSeconds": "3"})
    sqs.send_message(QueueUrl=url, MessageBody="survives", MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}})
    out["url"] = url
    out["dlq"] = dlq


def durable_after():
    url = sqs.get_queue_url(QueueName="kept")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    out["attributes"] = [attrs["VisibilityTimeout"], attrs["ReceiveMessageWaitTimeSeconds"], json.loads(attrs["RedrivePolicy"])["maxReceiveCount"]]
    out["tags"] = sqs.list_queue_tags(QueueUrl=url).get("Tags")
    got = receive(url, MessageAttributeNames=["All"], WaitTimeSeconds=2)
    out["message"] = [(m["Body"], m["MessageAttributes"]["k"]["StringValue"]) for m in got]
    out["sources"] = [u.rsplit("/", 1)[1] for u in sqs.list_dead_letter_source_queues(QueueUrl=sqs.get_queue_url(QueueName="kept-dlq")["QueueUrl"]).get("queueUrls", [])]


def tls():
    """Over HTTPS (the test sets AWS_CA_BUNDLE to its own authority)."""
    url = sqs.create_queue(QueueName="secure")["QueueUrl"]
    out["scheme"] = url.split(":", 1)[0]
    sqs.send_message(QueueUrl=url, MessageBody="sealed")
    got = receive(url, WaitTimeSeconds=2)
    out["bodies"] = [m["Body"] for m in got]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])


{
    "tls": tls,
    "lifecycle": lifecycle,
    "long_poll": long_poll,
    "visibility": visibility,
    "dead_letters": dead_letters,
    "delays": delays,
    "fifo": fifo,
    "batches": batches,
    "query": query,
    "signatures": signatures,
    "md5s": md5s,
    "store_bounds": store_bounds,
    "move_cancel": move_cancel,
    "move_stale_before": move_stale_before,
    "move_stale_after": move_stale_after,
    "senders": senders,
    "durable_before": durable_before,
    "durable_after": durable_after,
}[SCENARIO]()
print(json.dumps(out))
