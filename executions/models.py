from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import operator
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, models, router, transaction
from django.db.models.base import ModelState
from django.db.models.sql import InsertQuery
from django.dispatch import Signal
from django.utils import timezone

from executions.sandbox import languages

log = logging.getLogger("executions.state")
# A submission's "queued" line: one per request on the submission path, so off unless
# LOG_SUBMISSIONS=1 (settings.LOGGING); the workers' lines (running, the end, a requeue) always log.
submitted_log = logging.getLogger("executions.state.submitted")
# Every key starts with this, so that a key pasted anywhere is recognisable as ours.
API_KEY_PREFIX = "rce_"
# Sent with `key` when ApiKey.revoke() revokes it: revoking is an UPDATE, which sends no post_save.
key_revoked = Signal()
# Sent with `execution_id` and `status` by every transition to a terminal status, once, by the one
# that won it.
execution_ended = Signal()
# Sent with `execution_id` and `status` once an ended execution's result is whole, once: by its
# terminal transition, or for a run cancelled while running, when its worker has written the output
# the run printed until then (or the reconciler gave up waiting for it: settle_cancelled()). Webhooks
# and event streams announce the end from this, so that they carry that output. A sender that holds
# the row as written passes it as `execution` (else None), so that receivers need not read it again.
execution_settled = Signal()
# Sent with `execution_id` and `status` by the other transitions that won: to running, back to queued.
status_changed = Signal()
# A tenant's webhook secrets start with this (as Standard Webhooks' do): the rest is base64.
WEBHOOK_SECRET_PREFIX = "whsec_"


def key_digest(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: nothing can be guessed offline.
    return hashlib.sha256(key.encode()).hexdigest()


def validate_languages(value: str) -> None:
    unknown = set(split_languages(value)) - set(languages.NAMES)
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
    # None: no cap of the tenant's own (each language's maxima apply).
    max_timeout_seconds: float | None
    max_memory_mb: int | None
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
    max_timeout_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="The longest wall-clock limit a run may ask for. Empty: each language's maximum."
    )
    max_memory_mb = models.PositiveIntegerField(
        null=True, blank=True, help_text="The most memory a run may ask for. Empty: each language's maximum."
    )
    allowed_languages = models.CharField(
        max_length=100,
        blank=True,
        default="",
        validators=[validate_languages],
        help_text="Comma-separated, e.g. python,bash. Empty: the global default.",
    )
    retention_days = _limit_field("Days a finished execution is kept (prune_executions); 0: for ever.")
    callback_url = models.CharField(
        max_length=2000,
        blank=True,
        default="",
        help_text="Where an execution's result is POSTed when it ends, if its submission names no callback_url.",
    )
    # The key of every webhook this tenant receives. It has to be kept in the clear to sign with it,
    # so it is shown once (when made) and never again; a rotation keeps the previous one for a while.
    webhook_secret = models.CharField(max_length=100, blank=True, default="", editable=False)
    previous_webhook_secret = models.CharField(max_length=100, blank=True, default="", editable=False)
    webhook_secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return self.name

    def limits(self) -> Limits:
        def pick(own, default):
            return default if own is None else own

        return Limits(
            rate_per_minute=pick(self.rate_per_minute, settings.TENANT_RATE_PER_MINUTE),
            max_queued=pick(self.max_queued, settings.TENANT_MAX_QUEUED),
            max_running=pick(self.max_running, settings.TENANT_MAX_RUNNING),
            max_timeout_seconds=self.max_timeout_seconds,
            max_memory_mb=self.max_memory_mb,
            languages=frozenset(
                split_languages(self.allowed_languages) or settings.TENANT_ALLOWED_LANGUAGES
            ),
            retention_days=pick(self.retention_days, settings.TENANT_RETENTION_DAYS),
        )

    # DRF treats the authenticated principal as a user; a tenant is always authenticated.
    is_authenticated = True

    def rotate_webhook_secret(self) -> str:
        """A new webhook secret, returned in the clear this one time. Deliveries are signed with the
        previous one too for WEBHOOK_SECRET_OVERLAP_SECONDS, so that receivers can switch unhurried."""
        plain = WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
        self.previous_webhook_secret, self.webhook_secret = self.webhook_secret, plain
        self.webhook_secret_rotated_at = timezone.now()
        self.save(update_fields=["webhook_secret", "previous_webhook_secret", "webhook_secret_rotated_at"])
        return plain

    def webhook_secrets(self, now=None) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the previous one while it overlaps."""
        now = now or timezone.now()
        found = [self.webhook_secret] if self.webhook_secret else []
        overlap = timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP_SECONDS)
        rotated = self.webhook_secret_rotated_at
        if self.previous_webhook_secret and rotated is not None and now - rotated < overlap:
            found.append(self.previous_webhook_secret)
        return found

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


def log_state(task_id, state: str, tenant: str, worker: str = "-", logger: logging.Logger = log, **extra) -> None:
    """One logfmt line per state change, the same in web and worker: grep a task id to follow it."""
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {"task_id": task_id, "state": state, "tenant": tenant, "worker": worker, **extra}
    logger.info("execution %s", " ".join(f"{key}={value}" for key, value in fields.items()))


def log_submitted(task_id, tenant: str, **extra) -> None:
    """log_state() of a submission just queued, on its own logger (submitted_log)."""
    log_state(task_id, Execution.Status.QUEUED, tenant, logger=submitted_log, **extra)


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
        claimed = self.filter(id=execution_id, status=Execution.Status.QUEUED).update(
            status=Execution.Status.RUNNING, started_at=timezone.now(), worker_name=worker_name
        )
        if claimed:
            status_changed.send_robust(sender=Execution, execution_id=execution_id, status=Execution.Status.RUNNING)
        return bool(claimed)

    def finish(self, execution_id, fields: dict, written: Execution | None = None) -> bool:
        """running -> terminal: `fields` hold the status and the run's outcome. `written`: the row as
        this writes it, if the caller has it (for execution_settled's receivers)."""
        if fields["status"] not in Execution.TERMINAL_STATUSES:
            raise ValueError(f"not a terminal status: {fields['status']!r}")
        updated = self.filter(id=execution_id, status=Execution.Status.RUNNING).update(**fields)
        return ended(execution_id, updated, fields["status"], written=written)

    def keep_cancelled_output(self, execution_id, output: dict) -> bool:
        """A cancelled run keeps what it printed until then; never a status or finish time."""
        if self.settle_cancelled(execution_id, output):
            return True
        cancelled = self.filter(id=execution_id, status=Execution.Status.CANCELLED)
        return bool(cancelled.update(**output) if output else cancelled.exists())

    def settle_cancelled(self, execution_id, output: dict | None = None) -> bool:
        """A run cancelled while running: write `output` (what it printed until then) and announce
        its end (execution_settled), the first time only; False if it was settled already.

        Its worker calls it once it has stopped the run, the reconciler without output when that
        worker is gone or too late (reconciler.settle_cancelled).
        """
        settled = self.filter(id=execution_id, status=Execution.Status.CANCELLED, output_pending=True).update(
            **(output or {}), output_pending=False
        )
        if settled:
            execution_settled.send_robust(sender=Execution, execution_id=execution_id, status=Execution.Status.CANCELLED)
        return bool(settled)

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
            execution.started_at, execution.worker_name, execution.container_id = None, "", ""
            status_changed.send_robust(sender=Execution, execution_id=execution.id, status=Execution.Status.QUEUED)
        return bool(updated)

    def fail(self, execution_id, expected: str, message: str) -> bool:
        """`expected` -> error, for an execution the platform could not run to its end."""
        updated = self.filter(id=execution_id, status=expected).update(
            status=Execution.Status.ERROR, finished_at=timezone.now(), error=message
        )
        return ended(execution_id, updated, Execution.Status.ERROR)


def ended(execution_id, updated: int, status: str, settled: bool = True, written: Execution | None = None) -> bool:
    """Whether a transition to a terminal status won; if it did, tell execution_ended's receivers,
    and execution_settled's unless the result is not whole yet (`settled`: see settle_cancelled()).

    They (the result cache, webhooks, event streams) only drop or enqueue work for other processes,
    and a fault of theirs never undoes or fails the transition, which is committed already.
    """
    if updated:
        # send_robust logs a receiver's exception (logger django.dispatch) and goes on.
        execution_ended.send_robust(sender=Execution, execution_id=execution_id, status=status)
        if settled:
            execution_settled.send_robust(sender=Execution, execution_id=execution_id, status=status, execution=written)
    return bool(updated)


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
        COMPILATION_ERROR = "compilation_error"

    TERMINAL_STATUSES = frozenset(
        {
            Status.COMPLETED,
            Status.FAILED,
            Status.TIMED_OUT,
            Status.OOM_KILLED,
            Status.OUTPUT_LIMIT_EXCEEDED,
            Status.ERROR,
            Status.CANCELLED,
            Status.COMPILATION_ERROR,
        }
    )
    # A cancel request moves these to `cancelled`; every other status is already final.
    CANCELLABLE_STATUSES = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the indexes below lead with it (each index is written with every row).
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="executions", db_index=False)
    # A name in the language catalog (executions.sandbox.languages).
    language = models.CharField(max_length=16, choices=languages.choices)
    code = models.TextField()
    stdin = models.TextField(blank=True, default="")
    # The program's other files, [{"name", "content"[, "encoding": "base64"]}], and its arguments.
    files = models.JSONField(default=list, blank=True)
    args = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.QUEUED)
    stdout = models.TextField(blank=True, default="")
    stderr = models.TextField(blank=True, default="")
    stdout_truncated = models.BooleanField(default=False)
    stderr_truncated = models.BooleanField(default=False)
    exit_code = models.IntegerField(null=True, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    # A compiled language's compile stage: the compiler's output, and how long it took.
    compile_output = models.TextField(blank=True, default="")
    compile_duration_ms = models.IntegerField(null=True, blank=True)
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
    # Where its result is POSTed when it ends: its submission's, else its tenant's default then.
    callback_url = models.CharField(max_length=2000, blank=True, default="")
    # The batch that asked for one callback when all of its executions have ended.
    batch = models.ForeignKey(
        "Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="executions", db_index=False
    )
    # Judging (executions/judging.py): the tests, [{"stdin", "args", "expected_output", "name"}], and
    # how outputs are compared; empty: a plain run. Each test runs in a sandbox of its own.
    tests = models.JSONField(default=list, blank=True)
    comparison = models.CharField(max_length=32, blank=True, default="")
    abs_tolerance = models.FloatField(null=True, blank=True)
    rel_tolerance = models.FloatField(null=True, blank=True)
    stop_on_first_failure = models.BooleanField(default=False)
    # The judged outcome: the overall verdict, the counts, and each test's result in order.
    verdict = models.CharField(max_length=32, blank=True, default="")
    tests_passed = models.PositiveIntegerField(null=True, blank=True)
    tests_failed = models.PositiveIntegerField(null=True, blank=True)
    test_results = models.JSONField(default=list, blank=True)
    # Cancelled while running, and its worker has not yet written what the run printed until then:
    # its end is not announced yet (execution_settled).
    output_pending = models.BooleanField(default=False)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="exec_tenant_created"),
            models.Index(fields=["tenant", "status", "-created_at"], name="exec_tenant_status_created"),
            models.Index(fields=["tenant", "language", "-created_at"], name="exec_tenant_lang_created"),
            models.Index(fields=["status", "created_at"], name="exec_status_created"),
            # The admin's changelist: newest first across all tenants, with the id as tie-breaker.
            models.Index(fields=["-created_at", "-id"], name="exec_created"),
            # The reconciler's look for cancelled runs whose worker never wrote their output.
            models.Index(fields=["finished_at"], condition=models.Q(output_pending=True), name="exec_output_pending"),
            # A batch's executions: most have none, and a partial index is not written for them.
            models.Index(fields=["batch"], condition=models.Q(batch__isnull=False), name="exec_batch"),
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

    def program_files(self) -> list[tuple[str, bytes]]:
        """The program's files besides its entry point (`code`), as the sandbox gets them."""
        return [(file["name"], file_content(file)) for file in self.files]

    @property
    def is_judged(self) -> bool:
        return bool(self.tests)

    @property
    def weight(self) -> int:
        """The sandboxes its runs take, as quotas count them: one per test, or one."""
        return max(1, len(self.tests))

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
            # A running one's end is announced once its worker has kept its output (settle_cancelled()):
            # the mark goes with the status, so whichever of the two writes comes second sees it.
            running = previous == self.Status.RUNNING
            updated = Execution.objects.filter(id=self.id, status=previous).update(
                status=self.Status.CANCELLED, finished_at=now, output_pending=running
            )
            if ended(self.id, updated, self.Status.CANCELLED, settled=not running):
                self.status, self.finished_at = self.Status.CANCELLED, now
                return previous
            self.refresh_from_db(fields=["status", "attempts"])
        raise NotCancellable(self.status)

    @classmethod
    def new(cls, **fields) -> Execution:
        """Execution(**fields), for a row about to be inserted, in a third of the CPU.

        Model.__init__ walks all 37 fields for each new execution (a tenth of a submission's CPU in
        the fast lane). This copies a blank execution's values instead, calls the callable defaults
        again (a new id, new lists), then sets `fields` as __init__ does (a related object through
        its descriptor). No pre_init or post_init signal is sent: nothing listens for an
        Execution's. tests/test_execution_insert.py holds the two to the same instance.
        """
        blank, fresh, names = blank_execution()
        unknown = fields.keys() - names
        if unknown:
            raise TypeError(f"Execution got unexpected keyword arguments: {sorted(unknown)}")
        execution = cls.__new__(cls)
        execution.__dict__.update(blank)
        execution._state = ModelState()
        for attname, default in fresh:
            execution.__dict__[attname] = default()
        for name, value in fields.items():
            setattr(execution, name, value)
        return execution

    def like(self, params: list, tenant: Tenant, code: str, connection) -> tuple[Execution, list]:
        """A new execution equal to this one (Execution.new()'s, unsaved, its JSON fields empty) but
        for its own id, time and code and `tenant` (this one's tenant, as an object of the moment),
        with its insert_params() made from this one's (`params`).

        Several submissions alike but for their code (the fast lane's) cost about 6 us each instead
        of 22 (new() and insert_params()). The caller sees to it that nothing else differs.
        tests/test_execution_insert.py holds the copy to what new() and insert_params() make.
        """
        _, fresh, _ = blank_execution()
        execution = Execution.__new__(Execution)
        fields = execution.__dict__
        fields.update(self.__dict__)
        fields["_state"] = state = ModelState()
        # As the tenant's descriptor sets them (tenant_id is this one's already).
        state.db = self._state.db
        state.fields_cache["tenant"] = tenant
        for attname, default in fresh:
            fields[attname] = default()
        fields["code"] = code
        id_at, id_saved, created_at, created_field, code_at = copy_plan(connection.alias)
        row = params.copy()
        row[id_at] = fields["id"] if id_saved is None else id_saved(fields["id"])
        row[created_at] = created_field.get_db_prep_save(fields["created_at"], connection)
        row[code_at] = code
        return execution, row

    def insert(self) -> None:
        """save(force_insert=True) for a new execution, without compiling its INSERT every time.

        The statement is the one save() would run, compiled once per database; every value goes
        through its field's pre_save() and get_db_prep_save(), as in save(). Database errors are
        Django's (IntegrityError included). No pre_save or post_save signal is sent: nothing
        listens for an Execution's.
        """
        using = router.db_for_write(Execution, instance=self)
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(insert_statement(using, connection.vendor), self.insert_params(connection))
        self._state.adding = False
        self._state.db = using

    @classmethod
    def insert_all(cls, executions: list[Execution], rows: list[list] | None = None) -> None:
        """insert() for several new executions: one statement run for each, in one transaction.

        All are in the database when it returns, or none is (the error is Django's). `rows`: their
        insert_params(), if the caller has them (like()).
        """
        using = router.db_for_write(Execution)
        connection = connections[using]
        if rows is None:
            rows = [execution.insert_params(connection) for execution in executions]
        if connection.vendor == "sqlite" and not connection.in_atomic_block:
            insert_sqlite(connection, rows)
        elif connection.vendor == "postgresql":
            insert_postgresql(connection, rows)
        else:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                cursor.executemany(insert_statement(using, connection.vendor), rows)
        for execution in executions:
            execution._state.adding = False
            execution._state.db = using

    @classmethod
    def remove_unqueued(cls, ids: list) -> int:
        """Delete the rows of these executions, inserted by insert_all() and never queued (admission
        refused them, or failed), where they are still `queued`: how many went.

        One DELETE by id, not QuerySet.delete(): its collector reads each row back into a model
        (a Delivery could point at one) before deleting it, which made a refused submission cost
        more than an accepted one (42 % of the group writer's time, a tenant over its quota). A row
        that was never queued has no delivery; if one had, the database would refuse the DELETE.
        """
        if not ids:
            return 0
        using = router.db_for_write(Execution)
        connection = connections[using]
        pk = Execution._meta.pk
        quote = connection.ops.quote_name
        marks = ", ".join(["%s"] * len(ids))
        statement = (
            f"DELETE FROM {quote(Execution._meta.db_table)} WHERE {quote(Execution._meta.get_field('status').column)} = %s"
            f" AND {quote(pk.column)} IN ({marks})"
        )
        params = [Execution.Status.QUEUED, *(pk.get_db_prep_value(value, connection) for value in ids)]
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.rowcount

    def insert_params(self, connection) -> list:
        """insert_statement()'s parameters for this execution: each field's value as save() sends it.

        A field that holds its constant default (that very object) gets the default's value as
        prepared once for the connection: a new execution's fields are mostly their defaults, and
        preparing each took a quarter of a submission's CPU in the fast lane (0.05 of 0.19 ms).
        """
        params = []
        for field, constant, empty, saved in insert_plan(connection.alias):
            value = self.__dict__.get(field.attname)
            if constant is not None and value is constant[0]:
                params.append(constant[1])
            elif empty is not None and type(value) is list and not value:
                params.append(empty)
            elif saved is not None and type(value) is saved[0]:
                params.append(value if saved[1] is None else saved[1](value))
            else:
                params.append(field.get_db_prep_save(field.pre_save(self, True), connection))
        return params

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
            "compile_output": self.compile_output,
            "compile_duration_ms": self.compile_duration_ms,
            "timeout_seconds": self.timeout_seconds,
            "memory_mb": self.memory_mb,
            "created_at": iso_time(self.created_at),
            "started_at": iso_time(self.started_at),
            "finished_at": iso_time(self.finished_at),
            "error": self.error or None,
            "verdict": self.verdict or None,
            "tests_passed": self.tests_passed,
            "tests_failed": self.tests_failed,
            "test_results": self.test_results,
        }


def file_content(file: dict) -> bytes:
    """A file of a program as {"name", "content", "encoding"}: its bytes (binascii.Error if it is
    not valid base64)."""
    if file.get("encoding") == "base64":
        return base64.b64decode(file["content"], validate=True)
    return file["content"].encode("utf-8", errors="surrogatepass")


# The defaults insert_plan() prepares once: values no one can change in place.
IMMUTABLE_DEFAULTS = (str, int, float, bool, bytes, type(None))


# The fields whose prepared value is the value itself when it is of this exact type: Django's
# get_prep_value() of each returns a str or a float as it is, and no database here adapts them.
SAVED_AS_THEY_ARE = {models.CharField: str, models.TextField: str, models.FloatField: float}


@functools.cache
def insert_plan(using: str) -> list[tuple[models.Field, tuple | None, object, tuple | None]]:
    """Each concrete field of Execution, with:

    - (its constant default, that default as get_db_prep_save() prepares it for this database)
      when it has an immutable one and save() takes its value as it is (no pre_save() of its own
      that changes it, unlike auto_now_add), else None;
    - for a JSON field whose default is a new list, an empty list as prepared for this database
      (most executions' files, args and tests), else None;
    - (the type of value this field saves as it is, None) (SAVED_AS_THEY_ARE, and a UUIDField
      where the database has a UUID type), or (uuid.UUID, the UUID's hex) for a UUIDField where it
      stores that text, else None.

    tests/test_execution_insert.py holds insert_params() to save()'s preparation field by field.
    """
    connection = connections[using]
    plan = []
    for field in Execution._meta.local_concrete_fields:
        constant = empty = saved = None
        kind = type(field)
        # DateTimeField's pre_save() only differs from Field's with auto_now or auto_now_add.
        plain = kind.pre_save is models.Field.pre_save or (
            kind is models.DateTimeField and not (field.auto_now or field.auto_now_add)
        )
        if plain and not (field.has_default() and callable(field.default)):
            default = field.get_default()
            if isinstance(default, IMMUTABLE_DEFAULTS):
                constant = (default, field.get_db_prep_save(default, connection))
        if plain and isinstance(field, models.JSONField) and field.default is list:
            empty = field.get_db_prep_save([], connection)
            if hasattr(empty, "dumps") and hasattr(empty, "obj"):
                # psycopg's Jsonb runs its dumps() on each row it sends: its text made once instead
                # (four such fields a row: about 6 us of a fast-lane submission's CPU).
                text = empty.dumps(empty.obj)
                empty = type(empty)(empty.obj, dumps=lambda obj, text=text: text)
        if plain and kind in SAVED_AS_THEY_ARE:
            saved = (SAVED_AS_THEY_ARE[kind], None)
        elif plain and kind is models.UUIDField:
            saved = (uuid.UUID, None if connection.features.has_native_uuid_field else operator.attrgetter("hex"))
        plan.append((field, constant, empty, saved))
    return plan


@functools.cache
def copy_plan(using: str) -> tuple:
    """For like(): where the id, the time and the code are in insert_params()'s row, with what
    prepares the id (None: it goes as it is) and the time's field."""
    plan = insert_plan(using)
    names = [field.attname for field, *_ in plan]
    id_at, created_at = names.index("id"), names.index("created_at")
    id_saved = plan[id_at][3]
    if id_saved is None or id_saved[0] is not uuid.UUID:
        raise RuntimeError("Execution.like() expects the id to be a UUIDField insert_plan() prepares")
    return id_at, id_saved[1], created_at, plan[created_at][0], names.index("code")


@functools.cache
def blank_execution() -> tuple[dict, list, frozenset]:
    """Execution.new()'s parts: a blank execution's values, (attname, default) of the fields whose
    default is called for each new one, and the names __init__ accepts for fields."""
    fields = Execution._meta.concrete_fields
    blank = {name: value for name, value in Execution().__dict__.items() if name != "_state"}
    fresh = [(field.attname, field.get_default) for field in fields if field.has_default() and callable(field.default)]
    names = frozenset(name for field in fields for name in (field.name, field.attname))
    return blank, fresh, names


def insert_sqlite(connection, rows: list[list]) -> None:
    """The rows in one transaction of SQLite's own, outside Django's transaction and cursor
    wrappers (as Django would: BEGIN in autocommit, in the database's transaction mode).

    Measured in the fast lane's groups (6 rows): 460 -> 360 us of CPU a group, a sixth of the
    insert. Django's query metrics (django_db_execute*) do not count these statements.
    """
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw = connection.connection
        raw.execute(f"BEGIN {connection.transaction_mode or ''}")
        try:
            raw.executemany(sqlite_insert_statement(connection.alias), rows)
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise


def insert_postgresql(connection, rows: list[list]) -> None:
    """The rows by one COPY FROM STDIN: PostgreSQL neither parses nor plans each row.

    Against executemany()'s INSERTs, in groups of 6 rows: 64-78 -> 40-47 us of the caller's CPU a
    row and 102-115 -> 53-58 us of PostgreSQL's (bench/ingest.py's database on the same cores).
    Outside a transaction of the caller's, the COPY is a transaction by itself (all its rows or
    none), with no BEGIN and COMMIT around it: two round trips and Django's atomic() less, about
    300 us of the caller's CPU and 100 us of PostgreSQL's a group, on a machine 2.5 times slower
    than usual. psycopg adapts each value as for an INSERT; errors are Django's (IntegrityError
    included). Django's query metrics (django_db_execute*) do not count it.
    """
    if connection.in_atomic_block or not connection.get_autocommit():
        # Within the caller's transaction: a savepoint, so that a refused group leaves it usable.
        with transaction.atomic(using=connection.alias):
            copy_rows(connection, rows)
    else:
        copy_rows(connection, rows)


def copy_rows(connection, rows: list[list]) -> None:
    # On psycopg's own cursor, as connection.cursor() would make it but without Django's wrappers
    # around it (and django-prometheus's), which a COPY does not use: 10-13 us a group.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        with connection.connection.cursor() as cursor, cursor.copy(copy_statement(connection.alias)) as copy:
            copy.set_types(copy_oids(connection.alias))
            for row in rows:
                copy.write_row(row)


@functools.cache
def copy_statement(using: str) -> str:
    """COPY of insert_statement()'s columns, in its order (insert_plan's), in PostgreSQL's binary
    format: against the text format, in groups of 8 rows, about 5 us less of the caller's CPU a
    row and 2-3 us less of PostgreSQL's, and 60 us less of a group's wall time."""
    quote = connections[using].ops.quote_name
    columns = ", ".join(quote(field.column) for field in Execution._meta.local_concrete_fields)
    return f"COPY {quote(Execution._meta.db_table)} ({columns}) FROM STDIN (FORMAT BINARY)"


@functools.cache
def copy_oids(using: str) -> list[int]:
    """The columns' type OIDs, which the binary format needs: each column's type as Django declares
    it (varchar(16) as varchar), looked up in psycopg's registry of PostgreSQL's types once per
    database, not 26 times every group (about 20 us of a group's CPU)."""
    from psycopg import postgres

    connection = connections[using]
    return [
        postgres.types.get_oid(re.sub(r"\(.*\)$", "", field.db_type(connection)))
        for field in Execution._meta.local_concrete_fields
    ]


@functools.cache
def sqlite_insert_statement(using: str) -> str:
    # Django's SQLite cursor turns its %s into sqlite3's ? on each run.
    return insert_statement(using, "sqlite").replace("%s", "?")


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
    if value.tzinfo is dt_timezone.utc:
        # timezone.now()'s, and the database's: already in UTC.
        text = value.isoformat()
    else:
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


class Batch(models.Model):
    """A batch that asked for one callback when all of its executions have ended."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="batches")
    callback_url = models.CharField(max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"batch {self.id}"

    def end_if_done(self) -> bool:
        """True once, for the caller that sees the last of its executions settle (execution_settled).

        Each execution's own settling write has committed before this runs, so the last two to settle
        both see every execution settled, and the conditional UPDATE picks one of them.
        """
        unsettled = ~models.Q(status__in=Execution.TERMINAL_STATUSES) | models.Q(output_pending=True)
        if self.executions.filter(unsettled).exists():
            return False
        return bool(Batch.objects.filter(id=self.id, ended_at=None).update(ended_at=timezone.now()))

    def to_dict(self) -> dict:
        executions = self.executions.order_by("created_at", "id")
        return {"batch_id": str(self.id), "executions": [execution.to_dict() for execution in executions]}


class DeliveryQuerySet(TenantOwnedQuerySet):
    def due(self, now=None) -> DeliveryQuerySet:
        """Pending deliveries whose next attempt is overdue (their queued job was lost)."""
        return self.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now or timezone.now())


class Delivery(models.Model):
    """One webhook: the result of an execution (or of a batch) POSTed to a callback URL until a 2xx."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    # Sent as the webhook-id header: the same on every attempt, so that receivers can deduplicate.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="deliveries")
    execution = models.ForeignKey(
        Execution, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    url = models.CharField(max_length=2000)
    # The JSON body, written at the first attempt: every attempt sends the same bytes.
    body = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Retries stop after this: WEBHOOK_RETRY_SECONDS after it was made, or re-sent.
    give_up_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="delivery_tenant_created"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_status_next"),
            models.Index(fields=["-created_at"], name="delivery_created"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.id} ({self.status})"

    @classmethod
    def make(cls, tenant_id: int, url: str, execution_id=None, batch_id=None) -> Delivery:
        now = timezone.now()
        return cls.objects.create(
            tenant_id=tenant_id,
            url=url,
            execution_id=execution_id,
            batch_id=batch_id,
            created_at=now,
            next_attempt_at=now,
            give_up_at=now + timedelta(seconds=settings.WEBHOOK_RETRY_SECONDS),
        )

    def payload(self) -> str:
        """The body to send, the same on every attempt; written on the first one."""
        if not self.body:
            source = self.execution if self.execution_id else self.batch
            self.body = json.dumps(source.to_dict(), separators=(",", ":"))
            Delivery.objects.filter(id=self.id, body="").update(body=self.body)
        return self.body

    def record(self, status_code: int | None, error: str, seconds: float, delay: float | None) -> str:
        """Record an attempt and what follows it: delivered (a 2xx), pending for another attempt in
        `delay` seconds, or failed when the next would come after give_up_at. The new status."""
        now = timezone.now()
        DeliveryAttempt.objects.create(
            delivery=self, at=now, status_code=status_code, error=error[:2000], duration_ms=int(seconds * 1000)
        )
        self.attempts += 1
        self.last_status_code, self.last_error = status_code, error[:2000]
        if status_code is not None and 200 <= status_code < 300:
            self.status, self.delivered_at, self.next_attempt_at = self.Status.DELIVERED, now, None
        elif delay is not None and now + timedelta(seconds=delay) <= self.give_up_at:
            self.status, self.next_attempt_at = self.Status.PENDING, now + timedelta(seconds=delay)
        else:
            self.status, self.next_attempt_at = self.Status.FAILED, None
        fields = ["attempts", "last_status_code", "last_error", "status", "delivered_at", "next_attempt_at"]
        # Conditional: a re-send from the admin meanwhile is not overwritten by a late attempt.
        Delivery.objects.filter(id=self.id, status=self.Status.PENDING).update(
            **{name: getattr(self, name) for name in fields}
        )
        return self.status

    def resend(self) -> bool:
        """Send it again now, retrying for another WEBHOOK_RETRY_SECONDS; False if it is still pending."""
        now = timezone.now()
        return bool(
            Delivery.objects.filter(id=self.id)
            .exclude(status=self.Status.PENDING)
            .update(
                status=self.Status.PENDING,
                next_attempt_at=now,
                give_up_at=now + timedelta(seconds=settings.WEBHOOK_RETRY_SECONDS),
            )
        )

    def to_dict(self) -> dict:
        return {
            "delivery_id": str(self.id),
            "task_id": str(self.execution_id) if self.execution_id else None,
            "batch_id": str(self.batch_id) if self.batch_id else None,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error or None,
            "created_at": iso_time(self.created_at),
            "next_attempt_at": iso_time(self.next_attempt_at),
            "delivered_at": iso_time(self.delivered_at),
        }


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(default=timezone.now)
    # None: no HTTP answer (refused address, connection refused, timeout).
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.status_code or '-'}"
