"""Throwaway certificates for TLS tests, made with `cryptography`: a CA, a broker certificate for
127.0.0.1 and localhost signed by it, a client certificate signed by it, and a second, unrelated CA
(a client that trusts only that one must not get in). PEM files, keys unencrypted PKCS#8."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA that signed the broker's and the client's certificates
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed neither


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (directory / f"{stem}.key").write_bytes(pem)
        (directory / f"{stem}.key").chmod(0o600)


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _ca(subject: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # cert + CRL signing
    cert = _issue(subject, key, None, [(x509.BasicConstraints(ca=True, path_length=0), True), (usage, True)])
    return cert, key


def _leaf(
    subject: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], purpose, names: list[x509.GeneralName]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    extensions = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([purpose]), False),
    ]
    if names:
        extensions.append((x509.SubjectAlternativeName(names), False))
    return _issue(subject, key, (ca[0].subject, ca[1]), extensions), key


def make_certs(directory: Path) -> Certs:
    """Write ca.crt, server.crt/.key, client.crt/.key and other-ca.crt into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("aftersale test CA")
    server = _leaf(
        "localhost",
        ca,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client = _leaf("aftersale", ca, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    _write(directory, "ca", ca[0], None)
    _write(directory, "server", *server)
    _write(directory, "client", *client)
    _write(directory, "other-ca", _ca("some other CA")[0], None)
    return Certs(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.crt",
    )
