//! Minimal protobuf encoder for `google.protobuf.Struct` from JSON, so the
//! audit record can be a Protobuf-typed property that Envoy's access log
//! renders as a nested JSON object. Pure.

use serde_json::{Map, Value};

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn len_delimited(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

// Encoding is two-pass (sizes, then one write into a buffer of the exact
// size): no intermediate buffer per nested message.

fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Tag + length prefix + payload of a length-delimited field (tags < 16).
fn field_len(payload: usize) -> usize {
    1 + varint_len(payload as u64) + payload
}

/// Encoded size of a `google.protobuf.Value`.
fn value_len(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 2,
        Value::Number(_) => 9,
        Value::String(s) => field_len(s.len()),
        Value::Object(m) => field_len(map_len(m)),
        Value::Array(items) => field_len(list_len(items)),
    }
}

fn list_len(items: &[Value]) -> usize {
    items.iter().map(|it| field_len(value_len(it))).sum()
}

fn entry_len(k: &str, v: &Value) -> usize {
    field_len(k.len()) + field_len(value_len(v))
}

fn map_len(m: &Map<String, Value>) -> usize {
    m.iter().map(|(k, v)| field_len(entry_len(k, v))).sum()
}

/// `google.protobuf.Value`.
fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => {
            tag(out, 1, 0);
            varint(out, 0);
        }
        Value::Number(n) => {
            tag(out, 2, 1);
            out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
        }
        Value::String(s) => len_delimited(out, 3, s.as_bytes()),
        Value::Bool(b) => {
            tag(out, 4, 0);
            varint(out, u64::from(*b));
        }
        Value::Object(m) => {
            tag(out, 5, 2);
            varint(out, map_len(m) as u64);
            encode_map(out, m);
        }
        Value::Array(items) => {
            tag(out, 6, 2);
            varint(out, list_len(items) as u64);
            for it in items {
                tag(out, 1, 2);
                varint(out, value_len(it) as u64);
                encode_value(out, it);
            }
        }
    }
}

fn encode_map(out: &mut Vec<u8>, m: &Map<String, Value>) {
    for (k, v) in m {
        tag(out, 1, 2);
        varint(out, entry_len(k, v) as u64);
        len_delimited(out, 1, k.as_bytes());
        tag(out, 2, 2);
        varint(out, value_len(v) as u64);
        encode_value(out, v);
    }
}

fn encode_top(m: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(map_len(m));
    encode_map(&mut out, m);
    out
}

/// Serialize a JSON object as `google.protobuf.Struct` (a non-object is
/// wrapped as `{"value": v}`).
pub fn encode_struct(v: &Value) -> Vec<u8> {
    match v {
        Value::Object(m) => encode_top(m),
        other => {
            let mut m = Map::new();
            m.insert("value".into(), other.clone());
            encode_top(&m)
        }
    }
}

/// Arguments of Envoy's `declare_property` foreign function
/// (`envoy.source.extensions.common.wasm.DeclarePropertyArguments`):
/// name=1, readonly=2, type=3 (Protobuf=3, String=1), schema=4, span=5
/// (DownstreamRequest=1).
pub fn declare_property_args(name: &str, protobuf_type_url: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    len_delimited(&mut out, 1, name.as_bytes());
    tag(&mut out, 3, 0);
    varint(&mut out, if protobuf_type_url.is_some() { 3 } else { 1 });
    if let Some(url) = protobuf_type_url {
        len_delimited(&mut out, 4, url.as_bytes());
    }
    tag(&mut out, 5, 0);
    varint(&mut out, 1);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_known_bytes() {
        // {"a": "b"} → field 1 entry{ key "a", value{ string "b" } }
        assert_eq!(
            encode_struct(&json!({"a": "b"})),
            vec![0x0a, 0x08, 0x0a, 0x01, b'a', 0x12, 0x03, 0x1a, 0x01, b'b']
        );
        // {"t": true, "n": null}: serde_json orders keys.
        assert_eq!(
            encode_struct(&json!({"t": true, "n": null})),
            vec![
                0x0a, 0x07, 0x0a, 0x01, b'n', 0x12, 0x02, 0x08, 0x00, //
                0x0a, 0x07, 0x0a, 0x01, b't', 0x12, 0x02, 0x20, 0x01
            ]
        );
        // number 1.0 → tag 0x11 + 8 bytes LE
        let mut expect = vec![0x0a, 0x0e, 0x0a, 0x01, b'x', 0x12, 0x09, 0x11];
        expect.extend_from_slice(&1.0f64.to_le_bytes());
        assert_eq!(encode_struct(&json!({"x": 1})), expect);
        // list ["a"] → Value{list_value{values[Value{string a}]}}
        assert_eq!(
            encode_struct(&json!({"l": ["a"]})),
            vec![
                0x0a, 0x0c, 0x0a, 0x01, b'l', 0x12, 0x07, 0x32, 0x05, 0x0a, 0x03, 0x1a, 0x01, b'a'
            ]
        );
    }

    /// The straightforward nested encoder the two-pass one replaced.
    fn reference_value(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        match v {
            Value::Null => out.extend_from_slice(&[0x08, 0x00]),
            Value::Number(n) => {
                out.push(0x11);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
            Value::String(s) => len_delimited(&mut out, 3, s.as_bytes()),
            Value::Bool(b) => out.extend_from_slice(&[0x20, u8::from(*b)]),
            Value::Object(m) => len_delimited(&mut out, 5, &reference_map(m)),
            Value::Array(items) => {
                let mut list = Vec::new();
                for it in items {
                    len_delimited(&mut list, 1, &reference_value(it));
                }
                len_delimited(&mut out, 6, &list);
            }
        }
        out
    }

    fn reference_map(m: &Map<String, Value>) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in m {
            let mut entry = Vec::new();
            len_delimited(&mut entry, 1, k.as_bytes());
            len_delimited(&mut entry, 2, &reference_value(v));
            len_delimited(&mut out, 1, &entry);
        }
        out
    }

    #[test]
    fn two_pass_matches_the_nested_encoding() {
        let long = "x".repeat(300);
        let huge = "y".repeat(20_000);
        let v = json!({
            "a": long, "b": [1, "s", null, true, {"k": [long.clone(), {"z": false}]}],
            "c": {"d": {"e": huge}, "f": []}, "g": {}, "h": 1.5e300, "i": -3
        });
        let Value::Object(m) = &v else { unreachable!() };
        assert_eq!(encode_struct(&v), reference_map(m));
        for n in [0u64, 1, 127, 128, 16383, 16384, u64::MAX] {
            let mut b = Vec::new();
            varint(&mut b, n);
            assert_eq!(varint_len(n), b.len(), "{n}");
        }
    }

    #[test]
    fn declare_args() {
        let a = declare_property_args("p", Some("t"));
        assert_eq!(
            a,
            vec![0x0a, 0x01, b'p', 0x18, 0x03, 0x22, 0x01, b't', 0x28, 0x01]
        );
    }
}
