"""The check machinery: a check is a named function of a `Ctx` that sends requests
through the gateway and raises `Fail` (or `Skip`) when what came back is not what a
SMART resource server must answer. `pending` marks a check that is expected to fail
until a filter feature lands (the runner reports XFAIL, and XPASS — a failure — once
it passes, so the marker cannot go stale); pytest maps it to `xfail(strict=True)`.

The same checks run in pytest against the native rig (tests/e2e/test_conformance.py)
and in `make conformance` against any gateway (tests/conformance/__main__.py)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from .data import OWN_PATIENT, OTHER_PATIENT
from .http import BudgetExhausted, Redactor, Reply, Target
from .servers import ServerProfile
from .tokens import Tokens, Unavailable

LOOPBACK = {"localhost", "127.0.0.1", "::1"}

NEEDS = {
    "seed": "needs the seeded data set: give UPSTREAM=<the FHIR server's direct base URL>",
    "writes": "writes data: run with --allow-writes (ALLOW_WRITES=1); writes touch only data this run seeded",
    "own-seeded": "the patient token's patient is not the seeded patient pat-a",
}


class Fail(Exception):
    def __init__(self, expected: str, actual: str, detail: str = "") -> None:
        super().__init__(detail or f"expected {expected}, got {actual}")
        self.expected, self.actual, self.detail = expected, actual, detail


class Skip(Exception):
    pass


@dataclass
class Check:
    id: str  # "<group>/<name>"
    title: str
    fn: Callable[["Ctx"], None]
    needs: tuple[str, ...] = ()
    pending: str | None = None  # expected to fail until this lands

    @property
    def group(self) -> str:
        return self.id.split("/", 1)[0]


@dataclass
class Result:
    check: Check
    status: str  # pass | fail | skip | xfail | xpass
    request: str = ""
    expected: str = ""
    actual: str = ""
    detail: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "xpass")


@dataclass
class Ctx:
    target: Target
    tokens: Tokens
    redact: Redactor
    server: ServerProfile
    seeded: bool = False
    allow_writes: bool = False
    upstream: str | None = None
    own: str = OWN_PATIENT
    other: str = OTHER_PATIENT
    # what the current check sent and expected (its report line: the first for a pass,
    # the last for a failure)
    request: str = ""
    expected: str = ""
    actual: str = ""
    first: tuple[str, str, str] | None = None
    notes: list[str] = field(default_factory=list)

    # --- preconditions ---------------------------------------------------
    def need(self, *needs: str) -> None:
        for n in needs:
            if n in ("seed", "writes") and not self.seeded:
                raise Skip(NEEDS["seed"])
            if n == "writes" and not self.allow_writes:
                raise Skip(NEEDS["writes"])
            if n == "own-seeded" and self.own != OWN_PATIENT:
                raise Skip(f"{NEEDS['own-seeded']} ({self.own})")

    def token(self, profile: str, **claims: Any) -> str:
        try:
            return self.tokens.get(profile, claims)
        except Unavailable as e:
            raise Skip(str(e)) from None

    def localise(self, value: Any) -> Any:
        """The e2e table names the patients pat-a/pat-b; a supplied patient token has its own."""
        if self.own == OWN_PATIENT or value is None:
            return value
        text = json.dumps(value) if not isinstance(value, str) else value
        text = text.replace(OWN_PATIENT, self.own)
        return text if isinstance(value, str) else json.loads(text)

    # --- requests --------------------------------------------------------
    def send(self, method: str, path: str = "", *, token: str | None = None, **kw: Any) -> Reply:
        shown = path if "url" not in kw else kw["url"].removeprefix(self.target.base)
        self.request = f"{method} {shown or '/'}"
        return self.target.request(method, path, token=token, **kw)

    def under_gateway(self, url: str) -> bool:
        """Is an absolute URL under TARGET (loopback names count as one host)?"""
        a, b = urlsplit(url), urlsplit(self.target.base)
        same_host = a.hostname == b.hostname or (a.hostname in LOOPBACK and b.hostname in LOOPBACK)
        return (a.scheme == b.scheme and same_host and (a.port or 0) == (b.port or 0)
                and (a.path == b.path or a.path.startswith(b.path.rstrip("/") + "/")))

    def via_gateway(self, url: str) -> str:
        """A link the server wrote, re-based on TARGET (only called once `under_gateway` held)."""
        a, b = urlsplit(url), urlsplit(self.target.base)
        return self.target.base + a.path[len(b.path.rstrip("/")):] + (f"?{a.query}" if a.query else "")

    # --- expectations ----------------------------------------------------
    def require(self, ok: bool, expected: str, actual: str, detail: str = "") -> None:
        self.expected, self.actual = expected, actual
        if self.first is None:
            self.first = (self.request, expected, actual)
        if not ok:
            raise Fail(expected, actual, detail)

    def expect(self, reply: Reply, status: int | tuple[int, ...], reason: str | None = None, *,
               www: str | None = None, oo_code: str | None = None, oo_diag: str | None = None) -> Reply:
        """Status, and who answered: the filter with `reason` (its OperationOutcome's reason
        code), or — `reason` None — the FHIR server (no filter reason in the answer)."""
        statuses = status if isinstance(status, tuple) else (status,)
        want = f"{'/'.join(map(str, statuses))} {reason or 'upstream'}"
        body = reply.body[:300].decode(errors="replace")
        got_reason = reply.filter_reason
        if reply.method == "HEAD" and reason:  # no body: the filter's denial is known by its WWW-Authenticate
            got_reason = reason if reply.www_error else None
        actual = f"{reply.status} {got_reason or 'upstream'}"
        self.require(reply.status in statuses and got_reason == reason, want, actual, body)
        if www is not None:
            got = reply.headers.get("www-authenticate", "")
            self.require(got.startswith("Bearer ") and reply.www_error == www,
                         f"WWW-Authenticate: Bearer {'error=' + www if www else '(no error)'}", got or "(none)")
        if oo_code and reply.status >= 400 and reply.method != "HEAD":
            doc = reply.json_or_none() or {}
            issue = (doc.get("issue") or [{}])[0]
            diag = issue.get("diagnostics") or ""
            self.require(reply.headers.get("content-type", "").startswith("application/fhir+json")
                         and doc.get("resourceType") == "OperationOutcome" and issue.get("code") == oo_code
                         and bool(diag) and (oo_diag or "") in diag,
                         f"OperationOutcome code {oo_code}" + (f" mentioning {oo_diag!r}" if oo_diag else ""),
                         f"{doc.get('resourceType')} code {issue.get('code')}: {diag[:120]!r}")
        text = reply.body.decode(errors="replace")
        self.require(self.redact(text) == text, "no token in the answer", "a token in the answer")
        self.expected, self.actual = want, actual
        return reply


def run(ctx: Ctx, check: Check, honour_pending: bool = True) -> Result:
    """Run one check. `honour_pending`: a pending check's failure is XFAIL, its pass XPASS."""
    ctx.request = ctx.expected = ctx.actual = ""
    ctx.first = None
    ctx.notes = []
    start = time.monotonic()
    res = Result(check, "pass")
    try:
        ctx.need(*check.needs)
        check.fn(ctx)
    except Skip as e:
        res.status, res.detail = "skip", str(e)
    except Fail as e:
        res.status, res.detail = "fail", e.detail
    except BudgetExhausted as e:
        res.status, res.detail = "fail", str(e)
    except Exception as e:  # noqa: BLE001 - a broken check is a failed check, with the reason
        res.status, res.detail = "fail", f"{type(e).__name__}: {e}"
    res.request, res.expected, res.actual = ctx.request, ctx.expected, ctx.actual
    if res.status == "pass" and ctx.first:
        res.request, res.expected, res.actual = ctx.first
    if ctx.notes and res.status == "pass":
        res.detail = "; ".join(ctx.notes)
    res.detail = ctx.redact(res.detail)
    if check.pending and honour_pending:
        if res.status == "fail":
            res.status, res.detail = "xfail", f"expected to fail until {check.pending}: {res.detail}"
        elif res.status == "pass":
            res.status, res.detail = "xpass", f"passes now: remove `pending` ({check.pending}) from the check"
    res.seconds = time.monotonic() - start
    return res


REGISTRY: list[Check] = []


def check(id: str, title: str, needs: tuple[str, ...] = (), pending: str | None = None):
    """Register a check function under `id`."""
    def deco(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        if any(c.id == id for c in REGISTRY):
            raise ValueError(f"duplicate check id {id}")
        REGISTRY.append(Check(id, title, fn, needs, pending))
        return fn
    return deco
