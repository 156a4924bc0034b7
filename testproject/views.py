"""The demo's home page, and what the role pages share."""

from __future__ import annotations

import importlib
import os
import re
import shlex

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


def shell_env() -> str:
    """The ``REDIS_URL=... `` prefix a second terminal needs to reach the demo's Redis.

    The demo starts its own redis-server on a free port, so a bare ``python
    manage.py notify`` in another shell would try 127.0.0.1:6379 instead.
    """
    names = sorted(n for n in os.environ if re.fullmatch(r"REDIS(_[A-Z]+)?_URL", n))
    return "".join(f"{n}={shlex.quote(conf.mask_url(os.environ[n]))} " for n in names)
