"""The secured stack (`up --secure`): a throwaway CA, SCRAM users, and who may do what.

Everything here is for a local stack only: the CA and its key live in the state dir, and the
passwords are random per format, written 0600 next to it. The broker listeners are:

- ``CLIENT`` (SASL_SSL, SCRAM-SHA-512): what every client, bank or partner, connects to;
- ``INTERNAL`` and ``CONTROLLER`` (SASL_PLAINTEXT, PLAIN, loopback only): replication and the
  KRaft quorum, authenticated as the devstack ``admin``, the only super user.

The bank's own principals get only the ACLs their process needs (derived from streams/ and
docs/operations.md; see :data:`BANK_ACLS`); partners get :func:`partner_acls`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import StackError

# librdkafka properties, as confluent-kafka types them.
ClientConfig = dict[str, str | int | float | bool]

ADMIN = "admin"
MECHANISM = "SCRAM-SHA-512"
APP_ID = "points-exchange"  # POINTS_WORKER__APP_ID's default; faust's internal topics start with it
PARTNER_APP_ID = f"{APP_ID}-partners"

# --- who may do what -------------------------------------------------------------------------
# (resource type, name, pattern, operation). Patterns: "literal" or "prefixed".

BANK_SOURCE_TOPICS = ("bank.transactions", "bank.customers", "customer.activity")
BANK_OUTPUT_TOPICS = ("points.ledger", "points.dlq", "customer.nudges")
NUDGES_TOPIC = "customer.nudges"
PUSH_GROUP = "points-push"


@dataclass(frozen=True)
class Grant:
    """One ALLOW ACL for a principal, from any host."""

    resource: str  # topic | group | cluster | transactional_id
    name: str
    pattern: str  # literal | prefixed
    operation: str  # read | write | create | describe | describe_configs | idempotent_write | all


def _grants(resource: str, names: Iterable[str], pattern: str, *ops: str) -> list[Grant]:
    return [Grant(resource, name, pattern, op) for name in names for op in ops]


def _relay_grants() -> list[Grant]:
    """The outbox relay (in both workers) publishes ledger events, dead letters, DLQ replays to
    the source topics, and partner requests; the workers also create the topics at start."""
    return [
        *_grants("topic", BANK_SOURCE_TOPICS + BANK_OUTPUT_TOPICS, "literal",
                 "write", "describe", "create"),
        # Partner topics are per partner id: a prefix (a bank process, never a partner's).
        *_grants("topic", ["partner."], "prefixed", "write", "describe", "create"),
        # faust's own topics: changelogs, repartitions, <app>-__assignor-__leader.
        *_grants("topic", [f"{APP_ID}-"], "prefixed", "all"),
        Grant("cluster", "kafka-cluster", "literal", "idempotent_write"),
    ]  # fmt: skip


BANK_ACLS: dict[str, list[Grant]] = {
    # streams.worker: earning on the bank's source topics, in consumer group <app id>.
    "worker": [
        *_relay_grants(),
        *_grants("topic", BANK_SOURCE_TOPICS, "literal", "read"),
        Grant("group", APP_ID, "literal", "read"),
    ],
    # streams.partner_worker: every partner's events, the bank topics for referrals, own group.
    "partner-worker": [
        *_relay_grants(),
        *_grants("topic", ["partner."], "prefixed", "read"),
        *_grants("topic", ["bank.transactions", "bank.customers"], "literal", "read"),
        Grant("group", PARTNER_APP_ID, "literal", "read"),
    ],
    # The API's operations panel: consumer lag (committed offsets vs end offsets), no data.
    "api": [
        *_grants("topic", BANK_SOURCE_TOPICS + BANK_OUTPUT_TOPICS, "literal", "describe"),
        *_grants("topic", ["partner."], "prefixed", "describe"),
        *_grants("group", [APP_ID], "prefixed", "describe"),
    ],
    # An operator: reads any exchange topic (inspection), sees groups; writes nothing.
    "operations": [
        *_grants("topic", BANK_SOURCE_TOPICS + BANK_OUTPUT_TOPICS, "literal", "read", "describe"),
        *_grants("topic", ["partner."], "prefixed", "read", "describe"),
        *_grants("group", [APP_ID], "prefixed", "describe"),
        *_grants("group", ["points-ops"], "prefixed", "read"),
    ],
    # The bank's push service: reads the nudges the exchange publishes (docs/marketing.md,
    # section 6) in its own groups; sees nothing else.
    "push": [
        *_grants("topic", [NUDGES_TOPIC], "literal", "read", "describe"),
        *_grants("group", [PUSH_GROUP], "prefixed", "read"),
    ],
}
BANK_USERS = tuple(BANK_ACLS)


def partner_group(partner_id: str) -> str:
    """The one consumer group a partner may use (documented in docs/partners.md)."""
    return f"partner.{partner_id}"


def partner_user(partner_id: str) -> str:
    return f"partner-{partner_id}"


def partner_acls(partner_id: str) -> list[Grant]:
    """WRITE on its events topic, READ on its requests topic and its own group; nothing else."""
    events, requests = f"partner.{partner_id}.events", f"partner.{partner_id}.requests"
    return [
        Grant("topic", events, "literal", "write"),
        Grant("topic", events, "literal", "describe"),
        Grant("topic", requests, "literal", "read"),
        Grant("topic", requests, "literal", "describe"),
        Grant("group", partner_group(partner_id), "literal", "read"),
    ]


# --- secrets ---------------------------------------------------------------------------------


def password_file(secrets_dir: Path, user: str) -> Path:
    return secrets_dir / f"{user}.password"


def ensure_password(secrets_dir: Path, user: str) -> str:
    """The user's password, made (random, 0600) on first use and read back afterwards."""
    path = password_file(secrets_dir, user)
    if path.exists():
        return path.read_text().strip()
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def scram_format_args(secrets_dir: Path, users: Iterable[str]) -> list[str]:
    """`kafka-storage format --add-scram` arguments creating each user with its password."""
    args: list[str] = []
    for user in users:
        password = ensure_password(secrets_dir, user)
        args += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
    return args


# --- the throwaway CA ------------------------------------------------------------------------


def ensure_certificates(
    tls_dir: Path, host: str, dns_names: Iterable[str] = ()
) -> tuple[Path, Path]:
    """(ca.pem, broker.pem): a CA and a broker key + certificate for ``host``, localhost and
    ``dns_names`` (the compose brokers' host names).

    broker.pem holds the unencrypted PKCS#8 key and the certificate chain: Kafka reads it as a
    PEM keystore (``ssl.keystore.type=PEM``). Made once per state dir.
    """
    ca_pem, broker_pem = tls_dir / "ca.pem", tls_dir / "broker.pem"
    if ca_pem.exists() and broker_pem.exists():
        return ca_pem, broker_pem
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise StackError(f"`up --secure` needs the cryptography package: {exc}") from None

    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=365))

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("points-exchange devstack CA (throwaway)")
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(validity[0]).not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    broker_key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost"),
         *(x509.DNSName(name) for name in dns_names)]
    )
    broker_cert = (
        x509.CertificateBuilder().subject_name(name("points-exchange devstack broker"))
        .issuer_name(ca_name).public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0]).not_valid_after(validity[1])
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = serialization.Encoding.PEM
    key_bytes = broker_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(broker_pem, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes + broker_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    ca_pem.write_bytes(ca_cert.public_bytes(pem))
    return ca_pem, broker_pem


# --- client settings -------------------------------------------------------------------------


def librdkafka_config(bootstrap: str, ca_pem: Path, user: str, password: str) -> dict[str, str]:
    """librdkafka (confluent-kafka, kcat) properties for ``user`` on the CLIENT listener."""
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": MECHANISM,
        "sasl.username": user,
        "sasl.password": password,
        "ssl.ca.location": str(ca_pem),
        # The broker certificate names 127.0.0.1 and localhost: the host name check holds.
        "ssl.endpoint.identification.algorithm": "https",
    }


# --- ACLs and users through the Admin API ----------------------------------------------------


# librdkafka calls Kafka's CLUSTER resource type (4) BROKER.
_RESOURCE_TYPES = {"cluster": "BROKER"}


def _typed(config: Mapping[str, str]) -> ClientConfig:
    return dict(config)


def create_acls(admin_config: Mapping[str, str], user: str, grants: Iterable[Grant]) -> None:
    """Create ALLOW ACLs for ``User:<user>`` (idempotent: Kafka keeps one of equal bindings)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    bindings = [
        AclBinding(
            ResourceType[_RESOURCE_TYPES.get(g.resource, g.resource.upper())], g.name,
            ResourcePatternType[g.pattern.upper()],
            f"User:{user}", "*", AclOperation[g.operation.upper()], AclPermissionType.ALLOW,
        )
        for g in grants
    ]  # fmt: skip
    admin = AdminClient(_typed(admin_config))
    for binding, future in admin.create_acls(bindings, request_timeout=15).items():
        try:
            future.result(timeout=30)
        except Exception as exc:
            raise StackError(f"creating ACL {binding} failed: {exc}") from None


def upsert_scram_user(admin_config: Mapping[str, str], user: str, password: str) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    alteration = UserScramCredentialUpsertion(user, info, password.encode())
    admin = AdminClient(_typed(admin_config))
    for _user, future in admin.alter_user_scram_credentials([alteration]).items():
        try:
            future.result(timeout=30)
        except Exception as exc:
            raise StackError(f"creating SCRAM user {user!r} failed: {exc}") from None
