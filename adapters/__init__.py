"""Partner adapters: one module per partner program behind ``points.ports.PartnerProgram``.

- :mod:`adapters.contracts`  wire messages we send on ``partner.<id>.requests`` (and the one
  partner reply missing from ``points.events``: ``member_link_rejected``)
- :mod:`adapters.config`     load ``config/partners.yaml`` and resolve signing keys
- :mod:`adapters.program`    the configured partner program (quotes, requests, interpretation)
- :mod:`adapters.ridehail`, :mod:`adapters.eshop`, :mod:`adapters.airline`  the three programs
- :mod:`adapters.registry`   the registry built from configuration
- :mod:`adapters.topics`     partner topic names (with an optional prefix) and their creation
- :mod:`adapters.simulator`  a simulated partner process for tests, benchmarks and the demo

Adapters never import ``streams/``: the faust side calls them, not the other way round.
"""
