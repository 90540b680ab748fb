"""S/MIME encryption (RFC 8551 enveloped-data, AES-256-CBC) of an inner MIME message to one certificate."""

from __future__ import annotations

from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from delivery.envelope import base64_lines
from delivery.errors import EncryptionError
from delivery.outer import GENERIC_SUBJECT, WireMessage, outer_headers


@lru_cache(maxsize=256)
def _cert(cert_pem: bytes) -> x509.Certificate:
    # a recipient's certificate is the same bytes letter after letter: parse it once
    return x509.load_pem_x509_certificate(cert_pem)


def encrypt_smime(inner: bytes, cert_pem: bytes, *, subject: str = GENERIC_SUBJECT) -> WireMessage:
    """The complete outer message: generic headers in clear, the inner message as application/pkcs7-mime.

    `inner` must be canonical MIME (CRLF line ends), as `envelope.build_inner` writes it; it is
    encrypted as is (Binary), so what the recipient decrypts is exactly `inner`.
    """
    try:
        cert = _cert(cert_pem)
    except ValueError:
        raise EncryptionError("S/MIME recipient certificate is not a PEM certificate") from None
    try:
        der = (
            pkcs7.PKCS7EnvelopeBuilder()
            .set_data(inner)
            .add_recipient(cert)
            .set_content_encryption_algorithm(algorithms.AES256)
            .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )
    except TypeError as exc:  # raised for non-RSA recipient keys
        raise EncryptionError(f"cannot encrypt to this certificate: {exc}") from None
    head = outer_headers(inner, subject=subject) + [
        'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
        "Content-Transfer-Encoding: base64",
        'Content-Disposition: attachment; filename="smime.p7m"',
        "",
        "",
    ]
    return WireMessage("\r\n".join(head).encode("ascii") + base64_lines(der))
