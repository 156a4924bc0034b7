"""The doctor's rules, one module per role (``common`` for what every role needs).

Each rule is a pure function of the facts (:class:`~.base.Context`) returning
:class:`~..model.Finding` objects; :data:`RULES` runs them all. The rate-limit
role has no rule of its own: its keys-without-TTL rule is in ``common``.
"""

from __future__ import annotations

from . import cache, common, locks, pubsub, sessions, topology
from .base import Context, Rule

__all__ = ["RULES", "Context", "Rule"]

#: Every rule, in the order they run (findings are sorted afterwards).
RULES: list[Rule] = [
    *common.RULES,
    *topology.RULES,
    *cache.RULES,
    *sessions.RULES,
    *pubsub.RULES,
    *locks.RULES,
]
