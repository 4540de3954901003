"""virtwatch alerts: the engine that evaluates SLOs and event rules over the store and notifies on-call."""
