"""The conformance tool itself (`python -m tests.conformance`, what `make conformance`
runs): it fails loudly against an unprotected server, keeps tokens out of its output,
refuses non-http(s) targets, stays within its request budget, writes JUnit XML, and
skips (saying why) what it cannot check without an issuer or seeded data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.conformance.__main__ import main


def run_tool(capsys, *args: str, env: dict[str, str] | None = None, monkeypatch=None) -> tuple[int, list[str]]:
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    code = main(list(args))
    out = capsys.readouterr()
    return code, (out.out + out.err).splitlines()


def status_of(lines: list[str], check_id: str) -> str:
    return next(line.split()[0] for line in lines if len(line.split()) > 1 and line.split()[1] == check_id)


def test_fails_against_the_unprotected_server(rig, capsys):
    """Pointed straight at the FHIR server (no gateway), the authentication checks fail and
    the exit status says so."""
    code, lines = run_tool(capsys, "--target", rig.sekmet.base_url, "--issuer", rig.issuer.issuer_url,
                           "--select", "auth/")
    assert code == 1, lines
    assert status_of(lines, "auth/no-token-Patient") == "FAIL"
    assert any("expected 401 missing_token | got 200 upstream" in line for line in lines), lines
    assert lines[-1].startswith("conformance: 0 passed,"), lines[-1]


def test_supplied_tokens_never_printed_and_skips_say_why(rig, capsys, monkeypatch, tmp_path):
    token = rig.issuer.mint("patient", aud=rig.base_url)
    junit = tmp_path / "junit.xml"
    code, lines = run_tool(capsys, "--target", rig.base_url, "--junit", str(junit),
                           env={"PATIENT_TOKEN": token, "ISSUER": "", "UPSTREAM": ""}, monkeypatch=monkeypatch)
    text = "\n".join(lines)
    assert code == 0, text
    assert token not in text and token[20:60] not in text, "a token reached the output"
    assert status_of(lines, "table/expired") == "SKIP"
    assert any(line.startswith("SKIP  table/clinician-type-search-unpinned") and "CLINICIAN_TOKEN" in line
               for line in lines)
    assert any(line.startswith("SKIP  links/search-names-the-gateway") and "UPSTREAM=" in line for line in lines)
    assert status_of(lines, "table/bad-signature") == "PASS"  # derived from the supplied token
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and int(suite.get("failures")) == 0
    assert len(suite.findall("testcase")) == sum(1 for line in lines if line[:5].strip() in
                                                 ("PASS", "FAIL", "SKIP", "XFAIL", "XPASS"))
    assert token not in junit.read_text()


@pytest.mark.parametrize("target", ["ftp://127.0.0.1/fhir", "file:///etc/passwd", "127.0.0.1:8080/fhir",
                                    "http://user:pw@127.0.0.1/fhir", ""])
def test_refuses_targets_that_are_not_http(capsys, target):
    code, lines = run_tool(capsys, "--target", target)
    assert code == 2 and "TARGET" in lines[-1], lines


def test_request_budget_is_a_hard_limit(rig, capsys):
    code, lines = run_tool(capsys, "--target", rig.base_url, "--issuer", rig.issuer.issuer_url,
                           "--max-requests", "4", "--select", "auth/")
    assert code == 1
    assert sum("request budget of 4 used up" in line for line in lines) >= 1, lines
