//! The label policy on requests: what an allowed request must still do (or
//! may not do) for a token that may not see every restricted label, and
//! which writes change labels.

use super::{LabelPolicy, TokenView};
use crate::decision::{AddedParam, Decision, LabelFilter, Narrowing, Obligation, Reason};
use crate::fhir::{Interaction, InteractionKind, Level, SearchParam};
use crate::policy::context::AuthContext;
use serde_json::Value;

/// Search parameters that select results by other resources (or by lists
/// and server-side queries) the response cannot show: labelled data could
/// decide what a token that may not see it gets back.
const ORACLES: &[&str] = &["_has", "_filter", "_query", "_list"];

/// Apply the label policy to an allowed decision: writes that would change
/// labels need the relabel permission; for a token that may not see some
/// labels, searches are narrowed (or refused where they could reveal
/// labelled data) and the response is filtered. Records what it did in
/// `d.labels` (the audit record's `labels`).
pub fn apply_labels(labels: &LabelPolicy, ctx: &AuthContext, d: &mut Decision) {
    let Some(it) = d.interaction.as_ref() else {
        return;
    };
    let view = labels.view(ctx);
    let mut facts = view.facts();
    let recorded = !facts.hidden.is_empty() || !facts.purpose_of_use.is_empty();
    if d.is_allow() {
        // A refusal names the scope that would allow it: the relabel scope
        // for a write, none for a read (no scope opens a label).
        let outcome = match relabel(labels, ctx, it, None) {
            Err(m) => Err((m, labels.relabel_scope.iter().cloned().collect())),
            Ok(()) if view.restricted() => reads(labels, &view, it).map_err(|m| (m, Vec::new())),
            Ok(()) => Ok(None),
        };
        match outcome {
            Ok(None) => {}
            Ok(Some((filter, added))) => {
                if !added.is_empty() {
                    let mut n = d.narrowing.take().unwrap_or_default();
                    n.merge(Narrowing {
                        added,
                        strict: true,
                    });
                    d.narrowing = Some(n);
                }
                let o = Obligation::FilterLabels(filter);
                if !d.obligations.contains(&o) {
                    d.obligations.push(o);
                }
            }
            Err((message, required)) => {
                let interaction = d.interaction.take();
                let mut denial = Decision::deny(Reason::SecurityLabelNotPermitted, message);
                denial.interaction = interaction;
                denial.required_scopes = required;
                *d = denial;
            }
        }
    }
    if recorded {
        // Break-glass is an access only when the request goes on.
        facts.break_glass &= d.is_allow();
        d.labels = Some(facts);
    }
}

/// A write that could add or remove labels, without the relabel scope or
/// claim: why it is refused. `entry`: the Bundle entry it comes from.
fn relabel(
    labels: &LabelPolicy,
    ctx: &AuthContext,
    it: &Interaction,
    entry: Option<usize>,
) -> Result<(), String> {
    if ctx.labels.relabel {
        return Ok(());
    }
    let what = match it.kind {
        InteractionKind::Batch | InteractionKind::Transaction => {
            for e in &it.entries {
                relabel(labels, ctx, &e.interaction, Some(e.index))?;
            }
            return Ok(());
        }
        InteractionKind::Create => match &it.resource {
            Some(r) if !has_security(r) => return Ok(()),
            Some(_) => "a create whose resource carries meta.security",
            None => "a create whose body the filter cannot read",
        },
        InteractionKind::Update => match &it.resource {
            Some(r) if has_security(r) => "an update whose resource carries meta.security",
            Some(_) if labels.update_keeps_labels => return Ok(()),
            Some(_) => "an update (the server may drop the stored meta.security: policy.labels.update_keeps_labels = false)",
            None => "an update whose body the filter cannot read",
        },
        InteractionKind::Patch => match &it.resource {
            Some(p) if !patch_touches_meta(p) => return Ok(()),
            Some(_) => "a patch of meta",
            None => "a patch whose document the filter cannot read",
        },
        InteractionKind::Operation
            if matches!(it.operation.as_deref(), Some("$meta-add" | "$meta-delete")) =>
        {
            "$meta-add and $meta-delete"
        }
        _ => return Ok(()),
    };
    let at = entry.map(|i| format!(" (entry {i})")).unwrap_or_default();
    Err(format!(
        "{what}{at} could add or remove security labels; that needs {}",
        permission(labels)
    ))
}

/// How an operator lets a token change labels, for messages.
fn permission(labels: &LabelPolicy) -> String {
    match (&labels.relabel_scope, &labels.relabel_claim) {
        (Some(s), Some(c)) => format!("the scope `{s}` or the claim `{c}: true`"),
        (Some(s), None) => format!("the scope `{s}`"),
        (None, Some(c)) => format!("the claim `{c}: true`"),
        (None, None) => "a relabel permission, and none is configured (policy.labels.relabel_scope or relabel_claim)".into(),
    }
}

/// Whether a resource carries `meta.security` (any, even empty).
fn has_security(r: &Value) -> bool {
    r.get("meta").and_then(|m| m.get("security")).is_some()
}

/// Whether a JSON Patch or FHIRPath Patch document could change `meta`:
/// an operation whose `path` or `from` starts at `/meta`, or a FHIRPath
/// Patch part (`path`, `name`) naming `meta` or giving a `valueMeta`.
/// Anything else it cannot read counts as touching it.
fn patch_touches_meta(p: &Value) -> bool {
    match p {
        Value::Array(ops) => ops.iter().any(|op| {
            ["path", "from"].iter().any(|k| match op.get(*k) {
                None => false,
                Some(Value::String(s)) => {
                    s == "/meta" || s.starts_with("/meta/") || s.is_empty() || s == "/"
                }
                Some(_) => true,
            })
        }),
        Value::Object(_) => {
            let Some(params) = p.get("parameter").and_then(Value::as_array) else {
                return true;
            };
            params.iter().any(|op| {
                op.get("part")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|part| {
                        let name = part.get("name").and_then(Value::as_str).unwrap_or_default();
                        let text = part
                            .get("valueString")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        part.get("valueMeta").is_some()
                            || (matches!(name, "path" | "name")
                                && text.split('.').any(|seg| {
                                    seg == "meta" || seg.starts_with("meta") || seg == "security"
                                }))
                    })
            })
        }
        _ => true,
    }
}

/// A refusal of `what` for a token that may not see every label.
fn refused(what: &str, fix: &str) -> String {
    format!(
        "{what} could reveal data carrying security labels this token is not cleared for; {fix}"
    )
}

/// What a read under a restricted token needs: the response filter, and
/// the `_security:not` parameters added to a search's URL (a request's
/// own: Bundle entries that read are refused). `Err`: why it is refused.
#[allow(clippy::type_complexity)]
fn reads(
    labels: &LabelPolicy,
    view: &TokenView,
    it: &Interaction,
) -> Result<Option<(LabelFilter, Vec<AddedParam>)>, String> {
    let filter = |narrowed: bool| LabelFilter {
        narrowed,
        ..view.filter.clone()
    };
    // The labels are read from a JSON answer (an XML one is refused after
    // the fact; `Accept` is not looked at here).
    let xml = it
        .params("_format")
        .flat_map(|sp| &sp.values)
        .find(|v| !v.contains("json"));
    if let Some(v) = xml {
        return Err(format!(
            "`_format={v}`: the filter checks security labels in JSON answers only; ask for JSON (`_format=json`, or leave it out)"
        ));
    }
    match it.kind {
        InteractionKind::Capabilities | InteractionKind::SmartConfiguration => Ok(None),
        InteractionKind::Create
        | InteractionKind::Update
        | InteractionKind::Patch
        | InteractionKind::Delete
            if it.conditional =>
        {
            Err(refused(
                "a conditional write (the server matches its criteria against every record)",
                "write by id, or create without If-None-Exist",
            ))
        }
        // The answer to an update or patch by id is the stored resource
        // (a patch's, whatever the token could see of it): filtered too.
        InteractionKind::Update | InteractionKind::Patch => Ok(Some((filter(false), Vec::new()))),
        InteractionKind::Create | InteractionKind::Delete => Ok(None),
        InteractionKind::Read
        | InteractionKind::Vread
        | InteractionKind::History
        | InteractionKind::Paging => Ok(Some((filter(false), Vec::new()))),
        InteractionKind::Batch | InteractionKind::Transaction => {
            if let Some(e) = it
                .entries
                .iter()
                .find(|e| reads_data(&e.interaction) || e.interaction.conditional)
            {
                return Err(refused(
                    &format!("entry {} ({} {}) of a batch or transaction", e.index, e.method, e.url),
                    "send reads and searches as requests of their own, so their responses can be filtered, and writes by id",
                ));
            }
            Ok(None)
        }
        InteractionKind::Operation => {
            let op = it.operation.as_deref().unwrap_or_default();
            if op.starts_with("$export") {
                return Err(refused(
                    &format!("{op} (its files are not read through the filter)"),
                    "use a token cleared for the labels, or search instead",
                ));
            }
            search_limits(&it.search, false)?;
            Ok(Some((filter(false), Vec::new())))
        }
        InteractionKind::Search => {
            let narrowed = labels.server_supports_security_not;
            search_limits(&it.search, narrowed)?;
            let mut added = Vec::new();
            if narrowed {
                let types = searched_types(it);
                for l in view.hidden_on_all(&types) {
                    let present = it.search.iter().any(|sp| {
                        sp.name == "_security"
                            && sp.modifier.as_deref() == Some("not")
                            && sp.values == [l.clone()]
                    });
                    if !present {
                        added.push(AddedParam::new("_security:not", l));
                    }
                }
            }
            Ok(Some((filter(narrowed), added)))
        }
    }
}

/// Whether an interaction (a Bundle entry) answers with stored data.
fn reads_data(it: &Interaction) -> bool {
    matches!(
        it.kind,
        InteractionKind::Read
            | InteractionKind::Vread
            | InteractionKind::History
            | InteractionKind::Search
            | InteractionKind::Paging
            | InteractionKind::Operation
            | InteractionKind::Batch
            | InteractionKind::Transaction
    )
}

/// The types a search returns as matches (empty = any).
fn searched_types(it: &Interaction) -> Vec<&str> {
    if !it.types.is_empty() {
        return it.types.iter().map(String::as_str).collect();
    }
    match (&it.compartment, it.level) {
        (_, Level::System) => Vec::new(),
        _ => it.resource_type.as_deref().into_iter().collect(),
    }
}

/// The parameters refused for a restricted token: those that select by
/// data the response does not carry (`_has`, chains, `_filter`, `_query`,
/// `_list`), `_contained` (a contained resource comes back without its
/// container's labels), `_elements` without `meta` (the filter reads the labels from
/// the response), and without narrowing `_summary=count` (a count of what
/// the token may not see).
fn search_limits(search: &[SearchParam], narrowed: bool) -> Result<(), String> {
    for sp in search {
        let fix = "search without it, or use a token cleared for the labels";
        if ORACLES.contains(&sp.name.as_str()) {
            return Err(refused(&format!("`{}`", sp.name), fix));
        }
        let sort_chain = sp.name == "_sort" && sp.values.iter().any(|v| v.contains('.'));
        if sp.chain.is_some() || sort_chain {
            let chain = sp
                .chain
                .as_deref()
                .map(|c| format!(".{c}"))
                .unwrap_or_default();
            return Err(refused(
                &format!("the chained parameter `{}{chain}`", sp.name),
                fix,
            ));
        }
        if sp.name == "_contained" && sp.values.iter().any(|v| v != "false") {
            return Err(refused(
                "`_contained`",
                "contained resources come back without their container's labels; search the containers",
            ));
        }
        if sp.name == "_elements" && !sp.values.iter().any(|v| v == "meta") {
            return Err(refused(
                "`_elements` without `meta`",
                "add `meta` to `_elements` so the labels come back and can be checked",
            ));
        }
        if sp.name == "_summary" && sp.values.iter().any(|v| v == "count") && !narrowed {
            return Err(refused(
                "`_summary=count`",
                "the server cannot be asked to leave labelled data out of the count (policy.labels.server_supports_security_not = false); page through the results instead",
            ));
        }
    }
    Ok(())
}
