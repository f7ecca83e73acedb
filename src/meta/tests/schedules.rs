//! The write protocols against many schedules of concurrent requests:
//! requests on instances whose clocks differ by up to the skew allowed,
//! slowed down at random (from milliseconds to longer than a claim epoch),
//! each run whole in the middle of another at one of its store calls, on a
//! store answering swaps as each of Spin's stores does. Whatever the
//! schedule, every request that answered finds its change stored.
//!
//! What the creation claims assume is kept (see `meta::kv`): clocks no
//! further apart than [`CLOCK_SKEW_MS`], and a write that lands once sent,
//! so nothing runs between a claimer's last look at its clock and its write.

use std::cell::{Cell, RefCell};

use super::crashes::{check_listings_tell_the_truth, check_project_index};
use super::*;
use crate::meta::kv::{KeyValue, KvError, Step, Swap, CLOCK_SKEW_MS};
use crate::testing::SwapReports;

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

/// What a request does, through its instance's view of the store.
type Work<'a> = Box<dyn FnOnce(&Instance<'_, 'a>) + 'a>;

/// A request: its work, on an instance whose clock runs `offset` ms from
/// the store's.
struct Request<'a> {
    offset: i64,
    work: Work<'a>,
}

/// One schedule: its dice and the requests not started yet.
struct Schedule<'a> {
    dice: Dice,
    waiting: RefCell<Vec<Request<'a>>>,
}

/// One request's view of the store.
struct Instance<'s, 'a> {
    store: &'s MemoryStore,
    schedule: &'s Schedule<'a>,
    offset: i64,
    /// How many requests this one runs inside.
    depth: usize,
}

impl<'a> Schedule<'a> {
    /// A schedule of `requests` (their work and clock) from `seed`, on a
    /// store whose swaps answer as one of Spin's stores' do, and whose
    /// clock is within a few seconds of an epoch's end.
    fn new(seed: u64, store: &MemoryStore, requests: Vec<Work<'a>>) -> Self {
        let dice = Dice::new(seed);
        store.reports.set(match dice.below(3) {
            0 => SwapReports::Truthful,
            1 => SwapReports::AlwaysFailed,
            _ => SwapReports::Inverted,
        });
        let epoch_end = (store.now_millis() / kv::CLAIM_EPOCH_MS + 1) * kv::CLAIM_EPOCH_MS;
        store
            .clock
            .set(epoch_end - 8_000 + dice.below(16_000) as i64);
        // Clocks within the skew of one another.
        let half_skew = CLOCK_SKEW_MS / 2;
        let mut requests: Vec<Request<'a>> = requests
            .into_iter()
            .map(|work| Request {
                offset: dice.below(2 * half_skew as u64 + 1) as i64 - half_skew,
                work,
            })
            .collect();
        requests.reverse();
        Schedule {
            dice,
            waiting: RefCell::new(requests),
        }
    }

    /// Runs every request: the first, with the others inside it as the dice
    /// fall, then those left, one after another.
    fn run_all(&self, store: &MemoryStore) {
        while let Some(request) = self.next() {
            self.run(store, request, 0);
        }
    }

    fn next(&self) -> Option<Request<'a>> {
        self.waiting.borrow_mut().pop()
    }

    fn run(&self, store: &MemoryStore, request: Request<'a>, depth: usize) {
        let instance = Instance {
            store,
            schedule: self,
            offset: request.offset,
            depth,
        };
        (request.work)(&instance);
    }
}

impl Instance<'_, '_> {
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
            if let Some(request) = self.schedule.next() {
                self.schedule.run(self.store, request, self.depth + 1);
            }
        }
    }
}

impl KeyValue for Instance<'_, '_> {
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
        self.interfere();
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
    for seed in 0..20_000 {
        let store = MemoryStore::default();
        let answers: RefCell<Vec<(String, Result<(), KvError>)>> = RefCell::default();
        // Each request adds its name to `k`.
        let requests = (0..2 + seed % 3)
            .map(|i| {
                let answers = &answers;
                Box::new(move |kv: &Instance| {
                    let name = format!("request {i}");
                    let answer = kv::update(kv, "k", |current| {
                        let mut names = current.map(names_in).unwrap_or_default();
                        if names.contains(&name) {
                            return Step::Keep(());
                        }
                        names.push(name.clone());
                        Step::Write(names.join(",").into_bytes(), ())
                    });
                    answers.borrow_mut().push((name, answer));
                }) as Work
            })
            .collect();
        Schedule::new(seed, &store, requests).run_all(&store);
        let stored = store.get("k").unwrap().map(names_in).unwrap_or_default();
        for (name, answer) in answers.borrow().iter() {
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

#[test]
fn under_any_schedule_every_file_published_is_recorded_once_in_its_package() {
    for seed in 0..2_000 {
        let store = MemoryStore::default();
        let project = new_project(&store, "tools");
        let published: RefCell<Vec<(String, PackageFile)>> = RefCell::default();
        // Publishes of one file each into two versions, both new at first.
        let requests = (0..3 + seed % 4)
            .map(|i| {
                let (project, published) = (&project, &published);
                Box::new(move |kv: &Instance| {
                    let version = ["1.0", "2.0"][i as usize % 2];
                    let mut c = commit(project);
                    c.version = version;
                    let mut new = file(&format!("f{i}.bin"), "x");
                    new.object_key = format!("objects/{i}");
                    match commit_file(kv, &c, new) {
                        Ok((_, stored)) => {
                            published.borrow_mut().push((version.to_string(), stored))
                        }
                        Err(MetaError::Store(KvError::Busy(_))) => {}
                        Err(e) => panic!("schedule {seed}: {e}"),
                    }
                }) as Work
            })
            .collect();
        Schedule::new(seed, &store, requests).run_all(&store);
        check_listings_tell_the_truth(&store);
        let mut ids = Vec::new();
        for (version, answered) in published.borrow().iter() {
            let package = package(&store, project.id, "tool", version)
                .unwrap()
                .unwrap_or_else(|| panic!("schedule {seed}: no package {version}"));
            let files = package_files(&store, &package).unwrap();
            assert!(
                files.contains(answered),
                "schedule {seed}: {} answered in {version}, which holds {:?}",
                answered.file_name,
                files.iter().map(|f| &f.file_name).collect::<Vec<_>>()
            );
            let recorded = files
                .iter()
                .filter(|f| f.object_key == answered.object_key)
                .count();
            assert_eq!(
                recorded, 1,
                "schedule {seed}: {} recorded {recorded} times",
                answered.file_name
            );
            ids.push(answered.id);
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "schedule {seed}: a file id given twice");
    }
}

#[test]
fn under_any_schedule_of_publishes_status_changes_and_deletions_listings_tell_the_truth() {
    for seed in 0..5_000 {
        let store = MemoryStore::default();
        let project = new_project(&store, "tools");
        // Both versions exist, their index entries settled by a later
        // creation, so that listings trust the entries.
        for version in ["1.0", "2.0"] {
            let mut c = commit(&project);
            c.version = version;
            commit_file(&store, &c, file("first.bin", "x")).unwrap();
        }
        store.pause(packages::SETTLE_AFTER_MS as u64);
        let mut settling = commit(&project);
        settling.version = "0.1";
        commit_file(&store, &settling, file("first.bin", "x")).unwrap();
        assert!(index_of(&store, project.id)
            .iter()
            .filter(|e| e.version != "0.1")
            .all(|e| !e.is_unsure()));
        // Publishes into the two versions, some changing the status,
        // deletions of either version, and listings, which must tell the
        // truth whenever they run.
        let requests = (0..4 + seed % 4)
            .map(|i| {
                let project = &project;
                Box::new(move |kv: &Instance| {
                    let version = ["1.0", "2.0"][(i as usize + seed as usize) % 2];
                    let outcome = if i % 4 == 3 {
                        check_listings_tell_the_truth(kv.store);
                        Ok(())
                    } else if (i + seed) % 3 == 2 {
                        package(kv, project.id, "tool", version).and_then(|found| match found {
                            Some(found) => remove_package(kv, &found, 9_000).map(drop),
                            None => Ok(()),
                        })
                    } else {
                        let mut c = commit(project);
                        c.version = version;
                        c.status = [
                            None,
                            Some(PackageStatus::Hidden),
                            Some(PackageStatus::Default),
                        ][(i + seed / 3) as usize % 3];
                        let mut new = file(&format!("f{i}.bin"), "x");
                        new.object_key = format!("objects/{i}");
                        commit_file(kv, &c, new).map(drop)
                    };
                    answered_or_busy(seed, outcome);
                }) as Work
            })
            .collect();
        Schedule::new(seed, &store, requests).run_all(&store);
        check_listings_tell_the_truth(&store);
    }
}

#[test]
fn under_any_schedule_of_visibility_changes_and_deletions_the_project_index_tells_the_truth() {
    for seed in 0..5_000 {
        let store = MemoryStore::default();
        let project = new_project(&store, "tools");
        // Visibility changes each way, deletions, and listings, which must
        // tell the truth whenever they run.
        let requests = (0..4 + seed % 4)
            .map(|i| {
                let id = project.id;
                Box::new(move |kv: &Instance| {
                    let outcome = match (i + seed) % 4 {
                        0 => {
                            check_project_index(kv.store);
                            Ok(())
                        }
                        1 => project_index::delete_project(kv, id, 9_000).map(drop),
                        turn => {
                            let visibility = match turn {
                                2 => Visibility::Public,
                                _ => Visibility::Private,
                            };
                            let change = format!("request {i}");
                            project_index::set_visibility(kv, id, visibility, &change).map(drop)
                        }
                    };
                    answered_or_busy(seed, outcome);
                }) as Work
            })
            .collect();
        Schedule::new(seed, &store, requests).run_all(&store);
        check_project_index(&store);
    }
}

/// That a request answered, or found a key another request was creating
/// (a 503 to try again): nothing else.
fn answered_or_busy(seed: u64, outcome: Result<(), MetaError>) {
    match outcome {
        Ok(()) | Err(MetaError::Store(KvError::Busy(_))) => {}
        Err(e) => panic!("schedule {seed}: {e}"),
    }
}
