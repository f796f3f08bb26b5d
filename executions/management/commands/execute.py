from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from executions import submissions
from executions.models import Execution, Tenant
from executions.sandbox import languages

# Exit codes for runs that ended without an exit code of their own, after coreutils' timeout(1).
EXIT_CODES = {
    Execution.Status.TIMED_OUT: 124,
    Execution.Status.OUTPUT_LIMIT_EXCEEDED: 125,
    Execution.Status.OOM_KILLED: 137,
    Execution.Status.ERROR: 126,
    Execution.Status.COMPILATION_ERROR: 1,
}
# Exit codes when nothing ran, after sysexits.h: the submission is wrong (65), it may be sent again
# later (75: a quota, the rate, a full queue), the platform cannot take it (69).
EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL = 65, 69, 75
# The option that sets a field of the submission, to name it in a refusal.
OPTIONS = {"timeout_seconds": "--timeout", "language": "--language", "tests": "--tests"}


def to_json(execution: Execution) -> str:
    # The same representation as GET /api/v1/executions/<id>.
    return json.dumps(execution.to_dict())


class Command(BaseCommand):
    help = (
        "Run FILE (- for standard input) in the sandbox through the queue, wait for it, print its stdout "
        "and stderr and exit with its exit code (124 timed out, 125 output limit, 137 out of memory, "
        "126 platform error; when nothing ran: 65 refused submission, 75 over a quota or the queue full, retry later, "
        "69 queue unavailable)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The program to run; - reads it from standard input.")
        # Not "args": Django passes an option of that name on as positional arguments.
        parser.add_argument("program_args", nargs="*", metavar="args", help="Arguments for the program (after --).")
        parser.add_argument(
            "--language",
            # Any spelling the API accepts (js, Python...), checked against the names once it is one.
            type=lambda spelling: languages.name_of(spelling) or spelling,
            choices=languages.NAMES,
            help="A name or alias (js, py, c++...). Default: from the file's extension (python for -).",
        )
        parser.add_argument("--stdin", help="A file whose contents are the program's stdin (- for standard input).")
        parser.add_argument("--tenant", default="default", help="The tenant to run as (default: default).")
        parser.add_argument("--wait", type=float, default=300, help="Seconds to wait for the result.")
        parser.add_argument("--timeout", type=float, help="A lower wall-clock limit for this run, in seconds.")
        parser.add_argument(
            "--tests",
            help="A JSON file of tests to judge the program against: a list of {stdin, args, expected_output, name}, "
            "or an object with `tests` and the options of the API (comparison, abs_tolerance, rel_tolerance, "
            "stop_on_first_failure). Exits 0 only if every test is accepted.",
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the whole execution as JSON instead.")
        parser.add_argument("--no-wait", action="store_true", help="Print the task id (or --json) and exit at once.")

    def handle(
        self, *args, file: str, program_args: list[str], language: str | None, stdin: str | None, tenant: str, wait: float,
        timeout: float | None, as_json: bool, no_wait: bool, tests: str | None = None, **options,
    ):
        # The program's stderr is ours to print: keep the platform's own log lines out of it.
        logging.getLogger("executions").setLevel(logging.WARNING)
        if file == "-" and stdin == "-":
            raise CommandError("the script and its stdin cannot both come from standard input")
        if language is None and file != "-":
            language = getattr(languages.by_extension(Path(file).name), "name", None)
            if language is None:
                raise CommandError(f"cannot tell the language of {file}; pass --language (one of {', '.join(languages.NAMES)})")
        language = language or "python"
        code = self.read_text(file)
        stdin_text = self.read_text(stdin) if stdin else ""
        try:
            owner = Tenant.objects.get(name=tenant)
        except Tenant.DoesNotExist:
            raise CommandError(f"no tenant {tenant!r}; create it with create_tenant") from None
        judging = self.read_tests(tests) if tests else {}
        submission = submissions.Submission(
            language, code, stdin_text, timeout_seconds=timeout, args=tuple(program_args), **judging
        )
        try:
            execution, _ = submissions.submit(owner, submission)
        except submissions.AdmissionError as exc:
            where = OPTIONS.get(exc.field)
            message = f"{where} {exc.message}" if where else f"not accepted ({exc.code}): {exc}"
            raise CommandError(message, returncode=exit_code(exc)) from exc
        if no_wait:
            self.stdout.write(to_json(execution) if as_json else str(execution.id))
            return
        execution = self.wait_for(execution, wait)
        if as_json:
            self.stdout.write(to_json(execution))
        elif execution.is_judged:
            self.print_verdicts(execution)
        else:
            self.print_streams(execution)
        if execution.is_judged and execution.status in (Execution.Status.COMPLETED, Execution.Status.COMPILATION_ERROR):
            sys.exit(0 if execution.verdict == "accepted" else 1)
        code = EXIT_CODES.get(execution.status, execution.exit_code)
        sys.exit(code if code is not None else 1)

    def print_streams(self, execution: Execution) -> None:
        sys.stderr.write(execution.compile_output)
        sys.stdout.write(execution.stdout)
        sys.stdout.flush()
        sys.stderr.write(execution.stderr)
        if execution.status != Execution.Status.COMPLETED and execution.status != Execution.Status.FAILED:
            detail = f": {execution.error}" if execution.error else ""
            sys.stderr.write(f"\n[{execution.status}{detail}]\n")
        sys.stderr.flush()

    def print_verdicts(self, execution: Execution) -> None:
        sys.stderr.write(execution.compile_output)
        for result in execution.test_results:
            figures = f"{result.get('cpu_time_ms', '-')} ms CPU, {result.get('wall_time_ms', '-')} ms wall, {result.get('memory_kb', '-')} KiB"
            self.stdout.write(f"{result['name']}: {result['verdict']} ({figures})")
        if execution.verdict:
            self.stdout.write(f"verdict: {execution.verdict} ({execution.tests_passed or 0}/{len(execution.tests)} passed)")
        else:
            detail = f": {execution.error}" if execution.error else ""
            sys.stderr.write(f"[{execution.status}{detail}]\n")

    def read_tests(self, name: str) -> dict:
        """Submission's judging fields from a JSON file of tests (admission checks what they hold)."""
        try:
            data = json.loads(self.read_text(name))
        except ValueError as exc:
            raise CommandError(f"{name} is not JSON: {exc}") from exc
        if isinstance(data, list):
            data = {"tests": data}
        known = {"tests", "comparison", "abs_tolerance", "rel_tolerance", "stop_on_first_failure"}
        if not isinstance(data, dict) or not isinstance(data.get("tests"), list) or set(data) - known:
            raise CommandError(f"{name} must hold a list of tests, or an object with `tests` and only {', '.join(sorted(known - {'tests'}))}")
        return {**data, "tests": tuple(data["tests"])}

    def read_text(self, name: str) -> str:
        try:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {name}: {exc}") from exc
        return text

    def wait_for(self, execution: Execution, timeout: float) -> Execution:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution.refresh_from_db()
            if execution.is_terminal:
                return execution
            time.sleep(0.1)
        raise CommandError(f"execution {execution.id} did not finish within {timeout:.0f}s (status {execution.status})")


def exit_code(refusal: submissions.AdmissionError) -> int:
    if isinstance(refusal, submissions.Refused):
        return EX_TEMPFAIL
    if isinstance(refusal, submissions.QueueUnavailable):
        return EX_UNAVAILABLE
    return EX_DATAERR
