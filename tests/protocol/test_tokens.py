"""Token refresh timing (§A3): a third of the lifetime left, at any scale."""

from __future__ import annotations

import pytest

from airflow_insight.protocol.tokens import TokenTiming, refresh_due_at


def test_default_token_refreshes_five_minutes_before_expiry() -> None:
    assert refresh_due_at(minted_at=1000.0, expires_at=1900.0) == pytest.approx(1600.0)


def test_rule_scales_down_to_three_second_tokens() -> None:
    timing = TokenTiming(minted_at=10.0, expires_at=13.0)
    assert timing.lifetime_seconds == pytest.approx(3.0)
    assert timing.refresh_due_at == pytest.approx(12.0)
    assert not timing.refresh_due(11.99)
    assert timing.refresh_due(12.0)
    assert not timing.expired(12.5)
    assert timing.expired(13.0)


def test_timing_from_a_cached_token_uses_its_real_mint_time() -> None:
    timing = TokenTiming.from_lifetime(expires_at=900.0, lifetime_seconds=900.0)
    assert timing.minted_at == 0.0
    assert timing.refresh_due_at == pytest.approx(600.0)


def test_retry_interval_is_a_fraction_of_the_lifetime_with_a_floor() -> None:
    assert TokenTiming(0.0, 1200.0).retry_interval_seconds == pytest.approx(100.0)
    assert TokenTiming(5.0, 5.0).retry_interval_seconds > 0
    # A token already expired when minted is due at once, never in the past of its expiry.
    assert refresh_due_at(minted_at=10.0, expires_at=5.0) == 5.0
