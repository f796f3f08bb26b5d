"""Every sandbox image the catalog uses holds the restrictions the hostile corpus checks in the
Python image: no setuid or setgid file, the sandbox user (65534) by default, and tini at PID 1,
execute-only for that user. One container per image, under runc: the files are the image's,
whatever the runtime."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from executions.sandbox import images, runner
from executions.sandbox.languages import StageLimits

pytestmark = pytest.mark.no_database

# Each line a fact, printed whatever it is: the test says which ones are wrong.
PROBE = f"""
echo "setuid: $(find / -xdev \\( -perm -4000 -o -perm -2000 \\) -type f 2>/dev/null | tr '\\n' ' ')"
echo "id: $(id -u):$(id -g)"
echo "init: $(tr '\\0' '\\n' < /proc/1/cmdline | head -n 1)"
echo "tini: $(stat -c '%a %u:%g' {runner.INIT})"
if cat {runner.INIT} > /dev/null 2>&1; then echo "tini readable: yes"; else echo "tini readable: no"; fi
"""
# A find over the largest image (Java's) takes a second or two; many more on a loaded machine.
LIMITS = StageLimits(timeout_seconds=60.0)


def probe(family: str) -> tuple[str, dict[str, str], dict]:
    stage = runner.Stage(images.sandbox_image(family), PROBE)
    result = runner.run_stage(stage, {"stdin": b""}, frozenset(), runner.Limits.for_stage(LIMITS, "runc"))
    assert (result.status, result.stderr) == ("completed", b""), (family, result)
    facts = dict(line.split(": ", 1) for line in result.stdout.decode().splitlines())
    return family, facts, runner.docker_api().inspect_image(images.sandbox_image(family))["Config"]


@pytest.fixture(scope="module")
def probed() -> dict[str, tuple[dict[str, str], dict]]:
    with ThreadPoolExecutor(2) as pool:
        return {family: (facts, config) for family, facts, config in pool.map(probe, images.families())}


@pytest.mark.parametrize("family", images.families())
def test_an_image_has_no_setuid_or_setgid_file(probed, family):
    facts, _ = probed[family]
    assert facts["setuid"].strip() == "", facts


@pytest.mark.parametrize("family", images.families())
def test_an_image_runs_as_the_sandbox_user(probed, family):
    facts, config = probed[family]
    # The image's own default too, not only what the runner asks for.
    assert config["User"] == f"{runner.SANDBOX_UID}:{runner.SANDBOX_UID}"
    assert facts["id"] == f"{runner.SANDBOX_UID}:{runner.SANDBOX_UID}", facts


@pytest.mark.parametrize("family", images.families())
def test_an_images_init_is_tini_at_pid_1_and_execute_only(probed, family):
    facts, _ = probed[family]
    assert facts["init"] == runner.INIT, facts
    assert (facts["tini"], facts["tini readable"]) == ("711 0:0", "no"), facts
