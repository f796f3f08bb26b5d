"""GET /api/v1/executions/<id>/events: status changes (and output) as server-sent events, from the real
web server. Live output itself: tests/test_live_output_events.py."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.conftest import run_worker, start_web_server, stop_web_server
from tests.helpers import assert_error

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def server():
    process, port = start_web_server(WEB_WORKERS="1", WEB_THREADS="2")
    yield port
    stop_web_server(process)


class EventStream:
    """A client of one event stream: its answer, and its events as they come."""

    def __init__(self, port: int, key: str, task_id: str, last_event_id: str | None = None):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", f"/api/v1/executions/{task_id}/events", headers=headers)
        self.response = self.connection.getresponse()

    def next(self) -> dict | None:
        """The next event as {"id", "event", "data"}; None at the end of the stream. Comments are skipped."""
        event: dict = {}
        while True:
            line = self.response.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if not line:
                if event:
                    return event
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            event[name] = json.loads(value) if name == "data" else value

    def rest(self) -> list[dict]:
        events = []
        while (event := self.next()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        self.connection.close()


def test_it_streams_each_status_then_the_execution(alice, server):
    task_id = alice.submit("print('live')")
    stream = EventStream(server, alice.key, task_id)
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    assert stream.response.getheader("X-Rce-Event-Stream") is None
    first = stream.next()
    assert (first["event"], first["data"]) == ("status", {"status": "queued"})
    run_worker()
    running, *outputs, completed, execution = stream.rest()
    assert [running["data"], completed["data"]] == [{"status": "running"}, {"status": "completed"}]
    # print() writes the line and its newline apart: on a busy machine they may come in two events.
    assert {e["event"] for e in outputs} == {"output"} and 1 <= len(outputs) <= 2
    assert [(e["data"]["stream"], e["data"]["offset"]) for e in outputs[:1]] == [("stdout", 0)]
    assert "".join(e["data"]["data"] for e in outputs) == "live\n"
    assert running["id"] < outputs[0]["id"] <= outputs[-1]["id"] < completed["id"]
    assert running["id"] < completed["id"] or len(running["id"]) < len(completed["id"])
    assert execution["event"] == "execution" and "id" not in execution
    assert execution["data"] == alice.get(task_id)
    assert execution["data"]["stdout"] == "live\n"


def test_reconnecting_with_last_event_id_resumes_without_loss_or_repetition(alice, server):
    task_id = alice.submit("print(1)")
    stream = EventStream(server, alice.key, task_id)
    queued = stream.next()
    stream.close()
    run_worker()
    resumed = EventStream(server, alice.key, task_id, last_event_id=queued["id"]).rest()
    statuses = [e for e in resumed if e["event"] != "output"]
    assert [e["data"]["status"] for e in statuses] == ["running", "completed", "completed"]
    assert [e["event"] for e in statuses] == ["status", "status", "execution"]
    assert "".join(e["data"]["data"] for e in resumed if e["event"] == "output") == "1\n"
    after_output = EventStream(server, alice.key, task_id, last_event_id=resumed[-3]["id"]).rest()
    assert [e["event"] for e in after_output] == ["status", "execution"]
    assert after_output[0]["data"] == {"status": "completed"}


def test_a_finished_execution_streams_its_status_and_itself_at_once(alice, server):
    task_id = alice.submit("print(2)")
    run_worker()
    events = EventStream(server, alice.key, task_id).rest()
    assert [(e["event"], e["data"].get("status")) for e in events] == [("status", "completed"), ("execution", "completed")]


def test_a_cancelled_execution_ends_its_stream(alice, server):
    task_id = alice.submit("print(3)")
    stream = EventStream(server, alice.key, task_id)
    assert stream.next()["data"] == {"status": "queued"}
    assert alice.client.post(f"/api/v1/executions/{task_id}/cancel").status_code == 200
    assert [e["data"]["status"] for e in stream.rest()] == ["cancelled", "cancelled"]


def test_a_run_cancelled_while_running_ends_with_the_output_it_kept(alice, server, worker_process):
    task_id = alice.submit("import time\nprint('before the cancel', flush=True)\ntime.sleep(60)\n")
    stream = EventStream(server, alice.key, task_id)
    while stream.next()["event"] != "output":
        pass
    assert alice.client.post(f"/api/v1/executions/{task_id}/cancel").status_code == 200
    rest = stream.rest()
    assert [e["data"]["status"] for e in rest if e["event"] == "status"] == ["cancelled"]
    assert rest[-1]["event"] == "execution"
    # What the page showed live stays: the stream's last word holds the output the run kept.
    assert rest[-1]["data"]["stdout"] == "before the cancel\n"
    assert rest[-1]["data"] == alice.get(task_id)


def test_a_stream_opened_before_a_cancelled_run_kept_its_output_waits_for_it(alice, server):
    from executions import runs
    from executions.models import Execution

    task_id = alice.submit("print(8)")
    assert Execution.objects.claim(task_id, "worker-1")
    assert alice.client.post(f"/api/v1/executions/{task_id}/cancel").status_code == 200
    stream = EventStream(server, alice.key, task_id)
    # Not ended yet as far as the stream goes: its worker has still to write the output.
    assert stream.next()["data"] == {"status": "running"}
    runs.keep_cancelled_output(task_id, {"stdout": "kept\n"})
    cancelled, execution = stream.rest()
    assert cancelled["data"] == {"status": "cancelled"}
    assert (execution["data"]["status"], execution["data"]["stdout"]) == ("cancelled", "kept\n")


def test_waiting_streams_hold_no_request_thread(alice, server):
    # Two request threads, and more streams than that waiting: requests are still answered.
    task_id = alice.submit("print(4)")
    streams = [EventStream(server, alice.key, task_id) for _ in range(20)]
    assert all(s.next()["data"] == {"status": "queued"} for s in streams)
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    connection.request("GET", f"/api/v1/executions/{task_id}", headers={"Authorization": f"Bearer {alice.key}"})
    assert connection.getresponse().status == 200
    run_worker()
    assert all([e["event"] for e in s.rest() if e["event"] != "output"] == ["status", "status", "execution"] for s in streams)


def test_another_tenants_execution_is_a_404(alice, bob, server):
    task_id = bob.submit("print('bob-secret')")
    stream = EventStream(server, alice.key, task_id)
    assert stream.response.status == 404
    assert json.loads(stream.response.read())["error"]["code"] == "not_found"
    assert_error(alice.client.get(f"/api/v1/executions/{task_id}/events"), 404, "not_found")
    assert_error(alice.client.get("/api/v1/executions/00000000-0000-0000-0000-000000000000/events"), 404, "not_found")


def test_another_web_server_is_told_it_cannot_stream(alice):
    # Django's test client, as any server but the platform's own: no stream, and no handoff leaks.
    task_id = alice.submit("print(9)")
    response = alice.client.get(f"/api/v1/executions/{task_id}/events", HTTP_ACCEPT="text/event-stream")
    body = assert_error(response, 501, "event_streams_unavailable")
    assert "python -m sandbox_project.serve" in body["error"]["message"]
    assert not response.has_header("X-Rce-Event-Stream")
    assert "tenant_id" not in response.content.decode()


def test_it_needs_a_key(alice, anonymous):
    task_id = alice.submit("print(5)")
    assert_error(anonymous.get(f"/api/v1/executions/{task_id}/events"), 401, "missing_api_key")


def test_a_client_resuming_after_the_events_expired_still_gets_the_end(alice, server, redis_conn):
    task_id = alice.submit("print(6)")
    stream = EventStream(server, alice.key, task_id)
    queued = stream.next()
    stream.close()
    run_worker()
    redis_conn.delete(f"rce:events:{task_id}")
    (execution,) = EventStream(server, alice.key, task_id, last_event_id=queued["id"]).rest()
    assert execution["event"] == "execution" and execution["data"]["status"] == "completed"


def test_a_requeued_execution_streams_queued_again(alice, server):
    from executions import reconciler
    from executions.models import Execution

    task_id = alice.submit("print(7)")
    stream = EventStream(server, alice.key, task_id)
    assert stream.next()["data"] == {"status": "queued"}
    # Claimed by a worker that then vanished: the reconciler puts it back in the queue.
    assert Execution.objects.claim(task_id, "gone")
    assert reconciler.requeue(Execution.objects.get(id=task_id))
    run_worker()
    statuses = [e["data"]["status"] for e in stream.rest() if e["event"] != "output"]
    assert statuses == ["running", "queued", "running", "completed", "completed"]
