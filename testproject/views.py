"""The demo's home page, and what the role pages share."""

from __future__ import annotations

import functools
import importlib
import os
import re
import shlex
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
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


def members_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """``login_required`` for sync and async views (Django 4.2's is sync only).

    The pages that show users' data (the cached user row) or lock holders'
    host, pid and command line are for logged-in users only.
    """
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not await sync_to_async(lambda: request.user.is_authenticated)():
                return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
            return await view(request, *args, **kwargs)

        return async_inner

    @functools.wraps(view)
    def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return view(request, *args, **kwargs)

    return inner
