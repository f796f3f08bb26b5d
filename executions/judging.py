"""Judging: a program's output compared with each test's expected output, and the verdicts.

Pure logic, shared by admission (which checks a submission's tests and comparison) and the worker
(which compares and gives verdicts): no I/O here. The sandboxes that run the tests are
executions/sandbox/judge.py's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import re2

MAX_TESTS = 64
MAX_TEST_NAME = 100
COMPARISONS = ("exact", "trailing_whitespace", "tokens", "float", "regex")
DEFAULT_COMPARISON = "trailing_whitespace"
DEFAULT_ABS_TOLERANCE = 1e-6
DEFAULT_REL_TOLERANCE = 1e-6
# A tenant's regular expression is untrusted. RE2 never backtracks, but its time is linear in the
# output times the size of its compiled program when its DFA gives up (a pattern built for that
# does so), so both are capped: the output by the sandbox, the pattern and its program here. What
# remains is bounded by the comparisons' own time budget (executions/comparing.py).
REGEX_MAX_MEMORY = 8 * 1024 * 1024
REGEX_MAX_PATTERN_BYTES = 16 * 1024
REGEX_MAX_PROGRAM_SIZE = 4096
# Up to this much work (program size times output bytes) a match runs in the worker itself, since
# even at RE2's slowest that is a few milliseconds; beyond it, where it can be killed.
REGEX_INLINE_WORK = 2_000_000
# The output a comparison reads is capped by the sandbox (SANDBOX_OUTPUT_LIMIT_BYTES); the modes
# other than regex are linear in it, and each comparison runs outside the test's time.

ACCEPTED = "accepted"
WRONG_ANSWER = "wrong_answer"
TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
RUNTIME_ERROR = "runtime_error"
OUTPUT_LIMIT_EXCEEDED = "output_limit_exceeded"
COMPILATION_ERROR = "compilation_error"
# Not run: an earlier test failed and the submission asked to stop at the first failure.
SKIPPED = "skipped"
TEST_VERDICTS = (ACCEPTED, WRONG_ANSWER, TIME_LIMIT_EXCEEDED, MEMORY_LIMIT_EXCEEDED, RUNTIME_ERROR, OUTPUT_LIMIT_EXCEEDED, SKIPPED)
VERDICTS = (ACCEPTED, WRONG_ANSWER, TIME_LIMIT_EXCEEDED, MEMORY_LIMIT_EXCEEDED, RUNTIME_ERROR, OUTPUT_LIMIT_EXCEEDED, COMPILATION_ERROR)


class BadComparison(ValueError):
    """A comparison that cannot be used; `field` names the request's field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Comparison:
    mode: str = DEFAULT_COMPARISON
    abs_tolerance: float = DEFAULT_ABS_TOLERANCE
    rel_tolerance: float = DEFAULT_REL_TOLERANCE

    @classmethod
    def of(cls, mode: str, abs_tolerance: float | None, rel_tolerance: float | None) -> Comparison:
        """As a submission or its row holds it: "" and None for what was not given, the defaults."""
        return cls(
            mode or DEFAULT_COMPARISON,
            DEFAULT_ABS_TOLERANCE if abs_tolerance is None else abs_tolerance,
            DEFAULT_REL_TOLERANCE if rel_tolerance is None else rel_tolerance,
        )

    def check(self, expected_outputs: list[str]) -> None:
        """BadComparison unless every expected output can be compared this way."""
        if self.mode not in COMPARISONS:
            raise BadComparison("comparison", f"unknown comparison {self.mode!r}; use one of: {', '.join(COMPARISONS)}.")
        for name, value in (("abs_tolerance", self.abs_tolerance), ("rel_tolerance", self.rel_tolerance)):
            if not (math.isfinite(value) and 0 <= value <= 1e9):
                raise BadComparison(name, "must be a finite number between 0 and 1e9.")
        if self.mode == "regex":
            for index, pattern in enumerate(expected_outputs):
                check_regex(f"tests[{index}].expected_output", pattern)

    def matches(self, output: str, expected: str) -> bool:
        if self.mode == "exact":
            return output == expected
        if self.mode == "trailing_whitespace":
            return strip_trailing(output) == strip_trailing(expected)
        if self.mode == "tokens":
            return output.split() == expected.split()
        if self.mode == "float":
            return floats_match(output.split(), expected.split(), self.abs_tolerance, self.rel_tolerance)
        if self.mode == "regex":
            return compiled_regex(expected).fullmatch(regex_subject(output)) is not None
        raise ValueError(f"unknown comparison {self.mode!r}")

    def work(self, output: str, expected: str) -> int:
        """A bound on the comparison's cost, in REGEX_INLINE_WORK's units; 0 for the linear modes."""
        if self.mode != "regex":
            return 0
        return compiled_regex(expected).programsize * (len(regex_subject(output).encode("utf-8", errors="surrogatepass")) + 1)


def strip_trailing(text: str) -> str:
    """Judge0's tolerance: whitespace at the end of each line and blank lines at the end do not count."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def floats_match(got: list[str], expected: list[str], abs_tolerance: float, rel_tolerance: float) -> bool:
    """Token by token: numbers within either tolerance of the expected one, other tokens equal."""
    if len(got) != len(expected):
        return False
    for mine, theirs in zip(got, expected):
        want = as_float(theirs)
        if want is None:
            if mine != theirs:
                return False
            continue
        value = as_float(mine)
        if value is None or not math.isclose(value, want, rel_tol=rel_tolerance, abs_tol=abs_tolerance):
            if not (value is not None and math.isnan(value) and math.isnan(want)):
                return False
    return True


def as_float(token: str) -> float | None:
    # Bounded: float() is linear, and a token is at most the capped output.
    try:
        return float(token)
    except ValueError:
        return None


def check_regex(field: str, pattern: str) -> None:
    size = len(pattern.encode("utf-8", errors="surrogatepass"))
    if size > REGEX_MAX_PATTERN_BYTES:
        raise BadComparison(field, f"is a regular expression of {size} bytes; the limit is {REGEX_MAX_PATTERN_BYTES} bytes.")
    try:
        program = compiled_regex(pattern).programsize
    except re2.error as exc:
        raise BadComparison(field, f"is not a valid RE2 regular expression: {exc}.") from None
    if program > REGEX_MAX_PROGRAM_SIZE:
        raise BadComparison(
            field, f"compiles to an RE2 program of {program} instructions; the limit is {REGEX_MAX_PROGRAM_SIZE} (shorten the pattern)."
        )


def regex_subject(output: str) -> str:
    # The pattern must match the whole output, less the whitespace at its end.
    return output.rstrip()


@functools.lru_cache(maxsize=MAX_TESTS)
def compiled_regex(pattern: str):
    options = re2.Options()
    options.max_mem = REGEX_MAX_MEMORY
    options.log_errors = False
    # Only whether the whole output matches counts: without captures RE2 answers from its DFA
    # alone whenever it can, and never copies a capture array per thread when it cannot.
    options.never_capture = True
    return re2.compile(pattern, options)


def test_verdict(status: str, cpu_exceeded: bool, passed: bool | None) -> str:
    """A test's verdict from how its sandbox ended (runner statuses) and, if it completed, the comparison."""
    if status == "output_limit_exceeded":
        return OUTPUT_LIMIT_EXCEEDED
    if cpu_exceeded or status == "timed_out":
        return TIME_LIMIT_EXCEEDED
    if status == "oom_killed":
        return MEMORY_LIMIT_EXCEEDED
    if status != "completed":
        return RUNTIME_ERROR
    return ACCEPTED if passed else WRONG_ANSWER


def overall_verdict(verdicts: list[str]) -> str:
    """The first failing test's verdict, else accepted."""
    return next((verdict for verdict in verdicts if verdict not in (ACCEPTED, SKIPPED)), ACCEPTED)


def wall_ceiling(cpu_seconds: float, cpus: float) -> float:
    """How long a test may take by the clock: long enough to use all of its CPU time at its share
    of a core, and no longer, so that a program that sleeps or stops itself cannot outlast it."""
    return cpu_seconds / min(cpus, 1.0) + 1.0
