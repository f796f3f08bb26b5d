"""Real executions move the engine's metrics by exactly the right amounts."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run_worker
from tests.helpers import assert_error


def scrape(client) -> dict[tuple, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.usefixtures("transactional_db")
def test_executions_move_the_engine_metrics(alice, client):
    before = scrape(client)
    for code in ["print(1)", "while True: pass", "x = bytearray(200 * 1024 * 1024)"]:
        alice.submit(code)
    assert value(scrape(client), "engine_queue_depth") == 3
    run_worker()
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("engine_executions_total", language="python", status="completed") == 1
    assert moved("engine_executions_total", language="python", status="timed_out") == 1
    assert moved("engine_executions_total", language="python", status="oom_killed") == 1
    assert moved("engine_sandbox_timeouts_total") == 1
    assert moved("engine_sandbox_oom_kills_total") == 1
    assert moved("engine_output_truncations_total") == 0
    assert moved("engine_sandbox_errors_total") == 0
    assert moved("engine_execution_latency_seconds_count", language="python") == 3
    # The timed-out run alone took over five seconds.
    assert moved("engine_execution_latency_seconds_sum", language="python") > 5
    assert moved("engine_queue_wait_seconds_count") == 3
    assert value(after, "engine_active_workers_count") == 0
    assert value(after, "engine_queue_depth") == 0


def test_rejected_requests_are_counted_by_reason(alice, anonymous, client):
    before = scrape(client)
    anonymous.post("/api/v1/execute", "print(1)", content_type="text/plain")
    alice.client.post("/api/v1/execute", "", content_type="text/plain")
    after = scrape(client)
    for reason in ("unauthorized", "bad_input"):
        name = "engine_rejected_requests_total"
        assert value(after, name, reason=reason) - value(before, name, reason=reason) == 1


def test_metrics_can_require_a_token(client, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert_error(client.get("/metrics"), 401, "unauthorized")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
