from __future__ import annotations

from django.core.checks import run_checks

LAYER = "django_redisroles.pubsub.RedisRolesChannelLayer"


def ids() -> list[str]:
    return [m.id for m in run_checks() if (m.id or "").startswith("redisroles.")]


def test_testproject_wiring_is_clean() -> None:
    assert [i for i in ids() if i.startswith(("redisroles.E04", "redisroles.W04"))] == []


def test_bad_role_setting_is_e040(pubsub_settings) -> None:
    pubsub_settings(CAPACITY=-1)
    assert "redisroles.E040" in ids()


def test_bad_layer_config_is_e041(settings) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": LAYER, "CONFIG": {"hosts": ["redis://x:6379"], "expiry": "soon"}}
    }
    messages = [m for m in run_checks() if m.id == "redisroles.E041"]
    assert len(messages) == 2
    assert any("hosts" in m.msg and "REDISROLES" in m.msg for m in messages)
    assert all(m.hint for m in messages)


def test_replay_with_small_capacity_is_w040(settings) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": LAYER,
            "CONFIG": {"capacity": 10, "replay_groups": ["news"], "replay_maxlen": 500},
        }
    }
    assert "redisroles.W040" in ids()


def test_pubsub_settings_without_our_layer_is_w041(settings, pubsub_settings) -> None:
    pubsub_settings(REPLAY_GROUPS=["news"])
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert "redisroles.W041" in ids()


def test_w040_follows_its_hint_channel_capacity_for_replay_consumers(settings) -> None:
    # The hint says: raise channel_capacity for the replay consumers' channels.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": LAYER,
            "CONFIG": {
                "capacity": 10,
                "channel_capacity": {"replay.*": 500},
                "replay_groups": ["news"],
                "replay_maxlen": 500,
            },
        }
    }
    assert "redisroles.W040" not in ids()
