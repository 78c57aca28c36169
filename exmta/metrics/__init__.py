"""
Prometheus metrics and health endpoints of a transport server: observers
of what the stages already tell (L{exmta.metrics.observers}), the registry
(L{exmta.metrics.registry}) and the web endpoints (L{exmta.metrics.web}),
wired by L{exmta.service}.  Names, labels and help texts: docs/metrics.rst.
"""
