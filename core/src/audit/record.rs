//! The record itself: one JSON object per request.

use super::identity::Identity;
use super::settings::AuditConfig;
use crate::decision::{BulkStep, Decision, LabelFacts, Reason, Verdict};
use crate::fhir::{Interaction, InteractionKind};
use serde_json::Value;

/// What the filter knows about one request when it writes the record.
#[derive(Debug, Clone)]
pub struct AuditInput<'a> {
    pub method: &'a str,
    /// `x-request-id`, if present.
    pub request_id: Option<&'a str>,
    pub decision: &'a Decision,
    pub identity: Option<&'a Identity>,
    /// `config.enforce`.
    pub enforced: bool,
    /// Unix time in milliseconds (injected clock).
    pub now_ms: u64,
    /// A response obligation check: `Some(Ok)` passed, `Some(Err(why))` failed.
    pub obligation_result: Option<Result<(), String>>,
    /// The status a failed response check answers
    /// (`responses.obligation_denied_status`).
    pub obligation_denied_status: u16,
}

/// What Envoy knows once the response is sent. With `audit.encoding:
/// "line"` the record is the whole access-log line, so it carries what the
/// access log's own fields used to (`%RESPONSE_CODE%`, `%DURATION%`,
/// `%START_TIME%`, `%REQ(:METHOD)%`, the path without its query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFacts<'a> {
    pub method: &'a str,
    /// The request path as the client sent it; the query is dropped (it may
    /// hold PHI, and the record never contains query values).
    pub path: &'a str,
    /// The status sent downstream; `0` when none was (as `%RESPONSE_CODE%`).
    pub response_code: u64,
    /// From the start of the request to the end of the response, in ms.
    pub duration_ms: u64,
    /// When Envoy received the request, Unix ms.
    pub start_ms: u64,
}

/// Add `method`, `path`, `response_code`, `duration_ms` and `start_time` to
/// the JSON text of a record made by [`record_json`] (after its other keys).
pub fn add_log_facts(record: &mut Vec<u8>, facts: &LogFacts<'_>) {
    if record.last() != Some(&b'}') {
        return;
    }
    record.pop();
    let mut o = JsonObject {
        out: record,
        first: false,
    };
    add_request_facts(&mut o, facts.method, facts.path);
    o.num("response_code", facts.response_code);
    o.num("duration_ms", facts.duration_ms);
    o.time("start_time", facts.start_ms);
    record.push(b'}');
}

/// `audit.encoding: "fields"`: the members of a record made by
/// [`record_json`] with `method` and `path` added, without the enclosing
/// braces. The access log's text format supplies the braces and
/// `response_code`, `duration_ms` and `start_time` (`%RESPONSE_CODE%`,
/// `%DURATION%`, `%START_TIME%`: the values `"line"` reads from Envoy at log
/// time), so the line is the same object, rendered without the VM.
pub fn record_fields(mut record: Vec<u8>, method: &str, path: &str) -> Vec<u8> {
    if record.first() != Some(&b'{') || record.last() != Some(&b'}') {
        return record;
    }
    record.pop();
    let mut o = JsonObject {
        out: &mut record,
        first: false,
    };
    add_request_facts(&mut o, method, path);
    record.remove(0);
    record
}

/// `method` and `path` (without the query: it may hold PHI, and the record
/// never contains query values).
fn add_request_facts(o: &mut JsonObject<'_>, method: &str, path: &str) {
    o.str("method", method);
    o.str("path", path.split('?').next().unwrap_or(""));
}

/// AuditEvent.subtype: the FHIR `restful-interaction` code as IHE BALP uses
/// it (`search` and `history` without their level; paging continues a
/// `search`), and `smart-configuration` for the SMART discovery document,
/// which has no FHIR code.
pub fn subtype(it: &Interaction) -> &'static str {
    match it.kind {
        InteractionKind::Paging => "search",
        kind => kind.as_str(),
    }
}

/// AuditEvent.action (C/R/U/D/E) as IHE BALP assigns it: searches and
/// operations are E (execute), reads and history R.
pub fn action(kind: InteractionKind) -> &'static str {
    match kind {
        InteractionKind::Create => "C",
        InteractionKind::Read
        | InteractionKind::Vread
        | InteractionKind::History
        | InteractionKind::Capabilities
        | InteractionKind::SmartConfiguration => "R",
        InteractionKind::Update | InteractionKind::Patch => "U",
        InteractionKind::Delete => "D",
        InteractionKind::Search
        | InteractionKind::Paging
        | InteractionKind::Operation
        | InteractionKind::Batch
        | InteractionKind::Transaction => "E",
    }
}

/// Fallback action from the HTTP method when the request was not classified.
fn action_from_method(method: &str) -> &'static str {
    match method {
        "POST" => "C",
        "PUT" | "PATCH" => "U",
        "DELETE" => "D",
        _ => "R",
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T13:49:53.123Z`.
pub fn rfc3339_ms(now_ms: u64) -> String {
    let mut out = Vec::with_capacity(24);
    push_rfc3339_ms(&mut out, now_ms);
    // Digits and separators only: always UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// [`rfc3339_ms`] appended to `out` (twice per request: `recorded`,
/// `start_time`; no temporary `String`).
fn push_rfc3339_ms(out: &mut Vec<u8>, now_ms: u64) {
    let secs = now_ms / 1000;
    let ms = now_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (H. Hinnant), for days since 1970-01-01 (non-negative).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    // Written digit by digit; the same text as
    // `format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")`.
    push_decimal(out, y, 4);
    for (sep, v, w) in [
        (b'-', m, 2),
        (b'-', d, 2),
        (b'T', h, 2),
        (b':', mi, 2),
        (b':', s, 2),
        (b'.', ms, 3),
    ] {
        out.push(sep);
        push_fixed(out, v, w);
    }
    out.push(b'Z');
}

/// `v` (below `10^width`: a month, day, hour, minute, second or
/// millisecond) in exactly `width` digits, pushed one by one (no buffer
/// or slice copy for two or three digits).
fn push_fixed(out: &mut Vec<u8>, v: u64, width: u32) {
    for i in (0..width).rev() {
        out.push(b'0' + (v / 10u64.pow(i) % 10) as u8);
    }
}

/// `v` in decimal, zero-padded to at least `width` digits (no `format!`
/// machinery or temporary `String`: numbers are written on every request).
fn push_decimal(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut n = v;
    let mut len = 0;
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 && len >= width {
            break;
        }
    }
    out.extend_from_slice(digits.get(digits.len() - len..).unwrap_or(&digits));
}

/// A JSON object being written: compact, members in the order written
/// (callers write keys sorted, as `serde_json` prints a map).
struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn open(out: &'a mut Vec<u8>) -> JsonObject<'a> {
        out.push(b'{');
        JsonObject { out, first: true }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    /// Keys are ASCII literals: nothing to escape.
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        // Pushed, not copied: a slice copy per key costs more than two bytes.
        self.out.push(b'"');
        self.out.push(b':');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        json_string(self.out, value);
    }

    /// A string value written in parts: the same text as [`Self::str`] of
    /// their concatenation (escaping is per character), without building it.
    fn str_parts(&mut self, key: &str, parts: &[&str]) {
        self.key(key);
        self.out.push(b'"');
        for p in parts {
            escaped_str_body(self.out, p);
        }
        self.out.push(b'"');
    }

    /// A time (Unix ms) as an RFC 3339 string ([`rfc3339_ms`]), written in place.
    fn time(&mut self, key: &str, ms: u64) {
        self.key(key);
        self.out.push(b'"');
        push_rfc3339_ms(self.out, ms);
        self.out.push(b'"');
    }

    fn num(&mut self, key: &str, value: u64) {
        self.key(key);
        push_decimal(self.out, value, 1);
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn strs<'s>(&mut self, key: &str, items: impl Iterator<Item = &'s str>) {
        self.key(key);
        self.out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            json_string(self.out, item);
        }
        self.out.push(b']');
    }

    /// A nested object under `key`.
    fn object(&mut self, key: &str) -> JsonObject<'_> {
        self.key(key);
        JsonObject::open(self.out)
    }
}

/// A JSON string, escaped exactly as `serde_json` prints one.
fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escaped_str_body(out, s);
    out.push(b'"');
}

/// The inside of a JSON string (no quotes), escaped as `serde_json` does.
/// Almost every value needs no escape (`serde_json` escapes only `"`, `\`
/// and control characters): copied at once; anything else goes through
/// `serde_json` itself.
fn escaped_str_body(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let mut quoted = Vec::with_capacity(s.len() + 8);
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut quoted, s);
    // Without the quotes serde_json put around it.
    let inner = quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default();
    out.extend_from_slice(inner);
}

/// Whether `s` holds a byte `serde_json` escapes (`"`, `\\`, below 0x20).
/// Eight bytes at a time: a byte `x` of `v` is zero (after the XOR) or below
/// `n` exactly when `(v - n·0x01…) & !v & 0x80…` is nonzero (the classic
/// "has less" bit trick; exact as a yes/no, which is all this needs).
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGHS != 0;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(c);
        let v = u64::from_ne_bytes(word);
        if below(v, 0x20)
            || below(v ^ (ONES * u64::from(b'"')), 1)
            || below(v ^ (ONES * u64::from(b'\\')), 1)
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// `entity`, keys sorted.
fn entity(
    o: &mut JsonObject<'_>,
    it: Option<&Interaction>,
    identity: Option<&Identity>,
    bulk: Option<&BulkStep>,
) {
    let mut e = o.object("entity");
    let Some(it) = it else {
        e.close();
        return;
    };
    if let Some(b) = bulk {
        e.str("bulk", b.action.as_str());
    }
    if let Some(c) = &it.compartment {
        e.str_parts("compartment", &[&c.resource_type, "/", &c.id]);
    }
    if !it.entries.is_empty() {
        e.num("entries", it.entries.len() as u64);
    }
    if let Some(id) = &it.id {
        e.str("id", id);
    }
    if let Some(job) = bulk.and_then(|b| b.job.as_deref()) {
        e.str("job", job);
    }
    if let Some(op) = &it.operation {
        e.str("operation", op);
    }
    if let Some(p) = identity.and_then(|i| i.patient.as_deref()) {
        e.str_parts("patient", &["Patient/", p]);
    }
    if !it.search.is_empty() {
        // Parameter names with modifier and chain, never their values.
        let names: Vec<String> = it
            .search
            .iter()
            .map(|p| {
                let mut n = p.name.clone();
                if let Some(m) = &p.modifier {
                    n.push(':');
                    n.push_str(m);
                }
                if let Some(c) = &p.chain {
                    n.push('.');
                    n.push_str(c);
                }
                n
            })
            .collect();
        e.strs("query", names.iter().map(String::as_str));
    }
    if let (Some(t), Some(id)) = (&it.resource_type, &it.id) {
        e.str_parts("reference", &[t, "/", id]);
    }
    if let Some(t) = &it.resource_type {
        e.str("resource_type", t);
    }
    if !it.types.is_empty() {
        e.strs("types", it.types.iter().map(String::as_str));
    }
    if let Some(v) = &it.version {
        e.str("version", v);
    }
    e.close();
}

/// `labels` (`policy.labels`), keys sorted: labels and counts, never data.
fn labels(o: &mut JsonObject<'_>, l: &LabelFacts) {
    let mut m = o.object("labels");
    if l.break_glass {
        m.bool("break_glass", true);
    }
    if !l.hidden.is_empty() {
        m.strs("hidden", l.hidden.iter().map(String::as_str));
    }
    if !l.purpose_of_use.is_empty() {
        m.strs(
            "purpose_of_use",
            l.purpose_of_use.iter().map(String::as_str),
        );
    }
    if let Some(n) = l.withheld {
        m.num("withheld", n);
    }
    if !l.withheld_labels.is_empty() {
        m.strs(
            "withheld_labels",
            l.withheld_labels.iter().map(String::as_str),
        );
    }
    m.close();
}

/// `agent`, keys sorted.
fn agent(o: &mut JsonObject<'_>, identity: Option<&Identity>) {
    let mut a = o.object("agent");
    if let Some(b) = identity.and_then(|i| i.binding) {
        a.str("binding", b);
    }
    if let Some(t) = identity.and_then(|i| i.binding_thumbprint.as_deref()) {
        a.str("binding_thumbprint", t);
    }
    if let Some(c) = identity.and_then(|i| i.client_id.as_deref()) {
        a.str("client_id", c);
    }
    a.bool("requestor", true);
    if let Some(u) = identity.and_then(Identity::user) {
        a.str("user", &u);
    }
    a.close();
}

/// Build the audit record.
pub fn record(settings: &AuditConfig, input: &AuditInput<'_>) -> Value {
    serde_json::from_slice(&record_json(settings, input)).unwrap_or(Value::Null)
}

/// The audit record as compact JSON text, keys sorted: exactly what
/// `serde_json` prints for [`record`]'s object, written directly (no
/// intermediate map: this runs on every request).
pub fn record_json(settings: &AuditConfig, input: &AuditInput<'_>) -> Vec<u8> {
    let d = input.decision;
    let it = d.interaction.as_ref();
    let mut decision = match d.decision {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    };
    let mut reason = d.reason.as_str();
    let mut message = d.message.as_str();
    let mut status = d.status;
    if let Some(Err(why)) = &input.obligation_result {
        decision = "deny";
        reason = Reason::ResponseNotPermitted.as_str();
        message = why;
        status = input.obligation_denied_status;
    }
    // The record and, in `"line"` encoding, the log facts added to it.
    let mut out = Vec::with_capacity(1024);
    let mut r = JsonObject::open(&mut out);
    let action = it
        .map(|i| action(i.kind))
        .unwrap_or_else(|| action_from_method(input.method));
    r.str("action", action);
    agent(&mut r, input.identity);
    r.str("decision", decision);
    if !d.denied_entries.is_empty() {
        r.key("denied_entries");
        r.out.push(b'[');
        for (i, e) in d.denied_entries.iter().enumerate() {
            if i > 0 {
                r.out.push(b',');
            }
            push_decimal(r.out, e.index as u64, 1);
        }
        r.out.push(b']');
    }
    r.bool("enforced", input.enforced);
    entity(&mut r, it, input.identity, d.bulk.as_ref());
    r.key("interaction");
    match it {
        Some(i) => json_string(r.out, i.kind.as_str()),
        None => json_string(r.out, "unknown"),
    }
    if let Some(l) = &d.labels {
        labels(&mut r, l);
    }
    r.str("message", message);
    if !d.obligations.is_empty() {
        let obligation = match &input.obligation_result {
            None => "pending",
            Some(Ok(())) => "passed",
            Some(Err(_)) => "failed",
        };
        r.str("obligation", obligation);
    }
    r.str("outcome", if decision == "allow" { "0" } else { "4" });
    if let Some(jti) = input.identity.and_then(|i| i.jti.as_deref()) {
        r.str_parts("policy", &["urn:ietf:params:oauth:jti:", jti]);
    }
    r.str("reason", reason);
    r.time("recorded", input.now_ms);
    if let Some(rid) = input.request_id {
        r.str("request_id", rid);
    }
    r.strs(
        "required_scopes",
        d.required_scopes.iter().map(String::as_str),
    );
    if let Some(rw) = &d.rewrite {
        // Names only: the added parameters' values (a patient id, codes)
        // stay out of the record like every other parameter value.
        let mut m = r.object("rewrite");
        m.strs("added", rw.added.iter().map(String::as_str));
        m.strs("headers", rw.headers.iter().map(|(n, _)| n.as_str()));
        m.close();
    }
    r.str("source", &settings.source);
    r.num("status", u64::from(status));
    r.str("subtype", it.map(subtype).unwrap_or("unknown"));
    r.str("type", "rest");
    r.close();
    out
}

#[cfg(test)]
mod escape_tests {
    use super::*;

    #[test]
    fn json_string_is_serde_jsons() {
        for s in [
            "",
            "plain",
            "Patient/123",
            "quote \" and backslash \\",
            "tab\tnewline\ncr\r",
            "\u{0}\u{1f}\u{7f}",
            "é ü \u{2028} \u{fffd} 😀",
            "\\",
            "\"",
        ] {
            let mut ours = Vec::new();
            json_string(&mut ours, s);
            let theirs = serde_json::to_vec(s).unwrap_or_default();
            assert_eq!(ours, theirs, "{s:?}");
        }
    }

    #[test]
    fn needs_escape_is_the_byte_test() {
        let plain = b"abcdefghij0123456789 ~!#$%&'()*+,-./:;<=>?@[]^_`{|}\x7f\xc3\xa9\xff";
        for len in 0..plain.len() {
            for at in 0..=len {
                for b in 0..=255u8 {
                    let mut s = plain.get(..len).unwrap_or_default().to_vec();
                    s.insert(at, b);
                    let expected = s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
                    assert_eq!(needs_escape(&s), expected, "{s:?}");
                }
            }
            let s = plain.get(..len).unwrap_or_default();
            assert!(!needs_escape(s), "{s:?}");
        }
    }

    #[test]
    fn str_parts_is_the_concatenation() {
        let mut a = Vec::new();
        JsonObject::open(&mut a).str_parts("k", &["urn:x:", "a\"b\n", "/", "é"]);
        let mut b = Vec::new();
        JsonObject::open(&mut b).str("k", "urn:x:a\"b\n/é");
        assert_eq!(a, b);
    }

    #[test]
    fn kind_names_are_serdes() {
        for k in InteractionKind::ALL {
            let mut ours = Vec::new();
            json_string(&mut ours, k.as_str());
            assert_eq!(ours, serde_json::to_vec(&k).unwrap_or_default());
        }
    }
}
