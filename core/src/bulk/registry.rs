//! The job registry: which client started which export, kept in a store
//! all worker VMs share (proxy-wasm shared data in the filter; any
//! [`JobStore`] in tests). Pure: the store is the only state.
//!
//! Layout (bounded): one index (`fhir_smart_authz.bulk.index`) lists at most
//! `bulk.max_jobs` jobs — key, slot, owner's client, start, whether complete,
//! the directories of its files — and slot `n` (`fhir_smart_authz.bulk.slot.<n>`,
//! `n < max_jobs`) holds one job's record: its owner, the scopes its
//! kick-off needed, and its output-file URLs (at most
//! `bulk.max_files_per_job`). Shared data cannot be deleted, so the number
//! of keys is fixed by `max_jobs`; a forgotten job's slot is overwritten
//! with an empty value and its index entry removed.
//!
//! Eviction: a job is forgotten on a `2xx` answer to its `DELETE`, when it is
//! older than `bulk.job_ttl_seconds`, or — when a new job needs room in a
//! full index — the oldest job first. Every write is a compare-and-swap
//! (slot first, then index), retried a few times: two workers never take
//! the same slot, and a slot whose record names another job is no job.

use super::settings::BulkConfig;
use super::urls::dir_of;
use crate::policy::AuthContext;
use crate::scope::{parse_scope, Scope};
use sha2::{Digest, Sha256};

/// The shared store of the job registry.
pub trait JobStore {
    /// The value and its CAS token (`None` when absent).
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Write; with a CAS token only if nobody wrote since.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// The registry of a process that has seen no kick-off: every job URL is
/// unknown and no client has a job running. What the CLI decides against,
/// each request on its own, so its Bulk Data answers are the filter's in a
/// fresh Envoy (a kick-off needs a client; a job URL is 404).
pub struct EmptyRegistry;

impl JobStore for EmptyRegistry {
    fn get(&self, _key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        (None, None)
    }
    fn set(&self, _key: &str, _value: &[u8], _cas: Option<u32>) -> Result<(), StoreError> {
        Err(StoreError::Failed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Somebody wrote first.
    CasMismatch,
    /// The store refused the write.
    Failed,
}

pub const INDEX_KEY: &str = "fhir_smart_authz.bulk.index";

pub fn slot_key(n: usize) -> String {
    format!("fhir_smart_authz.bulk.slot.{n}")
}

/// CAS attempts before a write gives up.
const ATTEMPTS: usize = 8;

/// Directories of file URLs kept per job in the index (the files
/// themselves are in the slot).
const MAX_DIRS: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Index {
    jobs: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: String,
    slot: usize,
    /// [`Owner::client`]: what the concurrency limit counts by.
    client: String,
    started: u64,
    done: bool,
    dirs: Vec<String>,
}

/// Who started a job, as digests (SHA-256, hex) of the token's claims:
/// the records hold no claim text (nothing to escape, nothing to leak).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Issuer and client id (else subject): what the concurrency limit counts by.
    pub client: String,
    /// Issuer, client id and subject: who may reach the job.
    pub whole: String,
}

impl Owner {
    /// `None` when the token names no client (no client id, `azp` or
    /// subject): a job bound to nobody is refused.
    pub fn of(ctx: &AuthContext) -> Option<Owner> {
        if ctx.client_id.is_none() && ctx.sub.is_none() {
            return None;
        }
        let part = |v: &Option<String>| v.as_deref().map_or_else(String::new, |s| format!("+{s}"));
        let client = format!(
            "{}\0{}",
            part(&ctx.iss),
            part(&ctx.client_id.clone().or_else(|| ctx.sub.clone()))
        );
        let whole = format!(
            "{}\0{}\0{}",
            part(&ctx.iss),
            part(&ctx.client_id),
            part(&ctx.sub)
        );
        Some(Owner {
            client: digest(&client),
            whole: digest(&whole),
        })
    }
}

fn digest(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One job, as its slot holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The status URL relative to the base.
    pub key: String,
    /// [`Owner::whole`].
    pub owner: String,
    /// Unix seconds.
    pub started: u64,
    /// The scopes the kick-off needed (`system/Observation.rs`): every
    /// later request of the job needs them still.
    pub needs: Vec<String>,
    pub files: Vec<String>,
}

impl Job {
    /// Whether `ctx` is the job's owner with scopes still covering `needs`
    /// (`Err`: why not, for the log only — the client hears "not found").
    pub fn admits(&self, ctx: &AuthContext) -> Result<(), String> {
        if Owner::of(ctx).map(|o| o.whole).as_deref() != Some(self.owner.as_str()) {
            return Err("another client (issuer, client id or subject differ) started it".into());
        }
        for need in &self.needs {
            let Ok(Scope::Resource(s)) = parse_scope(need) else {
                return Err(format!("its recorded need `{need}` is unreadable"));
            };
            let t = s.resource_type.as_deref().unwrap_or("*");
            if !ctx.scopes.grants(s.context, t, s.perms) {
                return Err(format!(
                    "the token no longer grants `{need}`, which its kick-off needed"
                ));
            }
        }
        Ok(())
    }
}

// The stored forms: lines of tab-separated fields (no JSON machinery: the
// shipped module's size budget). Keys and URLs hold no tab, newline or
// space (their grammar), nor do digests. A value that does not read is no job.

fn words(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl Entry {
    fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            self.key,
            self.slot,
            self.client,
            self.started,
            u8::from(self.done),
            self.dirs.join(" ")
        )
    }

    fn read(line: &str) -> Option<Entry> {
        let f: Vec<&str> = line.split('\t').collect();
        let [key, slot, client, started, done, dirs] = f.as_slice() else {
            return None;
        };
        Some(Entry {
            key: key.to_string(),
            slot: slot.parse().ok()?,
            client: client.to_string(),
            started: started.parse().ok()?,
            done: *done == "1",
            dirs: words(dirs),
        })
    }
}

impl Job {
    /// Fields on the first line, one file a line after it.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{}\t{}\t{}\t{}",
            self.key,
            self.owner,
            self.started,
            self.needs.join(" ")
        );
        for f in &self.files {
            out.push('\n');
            out.push_str(f);
        }
        out.into_bytes()
    }

    fn read(text: &str) -> Option<Job> {
        let mut lines = text.split('\n');
        let f: Vec<&str> = lines.next()?.split('\t').collect();
        let [key, owner, started, needs] = f.as_slice() else {
            return None;
        };
        Some(Job {
            key: key.to_string(),
            owner: owner.to_string(),
            started: started.parse().ok()?,
            needs: words(needs),
            files: lines.map(str::to_string).collect(),
        })
    }
}

fn text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes
        .filter(|v| !v.is_empty())
        .and_then(|v| String::from_utf8(v).ok())
}

fn read_index(store: &dyn JobStore) -> (Index, Option<u32>) {
    let (value, cas) = store.get(INDEX_KEY);
    let jobs = text(value)
        .map(|t| t.split('\n').filter_map(Entry::read).collect())
        .unwrap_or_default();
    (Index { jobs }, cas)
}

fn write_index(store: &dyn JobStore, index: &Index, cas: Option<u32>) -> Result<(), StoreError> {
    let lines: Vec<String> = index.jobs.iter().map(Entry::line).collect();
    store.set(INDEX_KEY, lines.join("\n").as_bytes(), cas)
}

fn read_slot(store: &dyn JobStore, slot: usize) -> (Option<Job>, Option<u32>) {
    let (value, cas) = store.get(&slot_key(slot));
    (text(value).as_deref().and_then(Job::read), cas)
}

fn expired(cfg: &BulkConfig, started: u64, now: u64) -> bool {
    now.saturating_sub(started) >= cfg.job_ttl_seconds
}

/// Running (not complete, not expired) jobs of the client `owner` names.
pub fn active_jobs(cfg: &BulkConfig, store: &dyn JobStore, owner: &Owner, now: u64) -> usize {
    read_index(store)
        .0
        .jobs
        .iter()
        .filter(|e| e.client == owner.client && !e.done && !expired(cfg, e.started, now))
        .count()
}

/// Record a new job (replacing one with the same key).
pub fn register(
    cfg: &BulkConfig,
    store: &dyn JobStore,
    job: &Job,
    client: &str,
    now: u64,
) -> Result<(), StoreError> {
    let record = job.to_bytes();
    let mut last = StoreError::CasMismatch;
    for _ in 0..ATTEMPTS {
        let (mut index, icas) = read_index(store);
        index
            .jobs
            .retain(|e| e.key != job.key && !expired(cfg, e.started, now));
        while index.jobs.len() >= cfg.max_jobs {
            // The oldest first (the index is in start order).
            index.jobs.remove(0);
        }
        let Some(slot) = (0..cfg.max_jobs).find(|n| index.jobs.iter().all(|e| e.slot != *n)) else {
            return Err(StoreError::Failed);
        };
        let (_, scas) = store.get(&slot_key(slot));
        match store.set(&slot_key(slot), &record, scas) {
            Ok(()) => {}
            Err(e) => {
                last = e;
                continue;
            }
        }
        index.jobs.push(Entry {
            key: job.key.clone(),
            slot,
            client: client.to_string(),
            started: job.started,
            done: false,
            dirs: Vec::new(),
        });
        match write_index(store, &index, icas) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The job a URL belongs to: the job whose status URL it is, or the job
/// whose manifest listed it.
pub fn find(cfg: &BulkConfig, store: &dyn JobStore, url: &str, now: u64) -> Option<Job> {
    let (index, _) = read_index(store);
    let live = || index.jobs.iter().filter(|e| !expired(cfg, e.started, now));
    if let Some(e) = live().find(|e| e.key == url) {
        return read_slot(store, e.slot).0.filter(|j| j.key == url);
    }
    let dir = dir_of(url);
    live()
        .filter(|e| e.dirs.iter().any(|d| d == dir))
        .filter_map(|e| read_slot(store, e.slot).0.filter(|j| j.key == e.key))
        .find(|j| j.files.iter().any(|f| f == url))
}

/// What the server answered a status poll: complete (`files` from its
/// manifest, at most `max_files_per_job` kept) or failed (`files` empty).
pub fn record_outcome(
    cfg: &BulkConfig,
    store: &dyn JobStore,
    key: &str,
    files: &[String],
) -> Result<(), StoreError> {
    let mut last = StoreError::CasMismatch;
    for _ in 0..ATTEMPTS {
        let (mut index, icas) = read_index(store);
        let Some(entry) = index.jobs.iter_mut().find(|e| e.key == key) else {
            return Ok(());
        };
        let (job, scas) = read_slot(store, entry.slot);
        let Some(mut job) = job.filter(|j| j.key == key) else {
            return Ok(());
        };
        let before = job.files.len();
        for f in files {
            if job.files.len() >= cfg.max_files_per_job {
                break;
            }
            if !job.files.contains(f) {
                job.files.push(f.clone());
            }
        }
        if job.files.len() != before {
            if let Err(e) = store.set(&slot_key(entry.slot), &job.to_bytes(), scas) {
                last = e;
                continue;
            }
        }
        for f in &job.files {
            let d = dir_of(f).to_string();
            if !entry.dirs.contains(&d) && entry.dirs.len() < MAX_DIRS {
                entry.dirs.push(d);
            }
        }
        entry.done = true;
        match write_index(store, &index, icas) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Forget a job: its index entry, and its slot (emptied).
pub fn forget(store: &dyn JobStore, key: &str) -> Result<(), StoreError> {
    let mut last = StoreError::CasMismatch;
    for _ in 0..ATTEMPTS {
        let (mut index, icas) = read_index(store);
        let Some(at) = index.jobs.iter().position(|e| e.key == key) else {
            return Ok(());
        };
        let entry = index.jobs.remove(at);
        match write_index(store, &index, icas) {
            Ok(()) => {
                let (job, scas) = read_slot(store, entry.slot);
                if job.is_some_and(|j| j.key == key) {
                    // Lost to a new job taking the slot meanwhile: nothing to empty.
                    let _ = store.set(&slot_key(entry.slot), b"", scas);
                }
                return Ok(());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back() {
        let job = Job {
            key: "bulk-status/j1".into(),
            owner: "ab12".into(),
            started: 7,
            needs: vec!["system/Observation.rs".into(), "system/Patient.rs".into()],
            files: vec!["bulk-files/j1/a.ndjson".into()],
        };
        let text = String::from_utf8(job.to_bytes()).unwrap_or_default();
        assert_eq!(Job::read(&text), Some(job));
        let e = Entry {
            key: "$export-poll-status?_jobId=1".into(),
            slot: 3,
            client: "cd34".into(),
            started: 9,
            done: true,
            dirs: vec!["bulk-files/1".into()],
        };
        assert_eq!(Entry::read(&e.line()), Some(e));
        assert_eq!(Entry::read("x\t1"), None);
        assert_eq!(Job::read("x"), None);
    }
}
