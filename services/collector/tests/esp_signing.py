"""Sign webhook requests the way SendGrid, Amazon SNS and Mailgun do (for the collector's tests).

Written from the providers' documentation, independently of ``ecrm_collector.esp_webhooks``,
so that a mistake there is not mirrored here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_VERIFICATION_KEY = base64.b64encode(
    SENDGRID_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()
SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sendgrid_signature(body: bytes, timestamp: float, key: Any = SENDGRID_KEY) -> tuple[str, str]:
    """(signature header, timestamp header): ECDSA P-256/SHA-256 over ``timestamp + body``."""
    signed_at = str(int(timestamp))
    signature = key.sign(signed_at.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode(), signed_at


def certificate(key: rsa.RSAPrivateKey = SNS_KEY) -> bytes:
    """A self-signed PEM certificate for ``key`` (stands in for the one at SNS's SigningCertURL)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM)


def sns_sign(envelope: dict[str, Any], key: rsa.RSAPrivateKey = SNS_KEY) -> dict[str, Any]:
    """Add ``Signature`` as SNS does: RSA PKCS#1 v1.5 over ``Key\\nValue\\n`` of the signed keys, in AWS's order."""
    keys: tuple[str, ...]
    if envelope["Type"] == "Notification":
        keys = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    else:
        keys = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
    text = "".join(f"{name}\n{envelope[name]}\n" for name in keys if name in envelope)
    digest = hashes.SHA1() if envelope["SignatureVersion"] == "1" else hashes.SHA256()
    envelope["Signature"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), digest)).decode()
    return envelope


def mailgun_body(event_data: Any, *, key: str, timestamp: float, token: str) -> bytes:
    """A Mailgun webhook body: ``signature`` = hex HMAC-SHA256(key, timestamp + token), and the event."""
    signed_at = str(int(timestamp))
    signature = hmac.new(key.encode(), (signed_at + token).encode(), hashlib.sha256).hexdigest()
    block = {"timestamp": signed_at, "token": token, "signature": signature}
    return json.dumps({"signature": block, "event-data": event_data}).encode()
