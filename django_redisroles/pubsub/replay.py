"""Replay streams: the capped Redis Stream behind a replay-enabled group.

A broadcast to such a group runs one Lua script: ``XADD MAXLEN ~ N`` (the
entry keeps the id of the entry before it, so a reader can tell whether the
chain it resumes from is unbroken), ``PEXPIRE`` on the stream, and the
``PUBLISH`` of a frame that carries the new entry id, all in one round trip.

Every published frame carries a message id (``MSG_MARK`` + ``MSGID_LEN``
bytes): redis-py re-sends a publish that timed out, and the server may have
run the first send too (a stall past the socket timeout). Subscribers drop a
frame whose id they just delivered; the replay script answers a re-sent
publish with the entry of its first send (it remembers the ids of the last
``RECENT_IDS`` publishes of the group), so the stream never holds it twice.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import redis
import redis.asyncio
import redis.exceptions

from ..scripts import Script

#: Publishes of a group whose message ids the replay script remembers.
RECENT_IDS = 64

#: KEYS[1] stream, KEYS[2] recent message ids (list); ARGV: payload, maxlen,
#: ttl ms, pub/sub channel, message id.
PUBLISH_LUA = f"""
local m = ARGV[5]
for _, r in ipairs(redis.call('LRANGE', KEYS[2], 0, {RECENT_IDS - 1})) do
  if string.sub(r, 1, #m) == m then
    -- A re-sent publish whose first send did run: its entry, not a second one.
    return string.sub(r, #m + 1)
  end
end
local prev = ''
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then prev = last[1][1] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'p', prev, 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('LPUSH', KEYS[2], m .. id)
redis.call('LTRIM', KEYS[2], 0, {RECENT_IDS - 1})
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], '\\1' .. m .. '\\0' .. id .. '\\0' .. ARGV[1])
return id
"""
PUBLISH_SCRIPT = Script(PUBLISH_LUA)

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


Seq = tuple[int, int]
ZERO: Seq = (0, 0)

_SEQ_RE = re.compile(r"^(\d+)-(\d+)$")
_SEQ_BYTES_RE = re.compile(rb"\d+-\d+$")


def parse_seq(value: str | bytes) -> Seq:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``; ``ValueError`` otherwise."""
    text = value.decode() if isinstance(value, bytes) else value
    match = _SEQ_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{value!r} is not a replay sequence id; use the 'seq' of a message "
            "received from a replay group (for example '1700000000000-0')"
        )
    return int(match.group(1)), int(match.group(2))


def format_seq(seq: Seq) -> str:
    return f"{seq[0]}-{seq[1]}"


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


def publish_args(
    stream: str, ids: str, channel: bytes, payload: bytes, maxlen: int, ttl: float
) -> tuple[list[Any], list[Any]]:
    return [stream, ids], [payload, maxlen, int(ttl * 1000), channel, new_msgid()]


def publish_sync(
    client: redis.Redis,
    stream: str,
    ids: str,
    channel: bytes,
    payload: bytes,
    maxlen: int,
    ttl: float,
) -> str:
    keys, args = publish_args(stream, ids, channel, payload, maxlen, ttl)
    result = PUBLISH_SCRIPT(client, keys, args)
    return result.decode() if isinstance(result, bytes) else str(result)


async def publish_async(
    client: redis.asyncio.Redis,
    stream: str,
    ids: str,
    channel: bytes,
    payload: bytes,
    maxlen: int,
    ttl: float,
) -> str:
    keys, args = publish_args(stream, ids, channel, payload, maxlen, ttl)
    result = await PUBLISH_SCRIPT.acall(client, keys, args)
    return result.decode() if isinstance(result, bytes) else str(result)


async def read_after(
    client: redis.asyncio.Redis, stream: str, after: Seq, *, page: int = 1000
) -> tuple[list[tuple[Seq, str, str, bytes]], bool]:
    """Entries after ``after``: [(seq, id, prev id, payload)], and whether the stream exists."""
    out: list[tuple[Seq, str, str, bytes]] = []
    start = "-" if after == ZERO else "(" + format_seq(after)
    while True:
        rows = await client.xrange(stream, min=start, max="+", count=page)
        for raw_id, fields in rows:
            sid = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            prev = fields.get(b"p", b"")
            out.append((parse_seq(sid), sid, prev.decode(), fields.get(b"d", b"")))
        if len(rows) < page:
            break
        start = "(" + out[-1][1]
    exists = bool(out) or bool(await client.exists(stream))
    return out, exists


async def tail(client: redis.asyncio.Redis, stream: str) -> Seq:
    """Id of the newest entry, or ``ZERO`` when the stream is empty or missing."""
    rows = await client.xrevrange(stream, max="+", min="-", count=1)
    if not rows:
        return ZERO
    return parse_seq(rows[0][0])


def has_gap(cursor: Seq, entries: list[tuple[Seq, str, str, bytes]], exists: bool) -> bool:
    """Whether entries after ``cursor`` were lost (trimmed, expired, or Redis lost data).

    Each entry records the id before it, so the chain is unbroken iff the
    first entry after the cursor points back at (or before) the cursor. When
    continuity cannot be proved (a stream recreated from scratch, a missing
    stream) this says gap: a false alarm is better than silent loss.
    """
    if not entries:
        return not exists and cursor != ZERO
    prev = entries[0][2]
    if not prev:
        return cursor != ZERO
    return cursor < parse_seq(prev)
