"""What each role's ACL user may run, probed with harmless commands (doctor rule E107)."""

from __future__ import annotations

from typing import Any

import redis

from .. import conf
from .model import Database, Limits
from .nodes import DOCTOR_CLIENT_NAME
from .wiring import near_cache_prefixes

__all__ = ["probe_acl"]


# No script has this SHA1: EVALSHA answers NOSCRIPT once the ACL let it through.
_NO_SCRIPT = "0" * 40


def probe_acl(database: Database, limits: Limits) -> None:
    """Whether each role's user may run what the role needs (NOPERM found now, not at 3 am).

    Harmless probes with the role's own credentials: an ``EVALSHA`` of a script
    that does not exist, declaring a key of the role's namespace (the ACL checks
    the command and the key before Redis looks for the script), and for the
    pub/sub role a ``SUBSCRIBE`` to a group channel on a connection of its own.
    """
    client = database.client
    assert client is not None
    for role in database.roles:
        refused: list[str] = []
        key = conf.make_key(role, DOCTOR_CLIENT_NAME)
        try:
            client.evalsha(_NO_SCRIPT, 1, key)
        except (
            redis.exceptions.NoScriptError,
            redis.exceptions.MovedError,
            redis.exceptions.AskError,
        ):
            # A cluster node redirects a key of another node's slot only once the ACL
            # let the command through (Redis checks permissions first): allowed.
            pass
        except redis.exceptions.NoPermissionError as exc:
            refused.append(f"run its Lua scripts on its keys (EVALSHA on {key}: {exc})")
        if role == "pubsub":
            from ..pubsub.names import redis_channel  # the layer's own channel names

            channel = redis_channel("g", DOCTOR_CLIENT_NAME).decode()
            pubsub = client.pubsub()  # type: ignore[no-untyped-call]  # redis-py: untyped
            try:
                pubsub.subscribe(channel)
                pubsub.get_message(timeout=max(limits.timeout, 1.0))
            except redis.exceptions.NoPermissionError as exc:
                refused.append(f"subscribe to its group channels (SUBSCRIBE {channel}: {exc})")
            finally:
                pubsub.close()
        if role == "cache":
            refused += [_probe_tracking(client, prefix) for prefix in near_cache_prefixes()[:1]]
        if refused and any(refused):
            database.refused[role] = [r for r in refused if r]


def _probe_tracking(client: redis.Redis, prefix: str) -> str:
    """What the near cache's listener needs: ``CLIENT TRACKING ... BCAST`` redirected to
    itself and ``SUBSCRIBE __redis__:invalidate``, tried on a connection of its own
    (closed after: its tracking state goes with it). "" when allowed."""
    connection: Any = client.connection_pool.make_connection()  # redis-py: untyped methods
    step = "CLIENT ID"
    try:
        connection.send_command("CLIENT", "ID")
        client_id = connection.read_response()
        step = f"CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX {prefix}"
        connection.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", prefix
        )
        connection.read_response()
        step = "SUBSCRIBE __redis__:invalidate"
        connection.send_command("SUBSCRIBE", "__redis__:invalidate")
        connection.read_response()
    except redis.exceptions.NoPermissionError as exc:
        return f"track its keys for the near cache ({step}: {exc})"
    except redis.exceptions.RedisError:
        pass  # not an ACL matter: the near cache's listener reports it itself
    finally:
        connection.disconnect()
    return ""
