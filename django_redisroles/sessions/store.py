"""The Redis session store: one String per session, one round trip per load and save.

What is stored where is in :mod:`.keys`; what a save sends, and what the reply
means, in :mod:`.plan`. Each sync method has its async twin beside it, both
running the same plan: ``_plan_save`` builds it, ``_run`` / ``_arun`` send it.
The user index is the :mod:`.index` module's (the store calls it; the index
talks back only through :class:`~.index.IndexedSession`).
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted

from .. import connections, errors
from . import durable, index, keys, plan, slots
from .compat import ASYNC_ACCESSORS
from .index import IndexedSession, LoginMeta
from .options import OPTIONS, ROLE
from .outage import SessionUnavailable, unavailable

__all__ = ["SessionStore", "SessionUnavailable"]

#: Tries at a fresh session key before giving up (a collision is all but impossible).
_KEY_ATTEMPTS = 100


class SessionStore(*ASYNC_ACCESSORS, IndexedSession, SessionBase):  # type: ignore[misc]
    """Django session store on the sessions role's Redis (sync and async)."""

    def __init__(self, session_key: str | None = None) -> None:
        self._known = plan.Known()
        #: The ``SessionUnavailable`` this store raised, if any (our middleware answers 503).
        self.outage: SessionUnavailable | None = None
        super().__init__(session_key)

    # -- keys ----------------------------------------------------------------
    def _validate_session_key(self, key: Any) -> bool:
        return keys.valid_session_key(key)

    def _new_key(self, data: dict[str, Any] | None = None, like: str | None = None) -> str:
        # No EXISTS round trip: SET NX refuses a (practically impossible) collision.
        # On a cluster, in the slot of the session's user (slots.py).
        uid = None if data is None else data.get(SESSION_KEY)
        return slots.new_key(None if uid is None else str(uid), like)

    def _get_new_session_key(self) -> str:
        return self._new_key()

    async def _aget_new_session_key(self) -> str:
        return self._new_key()

    # -- the index's side (IndexedSession) -------------------------------------
    def record_login(self, meta: LoginMeta) -> None:
        self._known.login_meta = dict(meta)
        # login() changed the session, so it is saved at the end of the request
        # (the index update included). Make sure, in case a custom login flow
        # left it unmodified.
        self.modified = True

    def record_logout(self, user_pk: str) -> None:
        self._known.uid = user_pk

    # -- data ----------------------------------------------------------------
    def _serializer(self) -> keys.Codec:
        """A ``SESSION_SERIALIZER`` instance; never a pickle-based one."""
        return keys.serializer(self.serializer)

    def _loaded(self, raw: bytes | None) -> dict[str, Any]:
        if raw is None:
            # Not found (expired, deleted, never existed): a new session,
            # never a record created on load.
            self._session_key = None
            self._known.forget()
            return {}
        score, payload = keys.split_stored(raw)
        data = keys.decode(payload, self._serializer())
        uid = data.get(SESSION_KEY)
        self._known.uid = None if uid is None else str(uid)
        self._known.auth_hash = data.get(HASH_SESSION_KEY)
        self._known.score = score
        return data

    def _plan_save(
        self, data: dict[str, Any], must_create: bool, old_key: str | None = None
    ) -> plan.SavePlan:
        uid = data.get(SESSION_KEY)
        return plan.plan_save(
            session_key=self.session_key or "",  # callers create a key first
            payload=keys.encode(data, self._serializer()),
            uid=None if uid is None else str(uid),
            ttl=int(self.get_expiry_age(expiry=data.get("_session_expiry"))),
            now=time.time(),
            known=self._known,
            options=OPTIONS.get(),
            must_create=must_create,
            old_key=old_key,
        )

    def _saved(
        self, result: int, data: dict[str, Any], saved: plan.SavePlan
    ) -> tuple[str, str] | None:
        """Bookkeeping after a save; returns (user, old auth hash) when the auth hash changed.

        A changed hash means a password change (the user's other sessions must
        end) unless it is a ``SECRET_KEY`` rotation: see :func:`.index.password_changed`.
        """
        if result == 0:
            raise CreateError
        if result == -1:
            raise UpdateError
        if result == -2:
            # Raised from cycle_key() (login(), update_session_auth_hash(), ...)
            # inside a view: a 400, as Django's middleware answers an UpdateError.
            raise SessionInterrupted(
                "The request's session was deleted before the request completed "
                "(the user may have been logged out in a concurrent request)."
            )
        known = self._known
        uid, new_hash, old_hash = saved.uid, data.get(HASH_SESSION_KEY), known.auth_hash
        changed = None
        # update_session_auth_hash() after a password change: this session
        # stays, the user's other sessions end now (Django would reject them
        # lazily on their next request anyway).
        if (
            uid is not None
            and uid == known.uid
            and old_hash is not None
            and new_hash is not None
            and new_hash != old_hash
            and OPTIONS.get().user_index
        ):
            changed = (uid, old_hash)
        known.uid, known.auth_hash, known.score = uid, new_hash, saved.score
        known.login_meta = None
        return changed

    def _place(self, data: dict[str, Any], must_create: bool, old_key: str | None) -> Any:
        """Where this save writes: on a Redis Cluster, maybe a new key in the user's slot."""
        uid = data.get(SESSION_KEY)
        placed = slots.place(
            self.session_key or "",
            None if uid is None else str(uid),
            must_create,
            old_key,
            OPTIONS.get().user_index,
        )
        if placed.key is not None:
            self._session_key = placed.key
            self.modified = True  # the cookie must name the new key
        return placed

    def _waits(self, todo: plan.SavePlan, must_create: bool) -> int:
        """Replicas to WAIT for after this save: a new session or a login (durable.py)."""
        if todo.kind == "unlink" or not (must_create or self._known.login_meta is not None):
            return 0
        return durable.replicas()

    @staticmethod
    def _moved_away(old_key: str | None) -> None:
        """The session a cluster save moved (``slots``) was deleted meanwhile: the error
        the same save gives off a cluster."""
        if old_key is not None:
            raise SessionInterrupted("The request's session was deleted before it completed.")
        raise UpdateError

    # -- sync API --------------------------------------------------------------
    def _redis(self) -> Any:  # redis.Redis, or a RedisCluster for redis+cluster://
        return connections.get_redis(ROLE)

    def _call(self, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except errors.REDIS_ERRORS as exc:
            error = unavailable(exc)
            if error is None:
                raise
            self.outage = error
            raise error from exc

    def load(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        raw = self._call(self._redis().get, keys.session_key_name(self.session_key))
        return self._loaded(raw)

    def exists(self, session_key: str | None) -> bool:
        if session_key is None or not self._validate_session_key(session_key):
            return False
        return bool(self._call(self._redis().exists, keys.session_key_name(session_key)))

    def create(self) -> None:
        data = self._get_session(no_load=True)
        for _ in range(_KEY_ATTEMPTS):
            self._session_key = self._new_key(data)
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key after 100 attempts.")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        self._write(data, must_create)

    def _run(self, todo: plan.SavePlan, wait: int = 0) -> Any:
        if wait:  # a new session: the write and a WAIT for replicas, one pipeline
            return durable.run(todo, wait)
        client = self._redis()
        if todo.kind == "set":
            if todo.nx:
                return client.set(todo.key, todo.value, ex=todo.ttl, nx=True, get=True)
            return client.set(todo.key, todo.value, ex=todo.ttl, xx=True)
        if todo.kind == "unlink":
            return client.unlink(todo.key)
        return plan.SAVE(client, todo.keys, todo.args)

    def _read_candidates(self, todo: plan.SavePlan) -> None:
        client = self._redis()
        members = client.zrangebyscore(todo.keys[2], plan.cutoff(todo), "+inf")
        candidates = plan.cap_candidates(todo, members)
        if candidates:
            with client.pipeline(transaction=False) as pipe:
                for member in candidates:
                    pipe.get(keys.session_key_name(member))
                raws = pipe.execute()
            plan.declare(todo, candidates, raws, self._serializer())

    def _write(self, data: dict[str, Any], must_create: bool, old_key: str | None = None) -> None:
        placed = self._place(data, must_create, old_key)
        todo = self._plan_save(data, placed.must_create, placed.old_key)
        wait = self._waits(todo, placed.must_create)
        for attempt in range(plan.CAP_ATTEMPTS):
            if todo.cap:
                self._call(self._read_candidates, todo)
            reply = self._call(self._run, todo, wait)
            if not plan.stale(todo, reply):
                break
            plan.cap_retry(todo, attempt)
        changed = self._saved(plan.result(todo, reply), data, todo)
        if placed.drop is not None and not self._call(
            self._redis().unlink, keys.session_key_name(placed.drop)
        ):
            self.delete()  # the session was deleted meanwhile: no resurrection
            self._moved_away(old_key)
        if changed is not None:
            index.password_changed(*changed, keep=self.session_key)

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        if not self._validate_session_key(session_key):
            return  # never stored: nothing to delete
        script_keys = plan.plan_delete(session_key, self._known.uid, OPTIONS.get())
        if script_keys is None:
            self._call(self._redis().unlink, keys.session_key_name(session_key))
        else:
            self._call(plan.DELETE, self._redis(), script_keys, [session_key])

    def flush(self) -> None:
        super().flush()
        self._known.forget()

    def cycle_key(self) -> None:
        """New session key, same data: one round trip (the old key is removed atomically)."""
        data = self._session
        old_key = self.session_key
        if old_key is None:
            self.create()
            self._session_cache = data
            return
        for _ in range(_KEY_ATTEMPTS):
            self._session_key = self._new_key(data, like=old_key)
            try:
                self._write(data, must_create=True, old_key=old_key)
            except CreateError:
                continue
            self._session_cache = data
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key after 100 attempts.")

    @classmethod
    def clear_expired(cls) -> None:
        """Trim expired entries from the user indexes (Redis expires the sessions)."""
        index.trim_indexes()

    # -- async API (native: redis.asyncio, no thread hop) ----------------------
    # Written against SessionBase of Django 4.2 too, which has no async API:
    # only our own helpers (and compat.py's accessors) are used here.
    def _aredis(self) -> Any:  # the asyncio client of get_async_redis
        return connections.get_async_redis(ROLE)

    async def _acall(self, func: Any, *args: Any) -> Any:
        try:
            return await func(*args)
        except errors.REDIS_ERRORS as exc:
            error = unavailable(exc)
            if error is None:
                raise
            self.outage = error
            raise error from exc

    async def _aget_session(self, no_load: bool = False) -> dict[str, Any]:
        """The session, loaded now if it was not (Django 5's async accessors call this)."""
        self.accessed = True
        try:
            cached: dict[str, Any] = self._session_cache
        except AttributeError:
            if self.session_key is None or no_load:
                cached = {}
            else:
                cached = await self.aload()
            self._session_cache = cached
        return cached

    async def aload(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        raw = await self._acall(self._aredis().get, keys.session_key_name(self.session_key))
        return self._loaded(raw)

    async def aexists(self, session_key: str | None) -> bool:
        if session_key is None or not self._validate_session_key(session_key):
            return False
        return bool(await self._acall(self._aredis().exists, keys.session_key_name(session_key)))

    async def acreate(self) -> None:
        data = await self._aget_session(no_load=True)
        for _ in range(_KEY_ATTEMPTS):
            self._session_key = self._new_key(data)
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key after 100 attempts.")

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)
        await self._awrite(data, must_create)

    async def _arun(self, todo: plan.SavePlan, wait: int = 0) -> Any:
        if wait:
            return await durable.arun(todo, wait)
        client = self._aredis()
        if todo.kind == "set":
            if todo.nx:
                return await client.set(todo.key, todo.value, ex=todo.ttl, nx=True, get=True)
            return await client.set(todo.key, todo.value, ex=todo.ttl, xx=True)
        if todo.kind == "unlink":
            return await client.unlink(todo.key)
        return await plan.SAVE.acall(client, todo.keys, todo.args)

    async def _aread_candidates(self, todo: plan.SavePlan) -> None:
        client = self._aredis()
        members = await client.zrangebyscore(todo.keys[2], plan.cutoff(todo), "+inf")
        candidates = plan.cap_candidates(todo, members)
        if candidates:
            async with client.pipeline(transaction=False) as pipe:
                for member in candidates:
                    pipe.get(keys.session_key_name(member))
                raws = await pipe.execute()
            plan.declare(todo, candidates, raws, self._serializer())

    async def _awrite(
        self, data: dict[str, Any], must_create: bool, old_key: str | None = None
    ) -> None:
        placed = self._place(data, must_create, old_key)
        todo = self._plan_save(data, placed.must_create, placed.old_key)
        wait = self._waits(todo, placed.must_create)
        for attempt in range(plan.CAP_ATTEMPTS):
            if todo.cap:
                await self._acall(self._aread_candidates, todo)
            reply = await self._acall(self._arun, todo, wait)
            if not plan.stale(todo, reply):
                break
            plan.cap_retry(todo, attempt)
        changed = self._saved(plan.result(todo, reply), data, todo)
        if placed.drop is not None and not await self._acall(
            self._aredis().unlink, keys.session_key_name(placed.drop)
        ):
            await self.adelete()  # the session was deleted meanwhile: no resurrection
            self._moved_away(old_key)
        if changed is not None:
            await index.apassword_changed(*changed, keep=self.session_key)

    async def adelete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        if not self._validate_session_key(session_key):
            return
        script_keys = plan.plan_delete(session_key, self._known.uid, OPTIONS.get())
        if script_keys is None:
            await self._acall(self._aredis().unlink, keys.session_key_name(session_key))
        else:
            await self._acall(plan.DELETE.acall, self._aredis(), script_keys, [session_key])

    async def aflush(self) -> None:
        self.clear()
        await self.adelete()
        self._session_key = None
        self._known.forget()

    async def acycle_key(self) -> None:
        data = await self._aget_session()
        old_key = self.session_key
        if old_key is None:
            await self.acreate()
            self._session_cache = data
            return
        for _ in range(_KEY_ATTEMPTS):
            self._session_key = self._new_key(data, like=old_key)
            try:
                await self._awrite(data, must_create=True, old_key=old_key)
            except CreateError:
                continue
            self._session_cache = data
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key after 100 attempts.")

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        if "expiry" not in kwargs:
            kwargs["expiry"] = (await self._aget_session()).get("_session_expiry")
        return self.get_expiry_age(**kwargs)

    async def aget_expire_at_browser_close(self) -> bool:
        await self._aget_session()
        return self.get_expire_at_browser_close()

    @classmethod
    async def aclear_expired(cls) -> None:
        await index.atrim_indexes()
