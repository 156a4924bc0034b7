"""Replay streams: the capped Redis Stream behind a replay-enabled group.

A broadcast to such a group runs one Lua script (``lua/publish.lua``): ``XADD
MAXLEN ~ N`` (the entry keeps the id of the entry before it, so a reader can
tell whether the chain it resumes from is unbroken), ``PEXPIRE`` on the stream,
and the ``PUBLISH`` of a frame that carries the new entry id, all in one round
trip. The script remembers the message ids of the group's last ``RECENT_IDS``
publishes and answers a re-sent publish with the entry of its first send, so
the stream never holds it twice (see ``envelope.py``).

This module reads the streams back: entries after a cursor (catch-up), the
newest id, whether a gap was lost, and the ``flush()`` of every stream.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import redis.asyncio

from .. import conf
from ..scripts import Script
from . import names

#: Publishes of a group whose message ids the replay script remembers.
RECENT_IDS = 64

#: KEYS: stream, recent ids; ARGV: payload, maxlen, ttl ms, channel, message id, RECENT_IDS,
#: and the publish command (``PUBLISH``, or ``SPUBLISH`` on a cluster).
PUBLISH_SCRIPT = Script((Path(__file__).parent / "lua" / "publish.lua").read_text())

Seq = tuple[int, int]
ZERO: Seq = (0, 0)

_SEQ_RE = re.compile(r"^(\d+)-(\d+)$")


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


#: A stream entry: (seq, id, id of the entry before it, payload).
Entry = tuple[Seq, str, str, bytes]
# Stream rows as the role's clients return them (bytes: no decode_responses);
# redis-py's types allow str and None too.
_Rows = list[tuple[bytes, dict[bytes, bytes]]]


async def read_after(
    client: redis.asyncio.Redis, stream: str, after: Seq, *, page: int = 1000
) -> tuple[list[Entry], bool]:
    """Entries after ``after``, and whether the stream exists."""
    out: list[Entry] = []
    start = "-" if after == ZERO else "(" + format_seq(after)
    while True:
        rows = cast(_Rows, await client.xrange(stream, min=start, max="+", count=page))
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
    rows = cast(_Rows, await client.xrevrange(stream, max="+", min="-", count=1))
    if not rows:
        return ZERO
    return parse_seq(rows[0][0])


def has_gap(cursor: Seq, entries: list[Entry], exists: bool) -> bool:
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


async def delete_all(clients: list[redis.asyncio.Redis]) -> None:
    """UNLINK every replay stream of the role, and their recent message ids.

    ``clients``: one per master (``connections.async_primary_clients``). On a
    cluster each key is unlinked by itself (keys of one master may be in
    different slots), in one pipelined round trip per batch.
    """
    one_by_one = names.sharded()
    for client in clients:
        for prefix in (names.key_prefix("replay"), names.key_prefix("ids")):
            batch: list[Any] = []
            pattern = conf.glob_escape(prefix) + "*"  # "a[1]" must not flush "a1"'s streams
            async for key in client.scan_iter(match=pattern, count=500):
                if key.startswith(prefix.encode()):
                    batch.append(key)
                if len(batch) >= 500:
                    await _unlink(client, batch, one_by_one)
                    batch = []
            if batch:
                await _unlink(client, batch, one_by_one)


async def _unlink(client: redis.asyncio.Redis, keys: list[Any], one_by_one: bool) -> None:
    if not one_by_one:
        await client.unlink(*keys)
        return
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.unlink(key)
        await pipe.execute()
