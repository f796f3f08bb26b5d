"""webhooks.retry_delay: the pause before a failed delivery's next attempt."""

from __future__ import annotations

import pytest

from executions import webhooks

pytestmark = pytest.mark.no_database


@pytest.fixture
def delays(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS = 3600
    return settings


@pytest.mark.parametrize(
    "attempts, ceiling", [(1, 10), (2, 20), (3, 40), (6, 320), (9, 2560), (10, 3600), (11, 3600), (200, 3600)]
)
def test_it_doubles_from_the_base_up_to_the_cap_with_jitter_in_its_upper_half(delays, monkeypatch, attempts, ceiling):
    monkeypatch.setattr(webhooks.random, "uniform", lambda low, high: low)
    assert webhooks.retry_delay(attempts) == ceiling / 2
    monkeypatch.setattr(webhooks.random, "uniform", lambda low, high: high)
    assert webhooks.retry_delay(attempts) == ceiling


def test_the_jitter_spreads_the_delays_within_those_bounds(delays):
    seen = [webhooks.retry_delay(3) for _ in range(500)]
    assert all(20 <= delay <= 40 for delay in seen)
    # Spread, not one value: receivers that were down are not all called again at once.
    assert max(seen) - min(seen) > 10


def test_the_cap_applies_when_the_base_is_above_it(delays):
    delays.WEBHOOK_RETRY_BASE_SECONDS = 7200
    assert all(1800 <= webhooks.retry_delay(1) <= 3600 for _ in range(50))
