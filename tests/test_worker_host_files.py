"""deploy/worker-host: a worker host's compose file runs the main compose file's worker, pointed at
the main host's Redis and database, and refuses to start without what a second host must be told.
Checked as Compose reads the files (`docker compose config`)."""

from __future__ import annotations

import configparser
import os
import subprocess
from functools import cache

import pytest
import yaml

from tests.test_stack_files import DOCKER_SOCKET, ROOT, compose_command, env_file, environment, mounts, service, words

pytestmark = pytest.mark.no_database

WORKER_HOST = ROOT / "deploy" / "worker-host"
# What a worker host must be told, with the values deploy/worker-host/env.example shows.
REQUIRED = ("DATABASE_URL", "REDIS_URL", "SANDBOX_INSTANCE", "PRIVATE_ADDRESS")
SETTINGS = {
    "DATABASE_URL": "postgres://rce:secret@10.0.0.1:5432/rce",
    "REDIS_URL": "redis://:secret@10.0.0.1:6379/0",
    "SANDBOX_INSTANCE": "worker-2",
    "PRIVATE_ADDRESS": "10.0.0.2",
}


def config(*files: str, **env: str) -> subprocess.CompletedProcess:
    clean = {name: value for name, value in os.environ.items() if name not in (*REQUIRED, *env)}
    arguments = [argument for path in files for argument in ("--file", str(ROOT / path))]
    return subprocess.run(
        [*compose_command(), *arguments, "config"], cwd=ROOT, env={**clean, "ENV_FILE": env_file(), **env}, capture_output=True,
        text=True, timeout=60,
    )


@cache
def worker_host() -> dict:
    result = config("deploy/worker-host/docker-compose.yml", **SETTINGS)
    assert result.returncode == 0, f"Compose refuses deploy/worker-host/docker-compose.yml:\n{result.stderr}"
    return yaml.safe_load(result.stdout)["services"]


def test_a_worker_host_runs_only_the_workers_and_their_image_builder():
    assert set(worker_host()) == {"worker", "sandbox-image"}


def test_its_worker_is_the_main_compose_files_worker():
    worker, main = worker_host()["worker"], service("worker")
    assert words(worker["command"]) == words(main["command"])
    assert worker["user"] == main["user"] == "root"
    assert mounts(worker) == mounts(main)
    assert mounts(worker)[DOCKER_SOCKET] == DOCKER_SOCKET
    shared = ("SANDBOX_CODE_ROOT", "WORKER_METRICS_PORT", "PROMETHEUS_MULTIPROC_DIR", "SANDBOX_RUNTIME")
    assert {name: environment(worker)[name] for name in shared} == {name: environment(main)[name] for name in shared}
    # Sized to each host unless its .env says otherwise.
    assert "SANDBOX_SLOTS" not in environment(worker) and "SANDBOX_SLOTS" not in environment(main)
    assert worker["restart"] == main["restart"] and worker["stop_grace_period"] == main["stop_grace_period"]


def test_it_joins_the_main_hosts_redis_and_database_under_its_own_instance_name():
    env = environment(worker_host()["worker"])
    assert {name: env[name] for name in ("DATABASE_URL", "REDIS_URL", "SANDBOX_INSTANCE")} == {
        name: SETTINGS[name] for name in ("DATABASE_URL", "REDIS_URL", "SANDBOX_INSTANCE")
    }


def test_it_publishes_the_workers_metrics_on_the_private_address_only():
    (port,) = worker_host()["worker"]["ports"]
    published = port if isinstance(port, str) else f"{port['host_ip']}:{port['published']}:{port['target']}"
    assert published.split("/")[0] == "10.0.0.2:9100:9100"


@pytest.mark.parametrize("missing", REQUIRED)
def test_it_refuses_to_start_without_each_required_setting(missing):
    result = config("deploy/worker-host/docker-compose.yml", **{k: v for k, v in SETTINGS.items() if k != missing})
    assert result.returncode != 0
    assert missing in result.stderr


def test_the_example_settings_name_every_required_setting():
    lines = (WORKER_HOST / "env.example").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}
    assert set(REQUIRED) <= names
    assert "PASSWORD" in dict(line.split("=", 1) for line in lines if line.startswith("REDIS_URL="))["REDIS_URL"]


def test_the_main_host_publishes_redis_and_postgres_on_its_private_address_only():
    # The main stack's own required settings (docker-compose.yml refuses to start without them).
    result = config("docker-compose.yml", "deploy/worker-host/main-host.yml", PRIVATE_ADDRESS="10.0.0.1",
                    REDIS_PASSWORD="0123456789abcdef", SECRET_KEY="fedcba9876543210")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name, target in (("redis", "6379"), ("postgres", "5432")):
        (port,) = services[name]["ports"]
        published = port if isinstance(port, str) else f"{port['host_ip']}:{port['published']}:{port['target']}"
        assert published.split("/")[0] == f"10.0.0.1:{target}:{target}"
    assert config("docker-compose.yml", "deploy/worker-host/main-host.yml").returncode != 0


def test_the_systemd_unit_stops_the_workers_warmly_and_restarts_them():
    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str
    unit.read(WORKER_HOST / "rce-workers.service")
    service_section = unit["Service"]
    assert service_section["ExecStart"].split()[-2:] == ["manage.py", "sandbox_workers"]
    # One SIGTERM to the supervisor, which passes one on: a second one would abandon the runs in hand.
    assert service_section["KillMode"] == "mixed"
    assert service_section["Restart"] == "always"
    assert "EnvironmentFile" in service_section and "docker.service" in unit["Unit"]["Requires"]
