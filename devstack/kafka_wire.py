"""One raw Kafka ApiVersions (v3) request, to ask the running broker what it speaks.

Why by hand: aiokafka 0.14 only implements ApiVersions up to v2, and the broker reports its
finalized features (``metadata.version``) only in v3's tagged fields. No Kafka API returns the
release string ("4.1.1") itself; ``status`` pairs this answer with the version line the broker JVM
logged at startup (see devstack.kafka.logged_version).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

API_VERSIONS_KEY = 18
API_VERSIONS_VERSION = 3
CLIENT_ID = "points-stack"


@dataclass(frozen=True)
class ApiVersionsInfo:
    """What the broker answered: its API version ranges and finalized feature levels."""

    api_ranges: dict[int, tuple[int, int]]
    finalized_features: dict[str, int] = field(default_factory=dict)

    @property
    def metadata_version_level(self) -> int | None:
        return self.finalized_features.get("metadata.version")


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _compact_string(text: str) -> bytes:
    data = text.encode()
    return _uvarint(len(data) + 1) + data


def encode_request(correlation_id: int, software_version: str) -> bytes:
    """ApiVersions v3 request, size-prefixed (request header v2: classic client_id + tags)."""
    client_id = CLIENT_ID.encode()
    header = struct.pack(
        ">hhih", API_VERSIONS_KEY, API_VERSIONS_VERSION, correlation_id, len(client_id)
    )
    header += client_id + _uvarint(0)
    body = _compact_string(CLIENT_ID) + _compact_string(software_version) + _uvarint(0)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def compact_string(self) -> str:
        length = self.uvarint() - 1
        text = self.data[self.pos : self.pos + length].decode()
        self.pos += length
        return text

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def decode_response(payload: bytes, correlation_id: int) -> ApiVersionsInfo:
    """Parse an ApiVersions v3 response (without its size prefix; response header v0)."""
    reader = _Reader(payload)
    if reader.take(">i") != correlation_id:
        raise ValueError("ApiVersions: correlation id mismatch")
    error = reader.take(">h")
    if error:
        raise ValueError(f"ApiVersions: broker returned error code {error}")
    ranges: dict[int, tuple[int, int]] = {}
    for _ in range(reader.uvarint() - 1):
        key, low, high = reader.take(">h"), reader.take(">h"), reader.take(">h")
        ranges[key] = (low, high)
        reader.skip_tags()
    reader.take(">i")  # throttle_time_ms
    features: dict[str, int] = {}
    for _ in range(reader.uvarint()):
        tag, size = reader.uvarint(), reader.uvarint()
        end = reader.pos + size
        if tag == 2:  # FinalizedFeatures: [name, max_version_level, min_version_level, tags]
            for _ in range(reader.uvarint() - 1):
                name = reader.compact_string()
                max_level, _min_level = reader.take(">h"), reader.take(">h")
                reader.skip_tags()
                features[name] = max_level
        reader.pos = end
    return ApiVersionsInfo(api_ranges=ranges, finalized_features=features)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def api_versions(host: str, port: int, timeout: float = 3.0) -> ApiVersionsInfo:
    """Send one ApiVersions v3 request to ``host:port`` and return the parsed answer."""
    correlation_id = 1
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(encode_request(correlation_id, "0.1.0"))
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        return decode_response(_recv_exactly(sock, size), correlation_id)
