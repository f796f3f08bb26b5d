"""What Django sees of a request under granian's RSGI interface (sandbox_project/rsgi.py)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from sandbox_project.rsgi import environ_for


class Headers(list):
    def items(self):
        return list(self)


def scope(path: str = "/api/v1/execute", headers=()) -> SimpleNamespace:
    return SimpleNamespace(
        method="POST", path=path, query_string="wait=1", server="127.0.0.1:8000", client="[::1]:5000",
        http_version="1.1", scheme="http", headers=Headers(headers),
    )


@pytest.mark.no_database
def test_the_environ_holds_the_request_and_nothing_of_the_servers_environment(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://attacker.example")
    monkeypatch.setenv("SECRET_KEY", "do-not-leak")
    environ = environ_for(scope(headers=[("content-type", "text/plain"), ("x-a", "1"), ("x-a", "2")]), b"x")
    assert "HTTP_PROXY" not in environ and "SECRET_KEY" not in environ
    assert not set(environ) & (set(os.environ) - {"PATH_INFO"})
    assert (environ["CONTENT_TYPE"], environ["HTTP_X_A"], environ["QUERY_STRING"]) == ("text/plain", "1,2", "wait=1")
    assert (environ["REMOTE_ADDR"], environ["SERVER_PORT"]) == ("::1", "8000")
    assert environ["wsgi.input"].read() == b"x"


@pytest.mark.no_database
def test_the_path_is_passed_as_pep_3333_asks():
    # Decoded, then as latin-1 code points of its UTF-8 bytes: Django decodes it back.
    assert environ_for(scope("/é"), b"")["PATH_INFO"] == "/é".encode().decode("latin-1")
