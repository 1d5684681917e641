"""Every Kafka client of the exchange, built from one settings group (``POINTS_KAFKA__*``).

:func:`connection_kwargs` is the one place that turns :class:`points.settings.KafkaSettings`
into aiokafka's connection arguments (bootstrap list, security protocol, SASL mechanism and
credentials, TLS context); :func:`faust_broker_settings` gives the same to a faust app (its
consumer, producer and topic creation go through aiokafka with them). The factories below are
what the workers, the topic creation, the API's lag reader, the partner simulator, the demo and
the benchmarks call: nothing else in the product constructs an aiokafka client (a unit test
greps for that), so a new security option reaches every client from here.

The password is read from the setting or its file when a client is built and handed to the
client only; the TLS context verifies the brokers' chain (the configured CA, else the system's
trust store) and, unless ``ssl_check_hostname`` is off, their host name.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from points.settings import KafkaSettings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from faust.auth import Credentials

__all__ = [
    "admin_client",
    "connection_kwargs",
    "consumer",
    "faust_broker_settings",
    "producer",
    "ssl_context",
]


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL (None for a plaintext protocol)."""
    if not kafka.uses_tls:
        return None
    cafile = str(kafka.ssl_cafile.expanduser()) if kafka.ssl_cafile else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.check_hostname = kafka.ssl_check_hostname
    context.verify_mode = ssl.CERT_REQUIRED  # the chain is always verified
    if kafka.ssl_certfile is not None and kafka.ssl_keyfile is not None:
        password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None
        context.load_cert_chain(
            str(kafka.ssl_certfile.expanduser()), str(kafka.ssl_keyfile.expanduser()), password
        )
    return context


def security_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka's security arguments (protocol, SASL, TLS context) for these settings."""
    kwargs: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = ssl_context(kafka)
    if context is not None:
        kwargs["ssl_context"] = context
    if kafka.uses_sasl:
        kwargs |= {
            "sasl_mechanism": kafka.sasl_mechanism,
            "sasl_plain_username": kafka.sasl_username,
            "sasl_plain_password": kafka.sasl_password_value(),
        }
    return kwargs


def connection_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka's connection arguments: the bootstrap list and :func:`security_kwargs`."""
    return {"bootstrap_servers": kafka.bootstrap_servers, **security_kwargs(kafka)}


def admin_client(kafka: KafkaSettings, **options: Any) -> AIOKafkaAdminClient:
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(**connection_kwargs(kafka), **options)


def producer(kafka: KafkaSettings, **options: Any) -> AIOKafkaProducer:
    """A producer; ``acks="all"`` and idempotence stay on unless the caller asks otherwise."""
    from aiokafka import AIOKafkaProducer

    options.setdefault("acks", "all")
    options.setdefault("enable_idempotence", True)
    return AIOKafkaProducer(**connection_kwargs(kafka), **options)


def consumer(kafka: KafkaSettings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, **connection_kwargs(kafka), **options)


def faust_broker_settings(kafka: KafkaSettings) -> dict[str, Any]:
    """``broker`` and ``broker_credentials`` for a faust app: SASL credentials (with the TLS
    context for SASL_SSL), TLS credentials for SSL, none for PLAINTEXT."""
    import faust

    credentials: Credentials | None = None
    context = ssl_context(kafka)
    if kafka.uses_sasl:
        credentials = faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password_value(),
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    elif context is not None:
        credentials = faust.SSLCredentials(context)
    return {"broker": f"kafka://{kafka.bootstrap_servers}", "broker_credentials": credentials}
