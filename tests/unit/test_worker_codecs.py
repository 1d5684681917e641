"""The workers refuse to start without a codec library, in one line, before consuming."""

from __future__ import annotations

import pytest

from streams.codecs import EXIT_MISSING_CODEC, missing_codecs, require_codecs


def test_this_installation_decodes_every_codec_kafka_supports() -> None:
    """pyproject's aiokafka[lz4,snappy,zstd] brings every codec: nothing is missing."""
    assert missing_codecs() == []


def test_a_missing_codec_exits_78_naming_it_and_what_to_install(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without lz4 the worker exits 78 (EX_CONFIG) with one stderr line naming lz4 and the
    package to install, instead of crashing on the first lz4 batch."""
    probes = {name: (lambda: True) for name in ("gzip", "snappy", "zstd")}
    probes["lz4"] = lambda: False
    with pytest.raises(SystemExit) as exited:
        require_codecs(probes)
    assert exited.value.code == EXIT_MISSING_CODEC == 78
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "lz4" in err and "snappy" not in err.split(";")[0] and "cramjam" in err
