"""Server-side Lua scripts, shared by every role.

A ``Script`` is sent once and then run by its SHA1 (``EVALSHA``): one round
trip carrying only keys and arguments. When Redis answers ``NOSCRIPT`` (it
restarted, failed over, or someone ran ``SCRIPT FLUSH``) the script is loaded
again and the call repeated, so callers never see that error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import NoScriptError

__all__ = ["Script"]


class Script:
    """One Lua script, run with ``EVALSHA`` and reloaded on ``NOSCRIPT``."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str | bytes) -> None:
        self.source = source.decode() if isinstance(source, bytes) else source
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def __call__(self, client: redis.Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script on a sync client (or pipeline: then it is queued)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    async def acall(
        self, client: redis.asyncio.Redis, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        """Run the script on a ``redis.asyncio`` client."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)

    def __repr__(self) -> str:
        return f"<Script {self.sha[:12]}>"
