"""``@rate_limit``: per-view limits that stack into one Redis round trip."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import ImproperlyConfigured

from .enforce import aprocess, mark_disabled, process
from .options import OPTIONS
from .policy import Policy, make_policy
from .rates import Rate

V = TypeVar("V")

_POLICIES = "_ratelimit_policies"


def _find_request(args: tuple[Any, ...]) -> Any:
    # A function view gets (request, ...); a view method (self, request, ...).
    if args and hasattr(args[0], "META"):
        return args[0]
    if len(args) > 1 and hasattr(args[1], "META"):
        return args[1]
    raise TypeError("@rate_limit: the decorated callable did not receive an HttpRequest")


def _default_group(view: Any) -> str:
    return f"{getattr(view, '__module__', '')}.{getattr(view, '__qualname__', repr(view))}"


def rate_limit(
    rate: str | Rate,
    key: str | Callable[[Any], str | None] = "ip",
    *,
    algorithm: str | None = None,
    methods: Iterable[str] | str | None = None,
    group: str | None = None,
    block: bool = True,
    shadow: bool | None = None,
    fail: str | None = None,
    name: str = "",
    slot: str | None = None,
) -> Callable[[V], V]:
    """Limit a view to ``rate`` per ``key``: ``@rate_limit("60/m", key="ip")``.

    ``rate``: ``"60/m"``, ``"5/s"``, ``"1000/h"``, ``"100/10m"``. ``key``:
    ``"ip"``, ``"user"``, ``"user_or_ip"``, ``"header:<name>"``,
    ``"get:<param>"``, ``"post:<param>"`` or a callable ``(request) -> str``
    (``None`` or ``""`` exempts the request). ``algorithm``: ``"fixed"``,
    ``"sliding"`` or ``"gcra"`` (default: the ``ALGORITHM`` setting).
    ``methods``: only count these HTTP methods. ``group``: share counters
    between views (default: the view's dotted name). ``block=False``: let the
    view run and read ``request.ratelimit``. ``shadow=True``: count and
    signal/log, never refuse. ``fail``: ``"open"``/``"closed"`` when Redis is
    unreachable (default: the ``FAIL`` setting). ``slot``: the Redis Cluster
    hash tag of the counters (default: the group); policies with one ``slot``
    are counted all-or-nothing together on a cluster too.

    Works on sync and async function views, on ``View.as_view()`` results and
    on class-based views (decorate the class). Stacked ``@rate_limit``
    decorators are checked together in one Redis round trip. Bad arguments
    raise ``ImproperlyConfigured`` here, at import time.
    """

    # method_decorator() applies this decorator again on every request: build
    # each group's policy once, not per request.
    built: dict[str, Policy] = {}

    def decorator(view: Any) -> Any:
        if isinstance(view, type):
            return _decorate_class(
                view, rate, key, algorithm, methods, group, block, shadow, fail, name, slot
            )
        inner: Any = view
        existing: tuple[Policy, ...] = ()
        ours: Any = getattr(view, "_ratelimit_self", None)
        if ours is view:  # another @rate_limit: merge
            inner, existing = ours._ratelimit_view, getattr(ours, _POLICIES)
        grp = group or _default_group(inner)  # stacked defaults share the view's group
        policy = built.get(grp)
        if policy is None:
            if len(built) >= 256:  # one decorator, unboundedly many views: don't grow
                built.clear()
            policy = built[grp] = make_policy(
                rate,
                key,
                algorithm=algorithm,
                group=grp,
                methods=methods,
                block=block,
                shadow=shadow,
                fail=fail,
                name=name,
                slot=slot,
            )
        return _wrap(inner, (*existing, policy))

    return decorator


def _wrap(view: Callable[..., Any], policies: tuple[Policy, ...]) -> Any:
    if not callable(view):
        raise ImproperlyConfigured(f"@rate_limit decorates views, got {view!r}.")
    if iscoroutinefunction(view):

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            opts = OPTIONS.get()
            request = _find_request(args)
            if not opts.enabled:
                mark_disabled(request)
                return await view(*args, **kwargs)
            return await aprocess(request, policies, opts, lambda: view(*args, **kwargs), view)

        wrapper: Any = async_wrapper
    else:

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            opts = OPTIONS.get()
            request = _find_request(args)
            if not opts.enabled:
                mark_disabled(request)
                return view(*args, **kwargs)
            return process(request, policies, opts, lambda: view(*args, **kwargs), view)

        wrapper = sync_wrapper
    functools.update_wrapper(wrapper, view)
    setattr(wrapper, _POLICIES, policies)
    wrapper._ratelimit_view = view
    # functools.wraps copies attributes onto other decorators' wrappers; this
    # one tells our own wrapper apart from such copies.
    wrapper._ratelimit_self = wrapper
    return wrapper


def _decorate_class(
    cls: type,
    rate: str | Rate,
    key: str | Callable[[Any], str | None],
    algorithm: str | None,
    methods: Iterable[str] | str | None,
    group: str | None,
    block: bool,
    shadow: bool | None,
    fail: str | None,
    name: str,
    slot: str | None,
) -> type:
    if not hasattr(cls, "dispatch"):
        raise ImproperlyConfigured(f"@rate_limit on a class needs a Django View, got {cls!r}.")
    existing: tuple[Policy, ...] = cls.__dict__.get(_POLICIES, ())
    original = cls.__dict__.get("_ratelimit_dispatch") or cls.dispatch
    grp = group or _default_group(cls)
    policy = make_policy(
        rate,
        key,
        algorithm=algorithm,
        group=grp,
        methods=methods,
        block=block,
        shadow=shadow,
        fail=fail,
        name=name,
        slot=slot,
    )
    policies = (*existing, policy)
    if getattr(cls, "view_is_async", False):

        async def dispatch(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            opts = OPTIONS.get()
            if not opts.enabled:
                mark_disabled(request)
                return await original(self, request, *args, **kwargs)
            return await aprocess(
                request, policies, opts, lambda: original(self, request, *args, **kwargs), cls
            )

    else:

        def dispatch(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            opts = OPTIONS.get()
            if not opts.enabled:
                mark_disabled(request)
                return original(self, request, *args, **kwargs)
            return process(
                request, policies, opts, lambda: original(self, request, *args, **kwargs), cls
            )

    functools.update_wrapper(dispatch, original)
    cls.dispatch = dispatch
    setattr(cls, _POLICIES, policies)
    cls._ratelimit_dispatch = original  # type: ignore[attr-defined]
    return cls
