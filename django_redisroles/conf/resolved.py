"""Values derived from settings, built once and dropped when their settings change.

The app's one ``setting_changed`` receiver lives here. A role keeps what it
derives from settings (its validated options, compiled rules, a connection
pool) in a :class:`Resolved`, or registers a reset callback with
:func:`on_settings_change`; ``override_settings`` and any other
``setting_changed`` sender then drop exactly what depends on the setting that
changed, and the next access builds it again from the new settings.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from django.core.signals import setting_changed

__all__ = ["Resolved", "on_settings_change", "reset_all"]

T = TypeVar("T")
Callback = TypeVar("Callback", bound=Callable[[], object])

_UNSET: Any = object()
_lock = threading.Lock()
# Module-level Resolved objects live as long as their module; a weak set lets
# short-lived ones (tests) go.
_values: weakref.WeakSet[Resolved[Any]] = weakref.WeakSet()
_callbacks: list[tuple[frozenset[str], Callable[[], object]]] = []


class Resolved(Generic[T]):
    """``build()``'s value, built on first :meth:`get` and kept until ``settings`` change.

    ``settings``: the Django setting names the value is derived from
    (``REDISROLES`` by default). ``build`` must be cheap to call twice: two
    threads missing at once may both build (the first to finish wins); a
    build that races with a reset is not kept.
    """

    __slots__ = ("__weakref__", "_build", "_generation", "_value", "name", "settings")

    def __init__(
        self,
        build: Callable[[], T],
        *,
        settings: Iterable[str] = ("REDISROLES",),
        name: str | None = None,
    ) -> None:
        self._build = build
        self._value: T = _UNSET
        self._generation = 0
        self.settings = frozenset(settings)
        self.name = name or getattr(build, "__qualname__", repr(build))
        with _lock:
            _values.add(self)

    def get(self) -> T:
        """The value, built now if settings changed since it was last built."""
        value = self._value
        if value is _UNSET:
            generation = self._generation
            value = self._build()
            if generation == self._generation:  # not reset while we built it
                self._value = value
        return value

    def reset(self) -> None:
        """Drop the value: the next :meth:`get` builds it again."""
        self._generation += 1
        self._value = _UNSET

    @property
    def built(self) -> bool:
        """Whether a value is held right now."""
        return self._value is not _UNSET

    def __repr__(self) -> str:
        return f"<Resolved {self.name} {'built' if self.built else 'unbuilt'}>"


def on_settings_change(
    callback: Callback | None = None, *, settings: Iterable[str] = ("REDISROLES",)
) -> Any:
    """Call ``callback()`` whenever one of ``settings`` changes (also a decorator).

    For state that is not one value (pools, per-loop clients, counters). The
    callback must not raise; it runs in the thread that changed the setting.
    """
    names = frozenset(settings)

    def register(fn: Callback) -> Callback:
        with _lock:
            _callbacks.append((names, fn))
        return fn

    if callback is None:
        return register
    return register(callback)


def reset_all(setting: str | None = None) -> None:
    """Drop everything derived from ``setting`` (None: from any setting).

    ``setting_changed`` calls this; call it yourself after changing what
    settings read at run time, such as ``$REDIS_URL``.
    """
    with _lock:
        values = list(_values)
        callbacks = list(_callbacks)
    for value in values:
        if setting is None or setting in value.settings:
            value.reset()
    for names, callback in callbacks:
        if setting is None or setting in names:
            callback()


def _on_setting_changed(*, setting: str, **kwargs: object) -> None:
    reset_all(setting)


setting_changed.connect(_on_setting_changed, dispatch_uid="django_redisroles.conf.resolved")
