"""The customer HTTP API (FastAPI). Build it with :func:`points.api.app.create_app`; run it
with ``python -m points.api``. Nothing here runs or connects at import time."""
