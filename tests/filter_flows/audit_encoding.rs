//! `audit.encoding`: the record as a Struct or JSON text, the property declared once per root.

use super::*;

/// Configure a root with `cfg` as `on_configure` does (declaring lazily
/// through `resolve_audit_encoding`), run one allowed read, and return the
/// audit property's bytes, the encoding chosen and how often the property was
/// declared.
fn audit_bytes_for(cfg: &[u8]) -> (Vec<u8>, AuditEncoding, usize) {
    let factory = |_c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        (Box::new(tokens()), Box::new(scripted_engine(false, false)))
    };
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    let mut root = Root::default();
    let mut declared = None;
    let mut declares = 0;
    let mut declare = || -> Result<(), HostError> {
        declares += 1;
        Ok(())
    };
    assert!(root.configure_with(&h, Some(cfg), &factory, &mut |c| {
        resolve_audit_encoding(&h, c, &mut declared, &mut declare)
    }));
    let shared = root.shared.clone().unwrap();
    let encoding = shared.audit_encoding;
    let mut s = Stream::new(shared);
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    let bytes = h.state.borrow().properties["fhir_smart_authz_audit"].clone();
    (bytes, encoding, declares)
}

#[test]
fn audit_encoding_json_writes_the_struct_modes_record_as_json_text() {
    let (struct_bytes, struct_enc, struct_declares) = audit_bytes_for(b"{}");
    assert_eq!(struct_enc, AuditEncoding::Struct);
    assert_eq!(struct_declares, 1, "struct mode declares the property");
    let (json_bytes, json_enc, json_declares) =
        audit_bytes_for(br#"{"audit":{"encoding":"json"}}"#);
    assert_eq!(json_enc, AuditEncoding::Json);
    assert_eq!(json_declares, 0, "json mode never declares the property");
    // The JSON text is the record itself, compact serde_json text…
    let record: Value = serde_json::from_slice(&json_bytes).unwrap();
    assert_eq!(json_bytes, record.to_string().into_bytes());
    assert_eq!(record["subtype"], "read");
    assert_eq!(record["outcome"], "0");
    // …and exactly what struct mode serialized as a google.protobuf.Struct.
    assert_eq!(encode_struct(&record), struct_bytes);
}

#[test]
fn audit_encoding_is_declared_once_per_root_and_never_contradicts_a_declaration() {
    let h = FakeHost::new(NOW_MS);
    let json_cfg = Config::from_json(br#"{"audit":{"encoding":"json"}}"#).unwrap();
    let struct_cfg = Config::from_json(b"{}").unwrap();
    let ok = || -> Result<(), HostError> { Ok(()) };
    let refused = || -> Result<(), HostError> { Err(HostError::NotFound) };
    // (configs in order, declare outcome, expected encodings, declare calls)
    let cases: &[(&[&Config], bool, &[AuditEncoding], usize)] = &[
        (&[&json_cfg], true, &[AuditEncoding::Json], 0),
        (&[&struct_cfg], true, &[AuditEncoding::Struct], 1),
        (
            &[&json_cfg, &struct_cfg],
            true,
            &[AuditEncoding::Json, AuditEncoding::Struct],
            1,
        ),
        // Declared as Struct: a later "json" config stays Struct (JSON text
        // would not parse as the declared Struct).
        (
            &[&struct_cfg, &json_cfg, &struct_cfg],
            true,
            &[
                AuditEncoding::Struct,
                AuditEncoding::Struct,
                AuditEncoding::Struct,
            ],
            1,
        ),
        // Host refuses: JSON text, asked once.
        (
            &[&struct_cfg, &struct_cfg],
            false,
            &[AuditEncoding::Json, AuditEncoding::Json],
            1,
        ),
    ];
    for (i, (configs, accept, want, want_calls)) in cases.iter().enumerate() {
        let mut declared = None;
        let mut calls = 0;
        let mut declare = || {
            calls += 1;
            if *accept {
                ok()
            } else {
                refused()
            }
        };
        let got: Vec<AuditEncoding> = configs
            .iter()
            .map(|c| resolve_audit_encoding(&h, c, &mut declared, &mut declare))
            .collect();
        assert_eq!(&got, want, "case {i}");
        assert_eq!(calls, *want_calls, "case {i}");
    }
}
