//! The inputs: the R4 SearchParameters and the CompartmentDefinition.

use super::*;

/// The fields of each SearchParameter the generator reads: what the
/// committed extract keeps.
pub(crate) const EXTRACT_FIELDS: [&str; 9] = [
    "resourceType",
    "id",
    "url",
    "version",
    "code",
    "base",
    "type",
    "expression",
    "target",
];

/// The committed extract of `search-parameters.json` (each entry's
/// [`EXTRACT_FIELDS`], nothing else): the generator's input wherever the
/// full definitions are not at hand (CI), so the agreement test always runs.
pub(crate) fn search_parameters_extract() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/r4_tables/search-parameters.extract.json")
}

/// The full R4 definitions, if present.
pub(crate) fn search_parameters_full() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("FHIR_R4_DIR") {
        dirs.push(d.into());
    }
    dirs.push("/work/shared/fhir-r4".into());
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fhir-r4"));
    dirs.into_iter()
        .map(|d| d.join("search-parameters.json"))
        .find(|f| f.is_file())
}

/// The generator's input: the full definitions when present, else the
/// committed extract (which `extract_is_the_definitions_projection` keeps
/// equal to them).
pub(crate) fn search_parameters_json() -> Option<PathBuf> {
    Some(search_parameters_full().unwrap_or_else(search_parameters_extract))
}

/// One R4 SearchParameter, as far as the tables need it.
pub(crate) struct SpecParam {
    pub(crate) id: String,
    pub(crate) code: String,
    pub(crate) base: Vec<String>,
    pub(crate) kind: String,
    pub(crate) expression: Option<String>,
    pub(crate) target: Vec<String>,
}

pub(crate) fn strings(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The core R4 parameters of the Bundle, and the entries left out (not core).
pub(crate) fn load_search_parameters(path: &Path) -> (Vec<SpecParam>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let bundle: Value = serde_json::from_str(&text).unwrap();
    let mut core = Vec::new();
    let mut skipped = Vec::new();
    for e in bundle["entry"].as_array().expect("Bundle.entry") {
        let r = &e["resource"];
        assert_eq!(r["resourceType"], "SearchParameter");
        let url = r["url"].as_str().unwrap_or("");
        let version = r["version"].as_str().unwrap_or("");
        // The file carries a few non-core parameters (other publishers'
        // profiles); a server does not know them, so they are not R4.
        if !url.starts_with(CORE_URL) || version != VERSION {
            skipped.push(format!("{url} (version {version})"));
            continue;
        }
        core.push(SpecParam {
            id: r["id"].as_str().unwrap().to_string(),
            code: r["code"].as_str().unwrap().to_string(),
            base: strings(r, "base"),
            kind: r["type"].as_str().unwrap().to_string(),
            expression: r["expression"].as_str().map(str::to_string),
            target: strings(r, "target"),
        });
    }
    (core, skipped)
}
