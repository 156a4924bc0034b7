"""Where a session key lives on a Redis Cluster, and when a save must move it.

On a cluster, a user's index, metadata and sessions share one slot (the
user's tag, :func:`.keys.user_tag`), so the scripts writing them together
(save, delete, ``logout_everywhere``, ``MAX_SESSIONS``) touch one slot and stay
atomic. A session key names its slot by its first characters (``keys.TAG_LEN``):
a new key of a user starts with the user's tag; an anonymous session's
``cycle_key()`` keeps the tag of the key it replaces (the rename stays one script).

A session that comes to belong to a user under a key of another slot (Django's
``login()`` cycles the key *before* it stores the user) is moved at that save:
written under a new key of the user's slot (with its index entry, one script),
then the old key is removed; if the old key was gone by then (deleted
meanwhile), the new one is removed again and the save fails as an update of a
deleted session would. Off a cluster nothing here changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.utils.crypto import get_random_string

from . import keys

__all__ = ["Placement", "new_key", "place"]

KEY_LENGTH = 32


def new_key(uid: str | None = None, like: str | None = None) -> str:
    """A fresh session key: 32 of ``[a-z0-9]``; on a cluster, starting with the tag
    of user ``uid`` (else of the key ``like`` it replaces)."""
    if not keys.sharded():
        return get_random_string(KEY_LENGTH, VALID_KEY_CHARS)
    tag = keys.user_tag(uid) if uid is not None else (keys.key_tag(like) if like else "")
    return tag + get_random_string(KEY_LENGTH - len(tag), VALID_KEY_CHARS)


@dataclass(frozen=True, slots=True)
class Placement:
    """How to write a session: under ``key`` (None: its current one), as a create or
    not, renaming ``old_key`` in the same script or not; then remove ``drop``."""

    key: str | None
    must_create: bool
    old_key: str | None
    drop: str | None = None


def place(
    key: str, uid: str | None, must_create: bool, old_key: str | None, indexed: bool
) -> Placement:
    """Where this save writes (see the module docstring)."""
    if not keys.sharded():
        return Placement(None, must_create, old_key)
    if uid is not None and indexed and not keys.in_user_slot(key, uid):
        # Into the user's slot: a create under a new key, the old one removed after.
        drop = old_key if old_key is not None else (None if must_create else key)
        return Placement(new_key(uid), True, None, drop)
    if old_key is not None and keys.key_tag(old_key) != keys.key_tag(key):
        return Placement(None, must_create, None, old_key)  # not one script: two steps
    return Placement(None, must_create, old_key)
