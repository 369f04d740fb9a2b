"""The progress example's MIP: readable by xpress and inside the community licence's size limit."""

from __future__ import annotations

from pathlib import Path

import pytest

MODEL = (
    Path(__file__).parents[2] / "example_dags" / "models" / "fixed_charge_transport" / "problem.lp"
)
COMMUNITY_LIMIT = 5_000  # rows plus columns


@pytest.mark.filterwarnings("ignore:Using the Community license")
def test_model_is_a_mip_within_the_community_limit() -> None:
    xpress = pytest.importorskip("xpress")
    problem = xpress.problem()
    problem.setOutputEnabled(False)
    problem.readProb(str(MODEL))

    rows, cols = problem.attributes.rows, problem.attributes.cols
    assert (rows, cols) == (402, 720)
    assert rows + cols <= COMMUNITY_LIMIT
    assert problem.attributes.mipents == 360  # one binary per lane: a MIP, not an LP
