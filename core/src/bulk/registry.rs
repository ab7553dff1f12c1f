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
use serde::{Deserialize, Serialize};

/// The shared store of the job registry.
pub trait JobStore {
    /// The value and its CAS token (`None` when absent).
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Write; with a CAS token only if nobody wrote since.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Index {
    jobs: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    key: String,
    slot: usize,
    /// [`Owner::client`]: what the concurrency limit counts by.
    client: String,
    started: u64,
    done: bool,
    dirs: Vec<String>,
}

/// Who started a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub iss: Option<String>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
}

impl Owner {
    pub fn of(ctx: &AuthContext) -> Owner {
        Owner {
            iss: ctx.iss.clone(),
            client_id: ctx.client_id.clone(),
            sub: ctx.sub.clone(),
        }
    }

    /// The client for the concurrency limit: issuer and client id (else subject).
    fn client(&self) -> String {
        format!(
            "{}|{}",
            self.iss.as_deref().unwrap_or(""),
            self.client_id
                .as_deref()
                .or(self.sub.as_deref())
                .unwrap_or("")
        )
    }

    /// Whether it names a client at all (a job bound to nobody is refused).
    pub fn is_known(&self) -> bool {
        self.client_id.is_some() || self.sub.is_some()
    }
}

/// One job, as its slot holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The status URL relative to the base.
    pub key: String,
    pub owner: Owner,
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
        if Owner::of(ctx) != self.owner {
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

fn read_index(store: &dyn JobStore) -> (Index, Option<u32>) {
    let (value, cas) = store.get(INDEX_KEY);
    let index = value
        .filter(|v| !v.is_empty())
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default();
    (index, cas)
}

fn write_index(store: &dyn JobStore, index: &Index, cas: Option<u32>) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(index).map_err(|_| StoreError::Failed)?;
    store.set(INDEX_KEY, &bytes, cas)
}

fn read_slot(store: &dyn JobStore, slot: usize) -> (Option<Job>, Option<u32>) {
    let (value, cas) = store.get(&slot_key(slot));
    let job = value
        .filter(|v| !v.is_empty())
        .and_then(|v| serde_json::from_slice(&v).ok());
    (job, cas)
}

fn expired(cfg: &BulkConfig, started: u64, now: u64) -> bool {
    now.saturating_sub(started) >= cfg.job_ttl_seconds
}

/// Running (not complete, not expired) jobs of the client `owner` names.
pub fn active_jobs(cfg: &BulkConfig, store: &dyn JobStore, owner: &Owner, now: u64) -> usize {
    let client = owner.client();
    read_index(store)
        .0
        .jobs
        .iter()
        .filter(|e| e.client == client && !e.done && !expired(cfg, e.started, now))
        .count()
}

/// Record a new job (replacing one with the same key).
pub fn register(
    cfg: &BulkConfig,
    store: &dyn JobStore,
    job: &Job,
    now: u64,
) -> Result<(), StoreError> {
    let record = serde_json::to_vec(job).map_err(|_| StoreError::Failed)?;
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
            client: job.owner.client(),
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
            let bytes = serde_json::to_vec(&job).map_err(|_| StoreError::Failed)?;
            if let Err(e) = store.set(&slot_key(entry.slot), &bytes, scas) {
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
