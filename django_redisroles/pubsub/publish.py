"""Publishing: one plan for every publish, run by a sync or an async runner.

``broadcast()`` (sync), ``group_send()``/``abroadcast()`` and ``send()`` (async)
all build a :class:`Plan` with :class:`Publisher`: the message checked, encoded
(msgpack directly when the layer neither encrypts nor uses JSON), wrapped in its
envelope with a new message id, and the command that carries it: one
``PUBLISH`` (``SPUBLISH`` on a Redis Cluster: one command to the master that
serves the channel's slot, not a broadcast over the cluster bus), or for a
replay group the replay script (``XADD`` + ``(S)PUBLISH`` in one round trip).
:func:`run` and :func:`arun` send a plan and say what the reply means (the
replay sequence id, or None); they hold no rule of their own.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import redis
import redis.asyncio

from .envelope import SEQ_KEY, frame, new_msgid
from .names import LayerNames, sharded
from .replay import PUBLISH_SCRIPT, RECENT_IDS

__all__ = ["MessageNotSerializable", "Plan", "Publisher", "arun", "run"]

_HINT = (
    "Channels messages may hold only dicts, lists, str, bytes, int, float, bool "
    "and None; convert dates, decimals, model instances ... first."
)


class MessageNotSerializable(TypeError):
    """A message holds a value the layer's serializer cannot encode."""


def not_serializable(message: Any, fmt: str, exc: Exception) -> MessageNotSerializable:
    """The error of a message the ``fmt`` serializer refused."""
    return MessageNotSerializable(f"cannot serialize {message!r} with {fmt}: {exc}. {_HINT}")


def packb(message: Any) -> bytes:
    """Plain msgpack (what the msgpack serializer does without encryption), checked."""
    try:
        data: bytes = msgpack.packb(message)
    except (TypeError, ValueError, OverflowError) as exc:
        raise not_serializable(message, "msgpack", exc) from exc
    return data


def check_message(group: str, message: Any, is_replay: bool) -> None:
    """``TypeError`` unless ``message`` is a dict with a ``"type"`` (and no ``seq`` on replay)."""
    # type() first: the exact-dict case is the hot path of broadcast().
    if (type(message) is not dict and not isinstance(message, Mapping)) or type(
        message.get("type")
    ) is not str:
        raise TypeError(
            f"broadcast to {group!r}: the message must be a dict with a 'type' string "
            f'naming the consumer handler (e.g. {{"type": "notify", ...}}), got {message!r}'
        )
    if is_replay and SEQ_KEY in message:
        raise ValueError(
            f"broadcast to replay group {group!r}: the message key {SEQ_KEY!r} is reserved "
            "for the replay sequence id"
        )


class Plan:
    """What one publish sends: ``PUBLISH channel data``, or the replay script when ``keys``."""

    __slots__ = ("args", "channel", "command", "data", "keys")

    def __init__(
        self,
        channel: bytes,
        data: bytes,
        keys: list[str] | None = None,
        args: list[Any] | None = None,
    ) -> None:
        self.channel = channel
        self.data = data
        self.keys = keys
        self.args = args
        self.command = "SPUBLISH" if sharded() else "PUBLISH"


class Publisher:
    """A layer's publish plans: to a group (``group``) or a consumer channel (``channel``)."""

    __slots__ = ("encode", "maxlen", "names", "stats", "ttl_ms", "validate_group")

    def __init__(
        self,
        names: LayerNames,
        encode: Callable[[Any], bytes],
        validate_group: Callable[[Any], bool],
        *,
        replay_maxlen: int,
        replay_ttl: float,
        stats: collections.Counter[str],
    ) -> None:
        self.names = names
        self.encode = encode
        self.validate_group = validate_group
        self.maxlen = replay_maxlen
        self.ttl_ms = int(replay_ttl * 1000)
        self.stats = stats

    def group(self, group: str, message: Any, *, check: bool = True) -> Plan:
        """The plan of a message to every member of ``group``, in every process."""
        target = self.names.target(group)
        if target is None:
            self.validate_group(group)
            target = self.names.remember_target(group)
        channel, is_replay = target
        if check:
            check_message(group, message, is_replay)
        payload = self.encode(message)
        self.stats["published"] += 1
        if is_replay:
            names = self.names
            keys = [names.stream(group), names.ids(group)]
            args = [payload, self.maxlen, self.ttl_ms, channel, new_msgid(), RECENT_IDS]
            plan = Plan(channel, payload, keys, args)
            args.append(plan.command)
            return plan
        # With a message id: a PUBLISH re-sent after a timeout is delivered once.
        return Plan(channel, frame(payload))

    def channel(self, name: str, message: Any) -> Plan:
        """The plan of a message to consumer channel ``name`` (a valid name)."""
        payload = self.encode(message)
        self.stats["published"] += 1
        return Plan(self.names.publish_channel("c", name), frame(payload))


def _seq(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def run(client: redis.Redis, plan: Plan) -> str | None:
    """Send ``plan`` on a sync client: the replay sequence id, or None."""
    if plan.keys is None:
        client.execute_command(plan.command, plan.channel, plan.data)  # type: ignore[no-untyped-call]
        return None
    return _seq(PUBLISH_SCRIPT(client, plan.keys, plan.args or ()))


async def arun(client: redis.asyncio.Redis, plan: Plan) -> str | None:
    """Send ``plan`` on a ``redis.asyncio`` client: the replay sequence id, or None."""
    if plan.keys is None:
        await client.execute_command(plan.command, plan.channel, plan.data)  # type: ignore[no-untyped-call]
        return None
    return _seq(await PUBLISH_SCRIPT.acall(client, plan.keys, plan.args or ()))
