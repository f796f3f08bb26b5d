from __future__ import annotations

import os
import time

import pytest

from executions.sandbox import janitor, languages, runner
from executions.sandbox.runner import Limits, docker_api, own_sandboxes

pytestmark = pytest.mark.no_database
PYTHON = runner.run_stage_of(languages.CATALOG["python"])


def test_it_removes_only_containers_older_than_the_maximum_run_time():
    api = docker_api()
    container_id = runner.create_container(api, PYTHON, Limits.from_settings(), {"rce.execution": "test"})
    try:
        assert janitor.sweep(api) == []
        assert janitor.sweep(api, max_age=0) == [container_id]
        assert own_sandboxes(api) == []
    finally:
        runner.remove_container(api, container_id)


def test_it_leaves_unlabelled_containers_alone():
    api = docker_api()
    other = api.create_container(runner.sandbox_image(), command=["true"])
    try:
        janitor.sweep(api, max_age=0)
        assert api.inspect_container(other["Id"])
    finally:
        api.remove_container(other["Id"], force=True)


def test_it_leaves_another_instances_sandboxes_alone(settings):
    api = docker_api()
    settings.SANDBOX_INSTANCE = "another-platform"
    theirs = runner.create_container(api, PYTHON, Limits.from_settings(), {"rce.execution": "theirs"})
    try:
        settings.SANDBOX_INSTANCE = "this-platform"
        assert janitor.sweep(api, max_age=0) == []
        assert api.inspect_container(theirs)["Config"]["Labels"]["rce.instance"] == "another-platform"
    finally:
        runner.remove_container(api, theirs)


def test_it_removes_only_code_directories_older_than_the_maximum_run_time(settings, tmp_path):
    settings.SANDBOX_CODE_ROOT = str(tmp_path / "code")
    old = runner.write_code_dir(runner.Program({"main.py": b"print(1)"}), "")
    fresh = runner.write_code_dir(runner.Program({"main.py": b"print(2)"}), "")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert janitor.sweep_code_dirs() == [old]
    assert os.listdir(settings.SANDBOX_CODE_ROOT) == [os.path.basename(fresh)]
    assert janitor.sweep_code_dirs(max_age=0) == [fresh]
    assert os.listdir(settings.SANDBOX_CODE_ROOT) == []


def test_it_removes_the_test_cgroups_a_dead_worker_left_but_not_recent_ones(settings, tmp_path):
    # A cgroup v1 layout of plain directories: the real hierarchy is shared with live tests.
    settings.JUDGE_CGROUP_ROOT = str(tmp_path)
    stale = [tmp_path / hierarchy / "rce-judge" / "dead" for hierarchy in ("cpuacct", "memory")]
    fresh = tmp_path / "memory" / "rce-judge" / "live"
    for directory in (*stale, fresh):
        directory.mkdir(parents=True)
    for directory in stale:
        os.utime(directory, (0, 0))
    assert sorted(janitor.sweep_test_cgroups()) == sorted(str(directory) for directory in stale)
    assert fresh.exists() and not any(directory.exists() for directory in stale)
