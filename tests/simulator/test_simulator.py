"""The fleet simulator: reproducible, schema-exact, a planted effect visible in the truth, consequences consistent."""

import math

import numpy as np
import pandas as pd
import pytest
from simulated_fleets import END_NS, busy_spec

import simulator
from simulator import HAZARD_MODEL, Effect, FleetSpec, simulate, write_simulation
from simulator.spec import EFFECT_SIGNALS
from tsdb.point import check_point
from tsdb.schema import EVENT_KINDS, MEASUREMENTS

PYTHON_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
TRIGGERS = {"diagnosis": ("hang_start", "hang", "segfault", "restart"), "forensics": ("hang", "segfault", "restart")}
STEP_NS = 120 * 10**9  # busy_spec's step
DEADLINE_S = 5.0  # the agent's probe deadline: a hang began with the probe it says hung a deadline later
#: fields the agent writes only in some states, absent otherwise (see HAZARD_MODEL)
PROCESS_FIELDS = {"probe_latency_ms", "pid", "start_time_seconds", "restarts_total", "rss_bytes", "threads", "open_fds",
                  "max_fds", "cpu_user_seconds_total", "cpu_system_seconds_total", "workers_min", "workers_max",
                  "workers_current", "workers_free", "workers_priority", "job_queue_depth", "clients", "clients_max"}


def point_tuples(points):
    """Return points as comparable tuples."""
    return [(p.measurement, tuple(sorted(p.tags.items())), tuple(sorted(p.fields.items())), p.time_ns) for p in points]


def host_events(sim, host, *kinds):
    """Return a host's events of the given kinds, by time."""
    events = sim.events
    return events[(events.host == host) & events.kind.isin(kinds)].reset_index(drop=True)


# ---- reproducible ----

def test_the_same_seed_gives_the_same_truth_and_points_whatever_the_batch_size():
    spec = busy_spec(hosts=2, days=2.0, step_seconds=300)
    first, second = simulate(spec), simulate(spec)
    pd.testing.assert_frame_equal(first.failures, second.failures)
    pd.testing.assert_frame_equal(first.events, second.events)
    assert first.thresholds == second.thresholds
    by_60 = point_tuples(p for batch in first.points(60) for p in batch)
    by_7 = point_tuples(p for batch in second.points(7) for p in batch)
    assert by_60 == by_7
    assert len(by_60) == first.point_count()


def test_another_seed_gives_another_fleet():
    spec = busy_spec(hosts=2, days=2.0, step_seconds=300)
    other = simulate(busy_spec(hosts=2, days=2.0, step_seconds=300, seed=spec.seed + 1))
    first = simulate(spec)
    assert not first.failures[["time_ns", "kind"]].equals(other.failures[["time_ns", "kind"]])
    assert not np.array_equal(first.signal("host.load1"), other.signal("host.load1"))


def test_points_come_in_time_ordered_batches_of_the_asked_number_of_steps():
    sim = simulate(busy_spec(hosts=2, days=2.0, step_seconds=300))
    batches = list(sim.points(50))
    assert len(batches) == math.ceil(sim.steps / 50)
    previous_end = sim.start_ns
    for i, batch in enumerate(batches):
        times = [p.time_ns for p in batch]
        assert times == sorted(times)
        assert times[0] >= previous_end
        steps = {(t - sim.start_ns) // (300 * 10**9) for t in times}
        assert min(steps) == 50 * i and max(steps) == min(50 * i + 49, sim.steps - 1)
        previous_end = times[-1]
    assert sim.start_ns <= batches[0][0].time_ns and batches[-1][-1].time_ns < sim.end_ns == END_NS


# ---- exactly the schema ----

def test_every_point_matches_the_schema(busy):
    _sim, points = busy
    for p in points:
        check_point(p)
        measurement = MEASUREMENTS[p.measurement]
        tag_names = {t.name for t in measurement.tags}
        assert set(p.tags) <= tag_names, p
        assert {t.name for t in measurement.tags if t.always} <= set(p.tags), p
        assert all(isinstance(v, str) and v for v in p.tags.values()), p
        for name, value in p.fields.items():
            assert type(value) is PYTHON_TYPES[measurement.field(name).type], (p.measurement, name, value)
            assert not (isinstance(value, float) and not math.isfinite(value)), (p.measurement, name)
        if p.measurement == "event":
            assert p.tags["severity"] == EVENT_KINDS[p.tags["kind"]].severity
            assert p.fields["count"] == 1 and p.fields["message"]
            assert ("duration_seconds" in p.fields) == (p.tags["kind"] in ("hang_end", "daemon_up"))
        if p.measurement in ("diagnosis", "forensics"):
            assert p.tags["trigger"] in TRIGGERS[p.measurement] and p.fields["cause"], p


def test_every_field_the_agent_writes_is_simulated(busy):
    _sim, points = busy
    seen: dict[str, set] = {}
    for p in points:
        seen.setdefault(p.measurement, set()).update(p.fields)
    for name in ("host", "libvirtd", "domain", "collector", "event", "diagnosis", "forensics"):
        assert seen[name] == {f.name for f in MEASUREMENTS[name].fields}, name


def test_the_agent_writes_what_it_can_see_in_each_daemon_state(frames):
    daemon = frames["libvirtd"]
    up = daemon[daemon.probe_ok == 1]
    hung = daemon[daemon.hung == 1]
    down = daemon[daemon.up == 0]
    assert len(hung) and len(down)
    assert up[sorted(PROCESS_FIELDS)].notna().all().all()
    assert hung[sorted(PROCESS_FIELDS)].notna().all().all()
    assert (hung.probe_latency_ms == 5000.0).all() and (hung.workers_free == 0).all()
    assert down[sorted(PROCESS_FIELDS)].isna().all().all()
    assert (down.hung == 0).all() and (down.probe_ok == 0).all()
    host = frames["host"]
    counted = host.domains_running.notna()
    assert set(host[counted].time_ns.astype(str) + host[counted].host) == set(up.time_ns.astype(str) + up.host)


def test_domain_points_exist_exactly_where_the_daemon_is_up(busy, frames):
    sim, _points = busy
    daemon, domains = frames["libvirtd"], frames["domain"]
    up = daemon[daemon.probe_ok == 1]
    per_step = domains.groupby(["host", "time_ns"]).size()
    assert (per_step == sim.spec.domains_per_host).all()
    assert set(per_step.index) == set(zip(up.host, up.time_ns))
    assert len(domains) == sim.spec.domains_per_host * int(sim.daemon_up.sum())


def test_the_figures_are_plausible_together(frames):
    host, daemon, domains = frames["host"], frames["libvirtd"], frames["domain"]
    for frame in frames.values():
        numbers = frame.select_dtypes("number")
        assert (numbers.fillna(0) >= 0).all().all()
    assert host.cpu_busy_percent.between(0, 100).all()
    assert (host.memory_available_bytes < host.memory_total_bytes).all()
    assert (host.domains_running.dropna() <= host.domains_defined.dropna()).all()
    assert (host.load15.std() < host.load5.std() < host.load1.std())  # longer averages are smoother
    live = daemon[daemon.pid.notna()]
    assert (live.workers_free <= live.workers_current).all() and (live.workers_current <= live.workers_max).all()
    assert (live.workers_min <= live.workers_current).all() and (live.open_fds <= live.max_fds).all()
    assert (live.clients <= live.clients_max).all() and (live.threads > live.workers_current).all()
    running = domains[domains.state_code == 1]
    assert (running.memory_unused_bytes <= running.memory_available_bytes).all()
    assert (running.memory_available_bytes <= running.memory_current_bytes).all()
    assert (running.memory_current_bytes <= running.memory_max_bytes).all()
    cpu = running.cpu_user_seconds_total + running.cpu_system_seconds_total
    assert (cpu <= running.cpu_time_seconds_total).all()
    assert (running.block_read_bytes_total >= running.block_read_requests_total).all()
    assert (running.vcpus <= running.vcpus_max).all()


# ---- hostile names ----

HOSTILE_PREFIX = 'hv "a,b" =ü\\x\ttab 🚀'


def test_a_hostile_host_prefix_round_trips_through_the_embedded_store(duckdb_store):
    sim = simulate(busy_spec(hosts=2, days=2.0, step_seconds=600, host_prefix=HOSTILE_PREFIX))
    assert sim.hosts == [f"{HOSTILE_PREFIX}-01", f"{HOSTILE_PREFIX}-02"]
    write_simulation(duckdb_store, sim)
    assert duckdb_store.tag_values("libvirtd", "host") == sorted(sim.hosts)
    assert duckdb_store.tag_values("domain", "host") == sorted(sim.hosts)
    events = duckdb_store.events(sim.start_ns, sim.end_ns)
    assert set(events.host) == set(sim.events.host)
    one = duckdb_store.query("host", ["load1"], sim.start_ns, sim.end_ns, where={"host": sim.hosts[1]})
    assert len(one) == sim.steps


@pytest.mark.parametrize("prefix, why", [
    ("hv\nrack", "line breaks"), ("hv\\ x", "backslash"), ("\thv", "leading tab"), ("hv\x00", "NUL"),
    ("", "non-empty"), ("hv\ud800", "lone surrogates"),
])
def test_a_host_prefix_a_store_would_change_is_refused(prefix, why):
    with pytest.raises(ValueError, match="host_prefix") as error:
        FleetSpec(host_prefix=prefix, incidents=False)
    assert why in str(error.value)


# ---- the hazard model ----

def rate_ratio(sim, effect: Effect) -> tuple[float, float, int, int]:
    """Return the truth's hazard ratio above vs below an effect's threshold per exposed host-step, its standard
    error on the log scale and the failure counts above and below."""
    truth = sim.failures[(sim.failures.kind == effect.kind) & (sim.failures.cause == "hazard")]
    above_grid = sim.signal(effect.signal) >= sim.thresholds[effect]
    hosts = pd.Index(sim.hosts).get_indexer(truth.host)
    above = above_grid[hosts, truth.step.to_numpy()]
    count_above, count_below = int(above.sum()), int((~above).sum())
    exposure_above = int((sim.exposed & above_grid).sum())
    exposure_below = int((sim.exposed & ~above_grid).sum())
    ratio = (count_above / exposure_above) / (count_below / exposure_below)
    return ratio, math.sqrt(1 / count_above + 1 / count_below), count_above, count_below


def hazard_spec(kind: str, rate: float, effects=(), **changes) -> FleetSpec:
    """Return the default fleet (24 hosts, 14 days) with one failure kind, no incidents, a fixed end."""
    return FleetSpec(end_ns=END_NS, incidents=False, base_rate_per_day={kind: rate}, effects=tuple(effects), **changes)


@pytest.mark.parametrize("signal, kind, factor, quantile", [
    ("libvirtd.job_queue_depth", "restart", 3.0, 0.75),
    ("host.load1", "hang_start", 2.5, 0.6),
    ("host.libvirt_calls_per_second", "domain_failed", 0.4, 0.6),
    ("libvirtd.probe_latency_ms", "daemon_down", 4.0, 0.9),
])
def test_the_planted_factor_is_visible_in_the_truth(signal, kind, factor, quantile):
    effect = Effect(signal, kind, factor, threshold_quantile=quantile)
    sim = simulate(hazard_spec(kind, 4.0, [effect]))
    threshold = sim.thresholds[effect]
    assert threshold == pytest.approx(np.quantile(sim.signal(signal), quantile))
    ratio, error, above, below = rate_ratio(sim, effect)
    assert error < 0.1, (above, below)  # enough failures for the check to mean something
    assert abs(math.log(ratio) - math.log(factor)) < 3.3 * error, (ratio, factor, above, below)


def test_the_base_rate_is_the_rate_per_exposed_host_day():
    sim = simulate(hazard_spec("hang_start", 2.0))
    exposed_days = sim.exposed.sum() * sim.spec.step_seconds / 86400
    count = int((sim.failures.kind == "hang_start").sum())
    assert abs(count - 2.0 * exposed_days) < 3.3 * math.sqrt(2.0 * exposed_days)
    assert sim.exposed.mean() < 1.0  # hangs took steps out of exposure


def test_a_factor_of_one_plants_nothing():
    effect = Effect("libvirtd.job_queue_depth", "restart", 1.0)
    planted = simulate(hazard_spec("restart", 4.0, [effect]))
    plain = simulate(hazard_spec("restart", 4.0))
    pd.testing.assert_frame_equal(planted.failures, plain.failures)
    ratio, error, _above, _below = rate_ratio(planted, effect)
    assert abs(math.log(ratio)) < 3.3 * error


def test_an_effect_on_one_kind_leaves_the_others_alone():
    effect = Effect("libvirtd.job_queue_depth", "restart", 5.0)
    sim = simulate(FleetSpec(end_ns=END_NS, incidents=False, effects=(effect,),
                             base_rate_per_day={"restart": 2.0, "keepalive_timeout": 4.0}))
    other = Effect("libvirtd.job_queue_depth", "keepalive_timeout", 1.0)
    sim.thresholds[other] = sim.thresholds[effect]
    ratio, error, _above, _below = rate_ratio(sim, other)
    assert abs(math.log(ratio)) < 3.3 * error


def test_a_failure_sees_the_signal_value_written_at_its_step(busy, frames):
    sim, _points = busy
    hazard = sim.failures[sim.failures.cause == "hazard"]
    host = frames["host"].set_index(["host", "time_ns"])
    daemon = frames["libvirtd"].set_index(["host", "time_ns"])
    hosts = pd.Index(sim.hosts).get_indexer(hazard.host)
    times = sim.start_ns + hazard.step.to_numpy() * STEP_NS
    written = host.loc[list(zip(hazard.host, times)), "load1"].to_numpy()
    assert np.array_equal(written, sim.signal("host.load1")[hosts, hazard.step])
    written = daemon.loc[list(zip(hazard.host, times)), "clients"].to_numpy()
    assert np.array_equal(written, sim.signal("libvirtd.clients")[hosts, hazard.step])


def test_signals_follow_the_working_day_and_the_hosts_busyness():
    sim = simulate(FleetSpec(end_ns=END_NS, incidents=False))
    load = sim.signal("host.load1") / sim.fleet.cpus[:, None]
    local_hours = ((sim.step_times_ns()[None, :] / 3.6e12 + sim.fleet.zone_hours[:, None]) % 24)
    afternoon, night = (local_hours >= 13) & (local_hours < 16), (local_hours >= 1) & (local_hours < 4)
    assert load[afternoon].mean() > 2 * load[night].mean()
    busiest, quietest = np.argmax(sim.fleet.busyness), np.argmin(sim.fleet.busyness)
    assert load[busiest].mean() > 3 * load[quietest].mean()

    def corr(a, b):
        return np.corrcoef(sim.signal(a).ravel(), sim.signal(b).ravel())[0, 1]

    assert corr("libvirtd.job_queue_depth", "host.libvirt_calls_per_second") > 0.3
    assert corr("libvirtd.probe_latency_ms", "libvirtd.job_queue_depth") > 0.3
    assert corr("host.cpu_busy_percent", "host.libvirt_calls_per_second") > 0.5
    assert corr("libvirtd.job_queue_depth", "host.load1") < 0.95  # correlated, not the same signal


# ---- consequences ----

def test_every_hang_start_ends_later_or_runs_to_the_end_and_the_points_between_are_hung_since_the_probe(busy, frames):
    sim, _points = busy
    daemon = frames["libvirtd"]
    hangs = 0
    for host in sim.hosts:
        events = host_events(sim, host, "hang_start", "hang_end")
        points = daemon[daemon.host == host]
        for i, row in events.iterrows():
            if row.kind != "hang_start":
                continue
            hangs += 1
            ended = events.iloc[i + 1] if i + 1 < len(events) else None
            end = sim.end_ns if ended is None else ended.time_ns
            if ended is not None:
                assert ended.kind == "hang_end"
                assert ended.duration_seconds == pytest.approx((ended.time_ns - row.time_ns) / 1e9 + DEADLINE_S)
            inside = points[(points.time_ns > row.time_ns) & (points.time_ns < end)]
            assert len(inside) >= 1 or ended is None
            assert (inside.hung == 1).all() and (inside.probe_ok == 0).all() and (inside.up == 1).all()
            since_probe = (inside.time_ns - row.time_ns) / 1e9 + DEADLINE_S
            assert np.allclose(inside.hang_seconds, since_probe) and np.allclose(inside.probe_outstanding_seconds,
                                                                                 since_probe)
    assert hangs >= 5


def test_restarts_total_counts_each_restart_and_the_pid_changes_with_it(busy, frames):
    sim, _points = busy
    daemon = frames["libvirtd"]
    for host in sim.hosts:
        restarts = host_events(sim, host, "restart").time_ns.to_numpy()
        points = daemon[(daemon.host == host) & daemon.pid.notna()].sort_values("time_ns")
        seen = np.searchsorted(restarts, points.time_ns.to_numpy(), side="left")  # restarts before each point
        assert np.array_equal(points.restarts_total.to_numpy(), seen), host
        pid_changed = points.pid.diff().fillna(0).to_numpy() != 0
        assert np.array_equal(pid_changed, np.diff(seen, prepend=seen[0]) > 0), host
        last = points.iloc[-1]
        if seen[-1]:
            assert last.start_time_seconds == pytest.approx(restarts[seen[-1] - 1] / 1e9)
    assert len(sim.events[sim.events.kind == "restart"]) >= 20


def test_a_segfault_is_followed_by_a_restart_before_the_next_point(busy, frames):
    sim, _points = busy
    daemon = frames["libvirtd"]
    for host in sim.hosts:
        segfaults = host_events(sim, host, "segfault").time_ns.to_numpy()
        restarts = sim.failures[(sim.failures.host == host) & (sim.failures.cause == "segfault")].time_ns.to_numpy()
        assert len(segfaults) == len(restarts)
        assert ((restarts - segfaults > 0) & (restarts - segfaults < 0.1 * STEP_NS)).all()
        points = daemon[daemon.host == host]
        counted = np.searchsorted(segfaults, points.time_ns.to_numpy(), side="left")
        assert np.array_equal(points.segfaults_total.to_numpy(), counted)


def test_a_daemon_down_shows_as_down_until_it_is_up_again_as_a_new_process(busy, frames):
    sim, _points = busy
    daemon = frames["libvirtd"]
    downs = 0
    for host in sim.hosts:
        events = host_events(sim, host, "daemon_down", "daemon_up")
        restarts = set(host_events(sim, host, "restart").time_ns)
        points = daemon[daemon.host == host]
        for i in range(0, len(events), 2):
            down = events.iloc[i]
            assert down.kind == "daemon_down"
            downs += 1
            if i + 1 == len(events):
                break
            up = events.iloc[i + 1]
            assert up.kind == "daemon_up" and up.time_ns in restarts
            assert up.duration_seconds == pytest.approx((up.time_ns - down.time_ns) / 1e9)
            inside = points[(points.time_ns > down.time_ns) & (points.time_ns < up.time_ns)]
            assert len(inside) >= 1 and (inside.up == 0).all() and inside.pid.isna().all()
    assert downs >= 5


def test_a_failed_guest_is_shut_off_then_restarts_with_fresh_counters(busy, frames):
    sim, _points = busy
    domains = frames["domain"]
    checked = 0
    for failure in sim.failures[sim.failures.kind == "domain_failed"].itertuples():
        guest = domains[(domains.host == failure.host) & (domains.domain == failure.domain)]
        before = guest[(guest.time_ns < failure.time_ns) & (guest.state_code == 1)]
        after = guest[(guest.time_ns > failure.time_ns) & (guest.time_ns <= failure.time_ns + STEP_NS)]
        if after.empty or before.empty:
            continue  # the daemon was not up at the next point
        checked += 1
        assert (after.state_code == 5).all() and (after.state_reason_code == 6).all()
        assert after.cpu_time_seconds_total.isna().all()
        rerun = guest[(guest.time_ns > failure.time_ns) & (guest.state_code == 1)]
        if not rerun.empty:
            assert rerun.iloc[0].cpu_time_seconds_total < before.iloc[-1].cpu_time_seconds_total
            assert rerun.iloc[0].state_reason_code == 1
    assert checked >= 10


def test_an_io_error_counts_in_the_guests_block_errors_until_it_restarts(busy, frames):
    sim, _points = busy
    domains = frames["domain"]
    running = domains[domains.state_code == 1]
    io_errors = sim.failures[sim.failures.kind == "domain_io_error"]
    counted = 0
    for (host, domain), guest in running.groupby(["host", "domain"]):
        errors = np.sort(io_errors[(io_errors.host == host) & (io_errors.domain == domain)].time_ns.to_numpy())
        h = sim.hosts.index(host)
        d = sim.fleet.domain_names[h].index(domain)
        boots = np.array(sorted([0] + [end for _start, end, _why in sim.histories[h].domain_outages[d]]))
        times = guest.time_ns.to_numpy()
        booted = boots[np.searchsorted(boots, times, side="right") - 1]
        expected = np.searchsorted(errors, times, side="left") - np.searchsorted(errors, booted, side="left")
        assert np.array_equal(guest.block_errors_total.to_numpy(), expected), (host, domain)
        counted += int(expected.max())
    assert counted >= 5


def test_counters_only_grow_while_their_process_lives(busy, frames):
    sim, _points = busy
    daemon, domains = frames["libvirtd"], frames["domain"]
    for _host, points in daemon[daemon.pid.notna()].groupby("host"):
        assert points.restarts_total.is_monotonic_increasing
        for _pid, process in points.groupby("pid"):
            assert process.cpu_user_seconds_total.is_monotonic_increasing
            assert process.start_time_seconds.nunique() == 1
    stops = sim.failures[sim.failures.kind.isin(["domain_failed", "domain_crashed"])]
    for (host, domain), guest in domains[domains.state_code == 1].groupby(["host", "domain"]):
        times = guest.time_ns.to_numpy()
        fell = np.nonzero(np.diff(guest.net_rx_bytes_total.to_numpy()) < 0)[0]
        guest_stops = stops[(stops.host == host) & (stops.domain == domain)].time_ns.to_numpy()
        for i in fell:  # a counter falls only when the guest stopped in between (a new QEMU process)
            assert ((guest_stops > times[i]) & (guest_stops < times[i + 1])).any(), (host, domain, times[i])
    for _host, points in frames["collector"].groupby("host"):
        assert points.points_written_total.is_monotonic_increasing


def test_the_leak_raises_rss_and_fds_for_days_until_a_restart_resets_them(busy, frames):
    sim, _points = busy
    (leak,) = sim.failures[sim.failures.cause == "leak"].itertuples()
    daemon = frames["libvirtd"]
    points = daemon[(daemon.host == leak.host) & daemon.pid.notna()].sort_values("time_ns")
    before = points[points.time_ns < leak.time_ns]
    after = points[points.time_ns > leak.time_ns]
    day_ago = before[before.time_ns < leak.time_ns - 86400 * 10**9]
    assert before.iloc[-1].open_fds > 0.9 * before.iloc[-1].max_fds > day_ago.iloc[-1].open_fds
    assert before.iloc[-1].rss_bytes > day_ago.iloc[-1].rss_bytes + 10**9
    assert after.iloc[0].open_fds < 500 and after.iloc[0].rss_bytes < 200 * 2**20
    assert after.iloc[0].restarts_total == before.iloc[-1].restarts_total + 1


# ---- incidents ----

def test_the_scripted_incidents_are_there_when_incidents_are_on():
    sim = simulate(FleetSpec(end_ns=END_NS))
    truth = sim.failures
    scripted = truth[~truth.cause.isin(["hazard", "segfault", "daemon_down"])]
    assert set(scripted.cause) == {"leak", "segfault_storm", "hang", "guest_failures"}
    storm = truth[truth.cause == "segfault_storm"]
    (host,) = set(storm.host)
    assert host == sim.hosts[int(np.argmax(sim.fleet.busyness))]  # on the busiest host
    assert len(storm) == 5 and storm.time_ns.max() - storm.time_ns.min() < 3600 * 10**9
    restarts = truth[(truth.host == host) & (truth.kind == "restart") & (truth.time_ns >= storm.time_ns.min())
                     & (truth.time_ns < storm.time_ns.min() + 3600 * 10**9)]
    assert len(restarts) >= 5
    guests = truth[truth.cause == "guest_failures"]
    assert len(guests) == 5 and guests.domain.nunique() == 5 and (guests.kind == "domain_failed").all()
    assert guests.time_ns.max() - guests.time_ns.min() < 600 * 10**9
    (hang,) = host_events(sim, truth[truth.cause == "hang"].host.iloc[0], "hang_end").query(
        "duration_seconds > 1000").itertuples()
    assert hang.duration_seconds == pytest.approx(1500 + DEADLINE_S)
    assert (truth.cause == "leak").sum() == 1


def test_no_incident_is_scripted_when_incidents_are_off():
    sim = simulate(FleetSpec(end_ns=END_NS, incidents=False))
    assert set(sim.failures.cause) <= {"hazard", "segfault", "daemon_down"}
    assert len(sim.failures) > 50  # the default rates still draw failures


# ---- writing ----

class PointsOnly:
    """The same store with only `write`, as a store without column batches (InfluxDB) is written."""

    def __init__(self, store):
        self.write = store.write


@pytest.mark.parametrize("through", ["columns", "points"])
def test_write_simulation_reports_progress_and_the_points_land_in_the_store(duckdb_store, through):
    sim = simulate(busy_spec(hosts=3, days=2.0, step_seconds=300, domains_per_host=2))
    calls = []
    target = duckdb_store if through == "columns" else PointsOnly(duckdb_store)
    written = write_simulation(target, sim, progress=lambda done, total: calls.append((done, total)),
                               batch_steps=100)
    total = sim.point_count()
    assert written == total
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    if through == "points":
        assert len(calls) == 1 + math.ceil(sim.steps / 100)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    daemon = duckdb_store.query("libvirtd", ["up", "restarts_total"], sim.start_ns, sim.end_ns)
    assert len(daemon) == 3 * sim.steps
    domains = duckdb_store.query("domain", ["state_code"], sim.start_ns, sim.end_ns)
    assert len(domains) == 2 * int(sim.daemon_up.sum())
    events = duckdb_store.events(sim.start_ns, sim.end_ns)
    assert len(events) == len(sim.events)
    assert sorted(zip(events.host, events.kind)) == sorted(zip(sim.events.host, sim.events.kind))
    latest = duckdb_store.latest("libvirtd", ["restarts_total"], sim.start_ns, group_by=["host"])
    expected = sim.events[sim.events.kind == "restart"].groupby("host").size()
    for row in latest.itertuples():
        assert row.restarts_total <= expected.get(row.host, 0)


# ---- bad input ----

@pytest.mark.parametrize("changes, words", [
    ({"hosts": 0}, "FleetSpec.hosts"),
    ({"hosts": True}, "FleetSpec.hosts"),
    ({"days": -1.0}, "FleetSpec.days"),
    ({"days": float("nan")}, "FleetSpec.days"),
    ({"days": 0.0001}, "shorter than one step"),
    ({"seed": -1}, "FleetSpec.seed"),
    ({"step_seconds": 0}, "FleetSpec.step_seconds"),
    ({"step_seconds": 1.5}, "FleetSpec.step_seconds"),
    ({"end_ns": 5}, "before the Unix epoch"),
    ({"domains_per_host": -1}, "FleetSpec.domains_per_host"),
    ({"base_rate_per_day": {"hang_end": 1.0}}, "base_rate_per_day['hang_end']: not a failure kind"),
    ({"base_rate_per_day": {"restart": -1.0}}, "base_rate_per_day['restart']"),
    ({"base_rate_per_day": [("restart", 1.0)]}, "must be a mapping"),
    ({"effects": [Effect("host.load1", "restart", 2.0)]}, "FleetSpec.effects"),
    ({"effects": (Effect("host.load1", "segfault", 2.0),), "base_rate_per_day": {"restart": 1.0}},
     "kind 'segfault' has no base rate"),
    ({"incidents": True, "days": 1.0}, "need days >= 2"),
    ({"incidents": "yes"}, "FleetSpec.incidents"),
])
def test_a_bad_spec_is_refused_with_the_key_and_the_reason(changes, words):
    spec = {"incidents": False, "end_ns": END_NS, **changes}
    with pytest.raises(ValueError) as error:
        FleetSpec(**spec)
    assert words in str(error.value)


@pytest.mark.parametrize("args, words", [
    (("host.rss_bytes", "restart", 2.0), "Effect.signal 'host.rss_bytes'"),
    (("libvirtd.rss_bytes", "restart", 2.0), "not a load signal"),
    (("host.load1", "hang_end", 2.0), "not a failure kind the hazard draws"),
    (("host.load1", "reboot", 2.0), "not an event kind"),
    (("host.load1", "restart", 0.0), "Effect.factor"),
    (("host.load1", "restart", float("inf")), "Effect.factor"),
    (("host.load1", "restart", 2.0, 1.0), "Effect.threshold_quantile"),
])
def test_a_bad_effect_is_refused_with_the_key_and_the_reason(args, words):
    with pytest.raises(ValueError) as error:
        Effect(*args)
    assert words in str(error.value)


def test_an_effect_whose_threshold_leaves_no_step_below_is_refused():
    effect = Effect("libvirtd.workers_current", "restart", 2.0, threshold_quantile=0.05)
    with pytest.raises(ValueError, match=r"effects\[0\].*no step lies below"):
        simulate(hazard_spec("restart", 1.0, [effect], hosts=4, days=1.0))


def test_bad_arguments_to_points_and_write_are_refused(duckdb_store):
    sim = simulate(busy_spec(hosts=1, days=2.0, step_seconds=3600, incidents=False))
    with pytest.raises(ValueError, match="batch_steps"):
        next(sim.points(0))
    with pytest.raises(ValueError, match="progress"):
        write_simulation(duckdb_store, sim, progress="yes")
    with pytest.raises(ValueError, match="simulation"):
        write_simulation(duckdb_store, "sim")
    with pytest.raises(ValueError, match="signal 'host.rss'"):
        sim.signal("host.rss")
    with pytest.raises(ValueError, match="spec"):
        simulate({"hosts": 3})


def test_incidents_that_cannot_fit_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="incidents overlap on host 'hv-01'.*incidents=False"):
        simulate(FleetSpec(hosts=1, days=2.0, step_seconds=3600, end_ns=END_NS))


def test_the_hazard_model_is_documented_in_the_package_docstring():
    assert HAZARD_MODEL in simulator.__doc__
    assert "Poisson(rate_k * step_days * prod" in HAZARD_MODEL
    for name in EFFECT_SIGNALS:
        assert name.split(".")[1] in HAZARD_MODEL or name.startswith("host.load"), name
