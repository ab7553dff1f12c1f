#!/usr/bin/env python3
"""Seeds the fuzz corpora from the test tables (run by `make fuzz`).

Reads the decision corpus (tests/corpus/: each row's request, body, scope
and bearer token), the request rows, bodies and scope strings left in
core/tests, and the reference tokens of tests/fixtures, and writes one file
per seed into fuzz/corpus/<target>/ (kept out of git; libFuzzer adds its
finds there).
"""

import hashlib
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get"]

ROW = re.compile(r'row\("(/[^"]*|)", "([A-Z]+)", (?:&?format!\()?"((?:[^"\\]|\\.)*)"')
CASE = re.compile(r'(?:case|row)\("([A-Z]+)", "(/fhir[^"]*)"')
RAW = re.compile(r'r#"(.*?)"#', re.S)
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
SCOPE = re.compile(r"^(?:(?:patient|user|system)/\S+|openid|fhirUser|launch\S*)( \S+)*$")


def unescape(s: str) -> str:
    return s.encode().decode("unicode_escape", errors="ignore")


def write(target: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main() -> None:
    texts = [p.read_text() for p in (ROOT / "core" / "tests").rglob("*.rs")]
    paths, forms, bodies, scopes = set(), set(), set(), set()
    for t in texts:
        for base, method, path in ROW.findall(t):
            paths.add((method, unescape(path)))
        for method, path in CASE.findall(t):
            paths.add((method, unescape(path)))
        for raw in RAW.findall(t):
            if raw.lstrip().startswith(("{", "[")):
                bodies.add(raw)
        for q in QUOTED.findall(t):
            q = unescape(q)
            if "=" in q and "{" not in q and "/" not in q[:1] and len(q) < 300:
                forms.add(q)
            if SCOPE.match(q):
                scopes.add(q)
    tokens = set()
    for f in (ROOT / "tests" / "corpus").glob("*/*.jsonl"):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            paths.add((row["method"], row["path"]))
            body = row.get("body")
            if isinstance(body, str):
                forms.add(body)
            elif body is not None:
                bodies.add(json.dumps(body))
            scope = (row.get("claims") or {}).get("scope")
            if isinstance(scope, str):
                scopes.add(scope)
            auth = (row.get("headers") or {}).get("authorization")
            if isinstance(auth, str) and auth.startswith("Bearer "):
                tokens.add(auth[len("Bearer "):])
    for t in tokens:
        write("jose", t.encode())
    for method, path in paths:
        m = bytes([METHODS.index(method) if method in METHODS else 0])
        write("classify_request", m + path.encode())
        write("classify_request", m + (path + "\ncontent-type: application/x-www-form-urlencoded").encode())
        if "?" in path:
            write("form_body", path.split("?", 1)[1].encode())
    for f in forms:
        write("form_body", f.encode())
    for b in bodies:
        write("bodies", b.encode())
    for s in scopes:
        write("scopes", s.encode())
    refs = json.loads((ROOT / "tests" / "fixtures" / "keys" / "reference_tokens.json").read_text())
    for r in refs:
        write("jose", r["token"].encode())
    for name in ("jwks.json", "jwks_mixed.json", "jwks_rotated.json"):
        write("jose", (ROOT / "tests" / "fixtures" / "keys" / name).read_bytes())
    for target in ("classify_request", "form_body", "scopes", "jose", "bodies"):
        n = len(list((CORPUS / target).iterdir())) if (CORPUS / target).exists() else 0
        print(f"fuzz seeds: {target}: {n} files")


if __name__ == "__main__":
    main()
