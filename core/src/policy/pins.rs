//! Under a patient/ scope, how a search's parameters name patients: whether
//! they pin it to the context patient, and the searches that name another
//! patient or several (refused).

use super::compartment;
use super::need::{fail, Fail};
use super::references::{target, Target};
use crate::decision::Reason;
use crate::fhir::{is_valid_id, SearchParam};

/// How a search is pinned to the context patient (weakest first: `max` is
/// the stronger pin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Pin {
    No,
    /// Only through a bare id on a parameter that can also point at other
    /// types (`subject=123` also matches `Group/123`): allowed with a
    /// response check that every result is the patient's.
    BareId,
    Exact,
}

/// Modifiers under which a pin parameter's values still name patients
/// (`patient:mdm=456` asks for 456 and the records linked to it). Under the
/// others (`:not`, `:missing`, `:identifier`, `:Group`, ...) they do not,
/// and neither do they pin: only a bare pin or `:Patient` does.
fn names_patients(modifier: Option<&str>) -> bool {
    matches!(modifier, None | Some("Patient" | "mdm" | "above" | "below"))
}

/// What one value of a pin parameter names, read with the one reference
/// grammar: the patient it names (a bare id, `Patient/123`,
/// `{base}/Patient/123`; or any other `.../Patient/123`, which some servers
/// match by its suffix) and whether it is in a form the filter trusts as a
/// pin. A value the grammar does not accept (dot segments, `_history/..`,
/// `%`, whitespace, a conditional reference, the context patient `p` on
/// another base) is refused (`400`): a server resolving it as a URL may read
/// another patient.
fn pin_value<'v>(
    rtype: &str,
    value: &'v str,
    p: &str,
    base: Option<&str>,
) -> Result<(Option<&'v str>, bool), Fail> {
    if is_valid_id(value) {
        return Ok((Some(value), true));
    }
    let target = if rtype == "Patient" {
        // The pin of Patient is `_id`: its values are ids.
        Target::Odd
    } else {
        target(value, base)
    };
    match target {
        Target::Patient(id) => Ok((Some(id), true)),
        // Another patient in any form: refused as naming them (403).
        Target::ForeignPatient(id) if id != p => Ok((Some(id), false)),
        Target::Other => Ok((None, false)),
        Target::ForeignPatient(_) | Target::Conditional(..) | Target::Odd => Err(fail(
            Reason::InvalidRequest,
            format!(
                "servers read the search value `{}` differently: send a FHIR id or a literal reference (Type/id, Type/id/_history/vid)",
                value.chars().take(80).collect::<String>()
            ),
        )),
    }
}

/// How the search on `rtype` is pinned to patient `p`: some instance of a
/// pin parameter (no chain, no modifier other than `:Patient`) has only
/// values referring to `p`. Refused: a value naming another patient
/// (`403`), pins naming different patients (`400`: the server would answer
/// nothing, or whichever it reads first), and `Patient?link=` (the other
/// patients that link to one).
pub(super) fn pins(
    rtype: &str,
    params: &[SearchParam],
    p: &str,
    base: Option<&str>,
) -> Result<Pin, Fail> {
    if rtype == "Patient" && params.iter().any(|sp| sp.name == "link") {
        return Err(violation(format!(
            "`Patient?link=` returns the other patients whose records link to a patient; refused under patient/ scopes (read Patient/{p} instead)"
        )));
    }
    let mut best = Pin::No;
    // The patients named by single-valued instances of pin parameters.
    let mut named: Vec<&str> = Vec::new();
    for sp in params {
        let modifier = sp.modifier.as_deref();
        if sp.chain.is_some()
            || sp.values.is_empty()
            || !compartment::is_pin_param(rtype, &sp.name)
            || !names_patients(modifier)
        {
            continue;
        }
        let read: Vec<(Option<&str>, bool)> = sp
            .values
            .iter()
            .map(|v| pin_value(rtype, v, p, base))
            .collect::<Result<_, _>>()?;
        let ids: Vec<Option<&str>> = read.iter().map(|(id, _)| *id).collect();
        if let Some(other) = ids.iter().flatten().find(|id| **id != p) {
            if ids.len() > 1 {
                return Err(violation(format!(
                    "`{}` names Patient/{other} in its comma-separated values; under a patient/ scope only Patient/{p} may be searched",
                    sp.name
                )));
            }
        }
        if let [Some(id)] = ids.as_slice() {
            if !named.contains(id) {
                named.push(id);
            }
        }
        let pinned = matches!(modifier, None | Some("Patient"))
            && read.iter().all(|(id, trusted)| *trusted && *id == Some(p));
        if !pinned {
            continue;
        }
        // A bare id on a parameter that may reference other types pins loosely.
        let typed = rtype == "Patient"
            || modifier.is_some()
            || sp.values.iter().all(|v| v != p)
            || compartment::bare_id_is_exact(rtype, &sp.name);
        best = if typed {
            Pin::Exact
        } else {
            best.max(Pin::BareId)
        };
    }
    match named.as_slice() {
        [a, b, ..] => Err(fail(
            Reason::InvalidRequest,
            format!(
                "the search pins several patients (Patient/{a} and Patient/{b}); servers answer such a search differently, send exactly one pin"
            ),
        )),
        [other] if *other != p => Err(violation(format!(
            "the search names Patient/{other}; under a patient/ scope only Patient/{p} may be searched"
        ))),
        _ => Ok(best),
    }
}

fn violation(message: String) -> Fail {
    fail(Reason::PatientCompartmentViolation, message)
}
