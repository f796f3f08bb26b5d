from __future__ import annotations

import pytest

from executions import checks

pytestmark = pytest.mark.no_database


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_it_accepts_the_defaults(settings):
    assert checks.check_sandbox_limits(None) == []


def test_it_rejects_non_positive_limits(settings):
    settings.SANDBOX_TIMEOUT_SECONDS = 0
    assert ids(checks.check_sandbox_limits(None)) == ["executions.E001"]


def test_it_rejects_a_memory_limit_the_engine_would_refuse(settings):
    settings.SANDBOX_MEMORY_MB = 4
    assert "executions.E002" in ids(checks.check_sandbox_limits(None))


def test_it_rejects_an_unknown_runtime(settings):
    settings.SANDBOX_RUNTIME = "kata"
    assert ids(checks.check_sandbox_limits(None)) == ["executions.E003"]


def test_it_rejects_an_unknown_code_delivery(settings):
    settings.SANDBOX_CODE_DELIVERY = "stdin"
    assert ids(checks.check_sandbox_limits(None)) == ["executions.E005"]


def test_it_warns_about_the_development_secret_key_in_production(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = settings.INSECURE_SECRET_KEY
    assert ids(checks.check_secret_key(None)) == ["executions.W001"]
    settings.SECRET_KEY = "x" * 60
    assert checks.check_secret_key(None) == []


def test_it_rejects_an_unknown_readiness_check(settings):
    settings.READYZ_CHECKS = ["database", "disk"]
    assert ids(checks.check_readyz(None)) == ["executions.E004"]


def test_the_production_settings_pass_check_deploy():
    import secrets
    import subprocess

    from tests.conftest import ROOT, manage

    env = {
        "PATH": "/usr/bin:/bin",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "HTTPS": "1",
        "DEBUG": "0",
        "VAR_DIR": "/tmp",
    }
    done = subprocess.run(
        manage("check", "--deploy", "--fail-level", "WARNING"), env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_it_accepts_the_default_slots():
    assert checks.check_sandbox_slots(None) == []


def test_it_rejects_fewer_than_one_slot(settings):
    settings.SANDBOX_SLOTS = 0
    assert ids(checks.check_sandbox_slots(None)) == ["executions.E006"]


def test_it_rejects_a_nonsense_overcommit_or_overhead(settings):
    settings.SANDBOX_OVERCOMMIT = 0
    assert ids(checks.check_sandbox_slots(None)) == ["executions.E007"]
    settings.SANDBOX_OVERCOMMIT = 1.0
    settings.SANDBOX_SLOT_OVERHEAD_MB = -1
    assert ids(checks.check_sandbox_slots(None)) == ["executions.E007"]


def test_it_rejects_a_negative_reserve(settings):
    settings.SANDBOX_RESERVE_SLOTS = -1
    assert ids(checks.check_sandbox_slots(None)) == ["executions.E008"]


def test_it_accepts_the_webhook_defaults(settings):
    assert checks.check_webhooks(None) == []


def test_it_rejects_an_allow_list_entry_that_is_not_a_network(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8", "localhost", "300.1.2.3/32"]
    [error] = checks.check_webhooks(None)
    assert error.id == "executions.E011" and "localhost, 300.1.2.3/32" in error.msg


@pytest.mark.parametrize(
    "name, value",
    [("WEBHOOK_TIMEOUT_SECONDS", 0), ("WEBHOOK_RETRY_BASE_SECONDS", -1), ("WEBHOOK_WORKERS", -1), ("WEBHOOK_RETRY_SECONDS", -5)],
)
def test_it_rejects_webhook_settings_out_of_range(settings, name, value):
    setattr(settings, name, value)
    assert ids(checks.check_webhooks(None)) == ["executions.E012"]


def test_it_rejects_a_missing_webhook_ca_file(settings, tmp_path):
    settings.WEBHOOK_CA_FILE = str(tmp_path / "missing.pem")
    assert ids(checks.check_webhooks(None)) == ["executions.E013"]
