//! The response check of a page: a paging link names no type, so what a
//! page may carry is decided on the page itself. Every resource in it must
//! be of a type the token may receive: a search match (`search.mode` absent
//! or `match`) needs `s` on its type, an included resource (`include`) `r`;
//! an `OperationOutcome` always passes.

use serde_json::Value;

fn granted(types: &[String], t: &str) -> bool {
    types.iter().any(|g| g == "*" || g == t)
}

/// `Err` names the first resource the token may not receive.
pub(super) fn check_response_types(
    search: &[String],
    read: &[String],
    response: &Value,
) -> Result<(), String> {
    let kind = |r: &Value| {
        r.get("resourceType")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "a resource in the response has no resourceType".to_string())
    };
    let top = kind(response)?;
    if top != "Bundle" {
        return if top == "OperationOutcome" || granted(search, &top) {
            Ok(())
        } else {
            Err(format!(
                "the response is a {top}, which the token may not search"
            ))
        };
    }
    let Some(entries) = response.get("entry").and_then(Value::as_array) else {
        return Ok(());
    };
    for e in entries {
        let Some(r) = e.get("resource") else {
            continue;
        };
        let t = kind(r)?;
        let mode = e.get("search").and_then(|s| s.get("mode"));
        let include = mode.and_then(Value::as_str) == Some("include");
        let (ok, letter) = if include {
            (granted(read, &t), "r")
        } else {
            (granted(search, &t), "s")
        };
        if t != "OperationOutcome" && !ok {
            return Err(format!(
                "the page carries {t}/{} but the token has no scope with `{letter}` on {t}",
                r.get("id").and_then(Value::as_str).unwrap_or("?")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn page_types() {
        let page =
            |entries: Value| json!({"resourceType":"Bundle","type":"searchset","entry":entries});
        let obs =
            json!({"resource":{"resourceType":"Observation","id":"o1"},"search":{"mode":"match"}});
        let pat_inc =
            json!({"resource":{"resourceType":"Patient","id":"p1"},"search":{"mode":"include"}});
        let pat_match = json!({"resource":{"resourceType":"Patient","id":"p1"}});
        let oo =
            json!({"resource":{"resourceType":"OperationOutcome"},"search":{"mode":"outcome"}});
        let obs_only = (v(&["Observation"]), v(&["Observation"]));
        for (search, read, response, want) in [
            (&obs_only.0, &obs_only.1, page(json!([obs, oo])), Ok(())),
            (
                &obs_only.0,
                &obs_only.1,
                page(json!([obs, pat_inc])),
                Err("the page carries Patient/p1 but the token has no scope with `r` on Patient"),
            ),
            (
                &obs_only.0,
                &obs_only.1,
                page(json!([pat_match])),
                Err("the page carries Patient/p1 but the token has no scope with `s` on Patient"),
            ),
            (
                &v(&["Observation"]),
                &v(&["Patient"]),
                page(json!([obs, pat_inc])),
                Ok(()),
            ),
            (&v(&["*"]), &v(&[]), page(json!([obs, pat_match])), Ok(())),
            (
                &v(&["*"]),
                &v(&[]),
                page(json!([pat_inc])),
                Err("`r` on Patient"),
            ),
            (
                &obs_only.0,
                &obs_only.1,
                page(json!([{"resource":{"id":"x"}}])),
                Err("has no resourceType"),
            ),
            (
                &obs_only.0,
                &obs_only.1,
                json!({"resourceType":"Bundle"}),
                Ok(()),
            ),
            (
                &obs_only.0,
                &obs_only.1,
                json!({"resourceType":"OperationOutcome"}),
                Ok(()),
            ),
            (
                &obs_only.0,
                &obs_only.1,
                json!({"resourceType":"Patient","id":"p"}),
                Err("the response is a Patient"),
            ),
            (
                &obs_only.0,
                &obs_only.1,
                json!([1]),
                Err("has no resourceType"),
            ),
        ] {
            match (check_response_types(search, read, &response), want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(sub)) => assert!(e.contains(sub), "{e}"),
                (got, want) => panic!("{response}: got {got:?}, want {want:?}"),
            }
        }
    }
}
