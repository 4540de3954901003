"""`virtwatch soak`: burn in a libvirt daemon under load and record that load as soak points.

    plan (steps, bounds, mix) → runner (steps of concurrency) → workload (client threads, each with its own
    connection) → driver (the only soak module importing libvirt: deadlines, test domains, cleanup)
                              → recorder (tallies → soak points) → report (progress line, summary table)
"""
