"""Dead letters: a failed message, the stage that failed, the error and the original payload.

Every stage failure becomes one :class:`schemas.DeadLetter` on the ``deadletter`` topic, so the
stream keeps going and nothing is lost: the payload is kept byte-exact (UTF-8 text as is,
anything else base64).
"""

from __future__ import annotations

import base64

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
) -> DeadLetter:
    """Build the dead letter for ``payload`` that failed in ``stage``."""
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
        key=key,
    )
