"""What the checks know about FHIR servers behind the gateway. The security checks
are the same for every server; only the shape of what a server writes differs:

- paging: HAPI FHIR pages with a system-level link `[base]?_getpages=<search id>&_getpagesoffset=N`
  (the filter decides it as paging: a response check under patient/ scopes), sekmet-fhir and
  most others repeat the type search with an offset (`[base]/Observation?...&_offset=N`, decided
  like the first page);
- `Location` of a create: `[base]/Type/<id>/_history/<version>` (HAPI: numeric ids);
- search parameters: HAPI answers an unknown search parameter with 400 (its default
  strict handling), sekmet-fhir ignores it and adds a warning OperationOutcome entry, unless
  the request says `Prefer: handling=strict` (this gateway sends it with every search whose
  allow rests on a parameter, e.g. a patient app's): then 400 too.

The profile is picked from the CapabilityStatement's `software.name` (`/metadata`,
public through the filter) or given with `--server`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerProfile:
    name: str
    paging_param: str | None  # a parameter every next link carries, None = no expectation
    unknown_param_statuses: tuple[int, ...]  # answers to an unknown search parameter


HAPI = ServerProfile("hapi", "_getpages", (400,))
SEKMET = ServerProfile("sekmet", "_offset", (200, 400))
GENERIC = ServerProfile("generic", None, (200, 400))
PROFILES = {p.name: p for p in (HAPI, SEKMET, GENERIC)}


def detect(capability_statement: dict | None) -> ServerProfile:
    software = str(((capability_statement or {}).get("software") or {}).get("name", "")).lower()
    if "hapi" in software:
        return HAPI
    if "sekmet" in software:
        return SEKMET
    return GENERIC
