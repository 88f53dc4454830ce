"""Metric sources: one interface, one backend per kind of store (see `base.Source`)."""
