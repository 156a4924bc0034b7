"""Views of the ratelimit tests (used with @pytest.mark.urls)."""

from __future__ import annotations

import threading

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View

from django_redisroles.ratelimit import rate_limit

seen_threads: list[str] = []


def ok(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    return HttpResponse("ok")


@rate_limit("3/m", key="ip")
def ip_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@rate_limit("3/m", key="ip")
async def async_ip_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def _thread_key(request: HttpRequest) -> str:
    seen_threads.append(threading.current_thread().name)
    return "one"


@rate_limit("2/m", key=_thread_key)
async def async_thread_view(request: HttpRequest) -> HttpResponse:
    seen_threads.append(threading.current_thread().name)
    return HttpResponse("ok")


@rate_limit("5/m", key="ip")
@rate_limit("2/m", key="user")
def stacked_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@rate_limit("2/m", key="user")
async def async_user_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@rate_limit("2/m", key="ip", block=False)
def advisory_view(request: HttpRequest) -> JsonResponse:
    r = request.ratelimit
    return JsonResponse({"limited": r.limited, "remaining": r.remaining})


@rate_limit("2/m", key="ip", block=False, fail="closed")
def advisory_closed_view(request: HttpRequest) -> JsonResponse:
    r = request.ratelimit
    return JsonResponse({"failed": r.failed, "blocked": r.blocked})


@rate_limit("2/m", key="ip", block=False, fail="closed")
async def async_advisory_closed_view(request: HttpRequest) -> JsonResponse:
    r = request.ratelimit
    return JsonResponse({"failed": r.failed, "blocked": r.blocked})


def rule_advisory_view(request: HttpRequest) -> JsonResponse:
    # under a block=False middleware rule: reads what the middleware decided
    return JsonResponse({"limited": request.ratelimit.limited})


@rate_limit("2/m", key="ip", methods=["POST"])
def post_only_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@rate_limit("2/m", key="ip")
class ClassView(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")


@rate_limit("2/m", key="ip")
class AsyncClassView(View):
    async def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")


class MethodDecoratedView(View):
    @method_decorator(rate_limit("2/m", key="ip"))
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")


def _both(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"policies": sorted(r.policy.name for r in request.ratelimit.results)})


both_view = rate_limit("5/m", key="ip", name="decorator")(_both)


urlpatterns = [
    path("method/", MethodDecoratedView.as_view()),
    path("both/", both_view),
    path("ip/", ip_view, name="ip"),
    path("async-ip/", async_ip_view, name="async-ip"),
    path("async-thread/", async_thread_view),
    path("stacked/", stacked_view),
    path("async-user/", async_user_view),
    path("advisory/", advisory_view),
    path("rule-advisory/", rule_advisory_view),
    path("advisory-closed/", advisory_closed_view),
    path("async-advisory-closed/", async_advisory_closed_view),
    path("post-only/", post_only_view),
    path("class/", ClassView.as_view()),
    path("async-class/", AsyncClassView.as_view()),
    path("api/things/", ok, name="things"),
    path("named/<int:pk>/", ok, name="named"),
    path("plain/", ok, name="plain"),
]
