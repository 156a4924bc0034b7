"""Several cluster slots in one check: one ``EVALSHA`` per slot, report-only after a refusal.

A policy's keys carry its hash tag (the group's, or its ``slot=``): policies of
one group, or of middleware rules without a group, share a slot and are
counted all-or-nothing in one script call. Policies of different groups
(stacked ``@rate_limit`` with their own ``group=``, rules with a ``group``) may
hash to different slots of a Redis Cluster, where one script cannot touch
them all (``CROSSSLOT``). Then the check sends one call per slot, in the
order the policies come; after a call in which a policy is over its limit
(the script then counts nothing in that slot), the later slots are only asked
where they stand (the script's "report only" flag):
nothing more is counted, and the result describes every policy as on a single
instance. Each call is all-or-nothing within its slot; a slot counted before
the refusing one keeps its count (as two separate limiters would). Give
policies that must be all-or-nothing together the same ``slot=``.

On a single instance and under Sentinel every key is on one server: one call,
all-or-nothing across every policy, whatever the tags.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio.cluster
import redis.cluster

from .. import errors
from .policy import Policy

__all__ = ["PartFailed", "arun", "is_cluster", "refuses", "run", "split"]

#: The indexes (in the check's policy order) of one slot's policies, and its ``EVALSHA``.
Part = tuple[list[int], list[str]]

_CLUSTERS: tuple[type, ...] = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)
_is_cluster: dict[type, bool] = {}

#: The script's last ARGV when the request was refused in an earlier slot: count nothing.
REPORT_ONLY = "0"


def is_cluster(client: object) -> bool:
    """Whether ``client`` is a Redis Cluster client (cached per class)."""
    cls = type(client)
    known = _is_cluster.get(cls)
    if known is None:
        known = _is_cluster[cls] = issubclass(cls, _CLUSTERS)
    return known


def split(applied: Sequence[Policy], command: list[str]) -> list[Part] | None:
    """The command cut into one per hash tag; None when every policy shares one tag."""
    first = applied[0].tag
    if all(p.tag == first for p in applied):
        return None
    n = len(applied)
    keys, argv = command[3 : 3 + n], command[3 + n :]
    by_tag: dict[str, list[int]] = {}
    for i, policy in enumerate(applied):
        by_tag.setdefault(policy.tag, []).append(i)
    parts: list[Part] = []
    for indexes in by_tag.values():
        part_argv = [a for i in indexes for a in argv[3 * i : 3 * i + 3]]
        part_keys = [keys[i] for i in indexes]
        parts.append((indexes, [command[0], command[1], str(len(indexes)), *part_keys, *part_argv]))
    return parts


def refuses(reply: Sequence[int]) -> bool:
    """Whether one slot's ``reply`` has a policy over its limit.

    Shadow and ``block=False`` policies too: the script counts nothing when any
    of its policies is over (whether that refuses the request is for
    ``decide()``), and the later slots do the same.
    """
    return 0 in reply[::4]


class PartFailed(Exception):
    """Redis could not be asked for one slot: the policies it had, and why."""

    def __init__(self, pending: list[Policy], error: BaseException) -> None:
        super().__init__(str(error))
        self.pending = pending
        self.error = error


def _place(out: list[int], indexes: list[int], answer: Sequence[int]) -> None:
    for j, i in enumerate(indexes):
        out[4 * i : 4 * i + 4] = answer[4 * j : 4 * j + 4]


def _not_asked(applied: Sequence[Policy], indexes: list[int]) -> list[int]:
    return [v for i in indexes for v in (1, applied[i].rate.limit, 0, 0)]


def run(
    applied: Sequence[Policy],
    parts: list[Part],
    send: Callable[[list[str]], Any],
) -> list[int]:
    """Send the parts in order: the script's reply for every policy, in ``applied`` order."""
    out = [0] * (4 * len(applied))
    refused = False
    for at, (indexes, command) in enumerate(parts):
        try:
            answer = send([*command, REPORT_ONLY] if refused else command)
        except errors.REDIS_ERRORS as exc:
            if not refused:
                raise PartFailed([applied[i] for p in parts[at:] for i in p[0]], exc) from exc
            # Refused already (that stands): nothing was counted here either.
            answer = _not_asked(applied, indexes)
        _place(out, indexes, answer)
        refused = refused or refuses(answer)
    return out


async def arun(
    applied: Sequence[Policy],
    parts: list[Part],
    send: Callable[[list[str]], Awaitable[Any]],
) -> list[int]:
    """``run()`` for the asyncio client."""
    out = [0] * (4 * len(applied))
    refused = False
    for at, (indexes, command) in enumerate(parts):
        try:
            answer = await send([*command, REPORT_ONLY] if refused else command)
        except errors.REDIS_ERRORS as exc:
            if not refused:
                raise PartFailed([applied[i] for p in parts[at:] for i in p[0]], exc) from exc
            # Refused already (that stands): nothing was counted here either.
            answer = _not_asked(applied, indexes)
        _place(out, indexes, answer)
        refused = refused or refuses(answer)
    return out
