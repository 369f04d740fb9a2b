"""Solver progress from APP_MESSAGE: literal wire text -> decoder -> handler -> answer and events.

The texts are written out as the protocol reference (§B4.7.3) shows them, not made by our encoder,
so a mistake shared by the encoder and the reader cannot hide here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import pytest

from airflow_insight import progress as p
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.protocol import messages as m

# A GLOBALLOG callback as the reference shows APP_MESSAGE, with real Xpress attribute names
# (key = the attribute's id in the Xpress reference manual).
GLOBALLOG_TEXT = """
{"computeJobId": "job-1", "messageType": "APP_MESSAGE",
 "messagePayload": {
   "appMessageId": "3f1b7c2e-0000-4000-8000-000000000001",
   "appMessageType": "GLOBALLOG",
   "appMessage": {"problemName": "fctp",
                  "attributes": {
                    "MIPBESTOBJVAL": {"key": 2017, "name": "MIPBESTOBJVAL", "value": 5906.0},
                    "BESTBOUND": {"key": 2004, "name": "BESTBOUND", "value": 5503.2},
                    "MIPSOLS": {"key": 1011, "name": "MIPSOLS", "value": 3},
                    "NODES": {"key": 1013, "name": "NODES", "value": 120},
                    "TIME": {"key": 1122, "name": "TIME", "value": 2.5},
                    "OBJSENSE": {"key": 2008, "name": "OBJSENSE", "value": 1.0}}}
 }}
"""


def app_message(
    message_id: str,
    attributes: str,
    *,
    kind: str = "GLOBALLOG",
    job: str = "job-1",
    extra: str = "",
) -> m.AppMessage:
    """Decode a hand-written APP_MESSAGE whose attributes object is given as literal JSON."""
    text = (
        f'{{"computeJobId": "{job}", "messageType": "APP_MESSAGE", "messagePayload": '
        f'{{"appMessageId": "{message_id}", "appMessageType": "{kind}"{extra}, '
        f'"appMessage": {{"problemName": "fctp", "attributes": {attributes}}}}}}}'
    )
    message = m.decode_server_message(text)
    assert isinstance(message, m.AppMessage)
    return message


def mip(best: float | str, bound: float | str, sols: int = 1, nodes: int = 10) -> str:
    """An attributes object in the documented {name: {key, name, value}} shape."""

    def attribute(name: str, value: object) -> str:
        return f'"{name}": {{"key": 0, "name": "{name}", "value": {json.dumps(value)}}}'

    return (
        "{"
        + ", ".join(
            [
                attribute("MIPBESTOBJVAL", best),
                attribute("BESTBOUND", bound),
                attribute("MIPSOLS", sols),
                attribute("NODES", nodes),
            ]
        )
        + "}"
    )


def wire(response: m.AppMessageResponse) -> dict[str, object]:
    """The answer as the server would read it."""
    document: dict[str, object] = json.loads(m.encode_client_message(response))
    return document


# ----------------------------------------------------------------------------- reading


def test_reference_shaped_message_becomes_a_full_record() -> None:
    message = m.decode_server_message(GLOBALLOG_TEXT)
    assert isinstance(message, m.AppMessage)

    record = p.read_progress(message, now=100.0)

    assert record is not None
    assert record.job_id == "job-1"
    assert record.callback == "GLOBALLOG"
    assert record.time == 100.0
    assert record.best_solution == 5906.0
    assert record.best_bound == 5503.2
    assert record.relative_gap == pytest.approx((5906.0 - 5503.2) / 5906.0)
    assert (record.nodes, record.solutions_found, record.elapsed_seconds) == (120, 3, 2.5)
    assert record.sense == "minimize"
    assert record.problem_name == "fctp"
    line = record.describe()
    assert line.split() == [
        "GLOBALLOG",
        *("best", "5906", "bound", "5503.2", "gap", "6.82%"),
        *("nodes", "120", "sols", "3", "t", "2.5s"),
    ]
    assert "job-1" not in line  # said once, by ProgressStarted
    json.dumps(record.to_dict())  # JSON-safe


@pytest.mark.parametrize(
    "attributes",
    [
        # XPRS_-prefixed lower-case names and numeric strings (the reference's "value": "value").
        '{"xprs_mipbestobjval": {"key": 1, "name": "xprs_mipbestobjval", "value": "110"},'
        ' "XPRS_BESTBOUND": {"key": 2, "name": "XPRS_BESTBOUND", "value": "100"}}',
        # A bare name -> value map.
        '{"MIPBESTOBJVAL": 110, "BESTBOUND": 100}',
        # A list of {name, value} entries.
        '[{"name": "MIPBESTOBJVAL", "value": 110}, {"name": "BESTBOUND", "value": 100}]',
    ],
)
def test_attribute_shapes_and_spellings_are_read_liberally(attributes: str) -> None:
    record = p.read_progress(app_message("a", attributes), now=0.0)
    assert record is not None
    assert (record.best_solution, record.best_bound) == (110.0, 100.0)
    assert record.relative_gap == pytest.approx(10 / 110)


def test_xpress_infinity_and_no_incumbent_read_as_missing() -> None:
    # Before the first incumbent Xpress reports MIPBESTOBJVAL = 1e40 and MIPSOLS = 0.
    record = p.read_progress(app_message("a", mip(1e40, -1e40, sols=0)), now=0.0)
    assert record is not None
    assert (record.best_solution, record.best_bound, record.relative_gap) == (None, None, None)
    assert "best          -  bound          -  gap       -" in record.describe()


def test_gap_of_zero_objective_and_bound_is_zero() -> None:
    assert p.relative_gap(0.0, 0.0) == 0.0
    assert p.relative_gap(None, 1.0) is None
    assert p.relative_gap(-10.0, -11.0) == pytest.approx(1 / 11)


def test_intsol_keeps_the_solution_file_url() -> None:
    message = app_message(
        "a",
        mip(100, 90),
        kind="INTSOL",
        extra=', "appMessageFile": "/api/compute-jobs/job-1/messages/a/file"',
    )
    record = p.read_progress(message, now=0.0)
    assert record is not None
    assert record.solution_file == "/api/compute-jobs/job-1/messages/a/file"
    handler = p.SolverProgress()
    handler.answer(message, now=0.0)
    handler.answer(app_message("b", mip(99, 90)), now=1.0)  # a GLOBALLOG keeps the file
    assert handler.summary()["latest_solution_file"] == "/api/compute-jobs/job-1/messages/a/file"


# ----------------------------------------------------------------------------- answering


def test_every_message_is_answered_and_recorded() -> None:
    handler = p.SolverProgress()
    message = m.decode_server_message(GLOBALLOG_TEXT)
    assert isinstance(message, m.AppMessage)

    response, events = handler.answer(message, now=5.0)

    assert wire(response) == {
        "computeJobId": "job-1",
        "messageType": "APP_MESSAGE_RESPONSE",
        "messagePayload": {
            "appMessageId": "3f1b7c2e-0000-4000-8000-000000000001",
            "appMessage": {"interruptSolve": False},
        },
    }
    assert [type(event) for event in events] == [p.ProgressStarted, p.ProgressRecorded]
    started, event = events
    assert isinstance(started, p.ProgressStarted) and isinstance(event, p.ProgressRecorded)
    assert started.logger_name == event.logger_name == p.PROGRESS_LOGGER == "insight.progress"
    assert started.describe().startswith(
        "Solver progress of Insight compute job job-1 (problem fctp)"
    )
    assert event.describe().startswith("GLOBALLOG  best       5906  bound     5503.2  gap   6.82%")
    assert event.log_level == logging.INFO
    assert handler.last_record == event.record


@pytest.mark.parametrize(
    "payload",
    [
        # Unknown appMessageType with no body at all.
        '{"appMessageId": "x1", "appMessageType": "SOMETHING_NEW"}',
        # No appMessageType, body not an object.
        '{"appMessageId": "x1", "appMessage": "not an object"}',
        # Attributes of the wrong type.
        '{"appMessageId": "x1", "appMessageType": "GLOBALLOG", "appMessage": {"attributes": 7}}',
        # Attribute values that are not numbers.
        '{"appMessageId": "x1", "appMessageType": "GLOBALLOG", "appMessage": {"attributes":'
        ' {"MIPBESTOBJVAL": {"value": "lots"}, "NODES": {"value": [1]},'
        ' "BESTBOUND": {"value": true}}}}',
        # appMessageType of the wrong JSON type.
        '{"appMessageId": "x1", "appMessageType": 42, "appMessage": {}}',
    ],
)
def test_malformed_or_unknown_messages_are_survived_and_still_answered(payload: str) -> None:
    text = (
        '{"computeJobId": "job-1", "messageType": "APP_MESSAGE", "messagePayload": ' + payload + "}"
    )
    message = m.decode_server_message(text)
    assert isinstance(message, m.AppMessage)
    handler = p.SolverProgress([p.StopAtGap(0.5)])

    response, events = handler.answer(message, now=1.0)

    assert wire(response)["messagePayload"] == {
        "appMessageId": "x1",
        "appMessage": {"interruptSolve": False},
    }
    assert [type(event) for event in events] == [p.ProgressUnreadable]
    assert "x1" in events[0].describe()
    assert handler.messages_answered == 1
    assert handler.last_record is None


def test_unknown_type_with_attributes_gives_a_record() -> None:
    message = app_message("u1", mip(100, 99.5), kind="SOMETHING_NEW")
    handler = p.SolverProgress([p.StopAtGap(0.01)])

    response, events = handler.answer(message, now=0.0)

    assert response.interrupt_solve is True
    assert [type(event) for event in events] == [
        p.ProgressStarted,
        p.ProgressRecorded,
        p.SolveStopRequested,
    ]


def test_partial_record_keeps_what_is_there() -> None:
    message = app_message("n1", '{"NODES": {"key": 1013, "name": "NODES", "value": 42}}')
    handler = p.SolverProgress([p.StopAtGap(0.01)])

    response, events = handler.answer(message, now=0.0)

    assert response.interrupt_solve is False
    event = events[-1]
    assert isinstance(event, p.ProgressRecorded)
    assert event.record.nodes == 42
    assert event.record.best_solution is None
    assert handler.series.to_json()["points"] == []  # nothing to plot in it


# ----------------------------------------------------------------------------- stop rules


def test_gap_rule_interrupts_and_says_why() -> None:
    handler = p.SolverProgress([{"rule": "relative_gap", "relative_gap": 0.01}])

    first, first_events = handler.answer(app_message("m1", mip(110, 100)), now=1.0)
    second, second_events = handler.answer(app_message("m2", mip(101, 100.2)), now=2.0)

    assert first.interrupt_solve is False
    assert [type(event) for event in first_events] == [p.ProgressStarted, p.ProgressRecorded]
    assert wire(second)["messagePayload"] == {
        "appMessageId": "m2",
        "appMessage": {"interruptSolve": True},
    }
    stop = second_events[-1]
    assert isinstance(stop, p.SolveStopRequested)
    assert "stop rule relative_gap" in stop.describe()
    assert "relative gap 0.7921% is at most the target 1.0000%" in stop.describe()
    assert handler.stopped_by is not None
    assert handler.stopped_by.app_message_id == "m2"
    summary = handler.summary()
    assert summary["stopped_early"] is True
    assert summary["stopped_by"]["rule"] == {"rule": "relative_gap", "relative_gap": 0.01}
    assert "time" not in summary["last"]
    assert summary["last"]["best_solution"] == 101.0
    json.dumps(summary)


def test_a_stop_is_final_for_later_messages() -> None:
    handler = p.SolverProgress([p.StopAtGap(0.01)])
    handler.answer(app_message("m1", mip(100, 99.9)), now=1.0)

    later, events = handler.answer(app_message("m2", mip(100, 99.0)), now=2.0)

    assert later.interrupt_solve is True
    assert [type(event) for event in events] == [p.ProgressRecorded]  # no second stop event
    assert handler.stopped_by is not None and handler.stopped_by.app_message_id == "m1"


def test_no_improvement_rule_counts_from_the_latest_better_solution() -> None:
    handler = p.SolverProgress([p.StopAfterNoImprovement(seconds=30)])
    # No incumbent yet: never fires, however long it takes.
    assert (
        handler.answer(app_message("m0", mip(1e40, 50, sols=0)), now=0.0)[0].interrupt_solve
        is False
    )
    assert (
        handler.answer(app_message("m1", mip(1e40, 60, sols=0)), now=100.0)[0].interrupt_solve
        is False
    )
    handler.answer(app_message("m2", mip(120, 60)), now=110.0)
    handler.answer(app_message("m3", mip(115, 61)), now=130.0)  # better: the clock restarts
    assert handler.answer(app_message("m4", mip(115, 62)), now=159.0)[0].interrupt_solve is False

    response, events = handler.answer(app_message("m5", mip(115, 63)), now=160.0)

    assert response.interrupt_solve is True
    assert isinstance(events[-1], p.SolveStopRequested)
    assert "no better solution for 30.0s (limit 30s)" in events[-1].describe()


@pytest.mark.parametrize(
    ("sense_attribute", "rule", "values", "fires_at"),
    [
        # Minimize (OBJSENSE 1): fires once the best solution is <= the target.
        ("1", p.StopAtObjective(100.0), [(120, 90), (100.5, 95), (100, 96)], 2),
        # Maximize (OBJSENSE -1): fires once the best solution is >= the target.
        ("-1", p.StopAtObjective(100.0), [(80, 130), (99, 120), (101, 110)], 2),
        # No OBJSENSE: the bound's side tells the sense (bound above: maximize).
        (None, p.StopAtObjective(100.0), [(80, 130), (100, 120)], 1),
        # The rule's own sense wins over the solver's.
        ("1", p.StopAtObjective(100.0, sense="maximize"), [(99, 90), (101, 90)], 1),
    ],
)
def test_objective_rule_follows_the_sense(
    sense_attribute: str | None,
    rule: p.StopAtObjective,
    values: list[tuple[float, float]],
    fires_at: int,
) -> None:
    handler = p.SolverProgress([rule])
    answers = []
    for index, (best, bound) in enumerate(values):
        attributes = mip(best, bound)
        if sense_attribute is not None:
            attributes = attributes[:-1] + f', "OBJSENSE": {{"value": {sense_attribute}}}}}'
        response, _ = handler.answer(app_message(f"m{index}", attributes), now=float(index))
        answers.append(response.interrupt_solve)
    assert answers == [index >= fires_at for index in range(len(values))]


def test_objective_rule_waits_while_the_sense_is_unknown() -> None:
    handler = p.SolverProgress([p.StopAtObjective(100.0)])
    # No OBJSENSE and best == bound: the sense cannot be told, so the rule does not fire.
    response, _ = handler.answer(app_message("m1", mip(100, 100)), now=0.0)
    assert response.interrupt_solve is False


def test_first_rule_that_fires_is_reported() -> None:
    handler = p.SolverProgress([p.StopAtObjective(200.0, sense="minimize"), p.StopAtGap(0.5)])
    handler.answer(app_message("m1", mip(150, 100)), now=0.0)
    assert handler.stopped_by is not None
    assert handler.stopped_by.rule == {"rule": "objective", "value": 200.0, "sense": "minimize"}


def test_resent_message_is_answered_the_same_and_recorded_once() -> None:
    handler = p.SolverProgress([p.StopAtGap(0.01)])
    message = app_message("m1", mip(100, 99.5))
    first, first_events = handler.answer(message, now=0.0)

    again, again_events = handler.answer(message, now=3.0)  # re-sent after a reconnect

    assert first == again
    assert again.interrupt_solve is True
    assert len(first_events) == 3 and list(again_events) == []
    assert handler.series.records_seen == 1
    assert handler.messages_answered == 2


def test_stop_rules_round_trip_through_json() -> None:
    rules = (
        p.StopAtGap(0.01),
        p.StopAfterNoImprovement(120),
        p.StopAtObjective(-5.5, sense="maximize"),
        p.StopAtObjective(3),
    )
    text = json.dumps(p.stop_rules_to_json(rules))
    assert p.stop_rules_from_json(json.loads(text)) == rules


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"rule": "relative_gap"}], "needs relative_gap"),
        ([{"rule": "relative_gap", "relative_gap": -0.1}], "at least 0"),
        ([{"rule": "relative_gap", "relative_gap": "1%"}], "finite number"),
        ([{"rule": "no_improvement", "seconds": float("inf")}], "finite number"),
        ([{"rule": "objective", "value": 1, "sense": "down"}], "sense must be"),
        ([{"rule": "objective", "value": 1, "typo": 2}], "unknown fields ['typo']"),
        ([{"rule": "time"}], "unknown stop rule 'time'"),
        ([{"relative_gap": 0.01}], "unknown stop rule None"),
        (["relative_gap"], "must be a rule object or a dict"),
        ({"rule": "relative_gap", "relative_gap": 0.01}, "must be a list"),
    ],
)
def test_bad_stop_rules_fail_at_once(items: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        p.stop_rules_from_json(items)  # type: ignore[arg-type]
    assert message in str(caught.value)


# ----------------------------------------------------------------------------- series


def test_series_is_bounded_and_keeps_the_incumbent_steps() -> None:
    handler = p.SolverProgress(series_limit=50)
    best = 1000.0
    steps = []
    for index in range(5000):
        if index % 400 == 7:
            best -= 10
            steps.append(best)
        bound = 900.0 + index * 0.01
        handler.answer(app_message(f"m{index}", mip(best, bound, nodes=index)), now=10.0 + index)
        assert len(handler.series.points) <= 4 * 50

    document = handler.series.to_json()

    assert document["fields"] == [
        "time",
        "best_solution",
        "best_bound",
        "relative_gap",
        "solver_time",
    ]
    points = document["points"]
    assert len(points) <= 50
    assert points[0][0] == 0.0  # seconds since the first record
    assert points[-1][0] == 4999.0  # the last point is kept
    assert [row[0] for row in points] == sorted(row[0] for row in points)
    kept_bests = {row[1] for row in points}
    assert set(steps) <= kept_bests  # every improvement of the incumbent survives thinning
    json.dumps(document)
    # And reads back for the plot.
    assert [pt.time for pt in p.series_points(document)] == [row[0] for row in points]


def test_downsample_keeps_short_series_whole() -> None:
    points = [p.ProgressPoint(float(i), 1.0, 0.5, 0.5) for i in range(3)]
    assert p.downsample(points, 10) == points
    assert len(p.downsample(points * 10, 4)) == 4


# ----------------------------------------------------------------------------- job request


def test_progress_callbacks_fit_the_problem_type() -> None:
    assert p.progress_callbacks("MIP") == ("INTSOL", "GLOBALLOG")
    assert p.progress_callbacks("lp") == ("LPLOG", "BARLOG")
    assert p.progress_callbacks(None) == ("INTSOL", "GLOBALLOG", "LPLOG", "BARLOG")


def test_with_progress_callbacks_merges_into_a_copy() -> None:
    request = {
        "computeJobType": "SOLVER",
        "solver": {"problemType": "MIP", "callbacks": ["CUTLOG", "INTSOL"], "controls": {}},
    }

    merged = p.with_progress_callbacks(request)

    assert merged["solver"]["callbacks"] == ["CUTLOG", "INTSOL", "GLOBALLOG"]
    assert merged["solver"]["controls"] == {}
    assert request["solver"]["callbacks"] == ["CUTLOG", "INTSOL"]  # the input is untouched
    assert p.with_progress_callbacks({"computeJobType": "SOLVER"})["solver"] == {
        "callbacks": ["INTSOL", "GLOBALLOG", "LPLOG", "BARLOG"]
    }
    explicit = p.with_progress_callbacks(request, ["GAPNOTIFY"])
    assert explicit["solver"]["callbacks"] == ["CUTLOG", "INTSOL", "GAPNOTIFY"]


@pytest.mark.parametrize(
    ("request_", "callbacks", "message"),
    [
        ({"solver": {}}, ["NODELOG"], "unknown solver callbacks ['NODELOG']"),
        ({"solver": {"callbacks": "INTSOL"}}, None, "must be a list of names"),
        ({"solver": []}, None, "must be an object"),
    ],
)
def test_with_progress_callbacks_rejects_bad_input(
    request_: dict[str, object], callbacks: list[str] | None, message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        p.with_progress_callbacks(request_, callbacks)
    assert message in str(caught.value)


def test_lp_callback_reports_the_lp_objective() -> None:
    message = app_message(
        "lp1",
        '{"LPOBJVAL": {"key": 2001, "name": "LPOBJVAL", "value": 12.5},'
        ' "SIMPLEXITER": {"key": 1009, "name": "SIMPLEXITER", "value": 300}}',
        kind="LPLOG",
    )
    response, events = p.SolverProgress([p.StopAtGap(0.01)]).answer(message, now=0.0)
    assert response.interrupt_solve is False
    event = events[-1]
    assert isinstance(event, p.ProgressRecorded)
    assert event.record.lp_objective == 12.5
    assert event.describe().startswith("LPLOG      best          -  bound          -  gap       -")
    assert event.describe().endswith("LP objective 12.5")


def test_a_gap_rule_asks_the_solver_to_call_back_when_the_gap_crosses_it() -> None:
    request = {"solver": {"problemType": "MIP", "controls": {"XPRS_MAXTIME": "-60"}}}
    rules = [p.StopAtGap(0.01), {"rule": "relative_gap", "relative_gap": 0.05}]

    merged = p.with_progress_callbacks(request, stop_rules=rules)

    assert merged["solver"]["callbacks"] == ["INTSOL", "GLOBALLOG", "GAPNOTIFY"]
    # The loosest gap rule fires first, so the notification is set at its gap.
    assert merged["solver"]["controls"] == {"XPRS_MAXTIME": "-60", "XPRS_MIPRELGAPNOTIFY": 0.05}
    assert request["solver"]["controls"] == {"XPRS_MAXTIME": "-60"}
    # A control the user set wins; an LP or an explicit list gets no GAPNOTIFY.
    own = {"solver": {"controls": {"XPRS_MIPRELGAPNOTIFY": 0.2}}}
    assert p.with_progress_callbacks(own, stop_rules=rules)["solver"]["controls"] == {
        "XPRS_MIPRELGAPNOTIFY": 0.2
    }
    lp = p.with_progress_callbacks({"solver": {"problemType": "LP"}}, stop_rules=rules)
    assert lp["solver"] == {"problemType": "LP", "callbacks": ["LPLOG", "BARLOG"]}
    explicit = p.with_progress_callbacks(request, ["INTSOL"], stop_rules=rules)
    assert explicit["solver"]["callbacks"] == ["INTSOL"]
    assert "XPRS_MIPRELGAPNOTIFY" not in explicit["solver"]["controls"]
    # Without a gap rule nothing changes in the controls.
    assert p.with_progress_callbacks(request, stop_rules=[p.StopAfterNoImprovement(5)])["solver"][
        "controls"
    ] == {"XPRS_MAXTIME": "-60"}


# ----------------------------------------------------------------------------- task options


def test_options_from_operator_arguments_round_trip_through_trigger_kwargs() -> None:
    options = p.ProgressOptions.from_arguments(
        True, [p.StopAtGap(0.01), {"rule": "no_improvement", "seconds": 120}]
    )
    assert options is not None

    kwargs = json.loads(json.dumps(options.to_json()))  # as the trigger's kwargs carry it

    assert kwargs == {
        "callbacks": None,
        "stop_rules": [
            {"rule": "relative_gap", "relative_gap": 0.01},
            {"rule": "no_improvement", "seconds": 120},
        ],
        "series_limit": 200,
    }
    rebuilt = p.ProgressOptions.from_json(kwargs)
    assert rebuilt == options
    request = rebuilt.job_request({"computeJobType": "SOLVER", "solver": {"problemType": "MIP"}})
    assert request["solver"]["callbacks"] == ["INTSOL", "GLOBALLOG", "GAPNOTIFY"]
    handler = rebuilt.handler()
    assert handler.stop_rules == options.stop_rules
    assert handler is not rebuilt.handler()  # one per job


def test_options_with_an_explicit_callback_list() -> None:
    options = p.ProgressOptions.from_arguments(["INTSOL"], series_limit=20)
    assert options is not None
    assert p.ProgressOptions.from_json(options.to_json()) == options
    assert options.job_request({"solver": {}})["solver"]["callbacks"] == ["INTSOL"]
    assert options.handler().series.limit == 20


@pytest.mark.parametrize(
    ("solver_progress", "rules", "series_limit", "message"),
    [
        (False, [p.StopAtGap(0.01)], 200, "stop_rules need solver progress"),
        ("INTSOL", None, 200, "must be True, False or a list"),
        (["INTSOL", "NODES"], None, 200, "unknown solver callbacks ['NODES']"),
        (True, None, 1, "limit of at least 2"),
    ],
)
def test_bad_progress_arguments_fail_at_once(
    solver_progress: object, rules: object, series_limit: int, message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        p.ProgressOptions.from_arguments(solver_progress, rules, series_limit=series_limit)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_no_progress_asked_for_gives_no_options() -> None:
    assert p.ProgressOptions.from_arguments(False) is None
    assert p.ProgressOptions.from_arguments(False, []) is None


# ----------------------------------------------------------------------------- log lines


def timed(best: float, bound: float, seconds: float, sols: int = 1) -> str:
    """A MIP attributes object that also carries the solver's TIME."""
    return mip(best, bound, sols=sols)[:-1] + f', "TIME": {{"key": 1122, "value": {seconds}}}}}'


def shown(events: Sequence[object]) -> list[str]:
    """The progress records of ``events`` that reach the task log at INFO, as logged."""
    return [
        event.describe()
        for event in events
        if isinstance(event, p.ProgressRecorded) and event.log_level == logging.INFO
    ]


def test_an_intsol_repeated_by_the_next_globallog_is_logged_once() -> None:
    handler = p.SolverProgress(heartbeat_seconds=30.0)
    first = handler.answer(app_message("a", timed(5680, 5600, 29.0), kind="INTSOL"), now=1.0)[1]
    # 3 ms later the MIP log line carries the same figures (more nodes, nothing new).
    again = handler.answer(app_message("b", timed(5680, 5600, 29.0)), now=1.003)[1]
    moved = handler.answer(app_message("c", timed(5680, 5623.12, 29.1)), now=2.0)[1]

    assert len(shown(first)) == 1 and shown(again) == [] and len(shown(moved)) == 1
    (repeat,) = again
    assert isinstance(repeat, p.ProgressRecorded) and repeat.log_level == logging.DEBUG
    assert handler.series.records_seen == 3  # the picture still gets every point


def test_a_bound_that_creeps_below_the_printed_gap_is_not_news() -> None:
    handler = p.SolverProgress(heartbeat_seconds=30.0)
    figures = [
        (None, 5000.0),  # no incumbent: the bound is all there is, and it moved
        (None, 5100.0),
        (5682.0, 5615.5),  # gap 1.17%
        (5682.0, 5616.25),  # gap 1.16%: shown
        (5682.0, 5616.3),  # gap still 1.16%: the bound crept, nothing to read
    ]
    lines = [
        shown(
            handler.answer(
                app_message(
                    f"m{n}",
                    timed(1e40 if best is None else best, bound, n, sols=0 if best is None else 1),
                ),
                now=float(n),
            )[1]
        )
        for n, (best, bound) in enumerate(figures)
    ]
    assert [len(line) for line in lines] == [1, 1, 1, 1, 0]


def test_a_record_that_changes_nothing_is_shown_again_after_the_heartbeat() -> None:
    handler = p.SolverProgress(heartbeat_seconds=10.0)
    lines = [
        shown(handler.answer(app_message(f"m{n}", timed(100, 90, n)), now=float(n))[1])
        for n in (0, 4, 9, 10, 15, 20)
    ]
    assert [len(line) for line in lines] == [1, 0, 0, 1, 0, 1]


def test_only_the_first_record_of_a_job_names_the_job() -> None:
    handler = p.SolverProgress()
    events = [
        event
        for n in range(3)
        for event in handler.answer(app_message(f"m{n}", timed(100 - n, 90, n)), float(n))[1]
    ]
    started = [event for event in events if isinstance(event, p.ProgressStarted)]
    assert len(started) == 1 and "job-1" in started[0].describe()
    assert all("job-1" not in line for line in shown(events))


def test_record_lines_keep_their_columns() -> None:
    handler = p.SolverProgress(heartbeat_seconds=0.0)
    figures = [(18000.0, 0.0, 0.1, 1), (5906.0, 5503.2, 2.5, 3), (5680.0, 5623.12, 29.1, 16)]
    lines = [
        line
        for n, (best, bound, seconds, sols) in enumerate(figures)
        for line in shown(
            handler.answer(
                app_message(f"m{n}", timed(best, bound, seconds, sols=sols)), now=float(n)
            )[1]
        )
    ]
    expected = "GLOBALLOG best 5680 bound 5623.12 gap 1.00% nodes 10 sols 16 t 29.1s"
    assert lines[-1].split() == expected.split(" ")
    for label in (" bound ", " gap ", " nodes ", " sols ", " t "):
        assert len({line.index(label) for line in lines}) == 1, label
    assert len({len(line) for line in lines}) == 1


@pytest.mark.parametrize(
    ("gap", "text"),
    [(None, "-"), (0.0, "0.00%"), (0.01, "1.00%"), (1.0, "100.00%"), (0.00004, "4e-03%")],
)
def test_gap_column_reads_as_a_percentage(gap: float | None, text: str) -> None:
    record = p.ProgressRecord("j", "m", "GLOBALLOG", 0.0, relative_gap=gap)
    assert f"gap {text:>7}" in record.describe()


def test_the_stop_carries_the_solver_time_it_fired_at() -> None:
    handler = p.SolverProgress([p.StopAtGap(0.01)])
    handler.answer(app_message("m1", timed(110, 100, 3.0)), now=50.0)
    handler.answer(app_message("m2", timed(101, 100.2, 7.25)), now=51.0)

    summary = handler.summary()

    assert summary["stopped_by"]["solver_time"] == 7.25
    assert [row[4] for row in summary["series"]["points"]] == [3.0, 7.25]
    assert [pt.solver_time for pt in p.series_points(summary["series"])] == [3.0, 7.25]


def test_the_record_a_rule_fires_on_is_shown_even_when_it_repeats_the_last_one() -> None:
    handler = p.SolverProgress([p.StopAtGap(0.01)], heartbeat_seconds=30.0)
    handler.answer(app_message("a", timed(5680, 5622.64, 19.6), kind="INTSOL"), now=1.0)
    handler.answer(app_message("b", timed(5680, 5623.12, 19.9)), now=1.3)
    # GAPNOTIFY: the printed gap reads 1.00% as on the last line, but the rule fires here.
    events = handler.answer(app_message("c", timed(5680, 5623.44, 20.3), kind="GAPNOTIFY"), 1.7)[1]

    assert [type(event) for event in events] == [p.ProgressRecorded, p.SolveStopRequested]
    assert shown(events) == [events[0].describe()]
    assert "(solver time 20.3s)" in events[1].describe()
