"""``UserSession``: one live session of a user as :func:`~.index.user_sessions` lists it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["UserSession", "describe_user_agent", "session_of"]


@dataclass(frozen=True)
class UserSession:
    """One live session of a user, as listed by :func:`user_sessions`."""

    session_key: str
    ip: str | None
    user_agent: str
    created: datetime | None
    last_seen: datetime | None
    expires: datetime

    @property
    def device(self) -> str:
        """A short, human description of the user agent ("Firefox on Linux")."""
        return describe_user_agent(self.user_agent)


_BROWSERS = (
    ("Edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/")),
    ("Safari", re.compile(r"Safari/")),
    ("curl", re.compile(r"^curl/")),
    ("Python", re.compile(r"python-requests|python-httpx|aiohttp|Python-urllib")),
)
_SYSTEMS = (
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("Linux", re.compile(r"Linux|X11")),
)


def describe_user_agent(user_agent: str) -> str:
    """A short label such as ``Firefox on Linux`` or ``Safari on iOS``."""
    browser = next((name for name, rx in _BROWSERS if rx.search(user_agent)), None)
    system = next((name for name, rx in _SYSTEMS if rx.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or ("Unknown device" if not user_agent else user_agent[:40])


def _dt(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError):
        return None


def session_of(
    session_key: str, meta: dict[bytes, bytes], member: bytes, pttl: Any, now: float
) -> UserSession:
    """A listed session: its index metadata (``meta``, the user's hash) and its PTTL."""
    info: dict[str, Any] = {}
    blob = meta.get(member)
    if blob:
        try:
            info = json.loads(blob)
        except ValueError:
            info = {}
    return UserSession(
        session_key=session_key,
        ip=info.get("ip"),
        user_agent=str(info.get("ua") or ""),
        created=_dt(info.get("created")),
        last_seen=_dt(meta.get(member + b"|seen")),
        expires=_dt(now + max(int(pttl), 0) / 1000) or datetime.now(UTC),
    )
