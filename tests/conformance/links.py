"""Links stay behind the gateway: every absolute URL the FHIR server writes (paging
links, `fullUrl`, `Location`) must name the gateway, or a client follows it with its
token straight to the unprotected server. The server's base-URL setting does this
(HAPI: `hapi.fhir.server_address`; sekmet-fhir: `base_url`)."""

from __future__ import annotations

import re

from .checks import Ctx, check
from .data import SEEDED_TAG


def written_urls(doc: dict) -> list[str]:
    return [link.get("url", "") for link in doc.get("link") or []] + \
        [e["fullUrl"] for e in doc.get("entry") or [] if e.get("fullUrl")]


def next_link(doc: dict) -> str | None:
    return next((link.get("url") for link in doc.get("link") or [] if link.get("relation") == "next"), None)


@check("links/search-names-the-gateway", "paging links and fullUrls of a search name the gateway; next page works",
       needs=("seed", "own-seeded"))
def _search_links(ctx: Ctx) -> None:
    token = ctx.token("patient")
    first = ctx.expect(ctx.send("GET", f"/Observation?patient={ctx.own}&_count=1", token=token), 200)
    doc = first.json()
    elsewhere = [u for u in written_urls(doc) if not ctx.under_gateway(u)]
    ctx.require(not elsewhere, f"every link and fullUrl under {ctx.target.base}", f"{elsewhere[:2]}")
    nxt = next_link(doc)
    ctx.require(nxt is not None, "a next link (two Observations, _count=1)", "none")
    if ctx.server.paging_param:
        ctx.require(f"{ctx.server.paging_param}=" in nxt, f"a {ctx.server.name} next link with "
                    f"{ctx.server.paging_param}", nxt)
    page = ctx.expect(ctx.send("GET", token=token, url=ctx.via_gateway(nxt)), 200)
    ids = [i for i in page.resource_ids() if i.startswith("Observation/")]
    ctx.require(len(ids) == 1 and ids[0] not in first.resource_ids(), "the second Observation",
                f"{page.resource_ids()}")


@check("links/create-location-names-the-gateway", "Location of a create names the gateway; it reads back",
       needs=("writes", "own-seeded"))
def _create_location(ctx: Ctx) -> None:
    token = ctx.token("clinician")
    obs = {"resourceType": "Observation", "status": "final", "meta": {"tag": [dict(SEEDED_TAG)]},
           "code": {"text": "conformance: Location check"}, "subject": {"reference": f"Patient/{ctx.own}"}}
    created = ctx.expect(ctx.send("POST", "/Observation", token=token, body=obs), 201)
    location = created.headers.get("location", "")
    shape = re.escape(ctx.target.base) + r"/Observation/[A-Za-z0-9\-.]{1,64}(/_history/[^/?]+)?$"
    ctx.require(ctx.under_gateway(location) and re.match(shape, ctx.via_gateway(location)) is not None,
                f"Location {ctx.target.base}/Observation/<id>[/_history/<v>]", repr(location))
    url = ctx.via_gateway(location)
    instance = url.split("/_history/")[0]
    ctx.expect(ctx.send("GET", token=token, url=instance), 200)
    ctx.expect(ctx.send("DELETE", token=token, url=instance), (200, 204))  # ours: clean up
