"""simulator: a seeded libvirt/KVM fleet that writes realistic points in virtwatch's data model (tsdb.schema).

    from simulator import Effect, FleetSpec, simulate, write_simulation
    spec = FleetSpec(hosts=24, days=14, seed=1,
                     effects=(Effect("libvirtd.job_queue_depth", "restart", factor=3.0),))
    sim = simulate(spec)                      # signals, failures and consequences; no points yet
    sim.failures                              # the truth: one row per failure event written
    write_simulation(store, sim, progress=lambda done, total: ...)

Modules: `spec` (FleetSpec, Effect), `fleet` (fixed facts), `signals` (load), `hazard` (the model below and
its draws), `incidents` (the demo's story), `timeline` (consequences), `diagnoses` (the agent's cause sentences,
diagnosis points and forensics bundles), `render` (fields) and `points` (Points), `simulation` (simulate,
write_simulation). The model, which tests rely on, is HAZARD_MODEL:

"""

from simulator.hazard import HAZARD_MODEL
from simulator.simulation import Simulation, simulate, write_simulation
from simulator.spec import DEFAULT_BASE_RATES, EFFECT_SIGNALS, FAILURE_KINDS, Effect, FleetSpec

if __doc__ is not None:  # python -OO drops docstrings
    __doc__ += HAZARD_MODEL

__all__ = ["DEFAULT_BASE_RATES", "EFFECT_SIGNALS", "FAILURE_KINDS", "HAZARD_MODEL", "Effect", "FleetSpec",
           "Simulation", "simulate", "write_simulation"]
