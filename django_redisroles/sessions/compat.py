"""Django 5.0's async session accessors, for Django 4.2 (whose ``SessionBase`` has none).

``SessionStore`` mixes :data:`ASYNC_ACCESSORS` in: empty on Django 5+, which
keeps its own.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import SessionBase

__all__ = ["ASYNC_ACCESSORS"]


class _AsyncAccessors:
    """Django 5.0's async session accessors, for Django 4.2 (which has none).

    Only mixed in when ``SessionBase`` lacks them, so Django 5+ keeps its own.
    """

    _aget_session: Any
    modified: bool

    async def aget(self, key: str, default: Any = None) -> Any:
        return (await self._aget_session()).get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        (await self._aget_session())[key] = value
        self.modified = True

    async def apop(self, key: str, *default: Any) -> Any:
        session = await self._aget_session()
        self.modified = self.modified or key in session
        return session.pop(key, *default)

    async def asetdefault(self, key: str, value: Any) -> Any:
        session = await self._aget_session()
        if key in session:
            return session[key]
        await self.aset(key, value)
        return value

    async def aupdate(self, dict_: dict[str, Any]) -> None:
        (await self._aget_session()).update(dict_)
        self.modified = True

    async def ahas_key(self, key: str) -> bool:
        return key in (await self._aget_session())

    async def akeys(self) -> Any:
        return (await self._aget_session()).keys()

    async def avalues(self) -> Any:
        return (await self._aget_session()).values()

    async def aitems(self) -> Any:
        return (await self._aget_session()).items()

    async def aset_expiry(self, value: Any) -> None:
        await self._aget_session()
        self.set_expiry(value)  # type: ignore[attr-defined]  # loaded: no I/O

    async def aget_expiry_date(self, **kwargs: Any) -> Any:
        await self._aget_session()
        return self.get_expiry_date(**kwargs)  # type: ignore[attr-defined]

    async def aset_test_cookie(self) -> None:
        await self.aset(SessionBase.TEST_COOKIE_NAME, SessionBase.TEST_COOKIE_VALUE)

    async def atest_cookie_worked(self) -> bool:
        return bool(
            (await self.aget(SessionBase.TEST_COOKIE_NAME)) == SessionBase.TEST_COOKIE_VALUE
        )

    async def adelete_test_cookie(self) -> None:
        del (await self._aget_session())[SessionBase.TEST_COOKIE_NAME]
        self.modified = True


#: The base classes the store needs on this Django: ``(_AsyncAccessors,)`` on 4.2.
ASYNC_ACCESSORS: tuple[type, ...] = () if hasattr(SessionBase, "aget") else (_AsyncAccessors,)
