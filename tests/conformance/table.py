"""The black-box part of the e2e table (tests/e2e/cases.py) as conformance checks:
the rows on the rig's `main` listener that do not depend on the rig's own plugin
configuration (`Case.rig_only`). What the rig asserts from the inside (the audit
record, what reached the upstream) is left out; what any client sees is kept:
the status, who answered (the filter's reason code, or the server), the
WWW-Authenticate error and the OperationOutcome of a denial."""

from __future__ import annotations

from typing import Any

from tests.e2e.cases import CASES, Case

from .checks import Check, Ctx, Skip
from .data import SEEDED_IDS
from .tokens import Unavailable


def black_box(case: Case) -> bool:
    return case.listener == "main" and case.rig_only is None


def mutating(case: Case) -> bool:
    """Would the request change data if the gateway let it through?"""
    if case.method in ("PUT", "PATCH", "DELETE"):
        return True
    if "$export" in case.path:  # a kick-off starts a job on the server
        return True
    if case.method != "POST" or case.path.split("?")[0].endswith("/_search"):
        return False
    body = case.body if isinstance(case.body, dict) else {}
    if case.path == "" and body.get("resourceType") == "Bundle":
        return any(e.get("request", {}).get("method") != "GET" for e in body.get("entry") or [])
    return True


def names_seeded_instance(case: Case) -> bool:
    """Does the path name a resource of the data set (`Type/id`, also compartments)?"""
    segments = [s for s in case.path.split("?")[0].split("/") if s]
    return any(f"{t}/{i}" in SEEDED_IDS for t, i in zip(segments, segments[1:]))


def needs(case: Case) -> tuple[str, ...]:
    out: list[str] = []
    reaches_server = case.upstream if case.upstream is not None else 200 <= case.status_first < 300
    if mutating(case):
        out.append("writes")
    if reaches_server and names_seeded_instance(case):
        out += ["seed", "own-seeded"]
    return tuple(out)


def token_for(ctx: Ctx, spec: Any) -> str | None:
    if spec is None:
        return None
    if isinstance(spec, tuple):
        profile, claims = spec
        return ctx.token(profile, **claims)
    try:
        return ctx.tokens.broken(spec)
    except Unavailable as e:
        raise Skip(str(e)) from None


def table_check(case: Case) -> Check:
    def fn(ctx: Ctx) -> None:
        token = token_for(ctx, case.token)
        reply = ctx.send(case.method, ctx.localise(case.path), token=token, headers=case.headers,
                         body=ctx.localise(case.body), content_type=case.content_type)
        ctx.expect(reply, case.status, None if case.allowed else case.reason, www=case.www,
                   oo_code=case.oo_code, oo_diag=case.oo_diag)

    return Check(f"table/{case.id}", f"e2e table row {case.id}", fn, needs(case))


TABLE: list[Check] = [table_check(c) for c in CASES if black_box(c)]
