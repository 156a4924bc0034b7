"""Server-side Lua scripts, shared by every role.

A ``Script`` is sent once and then run by its SHA1 (``EVALSHA``): one round
trip carrying only keys and arguments. When Redis answers ``NOSCRIPT`` (it
restarted, failed over, or someone ran ``SCRIPT FLUSH``) the script is loaded
again and the call repeated, so callers never see that error. The repeat is
safe: a ``NOSCRIPT`` reply means the script did not run.

A ``Script`` runs on a client, never in a pipeline (``TypeError``): inside a
pipeline ``NOSCRIPT`` is only seen after every queued command ran, and neither
re-sending the pipeline (its other commands twice) nor re-running the one call
afterwards (out of order, outside its ``MULTI``) is correct. What must happen
together goes inside the script; docs/architecture.md ("Lua") has the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.cluster
import redis.client
import redis.cluster
from redis.exceptions import NoScriptError

from .direct import execute

__all__ = ["Script"]

# redis-py's pipelines subclass its clients: told apart by class, not by duck typing.
# A cluster's pipelines too (redis-py refuses EVALSHA in a sync one with an error of
# its own, the asyncio one queues it): the same TypeError on every topology.
_PIPELINES: tuple[type, ...] = (
    redis.client.Pipeline,
    redis.asyncio.client.Pipeline,
    redis.cluster.ClusterPipeline,
    redis.asyncio.cluster.ClusterPipeline,
)
# The answer per client class: isinstance() against redis-py's classes goes through
# typing.Protocol's slow instance check (~1-2 us), on the path of every script call.
_is_pipeline: dict[type, bool] = {}


def _refuse_pipeline(client: object) -> None:
    cls = type(client)
    pipeline = _is_pipeline.get(cls)
    if pipeline is None:
        pipeline = _is_pipeline[cls] = issubclass(cls, _PIPELINES)
    if pipeline:
        raise TypeError(
            "a Script runs on a client, not in a pipeline (a NOSCRIPT there cannot be "
            "retried without re-sending other commands); call it on the client"
        )


class Script:
    """One Lua script, run with ``EVALSHA`` and reloaded on ``NOSCRIPT``."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str | bytes) -> None:
        self.source = source.decode() if isinstance(source, bytes) else source
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def __call__(self, client: redis.Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script on a sync client; its reply, as redis-py decodes it."""
        _refuse_pipeline(client)
        try:
            return execute(client, "EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return execute(client, "EVALSHA", self.sha, len(keys), *keys, *args)

    async def acall(
        self, client: redis.asyncio.Redis, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        """Run the script on a ``redis.asyncio`` client; its reply."""
        _refuse_pipeline(client)
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)

    def __repr__(self) -> str:
        return f"<Script {self.sha[:12]}>"
