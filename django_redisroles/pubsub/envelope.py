"""What the layer adds around and inside a Channels message: frames, message ids, events.

A published frame is ``MSG_MARK`` + a message id (``MSGID_LEN`` bytes) +, for a
replay group, ``FRAME_MARK`` + the stream entry id + ``FRAME_MARK`` + the
serialized message. redis-py re-sends a publish that timed out, and the server
may have run the first send too (a stall past the socket timeout): subscribers
drop a frame whose id they just delivered, and the replay script answers a
re-sent publish with the entry of its first send.

A message delivered from a replay group carries its stream id under
``SEQ_KEY``; a consumer that opted in gets ``EVENT_LOST`` / ``EVENT_GAP``
events (dicts with a ``"type"``) in its queue.
"""

from __future__ import annotations

import itertools
import os
import re

__all__ = [
    "EVENT_GAP",
    "EVENT_LOST",
    "FRAME_MARK",
    "MSGID_LEN",
    "MSG_MARK",
    "SEQ_KEY",
    "frame",
    "new_msgid",
    "split_frame",
]

#: Event a consumer gets (opt in: ``group_add(..., events=True)``) when messages
#: may have been lost: the Redis connection dropped, or its queue was full.
EVENT_LOST = "redisroles.lost"
#: Event a consumer of a replay group gets when replay cannot fill a gap.
EVENT_GAP = "redisroles.gap"
#: Key holding the stream id in messages delivered from replay groups.
SEQ_KEY = "seq"

#: First byte of a frame that carries a stream id (a serialized Channels
#: message, a dict, never starts with NUL or SOH in msgpack, JSON or Fernet form).
FRAME_MARK = b"\x00"
#: First byte of a frame that carries a message id (before the stream id, if any).
MSG_MARK = b"\x01"
MSGID_LEN = 12

# Message ids: a random prefix per process (new after a fork) and a counter.
_msgid_prefix = os.urandom(6)
_msgid_counter = itertools.count(1)
_frame_head = MSG_MARK + _msgid_prefix


def _new_prefix() -> None:
    global _msgid_prefix, _msgid_counter, _frame_head
    _msgid_prefix = os.urandom(6)
    _msgid_counter = itertools.count(1)
    _frame_head = MSG_MARK + _msgid_prefix


os.register_at_fork(after_in_child=_new_prefix)


def new_msgid() -> bytes:
    """A message id unique across processes (``MSGID_LEN`` bytes)."""
    return _msgid_prefix + next(_msgid_counter).to_bytes(6, "big")


def frame(payload: bytes) -> bytes:
    """A frame of a plain (not replayed) publish: ``MSG_MARK``, a new message id, the payload."""
    return _frame_head + next(_msgid_counter).to_bytes(6, "big") + payload


_SEQ_BYTES_RE = re.compile(rb"\d+-\d+$")


def split_frame(data: bytes) -> tuple[bytes, str | None, bytes | None]:
    """(payload, stream id or None, message id or None) of a published frame."""
    msgid = None
    if data[:1] == MSG_MARK and len(data) > MSGID_LEN:
        msgid = data[1 : 1 + MSGID_LEN]
        data = data[1 + MSGID_LEN :]
    if data[:1] != FRAME_MARK:
        return data, None, msgid
    end = data.find(FRAME_MARK, 1)
    if end < 4 or end > 42 or _SEQ_BYTES_RE.match(data, 1, end) is None:
        return data, None, msgid  # not one of our frames (e.g. msgpack of the integer 0)
    return data[end + 1 :], data[1:end].decode(), msgid
