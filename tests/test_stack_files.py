"""The deployable stack's files agree with each other and with the metrics the app really exports.

The compose file is checked as a Compose implementation reads it (`docker compose config`, or
Debian's `docker-compose config`), so that a file Compose would refuse fails here first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest
import yaml
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, REGISTRY

pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SERVICES = {"postgres", "redis", "migrate", "sandbox-image", "web", "worker", "retention", "prometheus", "grafana"}
DOCKER_SOCKET = "/var/run/docker.sock"


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no Docker Compose to check docker-compose.yml: install Debian's docker-compose package")


REDIS_PASSWORD = "0123456789abcdef"
SECRET_KEY = "fedcba9876543210"
PUBLIC_HOST = "rce.example.com"
# The operator's .env: settings that Compose itself does not name, and one that it does.
DOT_ENV = "TENANT_RATE_PER_MINUTE=77\nSANDBOX_RUNTIME=runsc\nHTTPS=true\nDATABASE_URL=sqlite:///elsewhere\n"


@cache
def env_file() -> str:
    path = Path(tempfile.mkdtemp()) / ".env"
    path.write_text(DOT_ENV)
    return str(path)


def compose(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*compose_command(), "--file", str(ROOT / "docker-compose.yml"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "ENV_FILE": env_file(), **env},
    )


@cache
def compose_config() -> dict:
    result = compose("config", REDIS_PASSWORD=REDIS_PASSWORD, SECRET_KEY=SECRET_KEY, ALLOWED_HOSTS=PUBLIC_HOST)
    assert result.returncode == 0, f"Compose refuses docker-compose.yml:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


def service(name: str) -> dict:
    return compose_config()["services"][name]


def mounts(svc: dict) -> dict[str, str]:
    """Each mount's target and source, in either the short or the long syntax Compose may print."""
    found = {}
    for volume in svc.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        found[target] = source
    return found


def words(command) -> list[str]:
    return command.split() if isinstance(command, str) else list(command)


def environment(svc: dict) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# --- docker-compose.yml and the Dockerfile --------------------------------------------------------


def test_compose_runs_every_service():
    assert SERVICES <= set(compose_config()["services"])


def test_redis_keeps_the_queue_in_an_append_only_file_on_a_volume():
    redis = service("redis")
    command = words(redis["command"])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert mounts(redis)["/data"] in compose_config()["volumes"]


def test_redis_requires_a_password_and_everything_gives_it():
    command = words(service("redis")["command"])
    assert command[command.index("--requirepass") + 1] == REDIS_PASSWORD
    assert environment(service("redis"))["REDISCLI_AUTH"] == REDIS_PASSWORD
    assert "grep -q PONG" in " ".join(words(service("redis")["healthcheck"]["test"]))
    for name in ("migrate", "sandbox-image", "web", "worker"):
        assert environment(service(name))["REDIS_URL"] == f"redis://:{REDIS_PASSWORD}@redis:6379/0", name


@pytest.mark.parametrize("missing", ["REDIS_PASSWORD", "SECRET_KEY"])
def test_compose_refuses_to_start_without_a_secret(missing):
    given = {"REDIS_PASSWORD": REDIS_PASSWORD, "SECRET_KEY": SECRET_KEY}
    del given[missing]
    result = compose("config", **given)
    assert result.returncode != 0
    assert missing in result.stderr


def test_every_app_container_gets_the_settings_of_dot_env_but_compose_keeps_its_own():
    for name in ("migrate", "sandbox-image", "web", "worker", "retention"):
        env = environment(service(name))
        assert (env["TENANT_RATE_PER_MINUTE"], env["SANDBOX_RUNTIME"], env["HTTPS"]) == ("77", "runsc", "true"), name
        assert env["DATABASE_URL"] == "postgres://rce:rce@postgres:5432/rce", name


def test_the_app_gets_the_secret_key():
    for name in ("migrate", "sandbox-image", "web", "worker", "retention"):
        assert environment(service(name))["SECRET_KEY"] == SECRET_KEY, name


def test_allowed_hosts_cannot_lock_out_the_healthcheck_or_prometheus():
    # Set to the public name only, as an operator would.
    hosts = environment(service("web"))["ALLOWED_HOSTS"].split(",")
    assert PUBLIC_HOST in hosts and {"127.0.0.1", "web"} <= set(hosts)


def test_every_container_log_is_rotated():
    for name, svc in compose_config()["services"].items():
        logging = svc.get("logging", {})
        assert logging.get("driver") == "json-file", name
        assert logging["options"]["max-size"] == "10m" and int(logging["options"]["max-file"]) >= 2, name


def test_finished_executions_are_pruned_on_a_schedule():
    retention = service("retention")
    command = " ".join(words(retention["command"]))
    assert "python manage.py prune_executions" in command and "sleep 86400" in command
    # Its shell would ignore SIGTERM as PID 1: the engine's init passes it on.
    assert retention["init"] is True
    assert retention["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert DOCKER_SOCKET not in mounts(retention)


def test_only_the_workers_and_the_image_builder_get_the_docker_socket():
    holders = {name for name, svc in compose_config()["services"].items() if DOCKER_SOCKET in mounts(svc)}
    assert holders == {"worker", "sandbox-image"}
    assert mounts(service("worker"))[DOCKER_SOCKET] == DOCKER_SOCKET


def test_workers_share_their_code_directory_with_the_engine_at_the_same_path():
    # The engine bind-mounts each run's directory by the path the worker wrote it at.
    root = environment(service("worker"))["SANDBOX_CODE_ROOT"]
    assert mounts(service("worker"))[root] == root


def test_workers_run_supervised_sized_to_the_host_and_serve_their_metrics():
    worker = service("worker")
    assert words(worker["command"])[-2:] == ["manage.py", "sandbox_workers"]
    # Unset (unless .env sets it), SANDBOX_SLOTS is computed from the host; a fixed replica count
    # would override nothing.
    assert "SANDBOX_SLOTS" not in environment(worker)
    assert "replicas" not in worker.get("deploy", {})
    assert worker["restart"] == "unless-stopped"
    assert environment(worker)["WORKER_METRICS_PORT"] == "9100"
    assert worker["depends_on"]["sandbox-image"]["condition"] == "service_completed_successfully"


def test_web_is_checked_on_healthz_and_waits_for_the_migrations():
    web = service("web")
    assert words(web["command"]) == ["python", "-m", "sandbox_project.serve"]
    assert "/healthz" in " ".join(words(web["healthcheck"]["test"]))
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Prometheus and the healthcheck reach the app by these names; Django refuses any other host.
    assert {"web", "127.0.0.1"} <= set(environment(web)["ALLOWED_HOSTS"].split(","))


def test_web_and_workers_each_have_their_own_empty_multiprocess_directory():
    app_uid = re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text())[1]
    for name in ("web", "worker"):
        svc = service(name)
        tmpfs = dict(f"{entry}:".split(":")[:2] for entry in words(svc["tmpfs"]))
        options = tmpfs[environment(svc)["PROMETHEUS_MULTIPROC_DIR"]]
        # The app's user must own it: after a restart the engine mounts it 0755.
        assert f"uid={app_uid}" in options.split(","), name


def test_app_image_builds_from_a_base_image_argument_and_runs_as_a_user():
    for name in ("migrate", "sandbox-image", "web", "worker"):
        assert "BASE_IMAGE" in service(name)["build"]["args"], name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")


def test_every_image_can_be_named_for_a_host_without_a_registry():
    given = {
        "REDIS_PASSWORD": REDIS_PASSWORD, "SECRET_KEY": SECRET_KEY, "APP_IMAGE": "a:1", "POSTGRES_IMAGE": "p:1",
        "REDIS_IMAGE": "r:1", "PROMETHEUS_IMAGE": "m:1", "GRAFANA_IMAGE": "g:1", "PIP_NO_INDEX": "1",
    }
    result = compose("config", **given)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    expected = {"postgres": "p:1", "redis": "r:1", "prometheus": "m:1", "grafana": "g:1", "web": "a:1", "worker": "a:1"}
    assert {name: services[name]["image"] for name in expected} == expected
    assert services["web"]["build"]["args"]["PIP_NO_INDEX"] == "1"
    assert re.search(r"^ARG PIP_NO_INDEX=0$", (ROOT / "Dockerfile").read_text(), re.M)


def test_workers_get_the_seccomp_profile_for_gvisor_read_only_where_the_app_looks():
    from django.conf import settings

    volumes = [volume for volume in service("worker")["volumes"] if isinstance(volume, str)]
    (seccomp,) = [volume for volume in volumes if volume.split(":")[1] == "/app/var/seccomp"]
    assert seccomp == f"{ROOT}/var/seccomp:/app/var/seccomp:ro"
    # The image's /app is this repository's root, where the default profile path lives.
    assert settings.SANDBOX_SECCOMP_PROFILE == str(ROOT / "var/seccomp/docker-default.json")


def test_prometheus_and_grafana_get_their_configuration():
    prometheus_mounts = mounts(service("prometheus"))
    assert prometheus_mounts["/etc/prometheus/prometheus.yml"].endswith("deploy/prometheus/prometheus.yml")
    # The alerts are mounted where prometheus.yml's rule_files names them.
    (rules,) = load_yaml(DEPLOY / "prometheus/prometheus.yml")["rule_files"]
    assert prometheus_mounts[rules].endswith("deploy/prometheus/alerts.yml")
    grafana_mounts = mounts(service("grafana"))
    assert grafana_mounts["/etc/grafana/provisioning"].endswith("deploy/grafana/provisioning")
    provider = load_yaml(DEPLOY / "grafana/provisioning/dashboards/rce.yml")["providers"][0]
    assert grafana_mounts[provider["options"]["path"]].endswith("deploy/grafana/dashboards")


# --- deploy/prometheus/prometheus.yml -------------------------------------------------------------


def scrape_jobs() -> dict[str, dict]:
    config = load_yaml(DEPLOY / "prometheus/prometheus.yml")
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_prometheus_scrapes_the_web_app():
    web = scrape_jobs()["web"]
    assert web.get("metrics_path", "/metrics") == "/metrics"
    assert web["static_configs"][0]["targets"] == ["web:8000"]


def test_prometheus_finds_every_worker_replica_through_dns():
    (lookup,) = scrape_jobs()["worker"]["dns_sd_configs"]
    assert lookup["names"] == ["worker"]
    assert lookup.get("type", "SRV") == "A"
    assert lookup["port"] == int(environment(service("worker"))["WORKER_METRICS_PORT"])


# --- deploy/grafana -------------------------------------------------------------------------------

# Words of PromQL that look like metric names but are not.
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        is_call = expr[match.end() :].lstrip().startswith("(")
        if not is_call and match.group().lower() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def exported_samples() -> dict[str, str]:
    """Every sample name the app's /metrics can show, mapped to its metric family's name.

    In the stack, /metrics is multiprocess: it serves the metric objects and the queue depth, not
    the default registry's process, platform and GC collectors.
    """
    from django_prometheus.db import metrics as db_metrics  # noqa: F401  (registers its metrics)
    from django_prometheus.middleware import Metrics

    from executions import metrics

    Metrics.get_instance()
    not_served = {
        family.name for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR) for family in collector.collect()
    }
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "summary": ["", "_sum", "_count"]}
    samples = {}
    for family in [*REGISTRY.collect(), *metrics.QueueDepthCollector().describe()]:
        if family.name in not_served:
            continue
        names = {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
        samples.update(dict.fromkeys(names, family.name))
    return samples


def dashboard_panels() -> list[dict]:
    return json.loads((DEPLOY / "grafana/dashboards/rce.json").read_text())["panels"]


def dashboard_metrics() -> dict[str, set[str]]:
    return {
        panel["title"]: set().union(*(metric_names(target["expr"]) for target in panel["targets"]))
        for panel in dashboard_panels()
    }


def test_metric_names_are_read_from_promql():
    expr = 'histogram_quantile(0.95, sum by (le) (rate(a_bucket{job="web"}[5m]))) / on (x) b_total offset 1m > 1e3'
    assert metric_names(expr) == {"a_bucket", "b_total"}
    assert metric_names("60 * sum(rate(engine_no_such_metric_total[5m]))") == {"engine_no_such_metric_total"}


def test_every_panel_queries_the_provisioned_prometheus():
    (datasource,) = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    for panel in dashboard_panels():
        assert panel["targets"], panel["title"]
        for item in [panel, *panel["targets"]]:
            assert item["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]


def test_every_metric_on_the_dashboard_is_one_the_app_exports():
    exported = exported_samples()
    for title, names in dashboard_metrics().items():
        assert names, f"panel {title!r} queries no metric"
        assert names <= exported.keys(), f"panel {title!r} queries unknown metrics: {names - exported.keys()}"


def test_the_dashboard_shows_every_engine_metric():
    exported = exported_samples()
    shown = {exported[name] for names in dashboard_metrics().values() for name in names if name in exported}
    engine = {family for family in exported.values() if family.startswith("engine_")}
    assert engine <= shown, f"engine metrics on no panel: {engine - shown}"
