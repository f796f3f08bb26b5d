"""scripts/dev.sh writes the engine's configuration only where there is none (or where it wrote one
before gVisor was installed), with live-restore, and runsc with Docker's seccomp profile."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.no_database


def configure(daemon_json) -> int:
    # Only the function runs: sourcing the script runs no step.
    done = subprocess.run(
        ["bash", "-c", "source scripts/dev.sh && configure_engine"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"DAEMON_JSON": str(daemon_json), "VAR_DIR": str(daemon_json.parent), "PATH": "/usr/bin:/bin"},
    )
    return done.returncode


@pytest.fixture
def runsc_installed():
    if not shutil.which("runsc", path="/usr/bin:/bin"):
        pytest.skip("gVisor is not installed")


def test_it_writes_live_restore_and_runsc_with_seccomp_where_there_is_no_configuration(tmp_path, runsc_installed):
    daemon_json = tmp_path / "daemon.json"
    assert configure(daemon_json) == 0
    config = json.loads(daemon_json.read_text())
    assert config["live-restore"] is True
    assert "--oci-seccomp" in config["runtimes"]["runsc"]["runtimeArgs"]


def test_it_adds_runsc_to_the_configuration_it_wrote_before(tmp_path, runsc_installed):
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{"live-restore": true}\n')
    assert configure(daemon_json) == 0
    assert "runsc" in json.loads(daemon_json.read_text())["runtimes"]


def test_it_leaves_the_operators_configuration_alone(tmp_path):
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{"debug": true}\n')
    assert configure(daemon_json) != 0
    assert daemon_json.read_text() == '{"debug": true}\n'
