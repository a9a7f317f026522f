"""boto3 over HTTPS with a client certificate (botocore's `client_cert`) against ringmq's SQS
door with mutual TLS. Usage: sqs_mtls_client.py ENDPOINT CA CERT KEY QUEUE [ACCESS_KEY SECRET].
CERT and KEY `-`: no client certificate. Without ACCESS_KEY the requests are unsigned
(botocore.UNSIGNED), so the certificate alone names the principal. Makes QUEUE, sends one
message and receives it; prints one JSON object of what it saw: the outcome (ok, refused with
the SQS error code and HTTP status, or a connection that failed before any answer) and, when ok,
the bodies received and their SenderId (the principal the door saw). tests/sqs_mtls.rs checks
it."""

import json
import sys

import boto3
import botocore
import botocore.exceptions
from botocore.config import Config

ENDPOINT, CA, CERT, KEY, QUEUE = sys.argv[1:6]
signing = {}
if len(sys.argv) > 7:
    signing = {"aws_access_key_id": sys.argv[6], "aws_secret_access_key": sys.argv[7]}
config = {"retries": {"max_attempts": 1}, "connect_timeout": 10, "read_timeout": 30}
if CERT != "-":
    config["client_cert"] = (CERT, KEY)
if not signing:
    config["signature_version"] = botocore.UNSIGNED
sqs = boto3.client(
    "sqs",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    verify=CA,
    config=Config(**config),
    **signing,
)
try:
    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=f"certified {QUEUE}")
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=5, MessageSystemAttributeNames=["SenderId"]
    ).get("Messages", [])
    out = {
        "outcome": "ok",
        "bodies": [message["Body"] for message in messages],
        "senders": [message["Attributes"]["SenderId"] for message in messages],
    }
except botocore.exceptions.ClientError as error:
    out = {
        "outcome": "refused",
        "code": error.response["Error"]["Code"],
        "message": error.response["Error"].get("Message", ""),
        "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
    }
except (botocore.exceptions.SSLError, botocore.exceptions.ConnectionError) as error:
    out = {"outcome": "no_connection", "error": str(error)}
print(json.dumps(out))
