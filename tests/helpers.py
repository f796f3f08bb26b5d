from __future__ import annotations


def assert_error(response, status: int, code: str) -> dict:
    """The one error shape of the API: {"error": {"code": ..., "message": ...}}."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body
