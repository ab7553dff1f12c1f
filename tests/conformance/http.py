"""The conformance tool's HTTP side: a client bound to one gateway base URL that
refuses anything but http(s), caps the number and rate of requests, tags each
request with an `x-request-id` (to find its audit record), and never lets a
token reach the output in full."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

REASON_SYSTEM = "urn:fhir-smart-authz:reason"
JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{6,}(?:\.[A-Za-z0-9_-]*){1,2}")


class BudgetExhausted(RuntimeError):
    pass


def validated_base(url: str, what: str = "TARGET") -> str:
    """The URL without a trailing slash; ValueError unless it is an absolute http(s) URL
    without query, fragment or credentials."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http:// or https:// URL of a FHIR base, got {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{what} must not carry a query, fragment or credentials: {url!r}")
    return url.rstrip("/")


class Redactor:
    """Shortens every token it knows, and anything shaped like a JWT, to a prefix."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 8:
            self.secrets.add(secret)

    def __call__(self, text: str) -> str:
        for s in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(s, short_token(s))
        return JWT_LIKE.sub(lambda m: short_token(m.group(0)), text)


def short_token(token: str) -> str:
    return f"{token[:8]}…({len(token)} chars)"


@dataclass
class Reply:
    method: str
    path: str  # as shown: relative to the base when under it
    status: int
    headers: dict[str, str]
    body: bytes
    request_id: str
    sent_headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    def json_or_none(self) -> Any:
        try:
            return self.json()
        except ValueError:
            return None

    @property
    def filter_reason(self) -> str | None:
        """The filter's reason code of a denial (OperationOutcome issue[0].details), if any."""
        doc = self.json_or_none()
        if not isinstance(doc, dict) or doc.get("resourceType") != "OperationOutcome":
            return None
        for issue in doc.get("issue") or []:
            for coding in ((issue.get("details") or {}).get("coding") or []):
                if coding.get("system") == REASON_SYSTEM:
                    return coding.get("code")
        return None

    @property
    def www_error(self) -> str | None:
        """`error` of WWW-Authenticate: "" when the header has none, None without the header."""
        value = self.headers.get("www-authenticate")
        if value is None:
            return None
        m = re.search(r'\berror="([^"]*)"', value)
        return m.group(1) if m else ""

    def outcome(self) -> str:
        """`<status> <reason>`: the filter's reason code, or `upstream` for the server's own answer."""
        return f"{self.status} {self.filter_reason or 'upstream'}"

    def resource_ids(self) -> list[str]:
        """`Type/id` of the entries of a Bundle reply (search results and includes)."""
        doc = self.json_or_none() or {}
        return [f"{e['resource']['resourceType']}/{e['resource'].get('id')}"
                for e in doc.get("entry") or [] if isinstance(e.get("resource"), dict)]


def prepare(token: str | None, headers: dict[str, str] | None, body: Any, content_type: str | None,
            id_prefix: str) -> tuple[str, dict[str, str], bytes | None]:
    """(x-request-id, headers, body bytes) of a FHIR request: a unique request id, JSON bodies
    as application/fhir+json unless `content_type` says otherwise, `headers` last."""
    rid = id_prefix + uuid.uuid4().hex
    hdrs = {"x-request-id": rid, "Accept": "application/fhir+json"}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    data: bytes | None
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/fhir+json"
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = body
    if content_type and data is not None:
        hdrs["Content-Type"] = content_type
    hdrs.update(headers or {})
    return rid, hdrs, data


class Target:
    """One gateway, `max_requests` requests at most, at most `rate` per second."""

    def __init__(self, base: str, max_requests: int = 600, rate: float = 20.0, timeout: float = 30) -> None:
        self.base = validated_base(base)
        self.max_requests = max_requests
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.timeout = timeout
        self.sent = 0
        self._last = 0.0
        self.session = requests.Session()

    def request(self, method: str, path: str = "", *, token: str | None = None, headers: dict[str, str] | None = None,
                body: Any = None, content_type: str | None = None, url: str | None = None) -> Reply:
        """`path` is appended to the base (""/"/Patient/x"/"?_getpages=.."); `url` (absolute,
        e.g. a paging link) must be under the base: the tool never talks to anything else."""
        if url is not None:
            if not url.startswith(self.base + "/") and not url.startswith(self.base + "?") and url != self.base:
                raise ValueError(f"refusing to send a request outside TARGET: {url}")
            path = url[len(self.base):]
        if self.sent >= self.max_requests:
            raise BudgetExhausted(f"request budget of {self.max_requests} used up (--max-requests)")
        wait = self._last + self.interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        rid, hdrs, data = prepare(token, headers, body, content_type, "conformance-")
        self.sent += 1
        self._last = time.monotonic()
        r = self.session.request(method, self.base + path, headers=hdrs, data=data, timeout=self.timeout,
                                 allow_redirects=False)
        return Reply(method, path or "/", r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content,
                     rid, hdrs)
