from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from executions import jobs
from executions.models import Execution, Tenant

LANGUAGE_BY_SUFFIX = {".py": "python", ".sh": "bash", ".bash": "bash"}
# Exit codes for runs that ended without an exit code of their own, after coreutils' timeout(1).
EXIT_CODES = {
    Execution.Status.TIMED_OUT: 124,
    Execution.Status.OUTPUT_LIMIT_EXCEEDED: 125,
    Execution.Status.OOM_KILLED: 137,
    Execution.Status.ERROR: 126,
}


class Command(BaseCommand):
    help = (
        "Run FILE in the sandbox through the queue, wait for it, print its stdout and stderr and "
        "exit with its exit code (124 timed out, 125 output limit, 137 out of memory, 126 platform error)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The script to run.")
        parser.add_argument("--language", choices=Execution.Language.values, help="Default: from the suffix.")
        parser.add_argument("--stdin", help="A file whose contents are the program's stdin.")
        parser.add_argument("--tenant", default="default", help="The tenant to run as (default: default).")
        parser.add_argument("--wait", type=float, default=300, help="Seconds to wait for the result.")

    def handle(self, *args, file: str, language: str | None, stdin: str | None, tenant: str, wait: float, **options):
        # The program's stderr is ours to print: keep the platform's own log lines out of it.
        logging.getLogger("executions").setLevel(logging.WARNING)
        path = Path(file)
        language = language or LANGUAGE_BY_SUFFIX.get(path.suffix)
        if language is None:
            raise CommandError(f"cannot tell the language of {file}; pass --language python or bash")
        code = self.read_text(path)
        stdin_text = self.read_text(Path(stdin)) if stdin else ""
        try:
            owner = Tenant.objects.get(name=tenant, is_active=True)
        except Tenant.DoesNotExist:
            raise CommandError(f"no active tenant {tenant!r}; create it with create_tenant") from None
        try:
            execution, _ = jobs.submit(owner, language, code, stdin_text)
        except jobs.QueueUnavailable as exc:
            raise CommandError(f"the queue is unavailable: {exc}") from exc
        except jobs.Overloaded as exc:
            raise CommandError("the platform's queue is full; retry later") from exc
        except jobs.QueueQuotaExceeded as exc:
            raise CommandError(f"the tenant has {exc.limit} executions queued or running, its quota") from exc
        execution = self.wait_for(execution, wait)
        sys.stdout.write(execution.stdout)
        sys.stdout.flush()
        sys.stderr.write(execution.stderr)
        if execution.status != Execution.Status.COMPLETED and execution.status != Execution.Status.FAILED:
            detail = f": {execution.error}" if execution.error else ""
            sys.stderr.write(f"\n[{execution.status}{detail}]\n")
        sys.stderr.flush()
        code = EXIT_CODES.get(execution.status, execution.exit_code)
        sys.exit(code if code is not None else 1)

    def read_text(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc

    def wait_for(self, execution: Execution, timeout: float) -> Execution:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution.refresh_from_db()
            if execution.is_terminal:
                return execution
            time.sleep(0.1)
        raise CommandError(f"execution {execution.id} did not finish within {timeout:.0f}s (status {execution.status})")
