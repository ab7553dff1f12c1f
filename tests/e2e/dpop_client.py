"""A DPoP client as real ones build proofs (RFC 9449 §4.2): a key pair of its own (ES256 or
RS256), a fresh proof per request with `jti`, `htm`, `htu` (the URL without query and
fragment), `iat`, `ath` (the access token's hash) and the server's nonce when it gave one.
Also the client certificates of the mutual-TLS tests (a CA, a server and client certificates,
generated with `cryptography`)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DpopKey:
    """The client's proof key."""

    def __init__(self, alg: str = "ES256"):
        self.alg = alg
        self.private = (ec.generate_private_key(ec.SECP256R1()) if alg == "ES256"
                        else rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, str]:
        nums = self.private.public_key().public_numbers()
        if self.alg == "ES256":
            return {"kty": "EC", "crv": "P-256", "x": b64u(nums.x.to_bytes(32, "big")),
                    "y": b64u(nums.y.to_bytes(32, "big"))}
        return {"kty": "RSA", "n": b64u(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
                "e": b64u(nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big"))}

    def proof(self, method: str, url: str, token: str | None = None, nonce: str | None = None, *,
              jti: str | None = None, iat: int | None = None, header: dict[str, Any] | None = None,
              claims: dict[str, Any] | None = None) -> str:
        parts = urlsplit(url)
        payload: dict[str, Any] = {"jti": jti or uuid.uuid4().hex, "htm": method,
                                   "htu": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
                                   "iat": int(time.time()) if iat is None else iat}
        if token is not None:
            payload["ath"] = b64u(hashlib.sha256(token.encode()).digest())
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update(claims or {})
        hdr = {"typ": "dpop+jwt", "jwk": self.jwk(), **(header or {})}
        return jwt.encode(payload, self.private, algorithm=self.alg, headers=hdr)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Pki:
    """A test CA with a server certificate for 127.0.0.1 and client certificates, as PEM files."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca = (x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
                   .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(self.ca_key, hashes.SHA256()))
        self.ca_path = self._write("ca.pem", self.ca.public_bytes(serialization.Encoding.PEM))
        self.server = self.issue("server", server=True)

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def issue(self, cn: str, server: bool = False) -> dict[str, Any]:
        """A certificate signed by the CA: its paths, DER and RFC 8705 thumbprint."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        der = cert.public_bytes(serialization.Encoding.DER)
        cert_path = self._write(f"{cn}.pem", cert.public_bytes(serialization.Encoding.PEM))
        key_path = self._write(f"{cn}.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return {"cert": cert_path, "key": key_path, "der": der,
                "x5t": b64u(hashlib.sha256(der).digest())}
