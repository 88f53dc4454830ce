"""Simulated /metrics exporters of AutoMatrix, RelayCore and NeuroWeaver.

Modules: `catalog` (routes, models, prices), `metrics` (metric definitions and state),
`traffic` (random traffic per block of ticks), `truth` (exact totals), `simulator`
(`PlatformSimulator`, `SimulationConfig`, `Incident`), `app` (`metrics_app`) and `server`
(`ExporterServer`, `SimulatedPlatform`). Run `python -m exporters --help` for the command line.
"""
