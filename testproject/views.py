"""The demo's home page, and what the role pages share."""

from __future__ import annotations

import functools
import importlib
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
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
        # "Log in" only for a visitor who is not signed in yet.
        links = [
            (title, name)
            for title, name in module.DEMO_LINKS
            if not (name == "login" and request.user.is_authenticated)
        ]
        roles.append({"name": role, "url": conf.mask_url(conf.role_url(role)), "links": links})
    return render(request, "testproject/home.html", {"roles": roles})


ROOT = Path(__file__).resolve().parent.parent


async def arender(
    request: HttpRequest, template: str, context: dict[str, object], status: int = 200
) -> HttpResponse:
    """``render()`` for async views: the layout shows the user, so load it first.

    Left lazy, ``request.user`` would run its database query from the template,
    on the event loop, and Django refuses that (SynchronousOnlyOperation: a 500).
    """
    auser = getattr(request, "auser", None)
    if auser is not None:  # Django 5.0+: loaded natively
        request.user = await auser()
    else:  # Django 4.2: in a thread, once; the template then reads the loaded user
        await sync_to_async(lambda: request.user.is_authenticated)()
    return render(request, template, context, status=status)


def shell_env() -> str:
    """The ``REDIS_URL=... DJANGO_DB=... `` prefix a second terminal needs.

    The demo starts its own redis-server on a free port and keeps its database
    in ``.demo/``, so a bare ``manage.py notify`` in another shell would try
    127.0.0.1:6379 and another database instead.
    """
    names = sorted(n for n in os.environ if re.fullmatch(r"REDIS(_[A-Z]+)?_URL", n))
    if os.environ.get("DJANGO_DB"):
        names.append("DJANGO_DB")
    # The console's rule (testproject.demo): a URL with a password is shown as
    # "$REDIS_URL", never spelled out, and the command still works in a shell
    # that has it.
    from testproject.demo import shown_env

    return "".join(f"{shown_env(n)} " for n in names)


def manage_py() -> str:
    """``REDIS_URL=... DJANGO_DB=... .venv/bin/python manage.py``: run from the checkout.

    The virtualenv's Python, not a bare ``python``: a fresh shell's has no Django.
    """
    python = Path(sys.executable)
    if python.is_relative_to(ROOT):  # scripts/demo's .venv
        python = python.relative_to(ROOT)
    return f"{shell_env()}{shlex.quote(str(python))} manage.py"


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
