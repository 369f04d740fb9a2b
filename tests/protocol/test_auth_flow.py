"""The auth flow (§A3, §B1.1): when a token must be minted, its refresh schedule, the 401 rule."""

from __future__ import annotations

import pytest

from airflow_insight.protocol.auth import AuthFlow, after_refusal
from airflow_insight.protocol.tokens import Token


def test_a_token_is_minted_when_there_is_none() -> None:
    flow = AuthFlow()
    assert flow.mint_due(0.0)
    assert flow.token is None
    assert flow.refresh_at is None
    assert not flow.refresh_due(1e9)  # no token, nothing to refresh


def test_a_third_left_or_an_expired_token_calls_for_a_mint() -> None:
    flow = AuthFlow()
    token = flow.minted("t", started_at=10.0, requested_seconds=3.0)
    assert token is flow.token
    assert (token.expires_at, token.lifetime_seconds) == (13.0, 3.0)
    assert not flow.mint_due(11.99)
    assert flow.mint_due(12.0)  # one second (a third) left
    assert flow.mint_due(20.0)  # expired


def test_fresh_asks_for_a_mint_whatever_the_token() -> None:
    flow = AuthFlow()
    flow.minted("t", started_at=0.0, requested_seconds=900.0)
    assert not flow.mint_due(1.0)
    assert flow.mint_due(1.0, fresh=True)


def test_the_server_lifetime_counts_only_when_shorter() -> None:
    flow = AuthFlow()
    capped = flow.minted("a", started_at=0.0, requested_seconds=1200.0, server_seconds=900.0)
    assert capped.lifetime_seconds == 900.0
    longer = flow.minted("b", started_at=0.0, requested_seconds=600.0, server_seconds=900.0)
    assert longer.lifetime_seconds == 600.0
    unknown = flow.minted("c", started_at=5.0, requested_seconds=600.0)
    assert unknown.expires_at == 605.0
    assert flow.token is unknown


def test_the_refresh_is_asked_again_after_the_retry_interval() -> None:
    flow = AuthFlow()
    token = Token("t", expires_at=1200.0, lifetime_seconds=1200.0)
    flow.use(token)
    assert flow.refresh_at == 800.0
    assert not flow.refresh_due(799.0)
    assert flow.refresh_due(800.0)
    assert flow.refresh_at == pytest.approx(900.0)  # a twelfth of the lifetime later
    assert not flow.refresh_due(850.0)
    assert flow.refresh_due(900.0)
    flow.use(Token("u", expires_at=2100.0, lifetime_seconds=1200.0))
    assert flow.refresh_at == 1700.0  # a new token starts its own schedule


def test_a_401_mints_unless_the_refused_token_was_replaced() -> None:
    flow = AuthFlow()
    old = flow.minted("old", started_at=0.0, requested_seconds=900.0)
    assert flow.refused(old)
    flow.minted("new", started_at=1.0, requested_seconds=900.0)
    assert not flow.refused(old)  # another request already minted a new one: use it


def test_one_fresh_token_after_a_401_then_the_refusal_stands() -> None:
    assert after_refusal(0) == 1  # the first 401: a fresh token, one more try
    assert after_refusal(1) is None  # the second: the credentials are refused


def test_repr_never_shows_the_token() -> None:
    flow = AuthFlow()
    flow.minted("s3cr3t-token", started_at=0.0, requested_seconds=10.0)
    assert "s3cr3t-token" not in repr(flow)
    assert "yes" in repr(flow)
