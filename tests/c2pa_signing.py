"""Signing real C2PA manifests in tests with c2pa-python and a throwaway certificate chain (CA + signer)."""

from __future__ import annotations

import datetime
import io
import json

from PIL import Image


def _certificate(subject, subject_key, issuer, issuer_key, *, ca: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    else:
        usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
    return builder.add_extension(usage, critical=True).sign(issuer_key, hashes.SHA256())


def make_signer(common_name: str, organisation: str):
    import c2pa
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Provenant test CA")])
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    chain = b"".join(
        cert.public_bytes(serialization.Encoding.PEM)
        for cert in (
            _certificate(name, key, ca_name, ca_key, ca=False),
            _certificate(ca_name, ca_key, ca_name, ca_key, ca=True),
        )
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, private, None))


DIGITAL_ART = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"


def signed_jpeg(entries: dict, *, signer, label: str = "c2pa.training-mining", colour: str = "navy") -> bytes:
    """A JPEG carrying a signed manifest with a training-and-data-mining assertion of the given entries."""
    source = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(source, "JPEG")
    return signed_file(source.getvalue(), "image/jpeg", entries, signer=signer, label=label)


def signed_file(
    data: bytes, mime: str, entries: dict, *, signer, label: str = "c2pa.training-mining"
) -> bytes:
    """`data` (any format c2pa-python writes) signed with a training-and-data-mining assertion."""
    import c2pa

    manifest = {
        "claim_generator_info": [{"name": "provenant-tests", "version": "1"}],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": DIGITAL_ART}]},
            },
            {"label": label, "data": {"entries": entries}},
        ],
    }
    source, signed = io.BytesIO(data), io.BytesIO()
    with c2pa.Builder(json.dumps(manifest)) as builder:
        builder.sign(signer, mime, source, signed)
    return signed.getvalue()
