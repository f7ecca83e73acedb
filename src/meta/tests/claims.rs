//! [`kv::update`] against many schedules: requests that each add their
//! name to one key, absent at first, on instances whose clocks differ by
//! up to the skew allowed, slowed down at random, each run whole in the
//! middle of another at one of its store calls, on a store answering swaps
//! as each of Spin's stores does. Whatever the schedule, one request at
//! most creates the key, and the name of every request that answered stays
//! in it.
//!
//! What the claims assume is kept (see `meta::kv`): clocks no further apart
//! than [`CLOCK_SKEW_MS`], and a write that lands once sent, so nothing runs
//! between a claimer's last look at its clock and its write.

use std::cell::{Cell, RefCell};

use super::*;
use crate::meta::kv::{KeyValue, KvError, Step, Swap, CLOCK_SKEW_MS};
use crate::testing::SwapReports;

/// How many schedules are tried.
const SCHEDULES: u64 = 20_000;

/// A deterministic random sequence (xorshift), so that a failing schedule
/// is run again from its number.
struct Dice(Cell<u64>);

impl Dice {
    fn new(seed: u64) -> Self {
        Dice(Cell::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1))
    }

    /// A number below `n`.
    fn below(&self, n: u64) -> u64 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        x % n
    }
}

/// The requests of one schedule: those not started yet, and what the
/// finished ones answered.
struct Schedule {
    dice: Dice,
    waiting: RefCell<Vec<Request>>,
    answers: RefCell<Vec<(String, Result<(), KvError>)>>,
}

/// A request adding `name` to `k` (names separated by commas), on an
/// instance whose clock runs `offset` ms from the store's.
#[derive(Clone)]
struct Request {
    offset: i64,
    name: String,
}

/// One request's view of the store.
struct Instance<'a> {
    store: &'a MemoryStore,
    schedule: &'a Schedule,
    offset: i64,
    /// How many requests this one runs inside.
    depth: usize,
}

impl Schedule {
    /// Runs `request` to its answer, through `store`.
    fn run(&self, store: &MemoryStore, request: Request, depth: usize) {
        let instance = Instance {
            store,
            schedule: self,
            offset: request.offset,
            depth,
        };
        let answer = kv::update(&instance, "k", |current| {
            let mut names = current.map(names_in).unwrap_or_default();
            if names.contains(&request.name) {
                return Step::Keep(());
            }
            names.push(request.name.clone());
            Step::Write(names.join(",").into_bytes(), ())
        });
        self.answers.borrow_mut().push((request.name, answer));
    }
}

impl Instance<'_> {
    /// Before a store call: maybe a pause (a few milliseconds, a few
    /// seconds, or longer than an epoch), maybe another request run whole.
    fn interfere(&self) {
        let dice = &self.schedule.dice;
        match dice.below(10) {
            0 => self.store.pause(dice.below(20)),
            1 => self.store.pause(1_000 + dice.below(6_000)),
            2 => self.store.pause(25_000 + dice.below(15_000)),
            _ => {}
        }
        if self.depth < 3 && dice.below(3) == 0 {
            let next = self.schedule.waiting.borrow_mut().pop();
            if let Some(request) = next {
                self.schedule.run(self.store, request, self.depth + 1);
            }
        }
    }
}

impl KeyValue for Instance<'_> {
    type Cas = (String, Option<Vec<u8>>);

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.interfere();
        self.store.get(key)
    }
    /// A write lands once sent: nothing runs before it.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.store.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.store.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.interfere();
        self.store.increment(key, delta)
    }
    fn read_for_swap(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), KvError> {
        self.interfere();
        self.store.read_for_swap(key)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap, KvError> {
        self.interfere();
        self.store.swap(cas, value)
    }
    fn now_millis(&self) -> i64 {
        self.store.now_millis() + self.offset
    }
    fn pause(&self, millis: u64) {
        self.store.pause(millis);
        self.interfere();
    }
}

fn names_in(value: Vec<u8>) -> Vec<String> {
    String::from_utf8(value)
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect()
}

#[test]
fn under_any_schedule_every_request_that_answered_stays_in_the_key() {
    for seed in 0..SCHEDULES {
        let dice = Dice::new(seed);
        let store = MemoryStore::default();
        store.reports.set(match dice.below(3) {
            0 => SwapReports::Truthful,
            1 => SwapReports::AlwaysFailed,
            _ => SwapReports::Inverted,
        });
        // Start within a few seconds of an epoch's end.
        let epoch_end = (store.now_millis() / kv::CLAIM_EPOCH_MS + 1) * kv::CLAIM_EPOCH_MS;
        store
            .clock
            .set(epoch_end - 8_000 + dice.below(16_000) as i64);
        // Clocks within the skew of one another.
        let half_skew = CLOCK_SKEW_MS / 2;
        let requests: Vec<Request> = (0..2 + dice.below(3))
            .map(|i| Request {
                offset: dice.below(2 * half_skew as u64 + 1) as i64 - half_skew,
                name: format!("request {i}"),
            })
            .collect();
        let schedule = Schedule {
            dice,
            waiting: RefCell::new(requests[1..].to_vec()),
            answers: RefCell::default(),
        };
        schedule.run(&store, requests[0].clone(), 0);
        // Those no other request ran come later, one after another.
        loop {
            let next = schedule.waiting.borrow_mut().pop();
            let Some(request) = next else { break };
            schedule.run(&store, request, 0);
        }
        let stored = store.get("k").unwrap().map(names_in).unwrap_or_default();
        for (name, answer) in schedule.answers.borrow().iter() {
            match answer {
                Ok(()) => assert!(
                    stored.contains(name),
                    "schedule {seed}: {name} answered, the key holds {stored:?}"
                ),
                Err(KvError::Busy(_)) => {}
                Err(e) => panic!("schedule {seed}: {e}"),
            }
        }
    }
}
