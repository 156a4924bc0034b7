"""WebSocket routes (the pub/sub role's consumers)."""

from __future__ import annotations

from django.urls import URLPattern, path

from testproject.consumers_pubsub import NotificationsConsumer, ReplayNotificationsConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/notifications/", NotificationsConsumer.as_asgi(), name="ws-notifications"),
    path(
        "ws/notifications/replay/",
        ReplayNotificationsConsumer.as_asgi(),
        name="ws-notifications-replay",
    ),
]
