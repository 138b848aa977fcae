"""Conditional reads and writes of one object on an S3-compatible store (botocore), for LakeStorage.

pyarrow's filesystem layer reads and writes the lake's files but cannot make a write conditional; these two calls
can: `If-None-Match: *` (only if the key does not exist) and `If-Match: <ETag>` (only if it is still that version),
each decided by the store in one step. botocore reads the same standard variables as pyarrow (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
"""

from __future__ import annotations

_CLIENTS: dict[str, object] = {}  # one client per process (creating one costs ~50 ms)
_PRECONDITION_FAILED = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


def read_versioned(path: str) -> tuple[bytes | None, str | None]:
    """The object at `bucket/key` and its ETag; (None, None) when it does not exist."""
    bucket, _, key = path.partition("/")
    client = _client()
    try:
        answer = client.get_object(Bucket=bucket, Key=key)
    except client.exceptions.NoSuchKey:
        return None, None
    return answer["Body"].read(), answer["ETag"]


def read(path: str) -> bytes:
    """The object at `bucket/key` in one GET. (pyarrow's input stream asks for the size first and then reads that
    many bytes: an object rewritten in between, such as a partition state, would come back cut short.)"""
    data = read_versioned(path)[0]
    if data is None:
        raise FileNotFoundError(path)
    return data


def write_if(path: str, data: bytes, version: str | None) -> str | None:
    """PUT `bucket/key` only if its ETag is still `version` (None: only if absent); the new ETag, or None."""
    bucket, _, key = path.partition("/")
    client = _client()
    condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
    try:
        return client.put_object(Bucket=bucket, Key=key, Body=data, **condition)["ETag"]
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _PRECONDITION_FAILED:
            return None
        raise


def _client():
    if "s3" not in _CLIENTS:
        import botocore.session  # here, not at the top: a lake on a local disk never pays its ~0.4 s import

        _CLIENTS["s3"] = botocore.session.get_session().create_client("s3")
    return _CLIENTS["s3"]
