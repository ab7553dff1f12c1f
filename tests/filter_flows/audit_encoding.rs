//! `audit.encoding`: the record as JSON text at log time (the default), its members ("fields"), a
//! Struct or JSON text at decision time; the property declared once per root.

use super::*;

/// Configure a root with `cfg` as `on_configure` does (declaring lazily
/// through `resolve_audit_encoding`), run one allowed read to its log
/// callback, and return the audit property's bytes, the encoding chosen and
/// how often the property was declared.
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
    let at_decision = h.state.borrow().properties.get(AUDIT).cloned();
    assert_eq!(
        at_decision.is_some(),
        encoding != AuditEncoding::Line,
        "written at decision time unless \"line\""
    );
    s.on_log(&h);
    let bytes = h.state.borrow().properties[AUDIT].clone();
    if let Some(first) = at_decision {
        assert_eq!(first, bytes, "on_log leaves a decision-time record alone");
    }
    (bytes, encoding, declares)
}

const AUDIT: &str = "fhir_smart_authz_audit";

/// The response facts the fake host offers to `on_log`: 200 after 2.5 ms.
fn responded(h: &FakeHost, code: u64, duration_ns: u64) {
    let mut st = h.state.borrow_mut();
    let props = &mut st.host_properties;
    props.insert("response.code".into(), code.to_le_bytes().to_vec());
    props.insert(
        "request.duration".into(),
        duration_ns.to_le_bytes().to_vec(),
    );
}

#[test]
fn audit_encoding_line_is_the_json_record_plus_the_response_written_at_log_time() {
    let (json_bytes, _, _) = audit_bytes_for(br#"{"audit":{"encoding":"json"}}"#);
    let factory = |_c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        (Box::new(tokens()), Box::new(scripted_engine(false, false)))
    };
    let h = host(
        "GET",
        "/fhir/Observation/o1?_elements=code&patient=p1",
        Some("Bearer good"),
        &[],
    );
    let mut root = Root::default();
    let mut declared = None;
    let mut declares = 0;
    let mut declare = || -> Result<(), HostError> {
        declares += 1;
        Ok(())
    };
    assert!(root.configure_with(
        &h,
        Some(br#"{"audit":{"encoding":"line"}}"#),
        &factory,
        &mut |c| resolve_audit_encoding(&h, c, &mut declared, &mut declare)
    ));
    assert_eq!(declares, 0, "line mode never declares the property");
    let shared = root.shared.clone().unwrap();
    assert_eq!(shared.audit_encoding, AuditEncoding::Line);
    let mut s = Stream::new(shared);
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    assert!(!h.state.borrow().properties.contains_key(AUDIT));
    responded(&h, 200, 2_500_000);
    h.state.borrow_mut().now_ms = NOW_MS + 7;
    h.reset_host_calls();
    s.on_log(&h);
    let bytes = h.state.borrow().properties[AUDIT].clone();
    let line: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(!bytes.contains(&b'\n'), "one line");
    // The decision-time record's text, then the log facts.
    let record_text = &json_bytes[..json_bytes.len() - 1];
    assert!(
        bytes.starts_with(record_text),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let mut want: Value = serde_json::from_slice(&json_bytes).unwrap();
    let o = want.as_object_mut().unwrap();
    o.insert("method".into(), json!("GET"));
    o.insert("path".into(), json!("/fhir/Observation/o1"));
    o.insert("response_code".into(), json!(200));
    o.insert("duration_ms".into(), json!(2));
    // Logged 7 ms after the decision, 2.5 ms after the request started.
    o.insert("start_time".into(), json!("2026-11-25T13:49:53.127Z"));
    assert_eq!(line, want);
    let calls = h.state.borrow().host_calls.clone();
    assert_eq!(
        calls.into_iter().collect::<Vec<_>>(),
        vec![("now_us", 1), ("property", 2), ("set_property", 1)],
        "on_log: two reads, the clock and one write"
    );
    // Logged once: a second log callback writes nothing.
    h.reset_host_calls();
    s.on_log(&h);
    assert_eq!(h.host_call_count(), 0);
}

#[test]
fn audit_encoding_fields_writes_the_members_at_decision_time_and_nothing_at_log_time() {
    let (json_bytes, _, _) = audit_bytes_for(br#"{"audit":{"encoding":"json"}}"#);
    let (fields, encoding, declares) = audit_bytes_for(br#"{"audit":{"encoding":"fields"}}"#);
    assert_eq!((encoding, declares), (AuditEncoding::Fields, 0));
    // The JSON record's members, then method and path: no braces (the
    // access-log format adds them with Envoy's response code, duration and
    // start time).
    let members = &json_bytes[1..json_bytes.len() - 1];
    let text = String::from_utf8(fields.clone()).unwrap();
    assert_eq!(
        text,
        format!(
            r#"{},"method":"GET","path":"/fhir/Observation/o1""#,
            String::from_utf8_lossy(members)
        )
    );
    // What the shipped access-log format prints is one JSON object.
    let line = format!(
        r#"{{"response_code":200,"duration_ms":2,"start_time":"2026-11-25T13:49:53.120Z",{text}}}"#
    );
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["decision"], "allow");
    // on_log reads nothing into the VM.
    let factory = |_c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        (Box::new(tokens()), Box::new(scripted_engine(false, false)))
    };
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    let mut root = Root::default();
    let mut declared = None;
    assert!(root.configure_with(
        &h,
        Some(br#"{"audit":{"encoding":"fields"}}"#),
        &factory,
        &mut |c| resolve_audit_encoding(&h, c, &mut declared, &mut || Ok(()))
    ));
    let mut s = Stream::new(root.shared.clone().unwrap());
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    h.reset_host_calls();
    s.on_log(&h);
    assert_eq!(h.host_call_count(), 0, "fields: no work at log time");
}

#[test]
fn audit_encoding_line_writes_nothing_for_a_request_the_filter_did_not_decide() {
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    responded(&h, 204, 1_000_000);
    let mut s = stream_with(Setup::default(), AuditEncoding::Line);
    s.on_log(&h);
    assert!(h.state.borrow().properties.is_empty());
    assert_eq!(h.host_call_count(), 0);
}

#[test]
fn audit_encoding_line_records_the_response_check_and_the_relayed_status() {
    for (body, obligation, decision, code) in [
        (
            r#"{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}"#,
            "passed",
            "allow",
            200,
        ),
        (
            r#"{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}"#,
            "failed",
            "deny",
            403,
        ),
    ] {
        let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
        let mut s = stream_with(
            Setup {
                obligations: true,
                ..Setup::default()
            },
            AuditEncoding::Line,
        );
        assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
        {
            let mut st = h.state.borrow_mut();
            st.call_response_headers = vec![(":status".into(), "200".into())];
            st.call_response_body = body.as_bytes().to_vec();
        }
        s.on_call_response(&h, 1, body.len());
        assert!(
            h.state.borrow().properties.is_empty(),
            "nothing before on_log"
        );
        responded(&h, code, 4_000_000);
        s.on_log(&h);
        let line = audit(&h);
        assert_eq!(line["obligation"], obligation);
        assert_eq!(line["decision"], decision);
        assert_eq!(line["response_code"], code);
        assert_eq!(
            h.state.borrow().host_calls["set_property"],
            1,
            "written once"
        );
    }
}

#[test]
fn audit_encoding_json_writes_the_struct_modes_record_as_json_text() {
    let (struct_bytes, struct_enc, struct_declares) =
        audit_bytes_for(br#"{"audit":{"encoding":"struct"}}"#);
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
    let line_cfg = Config::from_json(br#"{"audit":{"encoding":"line"}}"#).unwrap();
    let struct_cfg = Config::from_json(br#"{"audit":{"encoding":"struct"}}"#).unwrap();
    let ok = || -> Result<(), HostError> { Ok(()) };
    let refused = || -> Result<(), HostError> { Err(HostError::NotFound) };
    // (configs in order, declare outcome, expected encodings, declare calls)
    let cases: &[(&[&Config], bool, &[AuditEncoding], usize)] = &[
        (&[&json_cfg], true, &[AuditEncoding::Json], 0),
        (&[&line_cfg], true, &[AuditEncoding::Line], 0),
        (&[&struct_cfg], true, &[AuditEncoding::Struct], 1),
        (
            &[&json_cfg, &struct_cfg],
            true,
            &[AuditEncoding::Json, AuditEncoding::Struct],
            1,
        ),
        // Declared as Struct: a later "json"/"line" config stays Struct (JSON
        // text would not parse as the declared Struct).
        (
            &[&struct_cfg, &json_cfg, &line_cfg, &struct_cfg],
            true,
            &[
                AuditEncoding::Struct,
                AuditEncoding::Struct,
                AuditEncoding::Struct,
                AuditEncoding::Struct,
            ],
            1,
        ),
        // Host refuses: JSON text, asked once; "line" stays line.
        (
            &[&struct_cfg, &struct_cfg, &line_cfg],
            false,
            &[
                AuditEncoding::Json,
                AuditEncoding::Json,
                AuditEncoding::Line,
            ],
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
