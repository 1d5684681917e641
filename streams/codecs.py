"""Kafka compression codecs: every one Kafka supports must decode, checked before consuming.

A producer picks its codec (librdkafka's ``compression.type``: gzip, snappy, lz4, zstd) and the
broker keeps the batch as sent, so a worker reads whatever its producers chose. aiokafka decodes
gzip with the standard library and the others with optional libraries (the ``aiokafka[lz4,
snappy,zstd]`` extras). Without one, the first batch in that codec raised
``UnsupportedCodecError`` inside the consumer, the worker died, and a restart died on the same
batch: the partition stopped for good. Checking at start-up turns a broken install into one clear
line and exit code 78 before any offset is touched.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["CODECS", "EXIT_MISSING_CODEC", "missing_codecs", "require_codecs"]

# EX_CONFIG from sysexits.h: the installation, not the input, is at fault.
EXIT_MISSING_CODEC = 78

# codec -> the Python package that provides it (what to install when it is missing)
CODECS: dict[str, str] = {
    "gzip": "zlib (standard library)",
    "snappy": "cramjam",
    "lz4": "cramjam",
    "zstd": "cramjam",
}


def _probes() -> dict[str, Callable[[], bool]]:
    from aiokafka import codec

    return {
        "gzip": codec.has_gzip,
        "snappy": codec.has_snappy,
        "lz4": codec.has_lz4,
        "zstd": codec.has_zstd,
    }


def missing_codecs(probes: dict[str, Callable[[], bool]] | None = None) -> list[str]:
    """The codecs this installation cannot decode, in Kafka's order."""
    checks = probes if probes is not None else _probes()
    return [name for name in CODECS if not checks[name]()]


def require_codecs(probes: dict[str, Callable[[], bool]] | None = None) -> None:
    """Exit with one line on stderr and code 78 when a codec library is missing."""
    missing = missing_codecs(probes)
    if missing:
        packages = ", ".join(sorted({CODECS[m] for m in missing}))
        print(
            f"points worker: cannot decode Kafka batches compressed with {', '.join(missing)}; "
            f"install {packages} (pip install 'aiokafka[lz4,snappy,zstd]')",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_MISSING_CODEC)
