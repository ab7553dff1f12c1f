"""Docs agree with live output (issue 20): the audit record example of docs/audit-and-metrics.md is
valid against the published schema and has exactly the members of a live record of the same
request (a patient reading their own Patient through the rig's main listener)."""

from __future__ import annotations

import json
import re

from .cases import P
from .rig import REPO, check_audit_record
from .tokens import make_token


def documented_record() -> dict:
    text = (REPO / "docs" / "audit-and-metrics.md").read_text()
    block = re.search(r'```json\n(\{"response_code".*?)\n```', text, re.S)
    assert block, "the audit record example is missing from docs/audit-and-metrics.md"
    return json.loads(block.group(1))


def shape(record: dict) -> dict:
    """Member names, and those of the nested objects."""
    return {k: sorted(v) if isinstance(v, dict) else type(v).__name__ for k, v in record.items()}


def test_audit_record_example_matches_live_output(rig):
    documented = check_audit_record(documented_record())
    resp = rig.request("GET", "/Patient/pat-a", token=make_token(rig, P))
    assert resp.status == 200, resp.body
    live = resp.audit
    assert shape(documented) == shape(live), (documented, live)
    for key in ("action", "decision", "interaction", "outcome", "reason", "subtype", "type", "schema",
                "filter_version", "required_scopes", "method", "path", "status"):
        assert documented[key] == live[key], key
