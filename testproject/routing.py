"""WebSocket routes (the pub/sub role's consumers)."""

from __future__ import annotations

from django.urls import URLPattern, path

from testproject.consumers_pubsub import NotificationsConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/notifications/", NotificationsConsumer.as_asgi(), name="ws-notifications"),
]
