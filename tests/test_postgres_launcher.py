"""The rule for tests that need PostgreSQL when it is not installed
(COMMON rules, tests/support/postgres.py): skip with a one-line reason, but
fail when MESSENGER_REQUIRE_SERVICES=1, so CI can never pass by skipping."""

from __future__ import annotations

import pytest

from tests.support import postgres


def test_a_missing_postgresql_skips_with_a_one_line_reason(monkeypatch):
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    monkeypatch.delenv("MESSENGER_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        postgres.require_postgres()
    assert str(skipped.value) == "PostgreSQL is not installed (initdb not found)"


def test_a_missing_postgresql_fails_when_services_are_required(monkeypatch):
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    monkeypatch.setenv("MESSENGER_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        postgres.require_postgres()
    assert "MESSENGER_REQUIRE_SERVICES=1" in str(failed.value)
