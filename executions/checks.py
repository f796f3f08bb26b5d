from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Warning, register


@register(deploy=True)
def check_secret_key(app_configs, **kwargs):
    if not settings.DEBUG and settings.SECRET_KEY == settings.INSECURE_SECRET_KEY:
        return [
            Warning(
                "SECRET_KEY is the built-in development key.",
                hint="Set SECRET_KEY (or SECRET_KEY_FILE) to a long random value in production.",
                id="executions.W001",
            )
        ]
    return []


@register()
def check_sandbox_limits(app_configs, **kwargs):
    errors = []
    positive = {
        "SANDBOX_TIMEOUT_SECONDS": settings.SANDBOX_TIMEOUT_SECONDS,
        "SANDBOX_MEMORY_MB": settings.SANDBOX_MEMORY_MB,
        "SANDBOX_CPUS": settings.SANDBOX_CPUS,
        "SANDBOX_PIDS_LIMIT": settings.SANDBOX_PIDS_LIMIT,
        "SANDBOX_TMPFS_MB": settings.SANDBOX_TMPFS_MB,
        "SANDBOX_OUTPUT_LIMIT_BYTES": settings.SANDBOX_OUTPUT_LIMIT_BYTES,
        "SANDBOX_MAX_CODE_BYTES": settings.SANDBOX_MAX_CODE_BYTES,
    }
    for name, value in positive.items():
        if value <= 0:
            errors.append(Error(f"{name} must be positive, not {value}.", id="executions.E001"))
    if settings.SANDBOX_MEMORY_MB < 6:
        # Docker refuses memory limits under 6 MiB.
        errors.append(Error("SANDBOX_MEMORY_MB must be at least 6.", id="executions.E002"))
    if settings.SANDBOX_RUNTIME not in ("", "runc", "runsc"):
        errors.append(
            Error(
                f"SANDBOX_RUNTIME {settings.SANDBOX_RUNTIME!r} is not supported.",
                hint="Leave it empty (runc) or set it to runsc (gVisor).",
                id="executions.E003",
            )
        )
    if settings.SANDBOX_CODE_DELIVERY not in ("bind", "copy"):
        errors.append(
            Error(
                f"SANDBOX_CODE_DELIVERY {settings.SANDBOX_CODE_DELIVERY!r} is not supported.",
                hint="Set it to bind (the default) or copy.",
                id="executions.E005",
            )
        )
    return errors


@register()
def check_readyz(app_configs, **kwargs):
    from executions.views import CHECKS

    unknown = sorted(set(settings.READYZ_CHECKS) - set(CHECKS))
    if unknown:
        return [Error(f"READYZ_CHECKS names unknown checks: {', '.join(unknown)}.", id="executions.E004")]
    return []


@register()
def check_sandbox_slots(app_configs, **kwargs):
    errors = []
    if settings.SANDBOX_SLOTS < 1:
        errors.append(
            Error(
                f"SANDBOX_SLOTS must be at least 1, not {settings.SANDBOX_SLOTS}.",
                hint="Leave it unset to size it to this host.",
                id="executions.E006",
            )
        )
    if settings.SANDBOX_OVERCOMMIT <= 0 or settings.SANDBOX_SLOT_OVERHEAD_MB < 0:
        errors.append(
            Error(
                "SANDBOX_OVERCOMMIT must be positive and SANDBOX_SLOT_OVERHEAD_MB not negative, not "
                f"{settings.SANDBOX_OVERCOMMIT} and {settings.SANDBOX_SLOT_OVERHEAD_MB}.",
                id="executions.E007",
            )
        )
    if settings.SANDBOX_RESERVE_SLOTS < 0:
        errors.append(
            Error(
                f"SANDBOX_RESERVE_SLOTS must not be negative, not {settings.SANDBOX_RESERVE_SLOTS}.",
                hint="0 keeps no worker in reserve for tenants' first runs.",
                id="executions.E008",
            )
        )
    return errors


@register("sandbox")
def check_sandbox_runtime(app_configs, **kwargs):
    """Where the engine is reachable, gVisor without --oci-seccomp, or without Docker's seccomp
    profile as a file, is reported at start: the runner refuses every run under it."""
    if settings.SANDBOX_RUNTIME != "runsc":
        return []
    import docker.errors
    import requests

    from executions.sandbox import runner

    try:
        registered = runner.docker_api().info().get("Runtimes") or {}
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        # A web process has no engine to ask; the workers' own runs check again.
        return []
    problem = runner.runtime_problem(registered, "runsc")
    if problem:
        return [Error(f"SANDBOX_RUNTIME is runsc, but {problem}.", id="executions.E009")]
    try:
        runner.runsc_seccomp_profile()
    except runner.SandboxError as exc:
        # The runner refuses each run for the same reason: say it once at start, where it is read.
        return [Error(f"SANDBOX_RUNTIME is runsc, but every run is refused: {exc}.", id="executions.E014")]
    return []


@register()
def check_log_format(app_configs, **kwargs):
    if settings.LOG_FORMAT not in settings.LOG_FORMATS:
        return [
            Error(
                f"LOG_FORMAT {settings.LOG_FORMAT!r} is not supported.",
                hint="Set it to plain (the default) or json.",
                id="executions.E010",
            )
        ]
    return []


@register()
def check_webhooks(app_configs, **kwargs):
    from executions.destinations import invalid_networks

    errors = []
    bad = invalid_networks(settings.WEBHOOK_ALLOWED_NETWORKS)
    if bad:
        errors.append(
            Error(
                f"WEBHOOK_ALLOWED_NETWORKS has entries that are not networks: {', '.join(bad)}.",
                hint="Give comma-separated CIDRs, e.g. 10.1.2.0/24,fd12::/64.",
                id="executions.E011",
            )
        )
    positive = {
        "WEBHOOK_TIMEOUT_SECONDS": settings.WEBHOOK_TIMEOUT_SECONDS,
        "WEBHOOK_RESOLVE_TIMEOUT_SECONDS": settings.WEBHOOK_RESOLVE_TIMEOUT_SECONDS,
        "WEBHOOK_MAX_RESPONSE_BYTES": settings.WEBHOOK_MAX_RESPONSE_BYTES,
        "WEBHOOK_RETRY_BASE_SECONDS": settings.WEBHOOK_RETRY_BASE_SECONDS,
        "WEBHOOK_RETRY_MAX_DELAY_SECONDS": settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS,
    }
    for name, value in positive.items():
        if value <= 0:
            errors.append(Error(f"{name} must be positive, not {value}.", id="executions.E012"))
    if settings.WEBHOOK_WORKERS < 0 or settings.WEBHOOK_RETRY_SECONDS < 0:
        errors.append(
            Error(
                "WEBHOOK_WORKERS and WEBHOOK_RETRY_SECONDS must not be negative, not "
                f"{settings.WEBHOOK_WORKERS} and {settings.WEBHOOK_RETRY_SECONDS}.",
                id="executions.E012",
            )
        )
    if settings.WEBHOOK_CA_FILE and not os.path.isfile(settings.WEBHOOK_CA_FILE):
        errors.append(
            Error(
                f"WEBHOOK_CA_FILE {settings.WEBHOOK_CA_FILE!r} is not a file.",
                hint="Name a PEM file of CA certificates, or leave it empty for the system's.",
                id="executions.E013",
            )
        )
    return errors


@register()
def check_piston_tenant(app_configs, **kwargs):
    """PISTON_TENANT must name a tenant, or keyless Piston calls are refused, not what was meant."""
    name = settings.PISTON_TENANT
    if not name:
        return []
    from django.db import DatabaseError

    from executions.models import Tenant

    try:
        exists = Tenant.objects.filter(name=name).exists()
    except DatabaseError:
        # Not migrated yet: nothing to say until there are tenants.
        return []
    if exists:
        return []
    return [
        Warning(
            f"PISTON_TENANT {name!r} names no tenant: Piston calls without a key in their path are refused.",
            hint="Create the tenant (manage.py create_tenant), or leave PISTON_TENANT empty.",
            id="executions.W002",
        )
    ]
