"""dashboard.correlation_view: the page's URL state, its step rule, the cached analysis, and a real analysis of a
simulated fleet (read back from DuckDB) drawn as the verdict, the figures and the ranking."""

from __future__ import annotations

import json
import re

import pytest
from correlation_fleet import END, FACTOR, PLANTED_SIGNAL, START, fill, to_ns

from dashboard import correlation_view as cv
from dashboard.timerange import ParamError, parse_search, with_page_params

START_NS, END_NS = to_ns(START), to_ns(END)


@pytest.fixture(scope="module")
def fleet_store(tmp_path_factory):
    """A DuckDB store holding the planted fleet (one per module), with an empty analysis cache."""
    from tsdb import open_store

    store = open_store(f"duckdb://{tmp_path_factory.mktemp('correlation-view')}/store.duckdb")
    sim = fill(store)
    cv.clear_cache()
    yield store, sim
    cv.clear_cache()
    store.close()


def analysed(fleet_store, signal=PLANTED_SIGNAL, lag_steps=0, kinds=("restart",), hosts=(), end_ns=END_NS):
    """Return the page's analysis of the planted fleet's whole range."""
    store, _sim = fleet_store
    return cv.correlation_result(store, hosts, START_NS, end_ns, kinds, signal, lag_steps)


def state(**kw) -> cv.PageState:
    """Return a page state for the planted signal at lag 0, changed by keywords."""
    return cv.PageState(**{"kinds": ("restart",), "signal": PLANTED_SIGNAL, "hosts": (), "lag_steps": 0, **kw})


# ---- the URL state ----

def test_a_page_without_parameters_shows_restarts_against_the_job_queue_at_lags_0_and_1():
    assert cv.page_state({}) == cv.PageState(("restart",), "libvirtd.job_queue_depth", (), cv.BOTH_LAGS)
    assert cv.page_state({}).analysed_lags == (0, 1)
    assert cv.page_state({"lag": "1"}).analysed_lags == 1
    assert "lag" not in {k for k, v in cv.page_state({}).params().items() if v}


def test_kinds_given_several_times_are_one_group_in_a_stable_order():
    got = cv.page_state({"kind": ["segfault", "restart", "log_keepalive", "restart"], "lag": "0",
                         "signal": "host.load1"})
    assert got == cv.PageState(("log_keepalive", "restart", "segfault"), "host.load1", (), 0)


@pytest.mark.parametrize("params, key", [
    ({"kind": '"; DROP'}, "kind"),
    ({"kind": "daemon_up"}, "kind"),               # an ending, not a failure
    ({"kind": "log_"}, "kind"),
    ({"kind": "log_Robert'); DROP TABLE"}, "kind"),
    ({"signal": "nope.nope"}, "signal"),
    ({"signal": "libvirtd.pid"}, "signal"),          # a number, but no load
    ({"signal": "event.message"}, "signal"),
    ({"signal": ["host.load1", "host.load5"]}, "signal"),
    ({"lag": "7"}, "lag"),
    ({"lag": "-1"}, "lag"),
    ({"lag": "1; DROP"}, "lag"),
    ({"host": ["h"] * 51}, "host"),
    ({"host": "x" * 513}, "host"),
])
def test_a_bad_parameter_is_refused_with_its_name(params, key):
    with pytest.raises(ParamError) as caught:
        cv.page_state(params)
    assert str(caught.value).startswith(key)


def test_hostile_host_names_round_trip_through_the_url():
    hosts = ('kvm "edge", 5 ✓-01', "back\\slash & space", "ünïcødé=1;2", "percent %20 plus +")
    wanted = cv.PageState(("restart", "segfault"), "libvirtd.rss_bytes", hosts, 2)
    search = with_page_params("?range=7d", wanted.params())
    assert parse_search(search)["range"] == "7d"
    assert cv.page_state(parse_search(search)) == wanted


def test_every_offered_signal_and_kind_is_accepted_back_from_the_url():
    for option in cv.signal_options():
        assert cv.page_state({"signal": option["value"]}).signal == option["value"]
    for option in cv.kind_options(["log_keepalive", "log_lock_timeout", "daemon_up"]):
        assert cv.page_state({"kind": option["value"]}).kinds == (option["value"],)
    offered = {o["value"] for o in cv.kind_options(["log_keepalive", "daemon_up"])}
    assert "log_keepalive" in offered and "daemon_up" not in offered


def test_the_default_signals_come_first_and_the_extra_ones_say_so():
    from analysis import DEFAULT_SIGNALS

    options = cv.signal_options()
    assert [o["value"] for o in options[:len(DEFAULT_SIGNALS)]] == list(DEFAULT_SIGNALS)
    assert all(o["label"].endswith("(extra)") for o in options[len(DEFAULT_SIGNALS):])
    assert not any(re.search(r"_total$|\.pid$|\.up$", o["value"]) for o in options)


# ---- the step ----

@pytest.mark.parametrize("span_seconds, step", [
    (3600, 60), (86400, 60), (86400 + 1, 300), (7 * 86400, 300), (14 * 86400, 300), (14 * 86400 + 1, 900),
    (30 * 86400, 900), (60 * 86400, 900), (90 * 86400, 3600), (400 * 86400, 3600),
])
def test_the_step_follows_the_length_of_the_range(span_seconds, step):
    assert cv.step_seconds_for(span_seconds) == step


def test_a_range_becomes_whole_steps_ending_at_the_last_step_boundary_in_it():
    start, end, step = cv.analysis_range(START_NS + 10**9, END_NS + 30 * 10**9)
    assert step == 300 and end == END_NS and (end - start) == (END_NS - START_NS)
    assert cv.analysis_range(START_NS + 31 * 10**9, END_NS + 31 * 10**9)[:2] == (start, end)


def test_a_range_shorter_than_a_step_is_refused():
    with pytest.raises(ValueError, match="shorter than one step of 60 s"):
        cv.analysis_range(START_NS, START_NS + 30 * 10**9)


def test_the_page_says_which_step_it_uses_and_why():
    note = cv.step_note(900)
    assert note.startswith("Load is averaged over 15 min steps")
    assert "1 min up to 1 d, 5 min up to 14 d, 15 min up to 60 d, 1 h beyond" in note


# ---- the analysis, cached ----

def test_the_planted_effect_is_found_at_lag_0_with_the_factor_inside_its_interval(fleet_store):
    result = analysed(fleet_store)
    _store, sim = fleet_store
    assert result.verdict.status == "effect" and result.verdict.signal == PLANTED_SIGNAL
    row = cv.ratio_row(result, PLANTED_SIGNAL)
    assert row["lower"] <= FACTOR <= row["upper"]
    assert result.failures == len(sim.failures) and set(result.hosts) == set(sim.hosts)
    assert result.step_seconds == 300


def test_another_default_signal_is_drawn_from_the_same_analysis(fleet_store):
    first = analysed(fleet_store, PLANTED_SIGNAL)
    hits = cv.cache_counts["results_hits"]
    assert analysed(fleet_store, "host.load1") is first
    assert cv.cache_counts["results_hits"] == hits + 1


def test_a_relative_range_that_moves_less_than_a_step_reuses_the_analysis(fleet_store):
    assert analysed(fleet_store, end_ns=END_NS + 299 * 10**9) is analysed(fleet_store)


def test_an_extra_signal_is_analysed_beside_the_defaults(fleet_store):
    result = analysed(fleet_store, "libvirtd.threads")
    assert result is not analysed(fleet_store)
    assert "libvirtd.threads" in result.rates and PLANTED_SIGNAL in result.rates
    assert len(result.ratios) == len(analysed(fleet_store).ratios) + 1


def test_another_lag_analyses_again_without_reading_the_store_again(fleet_store):
    analysed(fleet_store, lag_steps=0)
    counts = dict(cv.cache_counts)
    result = analysed(fleet_store, lag_steps=1)
    assert result.settings.lag_steps == (1,) and result.lag_steps == 1
    assert cv.cache_counts["results_misses"] == counts["results_misses"] + 1
    assert cv.cache_counts["inputs_hits"] == counts["inputs_hits"] + 1
    assert cv.cache_counts["inputs_misses"] == counts["inputs_misses"]


def test_one_host_is_analysed_alone_whatever_its_name(fleet_store):
    _store, sim = fleet_store
    host = sim.hosts[2]
    result = analysed(fleet_store, hosts=(host,))
    assert result.hosts == (host,)
    assert result.failures == int((sim.failures["host"] == host).sum())


# ---- the result drawn ----

def test_the_rates_chart_has_a_bar_per_bucket_inside_its_interval_and_marks_the_effect(fleet_store):
    result = analysed(fleet_store)
    figure = cv.rates_figure(result, PLANTED_SIGNAL)
    json.dumps(figure, allow_nan=False)
    bar = figure["data"][0]
    buckets = result.rates[PLANTED_SIGNAL].buckets
    assert len(bar["y"]) == len(buckets) >= 2
    for y, up, down, low, high in zip(bar["y"], bar["error_y"]["array"], bar["error_y"]["arrayminus"],
                                      buckets["rate_lower"], buckets["rate_upper"]):
        assert y + up == pytest.approx(high) and y - down == pytest.approx(low) and low <= y <= high
    assert bar["marker"]["color"][-1] == cv.FAILURE_COLOUR and bar["marker"]["pattern"]["shape"][-1] == "/"
    assert cv.FAILURE_COLOUR not in bar["marker"]["color"][:-1]
    assert bar["x"][0].startswith("below 1") and bar["x"][-1].startswith("1 or more")
    assert figure["layout"]["yaxis"]["title"]["text"] == "restarts per host-day"
    assert "job queue depth (queued calls), mean over the failure's own step" in \
        figure["layout"]["xaxis"]["title"]["text"]
    assert "▲ load matters" in figure["layout"]["title"]["text"]


def test_without_an_effect_no_bucket_is_red(fleet_store):
    figure = cv.rates_figure(analysed(fleet_store), "host.load1")
    assert cv.FAILURE_COLOUR not in figure["data"][0]["marker"]["color"]
    assert "● no significant effect" in figure["layout"]["title"]["text"]


def test_the_triggered_chart_spans_an_hour_each_side_with_failures_red_and_the_baseline_dashed(fleet_store):
    result = analysed(fleet_store)
    figure = cv.triggered_figure(result, PLANTED_SIGNAL)
    json.dumps(figure, allow_nan=False)
    lines = {trace["name"]: trace for trace in figure["data"] if trace.get("mode") != "lines" or
             trace.get("line", {}).get("width", 1) != 0}
    failures = lines[f"around the {result.failures} restarts"]
    baseline = lines["at random host-steps (baseline)"]
    assert failures["x"][0] == -60 and failures["x"][-1] == 60 and 0 in failures["x"]
    assert failures["line"]["color"] == cv.FAILURE_COLOUR and failures["marker"]["symbol"] == "x"
    assert baseline["line"]["dash"] == "dash"
    assert len(figure["layout"]["shapes"]) == 1  # lag 0: only the failure's step is marked
    assert figure["layout"]["yaxis"]["title"]["text"] == "job queue depth (queued calls)"
    assert "minutes from the restart's step" in figure["layout"]["xaxis"]["title"]["text"]


def test_at_lag_1_the_triggered_chart_marks_the_step_whose_load_the_rates_use(fleet_store):
    figure = cv.triggered_figure(analysed(fleet_store, lag_steps=1), PLANTED_SIGNAL)
    assert [shape["x0"] for shape in figure["layout"]["shapes"]] == [0, -5.0]


def test_memory_is_drawn_in_mib(fleet_store):
    result = analysed(fleet_store)
    figure = cv.triggered_figure(result, "libvirtd.rss_bytes")
    trace = next(t for t in figure["data"] if t["name"].startswith("around the"))
    expected = result.triggered["libvirtd.rss_bytes"].frame["failure_mean"] / 2**20
    assert trace["y"] == pytest.approx([round(v, 6) for v in expected])
    assert figure["layout"]["yaxis"]["title"]["text"] == "libvirtd's resident memory (MiB)"


def test_the_ratios_chart_puts_the_strongest_evidence_first_and_marks_effects_as_red_diamonds(fleet_store):
    result = analysed(fleet_store)
    figure = cv.ratios_figure(result, "host.load1")
    json.dumps(figure, allow_nan=False)
    trace = figure["data"][0]
    assert trace["y"][:2] == ["job queue depth", "probe latency"]  # the two effects, the larger ratio first
    assert "▸ 1-minute load average" in trace["y"]
    effects = set(result.ratios.loc[result.ratios["status"] == "effect", "signal"])
    for label, symbol in zip(trace["y"], trace["marker"]["symbol"]):
        signal = next(s for s in result.ratios["signal"] if cv.signal_label(s) == label.removeprefix("▸ "))
        assert (symbol == "diamond") == (signal in effects)
    assert "host.domains_running" not in effects  # no guests: never varies, so it has no ratio to draw
    assert "number of running guests" not in trace["y"]


def test_the_ranking_has_a_row_per_signal_with_the_picked_one_marked(fleet_store):
    result = analysed(fleet_store)
    rows = cv.ranking_rows(result, "host.load1")
    assert [r["rank"] for r in rows] == list(range(1, len(result.ratios) + 1))
    assert {r["signal"] for r in rows} == set(result.ratios["signal"])
    picked = [r for r in rows if r["selected"]]
    assert [r["signal"] for r in picked] == ["host.load1"] and picked[0]["label"].startswith("▸ ")
    queue = next(r for r in rows if r["signal"] == PLANTED_SIGNAL)
    assert queue["rank"] == 1 and queue["verdict"] == "▲ load matters" and queue["ratio"].startswith("4.")
    assert next(r for r in rows if r["signal"] == "host.domains_running")["verdict"] == "– never varies"


def test_the_page_shows_the_verdict_the_finding_and_the_charts(fleet_store):
    finding, body = cv.render(analysed(fleet_store), state())
    text = str(finding)
    assert "▲ load matters" in text and "libvirtd restarts were 4.4x (95% CI 3.3 to 5.9)" in text
    assert "229 restarts on 12 hosts · 12 hosts with load data (the whole fleet)" in text
    shown = str(body)
    for part in ("correlation-rates-graph", "correlation-triggered-graph", "correlation-ratios-graph",
                 "correlation-ranking-grid"):
        assert part in shown
    assert "correlation-selected-summary" not in text  # the finding is about the signal drawn


def test_a_signal_other_than_the_verdicts_gets_its_own_line(fleet_store):
    finding, _body = cv.render(analysed(fleet_store), state(signal="host.load1"))
    assert "correlation-selected-summary" in str(finding)
    assert "1-minute load average: " in str(finding) and "● no significant effect" in str(finding)


def test_a_signal_that_never_varies_says_so_instead_of_a_chart(fleet_store):
    _finding, body = cv.render(analysed(fleet_store), state(signal="host.domains_running"))
    assert "Number of running guests never varied" in str(body)
    assert "correlation-rates-graph" not in str(body) and "correlation-triggered-graph" in str(body)


def test_too_few_failures_shows_the_verdict_and_what_to_try_instead_of_charts(fleet_store):
    result = analysed(fleet_store, kinds=("segfault",))
    assert result.verdict.status == "not_enough_failures"
    finding, body = cv.render(result, state(kinds=("segfault",)), "The last 14 days would do: 12 restarts.")
    assert "? not enough failures" in str(finding) and "Too few libvirtd segfaults" in str(finding)
    assert "correlation-waiting" in str(body) and "Graph" not in str(body)
    assert "the daemon button picks every daemon failure" in str(body)
    assert "The last 14 days would do: 12 restarts." in str(body)


def test_a_range_too_short_names_the_shortest_range_that_holds_enough_failures(fleet_store):
    store, sim = fleet_store
    day = 86400 * 10**9
    hint = cv.longer_range_hint(store, (), ("restart",), END_NS, 6 * 3600 * 10**9, 10)
    in_a_day = int((sim.failures["time_ns"] >= END_NS - day).sum())
    assert in_a_day >= 10  # about 12 restarts a day: the last 24 hours do
    assert hint == f"The last 24 hours would do: {in_a_day} restarts in that range."
    assert cv.longer_range_hint(store, (), ("segfault",), END_NS, day, 10) == \
        "Even the last 90 days hold only 0 segfaults."


def test_with_no_range_in_the_url_the_page_takes_14_days_or_the_datas_whole_span(fleet_store):
    store, _sim = fleet_store
    start, end = cv.default_range(store, END_NS + 90 * 10**9)
    assert end == END_NS + 60 * 10**9  # whole minutes
    assert start == START_NS  # the fleet holds 10 days: its whole span
    start, end = cv.default_range(store, END_NS - 5 * 86400 * 10**9)
    assert end - start == 14 * 86400 * 10**9 or start == START_NS


def test_failures_on_steps_without_the_signal_are_counted_aloud(fleet_store):
    store, _sim = fleet_store
    # a day is analysed in 60 s steps, but the fleet wrote a point every 300 s: most steps before a restart are empty
    result = cv.correlation_result(store, (), END_NS - 86400 * 10**9, END_NS, ("restart",), PLANTED_SIGNAL, 1)
    without = result.rates[PLANTED_SIGNAL].failures_without_signal
    assert result.step_seconds == 60 and 0 < without <= result.failures
    finding, _body = cv.render(result, state(lag_steps=1))
    assert f"{without} of the restarts fell where job queue depth has no value at the step compared" in str(finding)


def test_a_range_with_no_load_data_says_no_host_sent_any(fleet_store):
    store, _sim = fleet_store
    result = cv.correlation_result(store, (), END_NS + 86400 * 10**9, END_NS + 2 * 86400 * 10**9, ("restart",),
                                   PLANTED_SIGNAL, 1)
    finding, _body = cv.render(result, state())
    assert "no host in the whole fleet sent load data in this range" in str(finding)


def test_values_are_labelled_with_their_units():
    assert cv.axis_unit("libvirtd.rss_bytes") == (2**20, "MiB")
    assert cv.axis_unit("libvirtd.probe_latency_ms") == (1.0, "ms")
    assert cv.axis_unit("host.libvirt_calls_per_second") == (1.0, "per second")
    assert cv.axis_unit("host.load1") == (1.0, "runnable tasks")


def test_an_interval_clear_of_1_beside_no_effect_is_explained_under_the_ranking(fleet_store):
    result = analysed(fleet_store, lag_steps=(0, 1))
    clear = cv.clear_without_effect(result)
    _finding, body = cv.render(result, state(lag_steps=cv.BOTH_LAGS))
    if clear:
        assert "correlation-adjustment-note" in str(body) and "at lags 0 and 1" in str(body)
    else:
        assert "correlation-adjustment-note" not in str(body)
    note = cv.short_of_adjustment(result, ["probe latency"])
    assert note.startswith('Why an interval can exclude 1 beside "no significant effect" (probe latency)')
    for row in cv.ranking_rows(result, PLANTED_SIGNAL):  # "precedes" never beside a verdict of no effect
        assert row["leads"] != "✔ yes" or row["status"] == "effect"
