"""One module per command; each defines ``command`` and :mod:`points.cli.app` registers it."""
