"""The in-process queue of one consumer channel: capacity, expiry, events.

A queue holds at most ``capacity`` messages: when full, a new message is dropped
and counted (``dropped_full``), never grown without bound, and a consumer that
opted into events gets one ``redisroles.lost`` event (coalesced with the one
before it). A message older than ``expiry`` seconds when it is taken is dropped
(``expired``); a payload that does not decode is dropped (``undecodable``), never
raised into the consumer.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from .envelope import EVENT_LOST, SEQ_KEY

__all__ = ["Item", "LocalChannel"]

logger = logging.getLogger("django_redisroles.pubsub")


class Item:
    """One queued message (or event) of a local channel."""

    __slots__ = ("arrival", "event", "payload", "seq")

    def __init__(
        self,
        arrival: float,
        payload: bytes = b"",
        seq: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> None:
        self.arrival = arrival
        self.payload = payload
        self.seq = seq
        self.event = event


class LocalChannel:
    """A consumer channel of this process: its bounded queue and who waits on it."""

    __slots__ = (
        "capacity",
        "count",
        "events",
        "name",
        "queue",
        "received",
        "receivers",
        "stats",
        "wake",
    )

    def __init__(self, name: str, capacity: int, stats: collections.Counter[str]) -> None:
        self.name = name
        self.capacity = capacity
        self.stats = stats
        self.queue: collections.deque[Item] = collections.deque()
        self.count = 0  # messages in the queue (events are not counted)
        self.events = False  # the consumer asked for redisroles.* events
        self.wake = asyncio.Event()
        self.receivers = 0  # receive() calls waiting right now
        self.received = False  # receive() was called at least once

    @property
    def full(self) -> bool:
        return self.count >= self.capacity

    def put(self, item: Item) -> None:
        """Queue a message; when full, drop it (counted, and an event if asked for)."""
        if self.count >= self.capacity:
            # Full: drop the new message (counted), never grow without bound.
            stats = self.stats
            stats["dropped_full"] += 1
            if self.events:
                self.put_event({"type": EVENT_LOST, "reason": "capacity", "count": 1})
            dropped = stats["dropped_full"]
            if dropped in (1, 10, 100, 1000) or dropped % 10000 == 0:
                logger.warning(
                    "pubsub: channel %s is full (capacity %d): %d message(s) dropped so far",
                    self.name,
                    self.capacity,
                    dropped,
                )
            return
        self.queue.append(item)
        self.count += 1
        self.wake.set()

    def put_event(self, event: dict[str, Any]) -> None:
        """Queue an event (never dropped: a lost event is coalesced with the last one)."""
        last = self.queue[-1] if self.queue else None
        if (
            last is not None
            and last.event is not None
            and last.event["type"] == event["type"] == EVENT_LOST
            and last.event.get("reason") == event.get("reason")
        ):
            # Coalesce: events never grow the queue without bound either.
            last.event["count"] = last.event.get("count", 1) + event.get("count", 1)
            return
        self.queue.append(Item(time.monotonic(), event=event))
        self.wake.set()

    async def get(self, expiry: float | None, decode: Callable[[bytes], Any]) -> Any:
        """The next message (or event), waiting for one; expired and bad ones skipped."""
        while True:
            while not self.queue:
                self.wake.clear()
                await self.wake.wait()
            item = self.queue.popleft()
            if item.event is not None:
                return dict(item.event)
            self.count -= 1
            if expiry is not None and time.monotonic() - item.arrival > expiry:
                self.stats["expired"] += 1
                continue
            try:
                message = decode(item.payload)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not kill the consumer
                self.stats["undecodable"] += 1
                logger.warning("pubsub: dropped a message %s could not decode: %r", self.name, exc)
                continue
            if item.seq is not None and isinstance(message, dict):
                message[SEQ_KEY] = item.seq
            self.stats["delivered"] += 1
            return message
