"""Each alert of deploy/prometheus/alerts.yml fires when it should and not otherwise, on real metrics.

The app is put in each situation for real (executions queued with no worker, a platform fault, a
foreign job, a web server whose Redis is gone) and its /metrics scraped before and after. promtool
(from the stack's Prometheus image, Debian's package) then replays those scrapes as series: gauges
hold their last value, counters grow every minute by what they grew between the two scrapes. Only
`up`, which Prometheus writes itself, is made up here; tests/test_compose_stack.py sees a real
Prometheus raise NoLiveWorker when the stack's worker stops.
"""

from __future__ import annotations

import math
import re
import subprocess
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from tests.conftest import ROOT, free_port, run_worker, stack_images, start_web_server, stop_web_server
from tests.test_foreign_jobs import sandbox_queue

RULES = ROOT / "deploy/prometheus/alerts.yml"
ALERTS = {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
# Long enough for every rule's window and `for`.
MINUTES = 40
COUNTERS = ("counter", "histogram", "summary")


def rule_metric_names() -> set[str]:
    return {name for rule in ALERTS.values() for name in re.findall(r"[a-z_]+(?=[{\[ )])", rule["expr"])}


def scrape_text(text: str) -> dict[str, tuple[str, float]]:
    """The samples the rules read, by series: (metric type, value)."""
    wanted = rule_metric_names()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in wanted:
                continue
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = (family.type, sample.value)
    return samples


def scrape() -> dict[str, tuple[str, float]]:
    """This process's /metrics (the app's in-process registry), as Prometheus would scrape it."""
    response = APIClient().get("/metrics")
    assert response.status_code == 200
    return scrape_text(response.content.decode())


def series(before: dict, after: dict) -> dict[str, str]:
    """promtool input series replaying the change from one scrape to the next, every minute.

    promtool (2.42, Debian's) takes no NaN in a series: a NaN gauge (the queue depth when Redis
    cannot be read) is left out, which every rule reading it treats the same (NaN >= 0 is false).
    """
    values = {}
    for name, (kind, value) in after.items():
        if kind in COUNTERS:
            start = before.get(name, (kind, 0.0))[1]
            values[name] = f"{start!r}+{value - start!r}x{MINUTES}"
        elif not math.isnan(value):
            values[name] = f"{value!r}x{MINUTES}"
    return values


def up(**jobs: int) -> dict[str, str]:
    return {f'up{{job="{job}",instance="{job}:1"}}': f"{value}x{MINUTES}" for job, value in jobs.items()}


def expected(alert: str) -> dict:
    rule = ALERTS[alert]
    return {"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}


def promtool(tmp_path, *args: str) -> subprocess.CompletedProcess:
    image = stack_images()["PROMETHEUS_IMAGE"]
    return subprocess.run(
        [
            "docker", "run", "--rm", "--network", "none", "--user", "0",
            "--volume", f"{RULES.parent}:/rules:ro", "--volume", f"{tmp_path}:/t:ro",
            "--entrypoint", "promtool", image, *args,
        ],
        capture_output=True, text=True, timeout=120,
    )


def assert_alerts(tmp_path, input_series: dict[str, str], firing: set[str]) -> None:
    """After MINUTES of these series, exactly `firing` of the rules fire (each once, with its own labels)."""
    tests = {
        "rule_files": ["/rules/alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": values} for name, values in input_series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": f"{MINUTES - 1}m",
                        "alertname": alert,
                        "exp_alerts": [expected(alert)] if alert in firing else [],
                    }
                    for alert in ALERTS
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = promtool(tmp_path, "test", "rules", "/t/tests.yml")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\nseries: {input_series}"


HEALTHY = up(web=1, worker=1)


@pytest.mark.no_database
def test_promtool_accepts_the_rules(tmp_path):
    result = promtool(tmp_path, "check", "rules", "/rules/alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_alert_fires_on_a_platform_that_runs_executions(alice, transactional_db, tmp_path):
    before = scrape()
    for _ in range(3):
        alice.submit("print(1)")
    run_worker()
    after = scrape()
    assert_alerts(tmp_path, {**series(before, after), **HEALTHY}, firing=set())


def test_a_queue_over_80_percent_of_its_ceiling_fires_and_one_at_80_does_not(alice, transactional_db, settings, tmp_path):
    settings.QUEUE_MAX_DEPTH = 10
    for _ in range(8):
        alice.submit("print(1)")
    at_80 = scrape()
    # Queued with nothing finishing: that is a stalled queue too.
    assert_alerts(tmp_path, {**series(at_80, at_80), **HEALTHY}, firing={"QueueStalled"})
    alice.submit("print(1)")
    at_90 = scrape()
    assert_alerts(tmp_path, {**series(at_90, at_90), **HEALTHY}, firing={"QueueNearCeiling", "QueueStalled"})


def test_a_queue_that_moves_is_not_stalled(alice, transactional_db, tmp_path):
    before = scrape()
    alice.submit("print(1)")
    run_worker()
    alice.submit("print(2)")
    after = scrape()
    assert after["engine_queue_depth{}"][1] == 1
    assert_alerts(tmp_path, {**series(before, after), **HEALTHY}, firing=set())


def test_platform_errors_fire_the_sandbox_error_rate(alice, transactional_db, settings, tmp_path):
    before = scrape()
    alice.submit("print(1)")
    run_worker()
    settings.SANDBOX_IMAGE = "rce-sandbox:missing"
    alice.submit("print(1)")
    run_worker()
    after = scrape()
    # One error in two executions, every minute.
    assert_alerts(tmp_path, {**series(before, after), **HEALTHY}, firing={"SandboxErrorRate"})


def test_a_foreign_job_fires_at_once(alice, transactional_db, tmp_path):
    before = scrape()
    sandbox_queue().enqueue("os.makedirs", str(tmp_path / "planted"))
    run_worker()
    after = scrape()
    assert_alerts(tmp_path, {**series(before, after), **HEALTHY}, firing={"ForeignJobRefused"})


def web_metrics(port: int) -> dict[str, tuple[str, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return scrape_text(response.read().decode())


def post_script(port: int, key: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/execute", data=b"print(1)", method="POST",
        headers={"Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_web_server_without_redis_fires_the_5xx_rate_and_queue_unreadable(alice, transactional_db, tmp_path):
    # One process, so that every scrape sees the counters of every request.
    server, port = start_web_server(WEB_WORKERS="1", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    try:
        before = web_metrics(port)
        assert {post_script(port, alice.key) for _ in range(10)} == {503}
        after = web_metrics(port)
    finally:
        stop_web_server(server)
    assert math.isnan(after["engine_queue_depth{}"][1])
    assert_alerts(tmp_path, {**series(before, after), **HEALTHY}, firing={"ServerErrorRate", "QueueUnreadable"})


def test_answers_without_server_errors_do_not_fire_the_5xx_rate(alice, transactional_db, tmp_path):
    before = scrape()
    task_id = alice.submit("print(1)")
    run_worker()
    for _ in range(10):
        alice.get(task_id)
    assert APIClient().get("/api/v1/executions").status_code == 401
    after = scrape()
    assert_alerts(tmp_path, {**series(before, after), **HEALTHY}, firing=set())


@pytest.mark.no_database
def test_no_live_worker_and_web_down_follow_prometheus_up(tmp_path):
    depth = {"engine_queue_depth{}": f"0x{MINUTES}", "engine_queue_max_depth{}": f"10x{MINUTES}"}
    assert_alerts(tmp_path, {**depth, **up(web=1, worker=0)}, firing={"NoLiveWorker"})
    assert_alerts(tmp_path, {**depth, **up(web=0, worker=1)}, firing={"WebDown"})
    # No worker target at all (none left in Docker's DNS) is no live worker too.
    assert_alerts(tmp_path, {**depth, **up(web=1)}, firing={"NoLiveWorker"})
