"""The token (§A3): a third of the lifetime left, at any scale; a hidden value."""

from __future__ import annotations

import pytest

from airflow_insight.protocol.tokens import Token, refresh_due_at


def test_default_token_refreshes_five_minutes_before_expiry() -> None:
    assert refresh_due_at(minted_at=1000.0, expires_at=1900.0) == pytest.approx(1600.0)
    assert Token("t", expires_at=1900.0, lifetime_seconds=900.0).refresh_due_at == 1600.0


def test_rule_scales_down_to_three_second_tokens() -> None:
    token = Token("t", expires_at=13.0, lifetime_seconds=3.0)
    assert token.minted_at == pytest.approx(10.0)
    assert token.refresh_due_at == pytest.approx(12.0)


def test_retry_interval_is_a_fraction_of_the_lifetime_with_a_floor() -> None:
    assert Token("t", 1200.0, 1200.0).retry_interval_seconds == pytest.approx(100.0)
    assert Token("t", 5.0, 0.0).retry_interval_seconds > 0
    # A token already expired when minted is due at once, never in the past of its expiry.
    assert refresh_due_at(minted_at=10.0, expires_at=5.0) == 5.0


def test_the_value_never_shows_in_repr() -> None:
    assert "s3cr3t-token" not in repr(Token("s3cr3t-token", 10.0, 10.0))
