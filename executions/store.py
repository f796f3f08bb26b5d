"""The Redis side of an execution, shared by web and workers: the connection, and every key but the queue's.

Executions are cached here (their API representation, owner first) for reads that need no
database: finished ones, and the state of unfinished ones; a channel announces each finished one to
requests waiting with ?wait=N; a running execution's cancel flag and the results parked during a
database outage live here too. The queue and its fair
scheduling have their own module, executions.scheduler.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import weakref

import django_rq
import hiredis
import redis
import redis.asyncio
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

log = logging.getLogger(__name__)

RESULT_KEY = "rce:execution:{}"
# Set when a running execution is cancelled; its worker polls it and kills the sandbox.
CANCEL_KEY = "rce:cancel:{}"
# Published once an execution's result is cached, for requests waiting on it (?wait=N).
FINISHED_CHANNEL = "rce:finished:{}"
# Results a worker could not write because the database was down: execution id -> fields (JSON).
PARKED_RESULTS_KEY = "rce:parked-results"
# What each worker last saw of its container engine ("ok" or why not), refreshed with its heartbeat.
ENGINE_KEY = "rce:worker-engine:{}"
# The interpreters' versions in a sandbox image, as a worker read them (executions.sandbox.runtimes).
RUNTIMES_KEY = "rce:runtimes:{}"
# Held by the worker that is asking an image for its versions.
RUNTIMES_PROBE_KEY = "rce:runtimes-probe:{}"
# Failed sign-ins in the current window, per user name (hashed) and per client address (signin.py).
SIGNIN_USER_KEY = "rce:signin:user:{}"
SIGNIN_ADDRESS_KEY = "rce:signin:address:{}"


@functools.cache
def connection() -> redis.Redis:
    # One per process: a new client means a new connection pool, and so a TCP connect and
    # handshake (about 2 ms here) on every call. The pool reconnects by itself after an outage.
    return django_rq.get_connection(settings.SANDBOX_QUEUE)


def round_trip(commands: list[tuple]) -> list:
    """Send the commands in one write on a connection of connection()'s pool and read their
    replies: each reply, or the redis.ResponseError it was (as redis-py's pipeline with
    raise_on_error=False gives them).

    For the fast lane's admission (scheduler.admit_each), where redis-py's pipeline cost about
    100 us of CPU a round trip and 25-40 us a submission (it checks each argument's type in Python
    before hiredis packs the command; measured on a machine 2.5 times slower than usual). No retry:
    a connection or timeout error is raised (redis.RedisError) and that connection closed, so
    that no reply of these commands is left for the next user.
    """
    packed = b"".join(hiredis.pack_command(command) for command in commands)
    pool = connection().connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([packed])
        replies = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.ResponseError as exc:
                replies.append(exc)
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    return replies


# One asyncio client per event loop: a client's connections belong to the loop that opened them.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def async_connection() -> redis.asyncio.Redis:
    """This event loop's Redis client (the web server's fast lane), made as connection() is: the
    same URL, so the same database and timeouts."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = redis.asyncio.Redis.from_url(settings.RQ_QUEUES[settings.SANDBOX_QUEUE]["URL"])
    return client


def payload(owner_id: int, representation: dict) -> str:
    """What RESULT_KEY holds: the owner first, so that another tenant's read is refused before any
    parsing (as cheap as a miss), then the representation as JSON. The encoder keeps to_dict()'s
    order, task_id then status: MIRROR reads the status at the start of the value."""
    return f"{owner_id}:{ENCODER.encode(representation)}"


# json.dumps(cls=DjangoJSONEncoder) makes an encoder per call; this one is made once (encode() keeps
# no state between calls).
ENCODER = DjangoJSONEncoder()


def cache_result(execution_id: str, owner_id: int, representation: dict, status: str) -> None:
    """Cache a finished execution's representation and announce it; a Redis failure only costs speed."""
    try:
        with connection().pipeline(transaction=False) as pipe:
            pipe.set(RESULT_KEY.format(execution_id), payload(owner_id, representation), ex=settings.RESULT_CACHE_TTL_SECONDS)
            pipe.publish(FINISHED_CHANNEL.format(execution_id), status)
            pipe.execute()
    except redis.RedisError:
        log.warning("execution %s: could not cache the result", execution_id, exc_info=True)


# A queued or running execution is mirrored under RESULT_KEY as well, so that a status poll reads one
# key whatever the state and needs no query. The row stays the truth: the admission writes the queued
# state beside the job (scheduler.admit), a requeue likewise, the worker the running state once it has
# claimed the row, and every terminal transition deletes the mirror (forget_state, from the model's
# execution_ended) before its result is cached. A finished result always wins: MIRROR writes a state
# only where the key holds nothing or another unfinished state, so a late "running" (a worker that
# stalled while the reconciler ended its run) never hides a result. A mirror that outlives its
# execution's truth in any other way expires: the queued state with the result cache's TTL, the
# running state with the job's own timeout.
UNFINISHED = ("queued", "running")
MIRROR = """
local current = redis.call('GET', KEYS[1])
if current then
  local status = string.match(string.sub(current, 1, 200), '"status": "(%a+)"')
  if status ~= 'queued' and status ~= 'running' then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def state_entry(execution_id: str, owner_id: int, representation: dict, seconds: int) -> tuple[str, str, int]:
    """(key, value, TTL) of an unfinished execution's mirror, for a pipeline that also queues its job."""
    if representation["status"] not in UNFINISHED:
        raise ValueError(f"not an unfinished status: {representation['status']!r}")
    return RESULT_KEY.format(execution_id), payload(owner_id, representation), seconds


def queued_state(execution) -> tuple[str, str, int]:
    """state_entry() of an Execution just queued (admitted, or requeued), for scheduler.admit().

    A new execution's differs from another's only by its id, time, language and limits: its JSON
    comes from a template made once for those, in about half the CPU (31 -> 15 us, and 15-17 ->
    11 us in a noisier run, on a machine 2.5 times slower than usual). Any other execution's is
    made as state_entry() makes it; tests/test_store.py holds the two to the same bytes.
    """
    seconds = settings.RESULT_CACHE_TTL_SECONDS
    fields = execution.__dict__
    if all(fields[name] is blank or (type(fields[name]) is type(blank) and fields[name] == blank) for name, blank in fresh_state()):
        from executions.models import iso_time

        language, timeout, memory = fields["language"], fields["timeout_seconds"], fields["memory_mb"]
        created = iso_time(fields["created_at"])
        if type(language) is str and created is not None:
            head, middle, tail = queued_template(language, type(timeout), timeout, type(memory), memory)
            execution_id = str(execution.id)
            value = f"{execution.tenant_id}:{head}{execution_id}{middle}{created}{tail}"
            return RESULT_KEY.format(execution_id), value, seconds
    return state_entry(str(execution.id), execution.tenant_id, execution.to_dict(), seconds)


@functools.cache
def fresh_state() -> tuple[tuple[str, object], ...]:
    """The fields a new execution's to_dict() shows besides its id, time, language and limits, with a
    new execution's values."""
    from executions.models import Execution, blank_execution

    blank = blank_execution()[0]
    shown = (
        "status", "stdout", "stderr", "exit_code", "stdout_truncated", "stderr_truncated", "duration_ms",
        "compile_output", "compile_duration_ms", "started_at", "finished_at", "error", "verdict",
        "tests_passed", "tests_failed", "test_results",
    )
    # A field that to_dict() shows and this does not know would be written as a blank one's.
    if set(Execution.new().to_dict()) != {"task_id", "language", "timeout_seconds", "memory_mb", "created_at", *shown}:
        raise RuntimeError("store.fresh_state() must list every field Execution.to_dict() shows")
    return tuple((name, blank[name]) for name in shown)


# Ids and times in JSON need no escaping, and these stand for them in a template.
ID_MARK, TIME_MARK = "\x00id\x00", "\x00time\x00"


@functools.lru_cache(maxsize=256)
def queued_template(language: str, timeout_type: type, timeout, memory_type: type, memory) -> tuple[str, str, str]:
    """A new execution's queued state as JSON, cut where its id and its time go. (Limits are keyed
    with their types: 5 and 5.0 are written differently.)"""
    from executions.models import Execution

    execution = Execution.new(language=language, timeout_seconds=timeout, memory_mb=memory)
    representation = {**execution.to_dict(), "task_id": ID_MARK, "created_at": TIME_MARK}
    text = ENCODER.encode(representation)
    head, rest = text.split(ENCODER.encode(ID_MARK)[1:-1])
    middle, tail = rest.split(ENCODER.encode(TIME_MARK)[1:-1])
    return head, middle, tail


def mirror_state(execution_id: str, owner_id: int, representation: dict, seconds: int) -> None:
    """Mirror an unfinished state unless a finished result is cached already; only costs speed if it fails."""
    key, value, ttl = state_entry(execution_id, owner_id, representation, seconds)
    try:
        mirror_script()(keys=[key], args=[value, ttl], client=connection())
    except redis.RedisError:
        log.warning("execution %s: could not mirror its state", execution_id, exc_info=True)


@functools.cache
def mirror_script():
    return connection().register_script(MIRROR)


def forget_state(sender=None, execution_id=None, **kwargs) -> None:
    """An execution ended (the model's execution_ended): drop its unfinished mirror, so that reads go to
    the row until the result is cached."""
    forget_states([execution_id])


def forget_states(execution_ids: list) -> None:
    """Drop the mirrors of these executions (ended, or refused at admission and removed)."""
    try:
        connection().delete(*(RESULT_KEY.format(execution_id) for execution_id in execution_ids))
    except redis.RedisError:
        log.warning("could not drop the mirrored state of %s", execution_ids, exc_info=True)


def cached_json(execution_id: str, owner_id: int) -> bytes | None:
    """The cached representation of a finished execution as JSON bytes, if it belongs to this owner."""
    try:
        raw = connection().get(RESULT_KEY.format(execution_id))
    except redis.RedisError:
        return None
    return owned_json(raw, owner_id)


def owned_json(raw: bytes | None, owner_id: int) -> bytes | None:
    """The JSON of a value read from RESULT_KEY, if there was one and it belongs to this owner."""
    if raw is None:
        return None
    owner, _, data = raw.partition(b":")
    if owner != str(owner_id).encode():
        return None
    return data


def cached_result(execution_id: str, owner_id: int) -> dict | None:
    """The cached representation of an execution that has finished, if it belongs to this owner."""
    data = cached_json(execution_id, owner_id)
    representation = None if data is None else json.loads(data)
    return None if representation is None or representation["status"] in UNFINISHED else representation


def request_cancel(execution_id, seconds: int) -> None:
    connection().set(CANCEL_KEY.format(execution_id), 1, ex=seconds)


def cancel_requested(execution_id: str) -> bool:
    try:
        return bool(connection().exists(CANCEL_KEY.format(execution_id)))
    except redis.RedisError:
        return False


def park_result(execution_id: str, fields: dict) -> bool:
    try:
        connection().hset(PARKED_RESULTS_KEY, execution_id, json.dumps(fields, cls=DjangoJSONEncoder))
    except redis.RedisError:
        return False
    return True


def is_parked(execution_id) -> bool:
    return bool(connection().hexists(PARKED_RESULTS_KEY, str(execution_id)))


def parked_results() -> dict[str, dict]:
    return {key.decode(): json.loads(raw) for key, raw in connection().hgetall(PARKED_RESULTS_KEY).items()}


def unpark(execution_id: str) -> None:
    connection().hdel(PARKED_RESULTS_KEY, execution_id)


def engine_health() -> str:
    """"ok" if a live worker reached its container engine at its last heartbeat, else why not."""
    keys = list(connection().scan_iter(match=ENGINE_KEY.format("*"), count=1000))
    reports = [value.decode() for value in connection().mget(keys) if value is not None] if keys else []
    if not reports:
        return "unknown: no sandbox worker has reported in the last heartbeat"
    return "ok" if "ok" in reports else reports[0]


def runtime_versions(image: str) -> dict:
    """The versions a worker recorded for this image ({} if none has yet): {"image_id", "versions"}."""
    try:
        raw = connection().get(RUNTIMES_KEY.format(image))
        return json.loads(raw) if raw else {}
    except (redis.RedisError, ValueError):
        # Unknown versions are null in the API: never a reason to fail the request.
        return {}


def known_versions(images: list[str]) -> dict[str, str]:
    """Every language's version that a worker recorded for these images, in one round trip."""
    try:
        raws = connection().mget([RUNTIMES_KEY.format(image) for image in images])
        entries = [json.loads(raw) for raw in raws if raw]
    except (redis.RedisError, ValueError):
        return {}
    return {name: version for entry in entries for name, version in (entry.get("versions") or {}).items()}
