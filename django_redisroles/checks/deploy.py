"""Deployment checks that talk to Redis: ``redisroles.E1xx``/``W1xx`` (docs/checks.md).

They run the rules of ``redisroles doctor`` (``django_redisroles.doctor``) as
system checks. Registered with ``deploy=True``, so only ``check --deploy``
runs them (a plain ``check``/``runserver`` never opens a connection), unless
``REDISROLES["DOCTOR"]["CHECKS"]`` is ``"always"``; ``"never"`` turns them off.
An unreachable server is a warning (``W100``), never a crash: the checks use
the doctor's short ``TIMEOUT`` and no retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .. import conf

CHECKS_MODES = ("deploy", "always", "never")

#: ``check --deploy --tag redisroles`` runs only these.
TAG = "redisroles"


def validate_doctor_setting() -> list[str]:
    """Problems with ``REDISROLES["DOCTOR"]`` (empty when it is fine)."""
    try:
        value = conf.raw().get("DOCTOR")
    except ImproperlyConfigured:
        return []  # REDISROLES itself is malformed: redisroles.E001 says so
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [f'REDISROLES["DOCTOR"] must be a dict, got {value!r}']
    problems = []
    for key, item in value.items():
        if key not in conf.DOCTOR_DEFAULTS:
            problems.append(f'REDISROLES["DOCTOR"] has an unknown key {key!r}')
        elif key == "CHECKS":
            if item not in CHECKS_MODES:
                problems.append(
                    f'REDISROLES["DOCTOR"]["CHECKS"] must be one of {", ".join(CHECKS_MODES)}, '
                    f"got {item!r}"
                )
        elif isinstance(item, bool) or not isinstance(item, Real) or item <= 0:
            problems.append(
                f'REDISROLES["DOCTOR"][{key!r}] must be a positive number, got {item!r}'
            )
    return problems


@register(TAG)
def check_doctor_setting(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``REDISROLES["DOCTOR"]`` is well-formed (runs with every ``check``)."""
    return [
        Error(
            f"{problem}.",
            hint="Keys and defaults: "
            + ", ".join(f"{k}={v!r}" for k, v in conf.DOCTOR_DEFAULTS.items())
            + " (see docs/operations.md).",
            id="redisroles.E190",
        )
        for problem in validate_doctor_setting()
    ]


def run_doctor_checks() -> list[CheckMessage]:
    """The doctor's findings as system check messages."""
    if validate_doctor_setting():
        return []  # E190 says why
    from .. import doctor  # deferred: checks are imported at start-up

    try:
        report = doctor.run()
    except Exception as exc:  # noqa: BLE001 - a check must report, never crash `check`
        return [
            Warning(
                "redisroles could not check its Redis servers: "
                f"{type(exc).__name__}: {conf.mask_text(exc)}",
                hint="Run `python manage.py redisroles doctor` for details.",
                id="redisroles.W199",
            )
        ]
    messages: list[CheckMessage] = []
    for finding in report.findings:
        hint = finding.fix.text
        if finding.fix.config_set:
            hint += f" Run now: {finding.fix.config_set}"
        if finding.fix.redis_conf:
            hint += "; in redis.conf: " + " / ".join(finding.fix.redis_conf.splitlines())
        text = f"[{', '.join(finding.roles)}] {finding.instance}: {finding.message}"
        if finding.id == "E100":
            # Unreachable from where `check --deploy` runs (a build host, say) is not
            # proof the deploy is broken: warn, with the doctor's id turned into W100.
            messages.append(Warning(text, hint=hint, id="redisroles.W100"))
        elif finding.severity == "error":
            messages.append(Error(text, hint=hint, id=finding.check_id))
        else:
            messages.append(Warning(text, hint=hint, id=finding.check_id))
    return messages


def _mode() -> str | None:
    """``DOCTOR["CHECKS"]``, or None when the settings are too broken to tell."""
    try:
        return str(conf.doctor_settings().get("CHECKS", "deploy"))
    except ImproperlyConfigured:
        return None


def _skipped(app_configs: Any) -> bool:
    """``check <app_label>`` for other apps: do not go to the network."""
    return app_configs is not None and not any(
        getattr(a, "name", None) == "django_redisroles" for a in app_configs
    )


@register(TAG, deploy=True)
def check_servers_deploy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The doctor's rules, under ``check --deploy``."""
    if _skipped(app_configs):
        return []
    if _mode() != "deploy":
        return []  # "always": check_servers_always ran them already; "never": off
    return run_doctor_checks()


@register(TAG)
def check_servers_always(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The doctor's rules with every ``check``, when opted in with ``CHECKS="always"``."""
    if _skipped(app_configs):
        return []
    if _mode() != "always":
        return []
    return run_doctor_checks()
