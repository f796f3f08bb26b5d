from __future__ import annotations

from django.test import override_settings


def test_the_bare_benchmark_view_is_not_served_in_production(client):
    response = client.post("/bench/bare", data="print(1)", content_type="text/plain")
    assert response.status_code == 404


@override_settings(ROOT_URLCONF="bench.urls")
def test_the_benchmarks_own_urls_serve_it_beside_the_api(client):
    response = client.post("/bench/bare", data="print(1)", content_type="text/plain")
    assert response.status_code == 202
    assert client.get("/healthz").json() == {"status": "ok"}
