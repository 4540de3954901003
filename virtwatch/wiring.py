"""Build components from the configuration: the one place that turns Config into running objects."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tsdb import Store, open_store
from virtwatch.config import StoreConfig

if TYPE_CHECKING:
    from alerts.engine import Engine
    from collector.agent import Agent
    from collector.spool import Spool
    from virtwatch.config import AgentConfig, AlertsConfig, LeakConfig

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr with timestamps, the way an operator reads it at 3 a.m."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def store_from_config(config: StoreConfig, url_override: str | None = None) -> Store:
    """Open the configured store (the embedded one when no URL is configured)."""
    return open_store(url_override or config.url, token=config.token, username=config.username,
                      password=config.password, batch_size=config.batch_size,
                      timeout_seconds=config.timeout_seconds, max_retries=config.max_retries, gzip=config.gzip)


def rules_from_config(config: AlertsConfig) -> list:
    """Build the event rules with the thresholds of [alerts]."""
    from alerts.event_rules import (AgentSilentRule, DaemonDownRule, DaemonHungRule, DomainFailureStormRule,
                                    RestartRule, SegfaultRule)

    return [DaemonDownRule(after_seconds=config.daemon_down_after_seconds),
            DaemonHungRule(after_seconds=config.daemon_hung_after_seconds),
            RestartRule(count=config.restarts_count, window_seconds=config.restarts_window_seconds),
            SegfaultRule(window_seconds=config.segfault_window_seconds),
            DomainFailureStormRule(count=config.domain_failures_count,
                                   window_seconds=config.domain_failures_window_seconds),
            AgentSilentRule(after_seconds=config.agent_silent_after_seconds)]


def engine_from_config(config: AlertsConfig, store: Store, **overrides) -> Engine:
    """Build the alert engine of [alerts] over an open store: SLOs from slo_file, rules, receivers, state_dir,
    and its shard (one engine of several, each owning the hosts of its shard: alerts.shard)."""
    from alerts.engine import Engine
    from alerts.notify import notifier_for
    from alerts.shard import Shard
    from alerts.slo import load_slos

    slos = load_slos(config.slo_file) if config.slo_file else []
    external_url = config.external_url or ""
    notifiers = {r.name: notifier_for(r, external_url) for r in config.receivers}
    from alerts.storm import StormGate

    storm = StormGate(config.storm_share, config.storm_min_hosts, config.storm_hold_seconds, config.storm_wait_seconds)
    options = dict(slo_interval_seconds=config.interval_seconds, storm=storm,
                   rules_interval_seconds=config.rules_interval_seconds,
                   repeat_interval_seconds=config.repeat_interval_seconds,
                   alertmanager_resend_seconds=config.alertmanager_resend_seconds, external_url=external_url,
                   shard=Shard.parse(config.shard), leak_rule=leak_rule_from_config(config.leak),
                   leak_interval_seconds=config.leak.interval_seconds)
    options.update(overrides)
    return Engine(store, slos, rules_from_config(config), notifiers, config.state_dir, **options)


def leak_rule_from_config(config: LeakConfig):
    """Build the leak rule of [alerts.leak] (None when it is not enabled)."""
    from alerts.leak_rule import LeakRule
    from alerts.leaks import LeakPolicy

    if not config.enabled:
        return None
    policy = LeakPolicy(fd_share=config.fd_share, fd_horizon_seconds=config.fd_horizon_seconds,
                        fd_fit_seconds=config.fd_fit_seconds, fd_min_rise=config.fd_min_rise,
                        fd_min_r2=config.fd_min_r2, rss_min_hours=config.rss_min_hours,
                        rss_min_growth_bytes_per_hour=config.rss_min_growth_bytes_per_hour,
                        rss_min_r2=config.rss_min_r2)
    return LeakRule(policy, fd_severity=config.fd_severity, rss_severity=config.rss_severity)


def agent_from_config(config: AgentConfig, store: Store, spool: Spool | None = None, *,
                      libvirt_uri: str | None = None, host_name: str | None = None,
                      interval_seconds: float | None = None) -> Agent:
    """Build the collector agent of [agent] (arguments given override it); close its source and daemon_health."""
    from collector.agent import Agent
    from collector.daemon_health import DaemonHealth, default_admin_uri, runs_through_daemon
    from collector.guest_processes import GuestProcesses
    from collector.libvirt_source import LibvirtSource

    uri = libvirt_uri or config.libvirt_uri
    through_daemon = runs_through_daemon(uri)
    health = DaemonHealth(config.daemon_pidfile if through_daemon else None,
                          config.admin_uri or default_admin_uri(uri),
                          admin_timeout_seconds=config.probe_timeout_seconds / 2,
                          log_file=config.daemon_log_file,
                          kmsg_path="/dev/kmsg" if through_daemon else None)
    source = LibvirtSource(uri, config.probe_timeout_seconds, config.keepalive_interval_seconds,
                           config.keepalive_count, read_only=config.libvirt_read_only)
    guests = GuestProcesses(config.qemu_pid_dir if through_daemon else None)
    host = host_name or config.host_name
    forensics = forensics_from_config(config, host, lambda: health.own_pids) if through_daemon else None
    return Agent(store, source, host, interval_seconds or config.interval_seconds,
                 spool=spool, daemon_health=health, guests=guests, hang_end_probes=config.hang_end_probes,
                 metadata_tags=config.metadata_tags, forensics=forensics,
                 forensics_after_hang_seconds=config.forensics_after_hang_seconds,
                 forensics_min_gap_seconds=config.forensics_min_gap_seconds)


def forensics_from_config(config: AgentConfig, host_name: str, own_pids=None):
    """Build the forensics capture of [agent]: what it reads (pidfile, admin socket, log, kernel log, QEMU
    pidfiles, gdb when `forensics_gdb`) and where bundles go."""
    from collector.daemon_health import default_admin_uri
    from collector.forensics import CaptureSources, ForensicsCapture

    sources = CaptureSources(pidfile=config.daemon_pidfile,
                             admin_uri=config.admin_uri or default_admin_uri(config.libvirt_uri),
                             log_file=config.daemon_log_file, kmsg_path="/dev/kmsg",
                             qemu_pid_dir=config.qemu_pid_dir, gdb=config.forensics_gdb)
    options = {"own_pids": own_pids} if own_pids is not None else {}
    return ForensicsCapture(host_name, sources, config.forensics_dir, config.forensics_step_deadline_seconds,
                            config.forensics_keep_files, **options)
