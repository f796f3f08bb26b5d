"""The piston-client npm package (pinned in tests/clients/piston) against /piston/ on the
production server, with real workers; and the key in the path never reaching the server's log."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from executions.compat.piston import PISTON_NAMES
from executions.models import API_KEY_PREFIX, Tenant
from executions.sandbox import languages
from tests.compat_programs import ARGS, EXPECTED, PROGRAMS, STDIN
from tests.conftest import ROOT, start_web_server, start_workers, stop_web_server, stop_workers

CLIENT_SOURCE = ROOT / "tests" / "clients" / "piston"


@pytest.fixture(scope="module")
def piston_client():
    """piston-client installed from the npm registry into VAR_DIR, exactly as package-lock.json pins
    it (versions and integrity hashes: `npm ci` refuses anything else); again when the lock changes."""
    target = settings.VAR_DIR / "piston-client"
    target.mkdir(parents=True, exist_ok=True)
    lock = target / "package-lock.json"
    stale = not lock.exists() or not filecmp.cmp(lock, CLIENT_SOURCE / "package-lock.json", shallow=False)
    for name in ("package.json", "package-lock.json", "run.mjs"):
        shutil.copyfile(CLIENT_SOURCE / name, target / name)
    if stale or not (target / "node_modules" / "piston-client").is_dir():
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=target, check=True)
    return target


@pytest.fixture
def server(transactional_db, tmp_path):
    log = (tmp_path / "server.log").open("w")
    # Every request is logged with its path (the access log), and every failed one again by Django.
    process, port = start_web_server(output=log, ACCESS_LOG="1", LOG_LEVEL_REQUESTS="DEBUG")
    workers = start_workers(2)
    _, key = Tenant.objects.create(name="alice").create_api_key()
    try:
        yield port, key, tmp_path / "server.log"
    finally:
        stop_workers(workers)
        stop_web_server(process)
        log.close()


def run_client(client_dir, server: str, cases: list[dict]) -> dict:
    spec = json.dumps({"server": server, "cases": cases})
    done = subprocess.run(
        ["node", "run.mjs"], cwd=client_dir, input=spec, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(done.stdout)


def test_piston_client_lists_runtimes_and_runs_every_language(piston_client, server):
    port, key, _ = server
    names = [PISTON_NAMES.get(name, name) for name in languages.CATALOG]
    cases = [
        {"language": PISTON_NAMES.get(name, name), "code": PROGRAMS[name], "stdin": STDIN, "args": ARGS}
        for name in languages.CATALOG
    ]
    answer = run_client(piston_client, f"http://127.0.0.1:{port}/piston/{key}", cases)
    assert [runtime["language"] for runtime in answer["runtimes"]] == names
    for name, result in zip(names, answer["results"]):
        assert result.get("language") == name, (name, result)
        assert (result["run"]["stdout"], result["run"]["code"], result["run"]["signal"]) == (EXPECTED, 0, None), result


def request(url: str, body: dict | None = None, content_type: str = "application/json") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": content_type} if data else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=60) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_key_in_the_path_never_reaches_the_log(server):
    port, key, log = server
    base = f"http://127.0.0.1:{port}/piston"
    assert request(f"{base}/{key}/api/v2/runtimes")[0] == 200
    assert request(f"{base}/{key}/api/v2/execute", {"language": "python", "version": "*", "files": [{"content": "print(1)"}]})[0] == 200
    assert request(f"{base}/{key}/api/v2/execute", {"language": "cobol", "version": "*", "files": []}) == (
        400, {"message": "cobol-* runtime is unknown"}
    )
    assert request(f"{base}/{key}/api/v2/nothing")[0] == 404
    assert request(f"{base}/{key}/api/v2/execute", {"language": "python"}, "application/x-www-form-urlencoded")[0] == 415
    # Whatever follows the key, and whatever spelling of the path routes to it.
    for path in (f"{key}", f"{key}/", f"{key}/api", f"{key}/runtimes", f"{key}/v2/execute", f"{key}?x=1", f"/{key}"):
        assert request(f"{base}/{path}")[0] == 404, path
    # The access log writes the path as sent; these spellings route to the key's views all the same.
    for path in (f"/pi%73ton/{key}/api/v2/runtimes", f"/piston%2F{key}/api/v2/runtimes"):
        assert request(f"http://127.0.0.1:{port}{path}")[0] == 200, path
    mistyped = key[:-4] + "abcd"
    status, body = request(f"{base}/{mistyped}/api/v2/runtimes")
    assert status == 401 and mistyped not in body["message"]
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    written = log.read_text()
    assert "Not Found: /piston/<key>/api/v2/nothing" in written, written[-3000:]
    assert "GET /piston/<key>/api/v2/runtimes" in written
    # The secret is what follows the prefix and the lookup (it may hold "_" itself: token_urlsafe).
    for secret in (key, mistyped, key[len(API_KEY_PREFIX):].partition("_")[2]):
        assert secret not in written and secret not in metrics
