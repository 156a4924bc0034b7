"""``redisroles doctor``: each role's Redis server checked against what the role needs.

One engine, two front ends: ``manage.py redisroles doctor`` (a table or JSON,
exit status 1 on an error) and ``manage.py check --deploy`` (system checks
``redisroles.E1xx``/``W1xx``). Both call :func:`run`.

- :mod:`.wiring`: which roles the project wires, and each role's key namespaces
  (from the roles' own options and key names);
- :mod:`.facts`: connecting, ``INFO``/``CONFIG``/``CLIENT LIST``, pings, ACL
  probes, the bounded ``SCAN`` sample, the new-connection rate;
- :mod:`.rules`: pure functions of those facts, one module per role, producing
  :class:`Finding` objects with a severity, the roles, the server, a message
  and the exact fix (``CONFIG SET`` and the ``redis.conf`` line, or the
  settings change);
- :mod:`.report`: the :class:`Report`, its JSON document and its text;
- :mod:`.engine`: :func:`run`, in that order.

The doctor recognises Valkey by ``INFO``'s ``server_name`` and reports its own
version (Valkey also answers ``redis_version: 7.2.4``).
"""

from __future__ import annotations

from .engine import run
from .facts import DOCTOR_CLIENT_NAME, url_label
from .model import ERROR, SEVERITIES, WARNING, Finding, Fix, Limits, Server, conf_size, human
from .report import JSON_SCHEMA_VERSION, Report, render
from .rules import RULES, Context, Rule
from .rules.common import version
from .wiring import CACHE_BACKEND

__all__ = [
    "CACHE_BACKEND",
    "DOCTOR_CLIENT_NAME",
    "ERROR",
    "JSON_SCHEMA_VERSION",
    "RULES",
    "SEVERITIES",
    "WARNING",
    "Context",
    "Finding",
    "Fix",
    "Limits",
    "Report",
    "Rule",
    "Server",
    "conf_size",
    "human",
    "render",
    "run",
    "url_label",
    "version",
]
