"""Dead letters: a failed message, the stage that failed, the error and the original payload.

Every stage failure becomes one :class:`schemas.DeadLetter` on the ``deadletter`` topic, so the
stream keeps going and nothing is lost: the payload is kept byte-exact (UTF-8 text as is,
anything else base64). One exception: a letter that would not fit in one Kafka message
(``settings.max_message_bytes``, JSON escaping and base64 counted) keeps the longest prefix of
the payload that fits, with ``payload_truncated``, the original ``payload_size`` and its
``payload_sha256`` (:func:`dead_letter` does it, for ingest and the worker alike), so a huge
message never takes down the stage that rejects it.
"""

from __future__ import annotations

import base64
import hashlib
import json

from schemas import DeadLetter


def encode_payload(payload: bytes | str | None) -> tuple[str, str]:
    """The payload as (text, encoding): UTF-8 text when it decodes, else base64."""
    if payload is None:
        return "", "utf-8"
    if isinstance(payload, str):
        return payload, "utf-8"
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode("ascii"), "base64"


def decode_payload(letter: DeadLetter) -> bytes:
    """The original payload bytes of a dead letter (to replay it)."""
    if letter.payload_encoding == "base64":
        return base64.b64decode(letter.payload)
    return letter.payload.encode("utf-8")


def dead_letter(
    stage: str,
    error: BaseException | str,
    payload: bytes | str | None,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | str | None = None,
    max_bytes: int | None = None,
) -> DeadLetter:
    """Build the dead letter for ``payload`` that failed in ``stage``; its JSON stays within
    ``max_bytes`` (default ``settings.max_message_bytes``) by cutting the payload if need be."""
    if max_bytes is None:
        from pipeline.settings import get_settings

        max_bytes = get_settings().max_message_bytes
    if isinstance(payload, str):
        payload = payload.encode("utf-8", errors="surrogatepass")
    truncated = {}
    envelope = min(ENVELOPE_BYTES, max(400, max_bytes // 4))
    key_text = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key or ""
    budget = max_bytes - envelope - _json_size(str(error)) - _json_size(key_text[:1000])
    if payload and len(payload) * 6 > budget:  # JSON escapes a byte into at most 6
        original = payload
        payload = _fit(payload, max(budget, 0))
        if len(payload) < len(original):
            truncated = dict(
                payload_truncated=True,
                payload_size=len(original),
                payload_sha256=hashlib.sha256(original).hexdigest(),
            )
            if isinstance(error, str):
                error = f"{error} (payload cut to {len(payload)} of {len(original)} bytes)"
    text, encoding = encode_payload(payload)
    if isinstance(key, bytes):
        key = key.decode("utf-8", errors="replace")
    if isinstance(error, BaseException):
        message, error_type = str(error) or repr(error), type(error).__name__
    else:
        message, error_type = error, "Rejected"
    return DeadLetter(
        stage=stage,
        error=message,
        error_type=error_type,
        payload=text,
        payload_encoding=encoding,
        topic=topic,
        partition=partition,
        offset=offset,
        key=key[:1000] if key else key,
        **truncated,
    )


ENVELOPE_BYTES = 65536
"""room for the letter's other fields and the record's framing"""


def _json_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", errors="surrogatepass"))


def _encoded_size(payload: bytes) -> int:
    return _json_size(encode_payload(payload)[0])


def _fit(payload: bytes, budget: int) -> bytes:
    """The longest prefix (found by halving) whose encoded size fits ``budget``."""
    if _encoded_size(payload) <= budget:
        return payload
    low, high = 0, len(payload)
    while high - low > max(1, len(payload) // 1000):
        middle = (low + high) // 2
        if _encoded_size(payload[:middle]) <= budget:
            low = middle
        else:
            high = middle
    prefix = payload[:low]
    try:  # a prefix of UTF-8 text stays text: do not cut a character in two
        return (
            prefix.decode("utf-8", errors="ignore").encode("utf-8") if _is_text(payload) else prefix
        )
    except UnicodeError:
        return prefix


def _is_text(payload: bytes) -> bool:
    try:
        payload[: 1 << 16].decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start > (1 << 16) - 4  # only the cut at the end of the sample
    return True
