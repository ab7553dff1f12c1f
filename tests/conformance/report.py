"""Output of a conformance run: one line per check, a summary line, JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .checks import Result

LABELS = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP", "xfail": "XFAIL", "xpass": "XPASS"}


def line(r: Result) -> str:
    head = f"{LABELS[r.status]:5} {r.check.id:52} {r.request:60}"
    if r.status == "skip":
        return f"{head} {r.detail}"
    text = f"{head} expected {r.expected or '-'} | got {r.actual or '-'}"
    return f"{text} | {r.detail}" if r.detail and r.status != "pass" else text


def summary(results: list[Result], seconds: float, requests: int) -> str:
    count = {k: sum(1 for r in results if r.status == k) for k in LABELS}
    failed = count["fail"] + count["xpass"]
    return (f"conformance: {count['pass'] + count['xfail']} passed, {failed} failed, {count['skip']} skipped "
            f"({count['xfail']} expected failures of pending features, {count['xpass']} unexpected passes; "
            f"{len(results)} checks, {requests} requests, {seconds:.1f} s)")


def junit(results: list[Result], path: Path, target: str, seconds: float) -> None:
    suite = ET.Element("testsuite", name="fhir-smart-authz conformance", tests=str(len(results)),
                       failures=str(sum(r.failed for r in results)),
                       skipped=str(sum(r.status in ("skip", "xfail") for r in results)), time=f"{seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="target", value=target)
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"conformance.{r.check.group}", name=r.check.id,
                             time=f"{r.seconds:.3f}")
        message = f"{r.request}: expected {r.expected}, got {r.actual}"
        if r.failed:
            ET.SubElement(case, "failure", message=message).text = r.detail
        elif r.status in ("skip", "xfail"):
            ET.SubElement(case, "skipped", message=r.detail)
        ET.SubElement(case, "system-out").text = line(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
