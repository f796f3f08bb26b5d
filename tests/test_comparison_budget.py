"""A tenant's regex is bounded: its size at admission (a 400 naming the test), and its time when
judged, each comparison and all of an execution's, in a child process killed at the deadline."""

from __future__ import annotations

import random
import time

import pytest

from executions import comparing, judging
from executions.judging import Comparison
from executions.sandbox import judge, languages
from executions.sandbox.runner import Limits, RunResult
from tests.test_judging_input import TEST, assert_refused, post

# RE2's DFA gives up on this one (2^3000 states), and its NFA then keeps 3000 threads alive at
# each byte of 64 KiB of output: about a second unbounded, within the caps on a pattern.
SLOW_PATTERN = "[ab]*a" + "[ab]" * 3000
random.seed(15)
LARGE_OUTPUT = "".join(random.choice("ab") for _ in range(64 * 1024))


def alternation(size: int) -> str:
    """A large alternation of words, as a tenant might write for one of many right answers."""
    words = ["".join(random.choice("abcdefghij") for _ in range(7)) for _ in range(size // 8)]
    return "(?:" + "|".join(words)[: size - 5].rsplit("|", 1)[0] + r"|\s)*"


@pytest.mark.django_db
class TestRegexBoundsAtAdmission:
    def test_it_refuses_a_pattern_over_its_length(self, alice):
        response = post(alice, tests=[TEST, {"expected_output": alternation(45_000)}], comparison="regex")
        assert_refused(response, "tests[1].expected_output", "invalid_comparison")
        assert "16384 bytes" in response.json()["error"]["message"]

    def test_it_refuses_a_pattern_whose_program_is_too_large(self, alice):
        pattern = alternation(12_000)
        assert len(pattern) < judging.REGEX_MAX_PATTERN_BYTES
        response = post(alice, tests=[{"expected_output": pattern}], comparison="regex")
        assert_refused(response, "tests[0].expected_output", "invalid_comparison")
        assert "instructions" in response.json()["error"]["message"]

    def test_it_takes_a_pattern_within_its_bounds(self, alice):
        assert post(alice, tests=[{"expected_output": SLOW_PATTERN}], comparison="regex").status_code == 202

    def test_it_counts_the_comparisons_budget_in_the_judging_budget(self, alice, settings):
        # Two tests of 1 s of CPU time take at most 3 s each by the clock: 6 s, then 10 s comparing.
        settings.JUDGE_MAX_SECONDS = 12
        assert_refused(post(alice, tests=[TEST] * 2, timeout_seconds=1, comparison="regex"), "tests", "judging_too_long")
        assert post(alice, tests=[TEST] * 2, timeout_seconds=1, comparison="tokens").status_code == 202


class TestComparisonBudget:
    def test_a_match_over_its_budget_is_stopped_and_frees_the_worker(self):
        comparisons = comparing.Comparisons(Comparison("regex"), seconds=0.05, total_seconds=10)
        started = time.monotonic()
        assert comparisons.passed(LARGE_OUTPUT, SLOW_PATTERN) is None
        # The child's start (Python and re2) is not the comparison's time; allow it generously.
        assert time.monotonic() - started < 0.05 + comparing.START_SECONDS
        assert comparisons.spent < 0.05 + 1
        # The child that was matching is gone, not left to finish in the background.
        assert comparisons.matcher is None
        comparisons.close()

    def test_the_killed_matcher_process_has_ended(self):
        matcher = comparing.Matcher.start()
        assert matcher.fullmatch(SLOW_PATTERN, LARGE_OUTPUT, 0.05) is None
        assert matcher.process.poll() is not None

    def test_all_of_an_executions_comparisons_share_one_budget(self):
        comparisons = comparing.Comparisons(Comparison("regex"), seconds=0.05, total_seconds=0.12)
        answers = [comparisons.passed(LARGE_OUTPUT, SLOW_PATTERN) for _ in range(4)]
        assert answers == [None] * 4
        # Three at most ran (0.05 + 0.05 + the 0.02 left); the fourth found the budget spent.
        assert comparisons.spent < 0.12 + 1
        assert comparisons.passed("1", "1") is None
        comparisons.close()

    def test_a_large_match_within_its_budget_is_answered_by_the_child(self):
        comparisons = comparing.Comparisons(Comparison("regex"), seconds=30, total_seconds=60)
        pattern = "[ab]*(?:one|two|three|four|five|six|seven|eight|nine|ten)"
        assert Comparison("regex").work(LARGE_OUTPUT, pattern) > judging.REGEX_INLINE_WORK
        assert comparisons.passed(LARGE_OUTPUT + "ten\n", pattern) is True
        assert comparisons.passed(LARGE_OUTPUT + "eleven", pattern) is False
        assert comparisons.matcher is not None
        comparisons.close()
        assert comparisons.matcher is None

    def test_a_small_match_stays_in_the_worker(self):
        comparisons = comparing.Comparisons(Comparison("regex"), seconds=1, total_seconds=10)
        assert comparisons.passed("id-42\n", r"id-\d+") is True
        assert comparisons.passed("xid-42", r"id-\d+") is False
        assert comparisons.matcher is None

    def test_a_comparison_over_its_budget_is_a_wrong_answer_that_says_so(self, settings):
        settings.JUDGE_COMPARISON_SECONDS = 0.05
        spec = languages.get("python")
        comparisons = comparing.Comparisons(Comparison("regex"), 0.05, 10)
        judgement = judge.Judgement(spec, comparisons, Limits.for_stage(spec.limits), {}, None, lambda: False, False)
        ran = RunResult("completed", 0, LARGE_OUTPUT.encode(), b"", False, False, 40, "")
        test = {"name": "big", "stdin": "", "args": [], "expected_output": SLOW_PATTERN}
        try:
            result = judgement.result(test, ran, 0.01, 1 << 20, False)
        finally:
            comparisons.close()
        assert result["verdict"] == judging.WRONG_ANSWER
        assert "time budget (0.05 s each" in result["message"]
        assert "message" not in judgement.result({**test, "expected_output": "[ab]*"}, ran, 0.01, 1 << 20, False)
