"""Every Redis name of the pub/sub role, built here and nowhere else.

- Pub/Sub channels: ``<KEY_PREFIX>:pubsub:db<N>:g:<group>`` for a group and
  ``...:c:<channel>`` for a consumer channel (:func:`redis_channel`). Pub/Sub
  ignores the database number, so the name carries it.
- The database-blind names of older versions, ``<KEY_PREFIX>:pubsub:g:<group>``
  (:func:`legacy_redis_channel`), used during a rolling upgrade only
  (``LEGACY_CHANNELS``, docs/pubsub.md#upgrading-channel-names).
- Keys: a replay group's stream ``<KEY_PREFIX>:pubsub:replay:<group>`` and its
  recent message ids ``<KEY_PREFIX>:pubsub:ids:<group>``; a key's database
  isolates it already.
- On a Redis Cluster (and only there: single-server names never change, for a
  rolling deploy) the group or channel name is a hash tag, ``...:g:{<group>}``,
  ``...:replay:{<group>}``, ``...:ids:{<group>}``: a group's shard channel, its
  stream and its ids share one slot, so the replay script (``XADD`` +
  ``SPUBLISH``) runs on one master, and groups spread over every master.

:class:`LayerNames` caches a layer's names; the cache is dropped when
``REDISROLES`` or ``CHANNEL_LAYERS`` changes (``KEY_PREFIX`` or the database may
have), through ``conf.on_settings_change``.
"""

from __future__ import annotations

import re

from .. import conf

__all__ = [
    "CHANNEL_NAME",
    "GROUP_NAME",
    "LayerNames",
    "channel_prefix",
    "key_prefix",
    "legacy_redis_channel",
    "namespace",
    "redis_channel",
    "replay_ids",
    "replay_stream",
    "sharded",
]

# Group and channel names as docs/pubsub.md gives them: ASCII letters, digits,
# "-", "_", "."; a channel name may have one "!" (Channels' process-local
# channels). Channels' own patterns end with "$" (a trailing newline passes)
# and use Unicode \d and \w.
GROUP_NAME = re.compile(r"[A-Za-z0-9._-]+")
CHANNEL_NAME = re.compile(r"[A-Za-z0-9._-]+(![A-Za-z0-9._-]*)?")

# Entries a layer caches per kind: channel names are one per connection, so bounded.
_CACHE_MAX = 10_000


def sharded() -> bool:
    """Whether the pubsub role's Redis is a Redis Cluster (sharded pub/sub, hash-tagged names)."""
    global _sharded_generation, _sharded
    if _sharded_generation != _generation:
        try:
            _sharded = conf.topology_of(conf.role_url("pubsub")).kind == "cluster"
        except ValueError:
            _sharded = False  # a malformed URL: connecting raises ImproperlyConfigured anyway
        _sharded_generation = _generation
    return _sharded


def _tag(name: str) -> str:
    # A hash tag on a cluster only (group and channel names hold no braces).
    return "{" + name + "}" if sharded() else name


def namespace() -> str:
    """The prefix of every key and channel of the role: ``<KEY_PREFIX>:pubsub:``."""
    return conf.make_key("pubsub", "")


def redis_channel(kind: str, name: str) -> bytes:
    """The Redis Pub/Sub channel of a group (``"g"``) or consumer channel (``"c"``).

    ``<KEY_PREFIX>:pubsub:db<N>:<kind>:<name>``. Pub/Sub ignores the database
    number (a PUBLISH on db 1 reaches subscribers on db 0), so the name carries
    it: two projects on one server in different databases never hear each other.
    """
    try:
        db = conf.role_db("pubsub")
    except ValueError:
        db = 0  # a malformed URL: connecting raises ImproperlyConfigured anyway
    return conf.make_key("pubsub", f"db{db}", kind, _tag(name)).encode()


def channel_prefix(kind: str) -> bytes:
    """What every channel of ``kind`` starts with (``redis_channel(kind, "")`` less its tag)."""
    name = redis_channel(kind, "")
    return name[:-1] if sharded() else name


def key_prefix(kind: str) -> str:
    """What every replay stream (``"replay"``) or ids key (``"ids"``) starts with."""
    return conf.make_key("pubsub", kind, "{" if sharded() else "")


def legacy_redis_channel(kind: str, name: str) -> bytes:
    """The database-blind channel name of versions before ``redis_channel`` (upgrades only)."""
    return conf.make_key("pubsub", kind, name).encode()


def replay_stream(group: str) -> str:
    """The replay stream key of a group (a key: its database isolates it already)."""
    return conf.make_key("pubsub", "replay", _tag(group))


def replay_ids(group: str) -> str:
    """The key of a replay group's recent message ids (see ``lua/publish.lua``)."""
    return conf.make_key("pubsub", "ids", _tag(group))


# Bumped when a setting the names derive from changes: every LayerNames drops its cache.
_generation = 0
_sharded_generation = -1
_sharded = False


def _settings_changed() -> None:
    global _generation
    _generation += 1


conf.on_settings_change(_settings_changed, settings=("REDISROLES", "CHANNEL_LAYERS"))


class LayerNames:
    """One layer's names, cached: group targets, streams, and the names it listens on.

    ``legacy_channels`` is the layer's ``LEGACY_CHANNELS`` step: ``"publish"``
    publishes on the old names, any true value also listens on them.
    ``replay_groups`` are the compiled ``REPLAY_GROUPS`` patterns.
    """

    __slots__ = (
        "_channels",
        "_generation",
        "_keys",
        "_replay",
        "_targets",
        "legacy",
        "replay_groups",
    )

    def __init__(
        self, legacy_channels: str | bool, replay_groups: tuple[re.Pattern[str], ...]
    ) -> None:
        self.legacy = legacy_channels
        self.replay_groups = replay_groups
        self._generation = _generation
        self._channels: dict[tuple[str, str], bytes] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._targets: dict[str, tuple[bytes, bool]] = {}
        self._replay: dict[str, bool] = {}

    def _fresh(self) -> None:
        if self._generation != _generation:
            self._channels.clear()
            self._keys.clear()
            self._targets.clear()
            self._generation = _generation

    def target(self, group: str) -> tuple[bytes, bool] | None:
        """(Redis channel, is replay) of a group already validated, or None."""
        if self._generation != _generation:
            return None
        return self._targets.get(group)

    def remember_target(self, group: str) -> tuple[bytes, bool]:
        """(Redis channel, is replay) of a valid group name, kept for :meth:`target`."""
        target = (self.publish_channel("g", group), self.is_replay(group))
        if len(self._targets) < _CACHE_MAX:
            self._targets[group] = target
        return target

    def publish_channel(self, kind: str, name: str) -> bytes:
        """The channel a group (``"g"``) or consumer channel (``"c"``) is published on."""
        self._fresh()
        key = (kind, name)
        value = self._channels.get(key)
        if value is None:
            if self.legacy == "publish":
                value = legacy_redis_channel(kind, name)  # upgrade step 1: old names
            else:
                value = redis_channel(kind, name)
            if len(self._channels) > _CACHE_MAX:
                self._channels.clear()
            self._channels[key] = value
        return value

    def _key(self, kind: str, group: str) -> str:
        self._fresh()
        key = (kind, group)
        value = self._keys.get(key)
        if value is None:
            value = replay_stream(group) if kind == "r" else replay_ids(group)
            if len(self._keys) > _CACHE_MAX:
                self._keys.clear()
            self._keys[key] = value
        return value

    def stream(self, group: str) -> str:
        """The replay stream of ``group``."""
        return self._key("r", group)

    def ids(self, group: str) -> str:
        """The recent message ids of ``group``'s replay publishes."""
        return self._key("i", group)

    def listen(self, kind: str, name: str) -> list[bytes]:
        """The Redis channels a group or channel is subscribed on (both during an upgrade)."""
        names = [redis_channel(kind, name)]
        if self.legacy:
            names.append(legacy_redis_channel(kind, name))
        return names

    def is_replay(self, group: str) -> bool:
        """Whether broadcasts to ``group`` are also kept in a replay stream."""
        value = self._replay.get(group)
        if value is None:
            value = any(p.match(group) for p in self.replay_groups)
            if len(self._replay) < _CACHE_MAX:
                self._replay[group] = value
        return value
