from __future__ import annotations

import importlib

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from django_redisroles import conf


def home(request: HttpRequest) -> HttpResponse:
    """Each role, the Redis it uses, and the demo pages it offers."""
    roles = []
    for role in conf.ROLES:
        module = importlib.import_module(f"testproject.urls_{role}")
        roles.append(
            {"name": role, "url": conf.mask_url(conf.role_url(role)), "links": module.DEMO_LINKS}
        )
    return render(request, "testproject/home.html", {"roles": roles})
