"""`make conformance TARGET=<fhir base URL> [ISSUER=<url>] [UPSTREAM=<url>]`: the
black-box e2e table and the Inferno-style resource-server checks against an already
running gateway. One line per check, a summary line, JUnit XML, exit status 1 on
any failure (2 on a usage error).

Safe to point at real systems: read-only unless --allow-writes (and writes only touch
data this run seeded through UPSTREAM), at most --max-requests requests at --rate per
second, tokens only from the environment and never printed in full, only http(s) targets.

    python -m tests.conformance --target http://localhost:10000/fhir \\
        --issuer http://localhost:8081 --upstream http://localhost:8080/fhir
Environment: TARGET, ISSUER, UPSTREAM, PATIENT_TOKEN, CLINICIAN_TOKEN, BACKEND_TOKEN,
ALLOW_WRITES=1, JUNIT=<path>, CONFORMANCE_SERVER=auto|hapi|sekmet|generic.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .checks import Ctx, run
from .data import OWN_PATIENT, SeedRefused, seed
from .http import Redactor, Target, validated_base
from .registry import CHECKS
from .report import junit, line, summary
from .servers import PROFILES, detect
from .tokens import PROFILES as TOKEN_PROFILES, Tokens


def parse(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="make conformance", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default=env("TARGET"), help="the FHIR base URL through the gateway (TARGET)")
    p.add_argument("--issuer", default=env("ISSUER") or None, help="the demo token issuer (ISSUER)")
    p.add_argument("--upstream", default=env("UPSTREAM") or None,
                   help="the FHIR server's direct base URL, to seed test data (UPSTREAM)")
    p.add_argument("--allow-writes", action="store_true", default=env("ALLOW_WRITES", "") not in ("", "0"),
                   help="run checks that write (only on data this run seeded) (ALLOW_WRITES=1)")
    p.add_argument("--junit", default=env("JUNIT") or None, help="write JUnit XML here (JUNIT)")
    p.add_argument("--max-requests", type=int, default=int(env("MAX_REQUESTS", "600")))
    p.add_argument("--rate", type=float, default=float(env("RATE", "20")), help="requests per second at most")
    p.add_argument("--server", choices=["auto", *PROFILES], default=env("CONFORMANCE_SERVER", "auto"),
                   help="what the FHIR server behind the gateway is (default: from /metadata)")
    p.add_argument("--patient", default=env("PATIENT_ID") or None,
                   help=f"context patient for minted tokens (default {OWN_PATIENT}, or the PATIENT_TOKEN's)")
    p.add_argument("-k", "--select", default=env("SELECT") or None, help="only checks whose id contains this")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    checks = [c for c in CHECKS if not args.select or args.select in c.id]
    if args.list:
        for c in checks:
            print(f"{c.id:55} {c.title}" + (f"  [pending: {c.pending}]" if c.pending else ""))
        return 0
    try:
        target = Target(args.target or "", max_requests=args.max_requests, rate=args.rate)
        issuer = validated_base(args.issuer, "ISSUER") if args.issuer else None
        upstream = validated_base(args.upstream, "UPSTREAM") if args.upstream else None
    except ValueError as e:
        print(f"conformance: {e}", file=sys.stderr)
        return 2
    redact = Redactor()
    tokens = Tokens(issuer, {p: os.environ.get(f"{p.upper()}_TOKEN", "") for p in TOKEN_PROFILES}, redact)
    if not issuer and not tokens.supplied:
        print("conformance: no tokens: give ISSUER=<demo issuer> or PATIENT_TOKEN/CLINICIAN_TOKEN/BACKEND_TOKEN "
              "(only checks without a token will run)", file=sys.stderr)
    own = args.patient or tokens.patient_of_supplied() or OWN_PATIENT
    start = time.monotonic()
    metadata = target.request("GET", "/metadata")
    server = PROFILES[args.server] if args.server != "auto" else detect(metadata.json_or_none())
    seeded = False
    if upstream:
        try:
            seed(upstream, check_foreign=True)
            seeded = True
        except SeedRefused as e:
            print(f"conformance: not seeding: {e}", file=sys.stderr)
            return 2
    ctx = Ctx(target, tokens, redact, server, seeded=seeded, allow_writes=args.allow_writes, upstream=upstream,
              own=own)
    print(f"conformance against {target.base} (server: {server.name}; tokens: "
          f"{'issuer ' + issuer if issuer else 'supplied ' + ','.join(sorted(tokens.supplied)) or 'none'}; "
          f"data: {'seeded through ' + upstream if seeded else 'not seeded (no UPSTREAM)'}; "
          f"writes: {'allowed' if args.allow_writes else 'off'}; patient {own})", flush=True)
    results = []
    for c in checks:
        r = run(ctx, c)
        results.append(r)
        print(redact(line(r)), flush=True)
    seconds = time.monotonic() - start
    print(summary(results, seconds, target.sent))
    if args.junit:
        junit(results, Path(args.junit), target.base, seconds)
        print(f"JUnit XML: {args.junit}")
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
