"""Admission: the one way an execution gets in, whichever way it comes (API, batch, browser page, admin, CLI).

A submission is checked (sizes, language, its limits against its tenant's maxima), its row is
inserted, and its job is queued by one scheduler script that also counts the request against the
tenant's rate and checks its quotas and the platform's: all of it or none of it. Every refusal is
an AdmissionError; each way in turns it into its own kind of answer.
"""

from __future__ import annotations

import binascii
import logging
from dataclasses import dataclass, replace
from datetime import timedelta

import redis
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.utils import timezone

from executions import destinations, judging, limits, metrics, scheduler, store
from executions.models import Batch, Execution, Limits, Tenant, file_content, log_state, log_submitted
from executions.sandbox import languages

log = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)
# A tenant at its max_queued frees a place when one of its executions ends: a few seconds.
QUEUE_QUOTA_RETRY_AFTER_SECONDS = 5
Status = Execution.Status


class AdmissionError(Exception):
    """A submission refused; nothing of it was created. `code` is stable and machine-readable."""

    code = "invalid_request"

    def __init__(self, message: str, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        # The request's field at fault, if one is; and, in a batch, the index of the item.
        self.field = field
        self.item: int | None = None

    def __str__(self) -> str:
        where = f"executions[{self.item}]: " if self.item is not None else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class Invalid(AdmissionError):
    """The submission itself is wrong: the client must change it."""


class TooLarge(Invalid):
    code = "payload_too_large"


class IdempotencyConflict(AdmissionError):
    code = "idempotency_key_reused"

    def __init__(self):
        super().__init__("This Idempotency-Key was used in the last 24 hours for a different request.")


class Refused(AdmissionError):
    """A valid submission refused for now by a quota or the platform's load: retry after `retry_after`."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(Refused):
    code = "rate_limited"

    def __init__(self, limit: int, retry_after: int):
        super().__init__(f"This tenant may send {limit} requests a minute.", retry_after)


class QuotaExceeded(Refused):
    code = "queue_quota_exceeded"

    def __init__(self, limit: int):
        super().__init__(
            f"This tenant has {limit} executions queued or running, its quota; retry when some have finished.",
            QUEUE_QUOTA_RETRY_AFTER_SECONDS,
        )
        self.limit = limit


class Overloaded(Refused):
    code = "overloaded"

    def __init__(self):
        super().__init__(
            "The platform's queue is full; nothing was created. Retry later.", settings.QUEUE_FULL_RETRY_AFTER_SECONDS
        )


class QueueUnavailable(AdmissionError):
    """A platform fault: Redis could not take the job."""

    code = "queue_unavailable"

    def __init__(self):
        super().__init__("The execution queue is unavailable; nothing was created. Retry later.")


@dataclass(frozen=True)
class Submission:
    language: str
    code: str
    stdin: str = ""
    # Lower limits for this run; None: the tenant's maxima.
    timeout_seconds: float | None = None
    memory_mb: int | None = None
    # The program's other files, each {"name", "content", "encoding"} (utf-8 or base64), and its arguments.
    files: tuple[dict, ...] = ()
    args: tuple[str, ...] = ()
    # Where to POST the result when it ends; "": the tenant's default callback_url, if it has one.
    callback_url: str = ""
    # Judging: each test {"stdin", "args", "expected_output", "name"} runs the program in its own
    # sandbox, its output compared by `comparison` ("": trailing_whitespace); none: a plain run.
    tests: tuple[dict, ...] = ()
    comparison: str = ""
    abs_tolerance: float | None = None
    rel_tolerance: float | None = None
    stop_on_first_failure: bool = False

    @property
    def weight(self) -> int:
        return max(1, len(self.tests))

    def judging_comparison(self) -> judging.Comparison:
        return judging.Comparison.of(self.comparison, self.abs_tolerance, self.rel_tolerance)


def one_test(stdin: str = "", args: tuple[str, ...] = (), expected_output: str = "") -> dict:
    """Submission's fields for a one-test judged submission of (stdin, args, expected_output), its
    output compared as Judge0 compares it (whitespace at the ends of lines and of the output does not
    count): `Submission(language, code, **one_test(...), timeout_seconds=...)`."""
    test = {"stdin": stdin, "args": list(args), "expected_output": expected_output, "name": "test 1"}
    return {"tests": (test,), "comparison": "trailing_whitespace"}


def judged(
    tenant: Tenant,
    language: str,
    code: str,
    stdin: str = "",
    args: tuple[str, ...] = (),
    expected_output: str = "",
    idempotency_key: str = "",
    **options,
) -> tuple[Execution, bool]:
    """submit() a one-test judged submission (one_test()); `options` are Submission's other fields
    (timeout_seconds, memory_mb, files, callback_url)."""
    submission = Submission(language, code, **one_test(stdin, args, expected_output), **options)
    return submit(tenant, submission, idempotency_key)


def check_files(language: languages.Language, code: str, files: tuple[dict, ...]) -> None:
    if len(files) > languages.MAX_FILES:
        raise Invalid(f"at most {languages.MAX_FILES} files besides the entry point.", code="too_many_files", field="files")
    total = len(code.encode("utf-8", errors="surrogatepass"))
    entry = language.entry(code)
    names = {entry}
    for file in files:
        name = file["name"]
        problem = languages.name_problem(name)
        if problem:
            raise Invalid(problem, code="invalid_file_name", field="files")
        if name in names or any(other.startswith(name + "/") or name.startswith(other + "/") for other in names):
            raise Invalid(f"{name!r} is named twice (the entry point is {entry}).", code="duplicate_file", field="files")
        names.add(name)
        try:
            total += len(file_content(file))
        except (binascii.Error, ValueError):
            raise Invalid(f"{name!r} is not valid base64.", code="invalid_encoding", field="files") from None
    if total > settings.SANDBOX_MAX_CODE_BYTES:
        raise TooLarge(f"the program's files are {total} bytes; the limit is {settings.SANDBOX_MAX_CODE_BYTES} bytes.")


def check_args(args: tuple[str, ...]) -> None:
    if len(args) > languages.MAX_ARGS:
        raise Invalid(f"at most {languages.MAX_ARGS} arguments.", code="too_many_args", field="args")
    for arg in args:
        if "\x00" in arg:
            raise Invalid("must not contain NUL characters.", code="nul_character", field="args")
        if len(arg.encode("utf-8", errors="surrogatepass")) > languages.MAX_ARG_BYTES:
            raise TooLarge(f"an argument is over {languages.MAX_ARG_BYTES} bytes.")


TEST_FIELDS = {"stdin": str, "args": list, "expected_output": str, "name": str}


def test_cases(tests: tuple[dict, ...]) -> list[dict]:
    """The tests as stored: every field present, a name for each."""
    return [
        {
            "name": test.get("name") or f"test {index + 1}",
            "stdin": test.get("stdin", ""),
            "args": list(test.get("args") or ()),
            "expected_output": test.get("expected_output", ""),
        }
        for index, test in enumerate(tests)
    ]


def check_tests(submission: Submission, quotas: Limits, run_limits: limits.ExecutionLimits) -> None:
    """Invalid unless the submission's tests and comparison can be judged within the platform's bounds."""
    tests = submission.tests
    if not tests:
        if submission.comparison or submission.abs_tolerance is not None or submission.rel_tolerance is not None:
            raise Invalid("a comparison needs tests to compare.", code="no_tests", field="tests")
        return
    if len(tests) > judging.MAX_TESTS:
        raise Invalid(f"at most {judging.MAX_TESTS} tests.", code="too_many_tests", field="tests")
    total = 0
    for index, test in enumerate(tests):
        where = f"tests[{index}]"
        if not isinstance(test, dict) or set(test) - set(TEST_FIELDS):
            raise Invalid(f"a test is an object with only {', '.join(TEST_FIELDS)}.", code="invalid_test", field=where)
        for name, kind in TEST_FIELDS.items():
            value = test.get(name, kind())
            if not isinstance(value, kind) or (kind is list and not all(isinstance(arg, str) for arg in value)):
                raise Invalid(f"must be {'a list of strings' if kind is list else 'a string'}.", code="invalid_test", field=f"{where}.{name}")
            if kind is str and "\x00" in value:
                raise Invalid("must not contain NUL characters.", code="nul_character", field=f"{where}.{name}")
        if len(test.get("name", "")) > judging.MAX_TEST_NAME:
            raise Invalid(f"at most {judging.MAX_TEST_NAME} characters.", code="invalid_test", field=f"{where}.name")
        try:
            check_args(tuple(test.get("args", ())))
        except AdmissionError as exc:
            exc.field = f"{where}.args"
            raise
        for name, limit in (("stdin", settings.SANDBOX_MAX_STDIN_BYTES), ("expected_output", settings.SANDBOX_OUTPUT_LIMIT_BYTES)):
            size = len(test.get(name, "").encode("utf-8", errors="surrogatepass"))
            if size > limit:
                raise TooLarge(f"is {size} bytes; the limit is {limit} bytes.", field=f"{where}.{name}")
            total += size
    if total > settings.JUDGE_MAX_TESTS_BYTES:
        raise TooLarge(f"the tests' stdin and expected outputs are {total} bytes; the limit is {settings.JUDGE_MAX_TESTS_BYTES}.", field="tests")
    try:
        submission.judging_comparison().check([test.get("expected_output", "") for test in tests])
    except judging.BadComparison as exc:
        raise Invalid(exc.message, code="invalid_comparison", field=exc.field) from None
    ceiling = judging.wall_ceiling(run_limits.timeout_seconds, settings.SANDBOX_CPUS)
    # The other comparisons are linear in the capped output: milliseconds, not worth counting.
    comparing = settings.JUDGE_COMPARISON_TOTAL_SECONDS if submission.judging_comparison().mode == "regex" else 0.0
    if len(tests) * ceiling + comparing > settings.JUDGE_MAX_SECONDS:
        raise Invalid(
            f"{len(tests)} tests of up to {ceiling:g} s each (timeout_seconds of CPU time, at most {ceiling:g} s by the "
            f"clock){f' and {comparing:g} s of comparisons' if comparing else ''} could take longer than "
            f"{settings.JUDGE_MAX_SECONDS:g} s; lower timeout_seconds or send fewer tests.",
            code="judging_too_long",
            field="tests",
        )
    # Each test is a sandbox, counted as one execution by the quotas: a submission that could never
    # be admitted is the client's to change, not to retry.
    if submission.weight > min(quotas.max_queued, quotas.rate_per_minute):
        raise Invalid(
            f"{submission.weight} tests count as {submission.weight} executions, over this tenant's quota "
            f"({min(quotas.max_queued, quotas.rate_per_minute)}).",
            code="too_many_tests",
            field="tests",
        )


def check(
    tenant: Tenant, submission: Submission, quotas: Limits, lookups: destinations.Lookups | None = None
) -> limits.ExecutionLimits:
    """The limits the run will get, or Invalid: everything about a submission that needs no queue.

    `quotas` is tenant.limits(), read once for the whole request; `lookups`, a batch's callback
    hosts being resolved at once (lookups_for()).
    """
    if not tenant.is_active:
        raise Invalid(f"The tenant {tenant.name} is disabled.", code="tenant_disabled")
    for name, text, limit in (
        ("code", submission.code, settings.SANDBOX_MAX_CODE_BYTES),
        ("stdin", submission.stdin, settings.SANDBOX_MAX_STDIN_BYTES),
    ):
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > limit:
            raise TooLarge(f"{name} is {size} bytes; the limit is {limit} bytes.")
        if "\x00" in text:
            raise Invalid("must not contain NUL characters.", code="nul_character", field=name)
    if not submission.code.strip():
        raise Invalid("must not be empty.", code="empty_code", field="code")
    language = languages.get(submission.language)
    if language is None or language.name != submission.language:
        raise Invalid(
            f"unknown language {submission.language!r}; use one of: {', '.join(languages.NAMES)}.",
            code="unknown_language",
            field="language",
        )
    check_files(language, submission.code, submission.files)
    check_args(submission.args)
    allowed = quotas.languages
    if submission.language not in allowed:
        raise Invalid(
            f"Language {submission.language!r} is not allowed for this tenant; it may use: {', '.join(sorted(allowed))}.",
            code="language_not_allowed",
        )
    if submission.callback_url:
        check_callback_url(tenant, submission.callback_url, lookups=lookups)
    try:
        run_limits = limits.check_limits(
            submission.timeout_seconds,
            submission.memory_mb,
            limits.tenant_maxima(quotas, language),
            limits.language_defaults(language),
        )
    except limits.LimitExceeded as exc:
        raise Invalid(exc.message, code="invalid_limit", field=exc.field) from None
    check_tests(submission, quotas, run_limits)
    return run_limits


def check_callback_url(
    tenant: Tenant, url: str, field: str = "callback_url", lookups: destinations.Lookups | None = None
) -> None:
    """Invalid unless `url` may receive this tenant's webhooks now (it is checked again at delivery)."""
    if not tenant.webhook_secret:
        raise Invalid(
            "This tenant has no webhook secret to sign callbacks with; an operator makes one in the admin.",
            code="webhook_secret_missing",
            field=field,
        )
    try:
        destinations.check(url, lookups)
    except destinations.Refused as exc:
        raise Invalid(exc.message, code=exc.code, field=field) from None


def lookups_for(tenant: Tenant, urls) -> destinations.Lookups | None:
    """The hosts of a batch's callback URLs, resolving at once: checking each then waits for one
    deadline in all, not one per name. None when the tenant cannot ask for callbacks anyway."""
    urls = [url for url in urls if url and isinstance(url, str)]
    return destinations.Lookups(urls) if urls and tenant.webhook_secret else None


def callback_url(tenant: Tenant, submission: Submission, batch: bool = False) -> str:
    """Where this execution's result goes: its own callback_url, else its tenant's default (not
    for the items of a batch that asked for one callback of its own)."""
    if submission.callback_url or batch:
        return submission.callback_url
    return tenant.callback_url


def submit(tenant: Tenant, submission: Submission, idempotency_key: str = "") -> tuple[Execution, bool]:
    """The queued execution, and whether it is new.

    A request that repeats an Idempotency-Key within IDEMPOTENCY_WINDOW gets the original
    execution back, and nothing new.
    """
    quotas = tenant.limits()
    run_limits = check(tenant, submission, quotas)
    fingerprint = (
        submission.language,
        submission.code,
        submission.stdin,
        run_limits.timeout_seconds,
        run_limits.memory_mb,
        list(submission.files),
        list(submission.args),
        callback_url(tenant, submission),
        *judging_fields(submission).values(),
    )
    if idempotency_key:
        previous = replay(tenant, idempotency_key, fingerprint)
        if previous:
            return previous, False
    execution = new_execution(tenant, submission, run_limits, idempotency_key)
    try:
        # Only a key can collide. Then a savepoint, so that losing that race leaves any outer
        # transaction usable; without one, a lone INSERT needs no BEGIN and COMMIT around it.
        if idempotency_key:
            with transaction.atomic():
                execution.insert()
        else:
            execution.insert()
    except IntegrityError:
        # A concurrent request with the same key created it first.
        previous = replay(tenant, idempotency_key, fingerprint) if idempotency_key else None
        if previous is None:
            raise
        return previous, False
    enqueue(tenant, [execution], quotas)
    log_submitted(execution.id, tenant.name, language=submission.language)
    return execution, True


class NothingCreated(Exception):
    """The database refused a group's rows: nothing of the group exists (the cause is chained)."""


@dataclass(frozen=True)
class Checked:
    """A submission that passed check(), with what admission needs next."""

    tenant: Tenant
    submission: Submission
    quotas: Limits
    limits: limits.ExecutionLimits


def checked(tenant: Tenant, submission: Submission, quotas: Limits | None = None) -> Checked:
    """check(), keeping its result: raises Invalid. `quotas`: tenant.limits(), if the caller has them."""
    quotas = quotas or tenant.limits()
    return Checked(tenant, submission, quotas, check(tenant, submission, quotas))


def submit_group(group: list[Checked]) -> list[Execution | AdmissionError]:
    """Several requests' submissions (none with an Idempotency-Key): one commit, one Redis round trip.

    Group commit, for the web's fast lane (executions/api/fastlane.py): the rows are inserted in
    one transaction and the jobs queued by one pipeline of admission scripts, each submission
    counted, checked against its tenant's quotas and queued on its own, as submit() does. Each gets
    its queued Execution, or the AdmissionError that refused it (its row removed again).
    NothingCreated if the database refused the rows.
    """
    executions, rows = new_executions(group)
    try:
        Execution.insert_all(executions, rows)
    except DatabaseError as exc:
        raise NothingCreated() from exc
    requests = [
        (item.tenant.id, admission_quotas(item.quotas), [(execution.id, execution.attempts, execution.weight)])
        for item, execution in zip(group, executions)
    ]
    try:
        refusals = scheduler.admit_each(requests, [store.queued_state(execution) for execution in executions])
    except redis.RedisError as exc:
        # Some of the scripts may have run: their jobs find no row and end, as a withdrawn job's does.
        log.warning("%d execution(s) not accepted: the queue is unavailable: %s", len(executions), exc)
        refusals = [QueueUnavailable()] * len(executions)
    except BaseException:
        # Nothing half-done: the caller is told nothing was created, so nothing may be.
        Execution.objects.filter(id__in=[execution.id for execution in executions]).delete()
        raise
    results: list[Execution | AdmissionError] = []
    for item, execution, refusal in zip(group, executions, refusals):
        if refusal is None:
            log_submitted(execution.id, item.tenant.name, language=execution.language)
            results.append(execution)
        else:
            results.append(refusal if isinstance(refusal, AdmissionError) else refusal_error(refusal, item.quotas))
    refused = [execution.id for execution, result in zip(executions, results) if isinstance(result, AdmissionError)]
    if refused:
        store.forget_states(refused)
        try:
            Execution.remove_unqueued(refused)
        except DatabaseError:
            # Their jobs were refused: the reconciler finds queued rows with no job and queues them.
            log.warning("%d refused execution(s) could not be removed", len(refused), exc_info=True)
    return results


def new_executions(group: list[Checked]) -> tuple[list[Execution], list[list]]:
    """new_execution() of each, and each one's insert_params(): a submission with no files,
    arguments or tests is a copy (Execution.like()) of a prototype made once for all alike but for
    their code, which is most of the fast lane's."""
    connection = connections[router.db_for_write(Execution)]
    executions, rows = [], []
    for item in group:
        submission, run_limits = item.submission, item.limits
        if submission.files or submission.args or submission.tests:
            execution = new_execution(item.tenant, submission, run_limits)
            row = execution.insert_params(connection)
        else:
            # Everything new_execution() makes the execution of, but its code (the limits by type
            # too: to_dict() shows 3 and 3.0 apart).
            key = (
                connection.alias, item.tenant.id, callback_url(item.tenant, submission), submission.language,
                submission.stdin, type(run_limits.timeout_seconds), run_limits.timeout_seconds,
                type(run_limits.memory_mb), run_limits.memory_mb,
            )
            made = PROTOTYPES.get(key)
            if made is None:
                if len(PROTOTYPES) >= 256:
                    PROTOTYPES.clear()
                prototype = new_execution(item.tenant, replace(submission, code=""), run_limits)
                made = PROTOTYPES[key] = (prototype, prototype.insert_params(connection))
            execution, row = made[0].like(made[1], item.tenant, submission.code, connection)
        executions.append(execution)
        rows.append(row)
    return executions, rows


# new_executions()'s prototypes and their insert_params(), by what they are made of.
PROTOTYPES: dict[tuple, tuple[Execution, list]] = {}


def submit_batch(tenant: Tenant, submissions: list[Submission], batch_callback_url: str = "") -> list[Execution]:
    """The queued executions, all or none; an error names the first item at fault by its index.

    With `batch_callback_url`, one more webhook goes there when all of them have ended (the
    executions' `batch`), and the items get no default callback of their tenant's.
    """
    quotas = tenant.limits()
    lookups = lookups_for(tenant, [batch_callback_url, *(submission.callback_url for submission in submissions)])
    if batch_callback_url:
        check_callback_url(tenant, batch_callback_url, lookups=lookups)
    checked = []
    for index, submission in enumerate(submissions):
        try:
            checked.append(check(tenant, submission, quotas, lookups))
        except AdmissionError as exc:
            exc.item = index
            raise
    with transaction.atomic():
        batch = Batch.objects.create(tenant=tenant, callback_url=batch_callback_url) if batch_callback_url else None
        executions = Execution.objects.bulk_create(
            new_execution(tenant, submission, run_limits, batch=batch)
            for submission, run_limits in zip(submissions, checked)
        )
    try:
        enqueue(tenant, executions, quotas)
    except AdmissionError:
        if batch is not None:
            batch.delete()
        raise
    for execution in executions:
        log_submitted(execution.id, tenant.name, language=execution.language, batch=len(executions))
    return executions


def enqueue(tenant: Tenant, executions: list[Execution], quotas: Limits) -> None:
    """Queue the committed rows' jobs in one script, or remove the rows and raise: nothing half-done.

    The rows are in the database first, so that a worker always finds its row. A job that is
    refused never reaches the queue; a process that dies between the two leaves queued rows that
    the reconciler queues later.
    """
    try:
        refusal = scheduler.admit(
            tenant.id,
            admission_quotas(quotas),
            [(execution.id, execution.attempts, execution.weight) for execution in executions],
            [store.queued_state(execution) for execution in executions],
        )
    except redis.RedisError as exc:
        log.warning("%d execution(s) not accepted: the queue is unavailable: %s", len(executions), exc)
        refusal, error = None, QueueUnavailable()
    else:
        error = refusal and refusal_error(refusal, quotas)
    if error is not None:
        store.forget_states([execution.id for execution in executions])
        Execution.remove_unqueued([execution.id for execution in executions])
        raise error


def admission_quotas(quotas: Limits) -> scheduler.Quotas:
    """What the admission script checks, of a tenant's limits."""
    return scheduler.Quotas(quotas.rate_per_minute, quotas.max_queued, quotas.max_running)


def refusal_error(refusal: scheduler.Refusal, quotas: Limits) -> Refused | QueueUnavailable:
    if refusal.reason == scheduler.UNWRITTEN:
        return QueueUnavailable()
    if refusal.reason == scheduler.RATE_LIMITED:
        return RateLimited(quotas.rate_per_minute, refusal.value)
    if refusal.reason == scheduler.QUOTA_EXCEEDED:
        return QuotaExceeded(quotas.max_queued)
    return Overloaded()


def new_execution(
    tenant: Tenant,
    submission: Submission,
    run_limits: limits.ExecutionLimits,
    idempotency_key: str = "",
    batch: Batch | None = None,
) -> Execution:
    return Execution.new(
        tenant=tenant,
        language=submission.language,
        code=submission.code,
        stdin=submission.stdin,
        files=[dict(file) for file in submission.files],
        args=list(submission.args),
        idempotency_key=idempotency_key,
        timeout_seconds=run_limits.timeout_seconds,
        memory_mb=run_limits.memory_mb,
        callback_url=callback_url(tenant, submission, batch=batch is not None),
        # Not batch=None: a new execution has none, and setting it through its descriptor took a
        # sixth of new()'s CPU.
        **({"batch": batch} if batch is not None else {}),
        **judging_fields(submission),
    )


def judging_fields(submission: Submission) -> dict:
    """The Execution's judging fields for a submission: empty ones for a plain run."""
    if not submission.tests:
        return {"tests": [], "comparison": "", "abs_tolerance": None, "rel_tolerance": None, "stop_on_first_failure": False}
    comparison = submission.judging_comparison()
    return {
        "tests": test_cases(submission.tests),
        "comparison": comparison.mode,
        "abs_tolerance": comparison.abs_tolerance,
        "rel_tolerance": comparison.rel_tolerance,
        "stop_on_first_failure": submission.stop_on_first_failure,
    }


def replay(tenant: Tenant, key: str, fingerprint: tuple) -> Execution | None:
    """The execution an earlier request with this key created, if it is still within the window."""
    previous = Execution.objects.owned_by(tenant).filter(idempotency_key=key).first()
    if previous is None:
        return None
    if previous.created_at < timezone.now() - IDEMPOTENCY_WINDOW:
        # The window is over: the key is free again.
        Execution.objects.filter(pk=previous.pk, idempotency_key=key).update(idempotency_key="")
        return None
    seen = (
        previous.language,
        previous.code,
        previous.stdin,
        previous.timeout_seconds,
        previous.memory_mb,
        previous.files,
        previous.args,
        previous.callback_url,
        previous.tests,
        previous.comparison,
        previous.abs_tolerance,
        previous.rel_tolerance,
        previous.stop_on_first_failure,
    )
    if seen != fingerprint:
        raise IdempotencyConflict()
    return previous


def cancel(execution: Execution) -> bool:
    """Cancel a queued or running execution; False if it already was cancelled.

    Raises NotCancellable if it ended otherwise. The row changes first, so a worker finishing at
    the same moment and this cannot both win. A queued job leaves the queue; a running sandbox's
    worker polls the cancel flag and kills it, so the caller needs no access to the container engine.
    """
    previous = execution.cancel()
    if previous is None:
        return False
    try:
        if previous == Status.RUNNING:
            store.request_cancel(execution.id, scheduler.job_timeout())
        else:
            scheduler.release(execution.tenant_id, scheduler.job_id(execution.id, execution.attempts), withdraw=True)
    except redis.RedisError:
        # The row is cancelled whatever happens: the worker drops the result, and without the flag
        # the sandbox only runs on to its own deadline.
        log.warning("execution %s: cancelled, but Redis is unreachable to tell its worker", execution.id)
    metrics.record_cancelled(execution.language, previous)
    log_state(execution.id, Status.CANCELLED, execution.tenant.name, previous=previous)
    return True
