"""``python -m points.api``: serve the API with uvicorn (host, port, workers from
``POINTS_API__HOST``, ``POINTS_API__PORT``, ``POINTS_API__WORKERS``)."""

from __future__ import annotations

import uvicorn

from points.api.settings import load_api_settings


def main() -> None:
    api = load_api_settings()
    uvicorn.run(
        "points.api.app:create_app",
        factory=True,
        host=api.host,
        port=api.port,
        workers=api.workers,
        access_log=False,
        log_level="info",
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
