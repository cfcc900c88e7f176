"""A test function for the stream stand-in: records every event it gets, fails on request.

Per record, the NewImage attribute ``fail`` decides: ``{"S": "raise"}`` makes the invocation fail
(a function error), ``{"S": "report"}`` reports the record in ``batchItemFailures``. Events are
appended as JSON lines to the file named by RECORD_FILE.
"""

import json
import os

RECORD_FILE = os.environ["RECORD_FILE"]


def lambda_handler(event, context):
    with open(RECORD_FILE, "a") as out:
        out.write(json.dumps({"request_id": context.aws_request_id, "event": event}) + "\n")
    failures = []
    for record in event["Records"]:
        fail = (record["dynamodb"].get("NewImage") or {}).get("fail", {}).get("S")
        if fail == "raise":
            raise RuntimeError("poison record " + record["dynamodb"]["SequenceNumber"])
        if fail == "report":
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}
