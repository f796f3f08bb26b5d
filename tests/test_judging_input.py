"""A judged submission's input: each bad one a 400 naming its field with nothing created; the
comparisons (pure logic); quotas that count each test as an execution."""

from __future__ import annotations

import threading

import pytest

from executions import judging, scheduler
from executions.judging import Comparison
from executions.models import Execution
from tests.conftest import assert_nothing_created

TEST = {"stdin": "1\n", "expected_output": "1"}


def post(persona, **body):
    return persona.client.post("/api/v1/executions", {"language": "python", "code": "print(input())", **body}, format="json")


def assert_refused(response, field: str, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert field in str(error), error
    assert_nothing_created()


def assert_too_large(response, field: str) -> None:
    """A size over its limit is a 413, as for code and stdin, and names its field as a 400 does."""
    assert_refused(response, field, "payload_too_large", 413)
    error = response.json()["error"]
    assert error["message"].startswith(f"{field}: ")
    assert list(error["details"]) == [field] and "the limit is" in error["details"][field][0]


@pytest.mark.django_db
class TestBadJudgedSubmissions:
    def test_it_refuses_more_than_64_tests(self, alice):
        assert_refused(post(alice, tests=[TEST] * 65), "tests", "max_length")

    def test_it_refuses_an_unknown_comparison(self, alice):
        assert_refused(post(alice, tests=[TEST], comparison="fuzzy"), "comparison", "invalid_choice")

    def test_it_refuses_a_regex_that_does_not_compile(self, alice):
        assert_refused(post(alice, tests=[TEST, {"expected_output": "a(b"}], comparison="regex"), "tests[1].expected_output", "invalid_comparison")

    def test_it_refuses_a_tests_stdin_over_the_limit(self, alice, settings):
        settings.SANDBOX_MAX_STDIN_BYTES = 10
        assert_too_large(post(alice, tests=[TEST, {"stdin": "x" * 11}]), "tests[1].stdin")

    def test_it_refuses_an_expected_output_over_the_limit(self, alice, settings):
        settings.SANDBOX_OUTPUT_LIMIT_BYTES = 10
        assert_too_large(post(alice, tests=[{"expected_output": "x" * 11}, TEST]), "tests[0].expected_output")

    def test_it_refuses_tests_over_their_total_size(self, alice, settings):
        settings.JUDGE_MAX_TESTS_BYTES = 100
        assert_too_large(post(alice, tests=[{"stdin": "x" * 60}] * 2), "tests")

    def test_it_refuses_an_unknown_field_of_a_test(self, alice):
        assert_refused(post(alice, tests=[{"stdin": "1", "expected": "1"}]), "expected", "unknown_field")

    def test_it_refuses_a_test_that_is_not_text(self, alice):
        assert_refused(post(alice, tests=[{"stdin": 1}]), "stdin", "invalid")

    def test_it_refuses_a_comparison_without_tests(self, alice):
        assert_refused(post(alice, comparison="tokens"), "tests", "no_tests")

    def test_it_refuses_a_negative_tolerance(self, alice):
        assert_refused(post(alice, tests=[TEST], comparison="float", abs_tolerance=-1), "abs_tolerance", "invalid_comparison")

    def test_it_refuses_tests_that_could_outlast_the_judging_budget(self, alice, settings):
        settings.JUDGE_MAX_SECONDS = 20
        # Two tests at 5 s of CPU time may take 11 s each by the clock.
        assert_refused(post(alice, tests=[TEST] * 2, timeout_seconds=5), "tests", "judging_too_long")

    def test_it_refuses_more_tests_than_the_tenants_quota(self, alice):
        alice.tenant.max_queued = 3
        alice.tenant.save()
        assert_refused(post(alice, tests=[TEST] * 4), "tests", "too_many_tests")

    def test_a_judged_submission_is_stored_with_its_defaults(self, alice):
        response = post(alice, tests=[TEST, {"name": "big", "args": ["-v"]}])
        assert response.status_code == 202, response.content
        execution = Execution.objects.get()
        assert execution.tests == [
            {"name": "test 1", "stdin": "1\n", "args": [], "expected_output": "1"},
            {"name": "big", "stdin": "", "args": ["-v"], "expected_output": ""},
        ]
        assert (execution.comparison, execution.stop_on_first_failure, execution.weight) == ("trailing_whitespace", False, 2)


@pytest.mark.django_db
def test_each_test_takes_a_place_in_the_tenants_queue_quota_until_it_ends(alice):
    alice.tenant.max_queued = 10
    alice.tenant.save()
    assert post(alice, tests=[TEST] * 8).status_code == 202
    assert scheduler.counts(alice.tenant.id)[0] == 8
    refused = post(alice, tests=[TEST] * 3)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "queue_quota_exceeded"
    assert post(alice, tests=[TEST] * 2).status_code == 202
    judged = Execution.objects.order_by("created_at").first()
    scheduler.release(alice.tenant.id, scheduler.job_id(judged.id, judged.attempts))
    assert scheduler.counts(alice.tenant.id)[0] == 2
    assert post(alice, tests=[TEST] * 8).status_code == 202


@pytest.mark.django_db
def test_each_test_counts_against_the_tenants_rate(alice):
    alice.tenant.rate_per_minute = 12
    alice.tenant.save()
    assert post(alice, tests=[TEST] * 10).status_code == 202
    # Admission counted the ten tests as ten requests: three more do not fit in the minute.
    assert post(alice, tests=[TEST] * 3).status_code == 429


class TestComparisons:
    def test_exact_is_byte_for_byte(self):
        assert Comparison("exact").matches("a\n", "a\n") and not Comparison("exact").matches("a\n", "a")

    def test_trailing_whitespace_ignores_line_ends_and_trailing_blank_lines(self):
        comparison = Comparison("trailing_whitespace")
        assert comparison.matches("1 2  \n3\t\n\n\n", "1 2\n3")
        assert not comparison.matches(" 1 2\n3", "1 2\n3") and not comparison.matches("1  2", "1 2")

    def test_tokens_ignore_all_whitespace(self):
        assert Comparison("tokens").matches("1\n  2\t3", "1 2 3\n") and not Comparison("tokens").matches("1 23", "1 2 3")

    def test_float_within_either_tolerance(self):
        comparison = Comparison("float", abs_tolerance=1e-3, rel_tolerance=0)
        assert comparison.matches("3.1415 yes", "3.1416 yes")
        assert not comparison.matches("3.14 yes", "3.1416 yes") and not comparison.matches("3.1416 no", "3.1416 yes")
        assert Comparison("float", abs_tolerance=0, rel_tolerance=1e-6).matches("1000000.5", "1000000")
        assert not Comparison("float").matches("nan", "1") and not Comparison("float").matches("1 2", "1")

    def test_regex_matches_the_whole_output(self):
        assert Comparison("regex").matches("id-42\n", r"id-\d+")
        assert not Comparison("regex").matches("xid-42", r"id-\d+")

    def test_a_catastrophic_regex_runs_in_linear_time(self):
        # With a backtracking engine this would not end for hours; RE2 answers at once.
        done = []
        thread = threading.Thread(target=lambda: done.append(Comparison("regex").matches("a" * 60_000 + "!", "(a+)+$")))
        thread.start()
        thread.join(30)
        assert done == [False]

    def test_the_overall_verdict_is_the_first_failing_tests(self):
        assert judging.overall_verdict(["accepted", "runtime_error", "wrong_answer"]) == "runtime_error"
        assert judging.overall_verdict(["accepted", "accepted"]) == "accepted"
