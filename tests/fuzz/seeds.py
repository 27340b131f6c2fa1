#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into DIR/<target>/ (made fresh each run, so
nothing generated is committed). Each seed is a mode byte and a payload, as the targets
read them: mode 0 a whole object, mode 1 the part the target completes and signs itself.

Usage: seeds.py DIR
"""
import datetime
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SCOPES_OID = x509.ObjectIdentifier("2.25.195384371966353938652200206769540452565.1")
NOW = datetime.datetime.now(datetime.timezone.utc)
DER = serialization.Encoding.DER


def elements(der):
    """The top-level elements inside the DER SEQUENCE `der`, as raw bytes."""
    def header(buf, at):
        length = buf[at + 1]
        start = at + 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(buf[start:start + n], "big")
            start += n
        return start, start + length

    start, end = header(der, 0)
    out, at = [], start
    while at < end:
        _, stop = header(der, at)
        out.append(der[at:stop])
        at = stop
    return out


def utf8_sequence(items):
    body = b"".join(b"\x0c" + bytes([len(s)]) + s.encode() for s in items)
    return b"\x30" + bytes([len(body)]) + body


def csrs():
    keys = {
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p192": ec.generate_private_key(ec.SECP192R1()),
        "k256": ec.generate_private_key(ec.SECP256K1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "rsa2048": rsa.generate_private_key(65537, 2048),
        "rsa1024": rsa.generate_private_key(65537, 1024),
    }
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "laptop")])
    for label, key in keys.items():
        digest = None if label == "ed25519" else hashes.SHA256()
        yield label, x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, digest)
    p256 = keys["p256"]
    extensions = {
        "ca": (x509.BasicConstraints(ca=True, path_length=None), True),
        "keycertsign": (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
        "serverauth": (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        "san": (x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
            "spiffe://latchkey.internal/tenant/other/key/000000000000000000000000")]), False),
        "unknown_critical": (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), True),
    }
    for label, (ext, critical) in extensions.items():
        builder = x509.CertificateSigningRequestBuilder().subject_name(name).add_extension(ext, critical)
        yield "ext_" + label, builder.sign(p256, hashes.SHA256())


def crls(key):
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "latchkey intermediate")])
    for label, count, extra in [("empty", 0, None), ("three", 3, None), ("short_serial", 1, None),
                                ("delta", 2, x509.DeltaCRLIndicator(1)),
                                ("idp", 1, x509.IssuingDistributionPoint(
                                    None, None, True, False, None, False, False))]:
        builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer)
                   .last_update(NOW).next_update(NOW + datetime.timedelta(hours=1))
                   .add_extension(x509.CRLNumber(7), False))
        if extra is not None:
            builder = builder.add_extension(extra, True)
        for i in range(count):
            serial = 5 if label == "short_serial" else int.from_bytes(os.urandom(16), "big") >> 1
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW)
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), False).build())
        yield label, builder.sign(key, hashes.SHA256())


def certificates(key):
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "latchkey intermediate")])
    holder = ec.generate_private_key(ec.SECP256R1())
    key_uri = "spiffe://latchkey.internal/tenant/acme/key/0123456789abcdef01234567"
    cases = [
        ("key", "alice", "acme", key_uri, ["read:metrics", "write:events"]),
        ("no_scopes", "alice", "acme", key_uri, None),
        ("other_tenant", "alice", "other", key_uri, ["read:metrics"]),
        ("admin", "admin", "latchkey admin", "spiffe://latchkey.internal/admin/admin", None),
        ("other_domain", "alice", "acme", key_uri.replace("latchkey.internal", "elsewhere.example"),
         ["read:metrics"]),
    ]
    for label, owner, organization, uri, scopes in cases:
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                             x509.NameAttribute(NameOID.COMMON_NAME, owner)])
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer).public_key(holder.public_key())
                   .serial_number(int.from_bytes(os.urandom(16), "big") >> 1 | 1 << 120)
                   .not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(hours=24))
                   .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True))
        if scopes is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(SCOPES_OID, utf8_sequence(scopes)), False)
        yield label, builder.sign(key, hashes.SHA256())


def write(directory, target, label, mode, payload):
    path = os.path.join(directory, target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, label), "wb") as f:
        f.write(bytes([mode]) + payload)


def main():
    out = sys.argv[1]
    ca_key = ec.generate_private_key(ec.SECP256R1())
    for label, csr in csrs():
        der = csr.public_bytes(DER)
        write(out, "csr", label, 0, der)
        # Mode 1: the attributes element (extension requests) of the request info.
        info = elements(der)[0]
        attributes = [e for e in elements(info) if e[0] == 0xA0]
        if attributes:
            write(out, "csr", label + "_attributes", 1, attributes[0])
    pem = next(csrs())[1].public_bytes(serialization.Encoding.PEM).decode()
    write(out, "csr", "pem", 0, pem.encode())
    write(out, "csr", "enroll_json", 0, json.dumps(
        {"csr": pem, "name": "laptop", "scopes": ["read:metrics"], "ttl_seconds": 3600}).encode())
    for label, crl in crls(ca_key):
        der = crl.public_bytes(DER)
        write(out, "crl", label, 0, der)
        # Mode 1: TBSCertList after version, signature algorithm and issuer.
        write(out, "crl", label + "_tbs", 1, b"".join(elements(elements(der)[0])[3:]))
    for label, cert in certificates(ca_key):
        der = cert.public_bytes(DER)
        write(out, "identity", label, 0, der)
        # Mode 1: TBSCertificate after version, serial, signature algorithm and issuer.
        write(out, "identity", label + "_tbs", 1, b"".join(elements(elements(der)[0])[4:]))


if __name__ == "__main__":
    main()
