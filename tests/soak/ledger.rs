//! What the run acknowledged: for every row any task tried to write, whether it must be
//! present, must be absent, or may be either (its fate was cut off: a cancelled future, a
//! backend that died mid-flight), and the values it may hold; plus the counts the summary
//! prints and the violations found while running.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use uuid::Uuid;

/// How a call on the library ended, as far as its writes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It returned `Ok`: its writes happened.
    Ack,
    /// It returned an error that says nothing was done.
    Failed,
    /// Cancelled, or the connection died under it: done or not, nobody knows.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Present,
    Absent,
    Either,
}

/// What the ground truth must show for one row id.
#[derive(Debug, Clone)]
pub struct Expect {
    pub tenant: Uuid,
    pub presence: Presence,
    /// The values `n` may hold if the row is there.
    pub ns: Vec<i32>,
}

#[derive(Default)]
pub struct Ledger {
    rows: Mutex<HashMap<Uuid, Expect>>,
    counts: Mutex<BTreeMap<String, u64>>,
    violations: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Ledger {
    /// Counts one event (`op.insert`, `fault.timeout`, `outcome.unknown` ...).
    pub fn count(&self, what: &str) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(what.to_owned())
            .or_default() += 1;
    }

    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap().clone()
    }

    /// Records a broken promise; the run stops soon after, and the test fails with all of them.
    pub fn violation(&self, what: String) {
        let mut v = self.violations.lock().unwrap();
        if v.len() < 20 {
            v.push(what);
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// A new row `id` with value `n`, written by (and for) `tenant`.
    pub fn inserted(&self, tenant: Uuid, id: Uuid, n: i32, outcome: Outcome) {
        self.count(&format!("outcome.{outcome:?}").to_lowercase());
        let presence = match outcome {
            Outcome::Ack => Presence::Present,
            Outcome::Failed => Presence::Absent,
            Outcome::Unknown => Presence::Either,
        };
        let prev = self.rows.lock().unwrap().insert(
            id,
            Expect {
                tenant,
                presence,
                ns: vec![n],
            },
        );
        assert!(prev.is_none(), "row id {id} written twice");
    }

    /// `n` of row `id` set to `n`; `found` is what an acknowledged update returned.
    pub fn updated(&self, id: Uuid, n: i32, outcome: Outcome, found: bool) {
        self.count(&format!("outcome.{outcome:?}").to_lowercase());
        let mut rows = self.rows.lock().unwrap();
        let e = rows.get_mut(&id).expect("a row of the ledger");
        match (outcome, found) {
            (Outcome::Ack, true) => {
                e.presence = Presence::Present;
                e.ns = vec![n];
            }
            (Outcome::Ack, false) => e.presence = Presence::Absent,
            (Outcome::Failed, _) => {}
            (Outcome::Unknown, _) => e.ns.push(n),
        }
    }

    /// Row `id` deleted; `found` is what an acknowledged delete returned.
    pub fn deleted(&self, id: Uuid, outcome: Outcome) {
        self.count(&format!("outcome.{outcome:?}").to_lowercase());
        let mut rows = self.rows.lock().unwrap();
        let e = rows.get_mut(&id).expect("a row of the ledger");
        match outcome {
            Outcome::Ack => e.presence = Presence::Absent,
            Outcome::Failed => {}
            Outcome::Unknown => {
                if e.presence == Presence::Present {
                    e.presence = Presence::Either;
                }
            }
        }
    }

    /// Rows `ids` of a transaction that did not commit (or of a purged tenant) are gone.
    pub fn gone(&self, ids: &[Uuid]) {
        let mut rows = self.rows.lock().unwrap();
        for id in ids {
            rows.get_mut(id).expect("a row of the ledger").presence = Presence::Absent;
        }
    }

    pub fn expect(&self, id: Uuid) -> Option<Expect> {
        self.rows.lock().unwrap().get(&id).cloned()
    }

    pub fn all(&self) -> HashMap<Uuid, Expect> {
        self.rows.lock().unwrap().clone()
    }
}
