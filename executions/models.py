from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timezone as dt_timezone

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, models, router, transaction
from django.db.models.sql import InsertQuery
from django.dispatch import Signal
from django.utils import timezone

log = logging.getLogger("executions.state")
# Every key starts with this, so that a key pasted anywhere is recognisable as ours.
API_KEY_PREFIX = "rce_"
# Sent with `key` when ApiKey.revoke() revokes it: revoking is an UPDATE, which sends no post_save.
key_revoked = Signal()


def key_digest(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: nothing can be guessed offline.
    return hashlib.sha256(key.encode()).hexdigest()


def validate_languages(value: str) -> None:
    unknown = set(split_languages(value)) - set(Execution.Language.values)
    if unknown:
        raise ValidationError(f"unknown languages: {', '.join(sorted(unknown))}")


def split_languages(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


@dataclass(frozen=True)
class Limits:
    """A tenant's effective quotas: its own value where set, else the global default in settings."""

    rate_per_minute: int
    max_queued: int
    max_running: int
    max_timeout_seconds: float
    max_memory_mb: int
    languages: frozenset[str]
    retention_days: int


def _limit_field(help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(null=True, blank=True, help_text=f"{help_text} Empty: the global default.")


class Tenant(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    rate_per_minute = _limit_field("API requests per minute; more get 429.")
    max_queued = _limit_field("Executions that may be queued or running at once; more submissions get 429.")
    max_running = _limit_field("Executions that may run at once, 0 for no cap of its own; more wait in the queue.")
    max_timeout_seconds = _limit_field("The longest wall-clock limit a run may ask for.")
    max_memory_mb = _limit_field("The most memory a run may ask for.")
    allowed_languages = models.CharField(
        max_length=100,
        blank=True,
        default="",
        validators=[validate_languages],
        help_text="Comma-separated, e.g. python,bash. Empty: the global default.",
    )
    retention_days = _limit_field("Days a finished execution is kept (prune_executions); 0: for ever.")

    def __str__(self) -> str:
        return self.name

    def limits(self) -> Limits:
        def pick(own, default):
            return default if own is None else own

        return Limits(
            rate_per_minute=pick(self.rate_per_minute, settings.TENANT_RATE_PER_MINUTE),
            max_queued=pick(self.max_queued, settings.TENANT_MAX_QUEUED),
            max_running=pick(self.max_running, settings.TENANT_MAX_RUNNING),
            max_timeout_seconds=pick(self.max_timeout_seconds, settings.SANDBOX_TIMEOUT_SECONDS),
            max_memory_mb=pick(self.max_memory_mb, settings.SANDBOX_MEMORY_MB),
            languages=frozenset(
                split_languages(self.allowed_languages) or settings.TENANT_ALLOWED_LANGUAGES
            ),
            retention_days=pick(self.retention_days, settings.TENANT_RETENTION_DAYS),
        )

    # DRF treats the authenticated principal as a user; a tenant is always authenticated.
    is_authenticated = True

    def create_api_key(self, name: str = "") -> tuple[ApiKey, str]:
        """Create a key and return it with its plain text, which is never stored and never shown again."""
        lookup = secrets.token_hex(6)
        plain = f"{API_KEY_PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
        key = ApiKey.objects.create(tenant=self, name=name, prefix=lookup, digest=key_digest(plain))
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

    def revoke(self) -> bool:
        """Revoke the key for good; True if it was live. A conditional UPDATE keeps the first time."""
        revoked = bool(ApiKey.objects.filter(pk=self.pk, revoked_at=None).update(revoked_at=timezone.now()))
        if revoked:
            key_revoked.send(sender=ApiKey, key=self)
        return revoked

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
        if hmac.compare_digest(expected, key_digest(plain)) and key is not None:
            return key
        return None


class TenantOwnedQuerySet(models.QuerySet):
    def owned_by(self, tenant: Tenant) -> TenantOwnedQuerySet:
        """The one way an API request reaches tenant-owned rows: only the caller's tenant's.

        Another tenant's row is then indistinguishable from one that does not exist (a 404 either
        way, with the same queries).
        """
        if not isinstance(tenant, Tenant) or tenant.pk is None:
            # Fail closed: a missing or unsaved tenant must never mean "no filter".
            raise ValueError("owned_by() needs a saved Tenant")
        return self.filter(tenant=tenant)


def log_state(task_id, state: str, tenant: str, worker: str = "-", **extra) -> None:
    """One logfmt line per state change, the same in web and worker: grep a task id to follow it."""
    fields = {"task_id": task_id, "state": state, "tenant": tenant, "worker": worker, **extra}
    log.info("execution %s", " ".join(f"{key}={value}" for key, value in fields.items()))


class NotCancellable(Exception):
    """The execution had already ended with another status."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


class ExecutionQuerySet(TenantOwnedQuerySet):
    """Every change of an execution's status, each a conditional UPDATE that says whether it won.

    The row is the source of truth: a duplicate or late job, a reconciler pass and a cancel can race
    for it, and exactly one of them moves it. Nothing else writes `status`.
    """

    def claim(self, execution_id, worker_name: str) -> bool:
        """queued -> running, for the worker that will run it."""
        return bool(
            self.filter(id=execution_id, status=Execution.Status.QUEUED).update(
                status=Execution.Status.RUNNING, started_at=timezone.now(), worker_name=worker_name
            )
        )

    def finish(self, execution_id, fields: dict) -> bool:
        """running -> terminal: `fields` hold the status and the run's outcome."""
        if fields["status"] not in Execution.TERMINAL_STATUSES:
            raise ValueError(f"not a terminal status: {fields['status']!r}")
        return bool(self.filter(id=execution_id, status=Execution.Status.RUNNING).update(**fields))

    def keep_cancelled_output(self, execution_id, output: dict) -> bool:
        """A cancelled run keeps what it printed until then; never a status or finish time."""
        cancelled = self.filter(id=execution_id, status=Execution.Status.CANCELLED)
        return bool(cancelled.update(**output) if output else cancelled.exists())

    def requeue(self, execution: Execution) -> bool:
        """queued or running (whose script never arrived in a sandbox) -> queued, as its next attempt."""
        updated = self.filter(id=execution.id, status=execution.status, attempts=execution.attempts).update(
            status=Execution.Status.QUEUED,
            started_at=None,
            worker_name="",
            container_id="",
            attempts=execution.attempts + 1,
        )
        if updated:
            execution.status, execution.attempts = Execution.Status.QUEUED, execution.attempts + 1
        return bool(updated)

    def fail(self, execution_id, expected: str, message: str) -> bool:
        """`expected` -> error, for an execution the platform could not run to its end."""
        return bool(
            self.filter(id=execution_id, status=expected).update(
                status=Execution.Status.ERROR, finished_at=timezone.now(), error=message
            )
        )


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
        CANCELLED = "cancelled"

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
            Status.CANCELLED,
        }
    )
    # A cancel request moves these to `cancelled`; every other status is already final.
    CANCELLABLE_STATUSES = (Status.QUEUED, Status.RUNNING)

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

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="exec_tenant_created"),
            models.Index(fields=["tenant", "status", "-created_at"], name="exec_tenant_status_created"),
            models.Index(fields=["tenant", "language", "-created_at"], name="exec_tenant_lang_created"),
            models.Index(fields=["status", "created_at"], name="exec_status_created"),
            # The admin's changelist: newest first across all tenants, with the id as tie-breaker.
            models.Index(fields=["-created_at", "-id"], name="exec_created"),
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

    def cancel(self) -> str | None:
        """queued or running -> cancelled; the status it had, or None if it already was cancelled.

        Raises NotCancellable if it ended otherwise. The status can move under us (queued ->
        running, or the reconciler's running -> queued): each miss re-reads it, and it can only
        move a few times before it is terminal.
        """
        for _ in range(5):
            if self.status == self.Status.CANCELLED:
                return None
            if self.status not in self.CANCELLABLE_STATUSES:
                raise NotCancellable(self.status)
            previous, now = self.status, timezone.now()
            if Execution.objects.filter(id=self.id, status=previous).update(status=self.Status.CANCELLED, finished_at=now):
                self.status, self.finished_at = self.Status.CANCELLED, now
                return previous
            self.refresh_from_db(fields=["status", "attempts"])
        raise NotCancellable(self.status)

    def insert(self) -> None:
        """save(force_insert=True) for a new execution, without compiling its INSERT every time.

        The statement is the one save() would run, compiled once per database; every value goes
        through its field's pre_save() and get_db_prep_save(), as in save(). Database errors are
        Django's (IntegrityError included). No pre_save or post_save signal is sent: nothing
        listens for an Execution's.
        """
        using = router.db_for_write(Execution, instance=self)
        connection = connections[using]
        fields = self._meta.local_concrete_fields
        params = [field.get_db_prep_save(field.pre_save(self, True), connection) for field in fields]
        with connection.cursor() as cursor:
            cursor.execute(insert_statement(using, connection.vendor), params)
        self._state.adding = False
        self._state.db = using

    @classmethod
    def insert_all(cls, executions: list[Execution]) -> None:
        """insert() for several new executions: one statement run for each, in one transaction.

        All are in the database when it returns, or none is (the error is Django's).
        """
        using = router.db_for_write(Execution)
        connection = connections[using]
        fields = cls._meta.local_concrete_fields
        rows = [[field.get_db_prep_save(field.pre_save(execution, True), connection) for field in fields]
                for execution in executions]
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.executemany(insert_statement(using, connection.vendor), rows)
        for execution in executions:
            execution._state.adding = False
            execution._state.db = using

    def to_dict(self) -> dict:
        """The one representation of an execution: the API's, the cache's and the CLI's."""
        return {
            "task_id": str(self.id),
            "status": self.status,
            "language": self.language,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "duration_ms": self.duration_ms,
            "timeout_seconds": self.timeout_seconds,
            "memory_mb": self.memory_mb,
            "created_at": iso_time(self.created_at),
            "started_at": iso_time(self.started_at),
            "finished_at": iso_time(self.finished_at),
            "error": self.error or None,
        }


@functools.cache
def insert_statement(using: str, vendor: str) -> str:
    """Django's INSERT of one Execution with every concrete field, for this database."""
    query = InsertQuery(Execution)
    query.insert_values(Execution._meta.local_concrete_fields, [Execution()])
    ((sql, _),) = query.get_compiler(using=using).as_sql()
    return sql


def iso_time(value) -> str | None:
    # As DRF writes it: ISO 8601, UTC as "Z".
    if value is None:
        return None
    text = value.astimezone(dt_timezone.utc).isoformat() if timezone.is_aware(value) else value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class Membership(models.Model):
    """A Django user who may act for a tenant on the browser page (and its API calls)."""

    # The tenant a user with several memberships picked, kept in their session.
    SESSION_KEY = "tenant_id"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_user_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant}"

    @classmethod
    def current(cls, user, chosen_tenant_id=None) -> Membership | None:
        """The membership a signed-in user acts through: the chosen one, else the first by tenant name.

        A disabled tenant is only ever the answer when the user has no other, so that they are
        told it is disabled instead of being stuck with it.
        """
        if not user.is_authenticated or not user.is_active:
            return None
        memberships = (
            cls.objects.filter(user=user).select_related("tenant").order_by("-tenant__is_active", "tenant__name")
        )
        if chosen_tenant_id is not None:
            chosen = memberships.filter(tenant_id=chosen_tenant_id, tenant__is_active=True).first()
            if chosen is not None:
                return chosen
        return memberships.first()
