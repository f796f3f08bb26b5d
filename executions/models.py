from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from django.db import models
from django.utils import timezone

# Every key starts with this, so that a key pasted anywhere is recognisable as ours.
API_KEY_PREFIX = "rce_"


def _digest(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: nothing can be guessed offline.
    return hashlib.sha256(key.encode()).hexdigest()


class Tenant(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name

    # DRF treats the authenticated principal as a user; a tenant is always authenticated.
    is_authenticated = True

    def create_api_key(self, name: str = "") -> tuple[ApiKey, str]:
        """Create a key and return it with its plain text, which is never stored and never shown again."""
        lookup = secrets.token_hex(6)
        plain = f"{API_KEY_PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
        key = ApiKey.objects.create(tenant=self, name=name, prefix=lookup, digest=_digest(plain))
        return key, plain


class ApiKey(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{API_KEY_PREFIX}{self.prefix}_…"

    @classmethod
    def find(cls, plain: str) -> ApiKey | None:
        """Return the live key matching `plain`, or None. Revoked keys are never returned."""
        if not plain.startswith(API_KEY_PREFIX):
            return None
        lookup, _, rest = plain[len(API_KEY_PREFIX) :].partition("_")
        if not lookup or not rest:
            return None
        key = cls.objects.select_related("tenant").filter(prefix=lookup, revoked_at=None).first()
        # Compare even when no row matched, so that timing does not tell which prefixes exist.
        expected = key.digest if key else "0" * 64
        if hmac.compare_digest(expected, _digest(plain)) and key is not None:
            return key
        return None


class Execution(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        TIMED_OUT = "timed_out"
        OOM_KILLED = "oom_killed"
        OUTPUT_LIMIT_EXCEEDED = "output_limit_exceeded"
        ERROR = "error"

    class Language(models.TextChoices):
        PYTHON = "python"
        BASH = "bash"

    TERMINAL_STATUSES = frozenset(
        {
            Status.COMPLETED,
            Status.FAILED,
            Status.TIMED_OUT,
            Status.OOM_KILLED,
            Status.OUTPUT_LIMIT_EXCEEDED,
            Status.ERROR,
        }
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="executions")
    language = models.CharField(max_length=16, choices=Language.choices)
    code = models.TextField()
    stdin = models.TextField(blank=True, default="")
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.QUEUED)
    stdout = models.TextField(blank=True, default="")
    stderr = models.TextField(blank=True, default="")
    stdout_truncated = models.BooleanField(default=False)
    stderr_truncated = models.BooleanField(default=False)
    exit_code = models.IntegerField(null=True, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    container_id = models.CharField(max_length=64, blank=True, default="")
    worker_name = models.CharField(max_length=128, blank=True, default="")
    # How many times the job was put on the queue; the reconciler re-enqueues a lost job once.
    attempts = models.PositiveSmallIntegerField(default=1)
    # The client's Idempotency-Key header: a retry with the same key gets this execution back.
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    # The limits the request asked for, or the maxima when it was accepted; null (older rows): the
    # platform's settings at run time.
    timeout_seconds = models.FloatField(null=True, blank=True)
    memory_mb = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="exec_tenant_created"),
            models.Index(fields=["tenant", "status", "-created_at"], name="exec_tenant_status_created"),
            models.Index(fields=["tenant", "language", "-created_at"], name="exec_tenant_lang_created"),
            models.Index(fields=["status", "created_at"], name="exec_status_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="exec_tenant_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.language}, {self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL_STATUSES
