"""store.round_trip(): several commands in one write, against real Redis."""

from __future__ import annotations

import pytest
import redis

from executions import store

pytestmark = pytest.mark.no_database


def test_the_replies_come_in_order_with_each_error_in_its_place(redis_conn):
    replies = store.round_trip([("SET", "k", "v", "EX", 60), ("INCR", "k"), ("GET", "k"), ("EVALSHA", "0" * 40, 0)])
    assert replies[0] == b"OK"
    assert isinstance(replies[1], redis.ResponseError)
    assert replies[2] == b"v"
    assert isinstance(replies[3], redis.exceptions.NoScriptError)
    assert 0 < redis_conn.ttl("k") <= 60
    # Every reply was read: the connection goes back to the pool clean.
    assert store.round_trip([("PING",)]) == [b"PONG"]


def test_a_failure_while_reading_closes_the_connection(redis_conn, monkeypatch):
    pool = redis_conn.connection_pool
    store.round_trip([("PING",)])
    broken = []
    read = redis.connection.Connection.read_response

    def fail_after_the_first(self, *args, **kwargs):
        if broken:
            raise redis.TimeoutError("Timeout reading from socket")
        broken.append(self)
        return read(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "read_response", fail_after_the_first)
    with pytest.raises(redis.TimeoutError):
        store.round_trip([("SET", "a", "1"), ("GET", "a")])
    monkeypatch.undo()
    # Closed, not left with a reply unread for the next user; back in the pool, which reconnects it.
    assert broken[0]._sock is None
    assert broken[0] in pool._available_connections
    assert store.round_trip([("GET", "a")]) == [b"1"]

