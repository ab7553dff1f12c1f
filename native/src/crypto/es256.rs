//! ES256 on the native path: `ring`, and for a key used again a per-key
//! table (`p256::KeyTable`, ~3× faster per check) kept per worker thread
//! (Envoy's workers are threads). A DPoP client signs every proof with one
//! key, so its key arrives again and again on a worker.
//!
//! Bounded: at most `TABLES_PER_WORKER` tables (148 KiB each) and
//! `CANDIDATES_PER_WORKER` keys seen once (65 bytes each) per thread. A
//! table is built (~1.4 ms) on a key's second sighting; once all slots are
//! taken, a build evicts the least recently used table only when the
//! tables have saved what it costs (`BUILD_COST` checks by table since the
//! last such build), so many keys in turn cannot make every check a build.

use std::cell::RefCell;
use std::collections::VecDeque;

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

use super::p256::KeyTable;

const TABLES_PER_WORKER: usize = 8;
const CANDIDATES_PER_WORKER: usize = 32;
/// A build (~1.4 ms) in checks by table (each ~40 µs cheaper than `ring`).
const BUILD_COST: u32 = 32;
/// Savings kept for later builds: a hot spell does not buy a burst of them.
const MAX_CREDIT: u32 = 4 * BUILD_COST;

/// An uncompressed P-256 point, the exact bytes a table is kept under.
type Point = [u8; 65];

thread_local! {
    static KEYS: RefCell<KeyTables> = const { RefCell::new(KeyTables::new()) };
}

/// ECDSA P-256 SHA-256 over `message`: `signature` ASN.1 DER, `point` the
/// key's SEC 1 encoding. The same answer as `ring` for every input.
pub fn verify(point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let by_table = Point::try_from(point).ok().and_then(|point| {
        KEYS.try_with(|keys| {
            let mut keys = keys.try_borrow_mut().ok()?;
            keys.table(&point)?.verify(message, signature)
        })
        .ok()
        .flatten()
    });
    by_table.unwrap_or_else(|| {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(message, signature)
            .is_ok()
    })
}

/// One worker's tables and the keys it has seen once.
pub(crate) struct KeyTables {
    /// Least recently used first.
    tables: Vec<(Point, KeyTable)>,
    /// Oldest first.
    candidates: VecDeque<Point>,
    /// Checks by table since the last build that evicted one.
    credit: u32,
}

impl KeyTables {
    pub(crate) const fn new() -> KeyTables {
        KeyTables {
            tables: Vec::new(),
            candidates: VecDeque::new(),
            credit: 0,
        }
    }

    /// The table kept for exactly this point, built now if this is its
    /// second sighting (and the point is on the curve) and a slot is free or
    /// paid for; `None`: check with `ring`.
    pub(crate) fn table(&mut self, point: &Point) -> Option<&KeyTable> {
        if let Some(index) = self.tables.iter().position(|(kept, _)| kept == point) {
            let entry = self.tables.remove(index);
            self.tables.push(entry);
            self.credit = (self.credit + 1).min(MAX_CREDIT);
            return self.tables.last().map(|(_, table)| table);
        }
        let Some(index) = self.candidates.iter().position(|seen| seen == point) else {
            if self.candidates.len() >= CANDIDATES_PER_WORKER {
                self.candidates.pop_front();
            }
            self.candidates.push_back(*point);
            return None;
        };
        let full = self.tables.len() >= TABLES_PER_WORKER;
        if full && self.credit < BUILD_COST {
            return None;
        }
        // Off the curve: no table, `ring` refuses it.
        let table = KeyTable::new(point)?;
        self.candidates.remove(index);
        if full && !self.tables.is_empty() {
            self.tables.remove(0);
            self.credit -= BUILD_COST;
        }
        self.tables.push((*point, table));
        self.tables.last().map(|(_, table)| table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::p256::tests::{der, point_of, signing_key};
    use ::p256::ecdsa::signature::Signer;
    use ::p256::ecdsa::Signature;

    fn key(seed: u8) -> (Point, impl Fn(&[u8]) -> Vec<u8>) {
        let key = signing_key([seed; 32]);
        let point = Point::try_from(point_of(&key).as_slice()).unwrap();
        let sign = move |message: &[u8]| {
            let signature: Signature = key.sign(message);
            der(
                &signature.r().to_bytes().into(),
                &signature.s().to_bytes().into(),
            )
        };
        (point, sign)
    }

    #[test]
    fn a_table_is_built_on_the_second_sighting_for_that_point_only() {
        let mut keys = KeyTables::new();
        let (a, sign_a) = key(1);
        let (b, sign_b) = key(2);
        assert!(keys.table(&a).is_none(), "first sighting: ring");
        let table = keys.table(&a).expect("second sighting: a table");
        assert_eq!(table.verify(b"m", &sign_a(b"m")), Some(true));
        assert_eq!(table.verify(b"m", &sign_b(b"m")), Some(false));
        assert!(keys.table(&b).is_none(), "A's table is not B's");
        let table = keys.table(&b).expect("B's own table");
        assert_eq!(table.verify(b"m", &sign_b(b"m")), Some(true));
        assert_eq!(table.verify(b"m", &sign_a(b"m")), Some(false));
        // A point one bit off A's is another key (here off the curve: none).
        let mut off = a;
        off[64] ^= 1;
        assert!(keys.table(&off).is_none());
        assert!(keys.table(&off).is_none());
        assert_eq!(keys.tables.len(), 2);
    }

    #[test]
    fn when_full_a_build_waits_until_the_tables_have_paid_for_it() {
        let mut keys = KeyTables::new();
        let points: Vec<Point> = (1..=9).map(|seed| key(seed).0).collect();
        let (kept, [ninth]) = points.split_at(8) else {
            unreachable!()
        };
        for point in kept {
            assert!(keys.table(point).is_none());
            assert!(keys.table(point).is_some());
        }
        assert!(keys.table(ninth).is_none());
        assert!(keys.table(ninth).is_none(), "full and nothing saved yet");
        for _ in 0..BUILD_COST / 8 {
            for point in kept {
                assert!(keys.table(point).is_some());
            }
        }
        assert!(keys.table(ninth).is_some(), "paid for: built");
        assert_eq!(keys.tables.len(), TABLES_PER_WORKER);
        assert_eq!(keys.credit, 0);
        // The least recently used (the first kept) made room.
        assert!(keys.tables.iter().all(|(point, _)| point != &kept[0]));
        assert!(keys.table(&kept[1]).is_some());
    }

    #[test]
    fn first_use_and_table_answers_are_ring_answers() {
        for seed in 20..28u8 {
            let (point, sign) = key(seed);
            let message = vec![seed; usize::from(seed) * 7];
            let valid = sign(&message);
            let mut tampered = valid.clone();
            *tampered.last_mut().unwrap() ^= 1;
            let mut other_message = message.clone();
            other_message.push(0);
            for (case, message, signature) in [
                ("valid", &message, &valid),
                ("tampered signature", &message, &tampered),
                ("other message", &other_message, &valid),
            ] {
                let ring = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                    .verify(message, signature)
                    .is_ok();
                // The first call is ring's, the next ones the table's.
                for round in 0..3 {
                    assert_eq!(
                        verify(&point, message, signature),
                        ring,
                        "{case}, round {round}"
                    );
                }
            }
            let mut off = point;
            off[64] ^= 1;
            for _ in 0..3 {
                assert!(!verify(&off, &message, &valid));
            }
            assert!(!verify(&point[..64], &message, &valid));
        }
        KEYS.with_borrow(|keys| assert_eq!(keys.tables.len(), 8));
    }
}
