"""The steps a cache plan yields, and the two runners that carry them out.

A plan (each operation in ``ops``, ``get_or_set`` in ``stampede``) is a
generator written once for both sides: it yields what to do next (a redis-py
call, a pipeline, a Lua script, a loader to call, a pause), receives the reply
(or the exception, thrown in at the ``yield``) and finally returns the
operation's result. It never does I/O itself, so :func:`run` carries it out on
sync ``redis.Redis`` clients and :func:`arun` on ``redis.asyncio`` ones, and
each step's sync and async execution sit side by side in its class below.
A plan of one command is that :class:`Call` instead (the command and what its
reply means): the same contract without the generator, the cost of the hot path.

``connect(write)`` gives a runner the client to send a step to: the primary
for a write, a replica (when the cache has some) for a read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, TypeVar, Union

import redis.asyncio.cluster
import redis.cluster
from asgiref.sync import sync_to_async
from redis.crc import key_slot

from ..connections import send_once
from ..scripts import Script

T = TypeVar("T")

#: ``connect(write)`` -> the (sync or async) Redis client to send a step to.
Connect = Callable[[bool], Any]

#: A :class:`Call` without keyword arguments (shared, never mutated: ``**`` copies it).
NO_KWARGS: dict[str, Any] = {}


class Step:
    """One thing a plan asks its runner to do; the reply is sent back into the plan."""

    __slots__ = ()

    def run(self, connect: Connect) -> Any:
        raise NotImplementedError

    async def arun(self, connect: Connect) -> Any:
        raise NotImplementedError


#: A plan written as a generator: yields steps, receives their replies, returns the
#: operation's result.
Steps = Generator[Step, Any, T]


class Call(Step):
    """One redis-py command method: ``client.<name>(*args, **kwargs)``, and what its
    reply means: the step's result is ``then(reply)`` (the reply itself without
    ``then``; the calls inside a :class:`Pipe` give their raw replies).

    A ``Call`` is also a whole plan: most operations (``delete``, ``has_key``, a
    plain ``set``...) send one command, and return it instead of a generator:
    the runners (and the client's ``run_plan``) send it at once, the cost of the
    hot path.

    ``once``: never re-sent by the pool's retries (a command with a side effect
    that is not idempotent: a timeout does not mean it did not run).
    """

    __slots__ = ("args", "kwargs", "name", "once", "then", "write")

    def __init__(
        self,
        name: str,
        args: tuple[Any, ...] = (),
        then: Callable[[Any], Any] | None = None,
        kwargs: dict[str, Any] = NO_KWARGS,
        write: bool = True,
        once: bool = False,
    ) -> None:
        # All positional-or-keyword: the one-command plans of the hot path pass them
        # positionally (a keyword argument to a class call costs more than the call).
        self.name = name
        self.args = args
        self.kwargs = kwargs
        self.then = then
        self.write = write
        self.once = once

    def run(self, connect: Connect) -> Any:
        method = getattr(connect(self.write), self.name)
        if self.once:
            with send_once():
                reply = method(*self.args, **self.kwargs)
        else:
            reply = method(*self.args, **self.kwargs)
        return reply if self.then is None else self.then(reply)

    async def arun(self, connect: Connect) -> Any:
        method = getattr(connect(self.write), self.name)
        if self.once:
            with send_once():
                reply = await method(*self.args, **self.kwargs)
        else:
            reply = await method(*self.args, **self.kwargs)
        return reply if self.then is None else self.then(reply)


# redis-py's cluster clients (sync and async): told apart by class, cached per class.
_CLUSTERS = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)
_is_cluster: dict[type, bool] = {}


def sharded(client: Any) -> bool:
    """Whether ``client`` is a Redis Cluster client (keys of several slots need grouping)."""
    cls = type(client)
    found = _is_cluster.get(cls)
    if found is None:
        found = _is_cluster[cls] = issubclass(cls, _CLUSTERS)
    return found


def by_slot(keys: Sequence[Any]) -> dict[int, list[int]]:
    """The positions of ``keys`` grouped by their cluster slot, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        raw = key if isinstance(key, bytes) else str(key).encode()
        groups.setdefault(key_slot(raw), []).append(i)
    return groups


class PerSlot(Call):
    """One multi-key command (``MGET``, ``DEL``, ``UNLINK``) over ``keys``: as it is on
    one server; on a Redis Cluster, one command per slot, all in one pipeline (one
    round trip per node), the replies merged: ``MGET``'s values in the order of
    ``keys``, the counts summed. Each slot's command is atomic, not the whole."""

    __slots__ = ("command",)

    def __init__(
        self,
        name: str,
        command: str,
        keys: tuple[Any, ...],
        then: Callable[[Any], Any] | None = None,
        write: bool = True,
    ) -> None:
        super().__init__(name, keys, then, NO_KWARGS, write)
        self.command = command

    def _queue(self, client: Any) -> tuple[Any, dict[int, list[int]]]:
        groups = by_slot(self.args)
        pipe = client.pipeline(transaction=False)
        for positions in groups.values():
            pipe.execute_command(self.command, *(self.args[i] for i in positions))
        return pipe, groups

    def _merge(self, replies: list[Any], groups: dict[int, list[int]]) -> Any:
        if self.command != "MGET":
            return sum(int(r) for r in replies)
        merged: list[Any] = [None] * len(self.args)
        for positions, values in zip(groups.values(), replies, strict=True):
            for i, value in zip(positions, values, strict=True):
                merged[i] = value
        return merged

    def run(self, connect: Connect) -> Any:
        client = connect(self.write)
        if sharded(client):
            pipe, groups = self._queue(client)
            reply = self._merge(pipe.execute(), groups)
        else:
            reply = getattr(client, self.name)(*self.args)
        return reply if self.then is None else self.then(reply)

    async def arun(self, connect: Connect) -> Any:
        client = connect(self.write)
        if sharded(client):
            pipe, groups = self._queue(client)
            reply = self._merge(await pipe.execute(), groups)
        else:
            reply = await getattr(client, self.name)(*self.args)
        return reply if self.then is None else self.then(reply)


class Sharded(Step):
    """No I/O: the reply says whether the plan runs on a Redis Cluster."""

    __slots__ = ()

    def run(self, connect: Connect) -> bool:
        return sharded(connect(True))

    async def arun(self, connect: Connect) -> bool:
        return sharded(connect(True))


class Primaries(Step):
    """The masters to send a keyspace-wide command (``SCAN``) to: ``[None]`` (the
    client itself) on one server or under Sentinel, every primary node of a Redis
    Cluster otherwise (pass it as ``target_nodes``)."""

    __slots__ = ()

    def run(self, connect: Connect) -> list[Any]:
        client = connect(True)
        return list(client.get_primaries()) if sharded(client) else [None]

    async def arun(self, connect: Connect) -> list[Any]:
        client = connect(True)
        if not sharded(client):
            return [None]
        await client.initialize()  # a no-op once the slot map is known
        return list(client.get_primaries())


#: A plan: a generator of steps (:data:`Steps`), or one :class:`Call` (its result:
#: the call's ``then(reply)``; typed by the plan function that returns it).
Plan = Union[Steps[T], Call]  # noqa: UP007 - a generic alias: X | Y cannot subscript


def steps(plan: Plan[T]) -> Steps[T]:
    """``plan`` as a generator, for ``yield from`` inside another plan."""
    if isinstance(plan, Call):
        return (yield plan)  # type: ignore[no-any-return]
    return (yield from plan)


class Pipe(Step):
    """Several calls in one round trip (a pipeline, not a transaction): a list of replies."""

    __slots__ = ("calls", "write")

    def __init__(self, *calls: Call, write: bool = True) -> None:
        self.calls = calls
        self.write = write

    def _queue(self, client: Any) -> Any:
        pipe = client.pipeline(transaction=False)
        for call in self.calls:
            getattr(pipe, call.name)(*call.args, **call.kwargs)
        return pipe

    def run(self, connect: Connect) -> Any:
        return self._queue(connect(self.write)).execute()

    async def arun(self, connect: Connect) -> Any:
        return await self._queue(connect(self.write)).execute()


class Eval(Step):
    """A Lua script by EVALSHA (loaded again on NOSCRIPT), always on the primary."""

    __slots__ = ("args", "keys", "once", "script")

    def __init__(
        self, script: Script, keys: Sequence[Any], args: Sequence[Any], *, once: bool = False
    ) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.once = once

    def run(self, connect: Connect) -> Any:
        if self.once:
            with send_once():
                return self.script(connect(True), self.keys, self.args)
        return self.script(connect(True), self.keys, self.args)

    async def arun(self, connect: Connect) -> Any:
        if self.once:
            with send_once():
                return await self.script.acall(connect(True), self.keys, self.args)
        return await self.script.acall(connect(True), self.keys, self.args)


class Prepare(Step):
    """``fn(*args)``: CPU work (encoding a value) that Django refused on the event loop
    (pickling an unevaluated QuerySet runs its query): the async side runs it in a
    thread, as Django's default ``aset()`` does for every call. A plan yields it only
    after trying the work itself (the common case costs no step)."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn = fn
        self.args = args

    def run(self, connect: Connect) -> Any:
        return self.fn(*self.args)

    async def arun(self, connect: Connect) -> Any:
        return await sync_to_async(self.fn, thread_sensitive=True)(*self.args)


class Load(Step):
    """Call a loader: ``sync()`` on the sync side, ``await async_()`` on the async one."""

    __slots__ = ("async_", "sync")

    def __init__(self, sync: Callable[[], Any], async_: Callable[[], Any]) -> None:
        self.sync = sync
        self.async_ = async_

    def run(self, connect: Connect) -> Any:
        return self.sync()

    async def arun(self, connect: Connect) -> Any:
        return await self.async_()


class Sleep(Step):
    """Pause (a waiter polling for another caller's value)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, connect: Connect) -> None:
        time.sleep(self.seconds)

    async def arun(self, connect: Connect) -> None:
        await asyncio.sleep(self.seconds)


class Wait(Step):
    """Wait up to ``timeout`` seconds for an event (a ``threading.Event`` on the sync
    side, an ``asyncio.Event`` on the async one); the reply: whether it was set."""

    __slots__ = ("event", "timeout")

    def __init__(self, event: Any, timeout: float) -> None:
        self.event = event
        self.timeout = timeout

    def run(self, connect: Connect) -> bool:
        return bool(self.event.wait(self.timeout))

    async def arun(self, connect: Connect) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), self.timeout)
        except TimeoutError:
            return False
        return True


def run(plan: Plan[T], connect: Connect) -> T:
    """Carry ``plan`` out on sync clients; its result, or what it raised."""
    if isinstance(plan, Call):
        return plan.run(connect)  # type: ignore[no-any-return]
    try:
        step = plan.send(None)
        while True:
            try:
                if type(step) is Call and not step.once and step.then is None:  # one frame fewer
                    reply = getattr(connect(step.write), step.name)(*step.args, **step.kwargs)
                else:
                    reply = step.run(connect)
            except BaseException as exc:  # noqa: BLE001 - the plan decides: handle or re-raise
                step = plan.throw(exc)
            else:
                step = plan.send(reply)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def arun(plan: Plan[T], connect: Connect) -> Awaitable[T]:
    """:func:`run` on ``redis.asyncio`` clients, in the running event loop (await it)."""
    if type(plan) is Call and plan.then is None and not plan.once:
        # One command whose reply is the result (delete...): redis-py's own
        # coroutine, with no coroutine of ours around it.
        return getattr(connect(plan.write), plan.name)(*plan.args, **plan.kwargs)  # type: ignore[no-any-return]
    return _arun(plan, connect)


async def _arun(plan: Plan[T], connect: Connect) -> T:
    if isinstance(plan, Call):
        if plan.once or type(plan) is not Call:  # a PerSlot groups its keys itself
            return await plan.arun(connect)  # type: ignore[no-any-return]
        # One command (most operations): sent here, one coroutine fewer.
        reply = await getattr(connect(plan.write), plan.name)(*plan.args, **plan.kwargs)
        return plan.then(reply) if plan.then is not None else reply  # type: ignore[no-any-return]
    try:
        step = plan.send(None)
        while True:
            try:
                reply = await step.arun(connect)
            except BaseException as exc:  # noqa: BLE001 - the plan decides
                step = plan.throw(exc)
            else:
                step = plan.send(reply)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
