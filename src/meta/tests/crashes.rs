//! Crash consistency: every package operation is cut after its 1st, 2nd,
//! ... Nth write (the process dies, see [`CrashAfter`]), then the store is
//! checked against the invariant of `meta::packages` and the operation is
//! run again to completion on the same store, as the next request would.

use super::*;
use crate::meta::kv::{CLAIM_EPOCH_MS, CLOCK_SKEW_MS};
use crate::testing::CrashAfter;

/// Runs `operation` cut after every possible number of writes, each time on
/// a store prepared by `setup`. After each cut: the invariant holds, the
/// operation can be run again to completion (no key was left unusable),
/// and the invariant holds once more. Returns how many cut points it tried.
fn at_every_crash_point<S>(
    setup: impl Fn(&MemoryStore) -> S,
    operation: impl Fn(&dyn KvHandle, &S) -> Result<(), MetaError>,
) -> usize {
    for writes in 0..200 {
        let kv = MemoryStore::default();
        let state = setup(&kv);
        let crashing = CrashAfter::new(&kv, writes);
        let result = operation(&&crashing, &state);
        if !crashing.crashed() {
            result.unwrap();
            eprintln!("{writes} crash points tried");
            return writes;
        }
        // The next request comes later: any creation claim has expired.
        kv.pause((CLAIM_EPOCH_MS + CLOCK_SKEW_MS) as u64);
        check_listings_tell_the_truth(&kv);
        operation(&&kv, &state).unwrap_or_else(|e| panic!("after {writes} writes: {e}"));
        check_listings_tell_the_truth(&kv);
    }
    panic!("an operation that never finishes")
}

/// A store handle the operations run against: the crashing one, then the
/// real one.
trait KvHandle {
    fn commit(&self, commit: &Commit, file: NewFile) -> Result<(Package, PackageFile), MetaError>;
    fn delete_package(&self, project: u64, package: u64) -> Result<(), MetaError>;
    fn delete_file(&self, project: u64, package: u64, file: u64) -> Result<(), MetaError>;
    fn prune(&self, project: u64, package: u64, name: &str) -> Result<(), MetaError>;
    fn create_project(&self, path: &str) -> Result<(), MetaError>;
    fn set_visibility(&self, project: u64, visibility: Visibility) -> Result<(), MetaError>;
    fn delete_project(&self, project: u64) -> Result<(), MetaError>;
}

impl<K: KeyValue> KvHandle for &K {
    fn commit(&self, commit: &Commit, file: NewFile) -> Result<(Package, PackageFile), MetaError> {
        commit_file(*self, commit, file)
    }

    fn delete_package(&self, project: u64, package: u64) -> Result<(), MetaError> {
        super::delete_package(*self, project, package, 9_000).map(drop)
    }

    fn delete_file(&self, project: u64, package: u64, file: u64) -> Result<(), MetaError> {
        super::delete_file(*self, project, package, file, 9_000).map(drop)
    }

    fn prune(&self, project: u64, package: u64, name: &str) -> Result<(), MetaError> {
        match package_by_id(*self, project, package)? {
            Some(found) => prune_files(*self, &found, name, 1, 9_000).map(drop),
            None => Ok(()),
        }
    }

    fn create_project(&self, path: &str) -> Result<(), MetaError> {
        let new = NewProject {
            name: path.into(),
            path: path.into(),
            namespace: "acme".into(),
            visibility: Visibility::Public,
        };
        match super::create_project(*self, new, 9_000) {
            // A retry finds the path taken by the project the cut run
            // created: that is the outcome asked for.
            Err(MetaError::PathTaken) => Ok(()),
            other => other.map(drop),
        }
    }

    fn set_visibility(&self, project: u64, visibility: Visibility) -> Result<(), MetaError> {
        project_index::set_visibility(*self, project, visibility, "cut").map(drop)
    }

    fn delete_project(&self, project: u64) -> Result<(), MetaError> {
        project_index::delete_project(*self, project, 9_000).map(drop)
    }
}

/// The invariants: the project index lists exactly the live projects with
/// their visibility; each project's package listing shows exactly its live
/// packages, each once and with its stored status; every listed package is
/// found by id; every live package's files all read back.
pub(super) fn check_listings_tell_the_truth(kv: &MemoryStore) {
    check_project_index(kv);
    check_package_indexes(kv);
}

pub(super) fn check_project_index(kv: &MemoryStore) {
    let records: Vec<Project> = kv
        .values
        .borrow()
        .iter()
        .filter(|(key, _)| key.starts_with("v1/project/"))
        .map(|(_, bytes)| serde_json::from_slice(bytes).unwrap())
        .collect();
    let live: Vec<&Project> = records
        .iter()
        .filter(|p| {
            let claim = kv.get(&keys::project_path(&p.full_path())).unwrap();
            !p.is_deleted() && claim == Some(p.id.to_string().into_bytes())
        })
        .collect();
    let listed = project_index::project_entries(kv).unwrap();
    let mut listed_ids: Vec<u64> = listed.iter().map(|e| e.id).collect();
    let mut live_ids: Vec<u64> = live.iter().map(|p| p.id).collect();
    listed_ids.sort();
    live_ids.sort();
    assert_eq!(listed_ids, live_ids, "listed vs live projects");
    for project in live {
        let entry = listed.iter().find(|e| e.id == project.id).unwrap();
        assert_eq!(entry.public, project.visibility == Visibility::Public);
        assert_eq!(
            super::project(kv, &ProjectRef::Path(project.full_path()))
                .unwrap()
                .map(|p| p.id),
            Some(project.id)
        );
    }
}

fn check_package_indexes(kv: &MemoryStore) {
    let records: Vec<(String, Package)> = kv
        .values
        .borrow()
        .iter()
        .filter(|(key, _)| key.starts_with("v1/pkg/") && !kv::is_creation_claim(key))
        .map(|(key, bytes)| (key.clone(), serde_json::from_slice(bytes).unwrap()))
        .collect();
    let projects: std::collections::BTreeSet<u64> =
        records.iter().map(|(_, p)| p.project_id).collect();
    for project_id in projects {
        let listed = package_summaries(kv, project_id).unwrap();
        let live: Vec<&Package> = records
            .iter()
            .map(|(_, p)| p)
            .filter(|p| p.project_id == project_id && !p.is_deleted())
            .collect();
        let mut listed_ids: Vec<u64> = listed.iter().map(|s| s.id).collect();
        let mut live_ids: Vec<u64> = live.iter().map(|p| p.id).collect();
        listed_ids.sort();
        live_ids.sort();
        assert_eq!(listed_ids, live_ids, "listed vs live packages");
        for package in live {
            let entry = listed.iter().find(|s| s.id == package.id).unwrap();
            assert_eq!(entry.status, package.status);
            let found = package_by_id(kv, project_id, package.id).unwrap();
            assert_eq!(found.as_ref().map(|p| p.id), Some(package.id));
            package_files(kv, package).unwrap();
        }
    }
}

fn project_in(kv: &MemoryStore) -> Project {
    new_project(kv, "tools")
}

fn publish(
    handle: &dyn KvHandle,
    project: &Project,
    version: &str,
    name: &str,
) -> Result<(), MetaError> {
    let mut c = commit(project);
    c.version = version;
    handle.commit(&c, file(name, "x")).map(drop)
}

#[test]
fn creating_a_package_survives_a_crash_after_any_write() {
    let points = at_every_crash_point(project_in, |kv, project| {
        publish(kv, project, "1.0.0", "a.bin")
    });
    assert!(points >= 5, "{points} crash points");
}

#[test]
fn adding_a_file_survives_a_crash_after_any_write() {
    // The package's block of ids is used up: this publish draws the next.
    let points = at_every_crash_point(
        |kv| {
            let project = project_in(kv);
            for i in 0..packages::FIRST_BLOCK {
                publish(&kv, &project, "1.0.0", &format!("f{i}.bin")).unwrap();
            }
            project
        },
        |kv, project| publish(kv, project, "1.0.0", "b.bin"),
    );
    assert!(points >= 2, "{points} crash points");
}

#[test]
fn hiding_a_package_survives_a_crash_after_any_write() {
    let points = at_every_crash_point(
        |kv| {
            let project = project_in(kv);
            publish(&kv, &project, "1.0.0", "a.bin").unwrap();
            project
        },
        |kv, project| {
            let mut c = commit(project);
            c.status = Some(PackageStatus::Hidden);
            kv.commit(&c, file("b.bin", "x")).map(drop)
        },
    );
    assert!(points >= 3, "{points} crash points");
}

#[test]
fn sealing_a_segment_survives_a_crash_after_any_write() {
    let points = at_every_crash_point(
        |kv| {
            let project = project_in(kv);
            for i in 0..packages::TAIL_FILES - 1 {
                publish(&kv, &project, "1.0.0", &format!("f{i}.bin")).unwrap();
            }
            project
        },
        |kv, project| publish(kv, project, "1.0.0", "last.bin"),
    );
    assert!(points >= 2, "{points} crash points");
}

#[test]
fn deleting_a_package_survives_a_crash_after_any_write() {
    let points = at_every_crash_point(
        |kv| {
            let project = project_in(kv);
            publish(&kv, &project, "1.0.0", "a.bin").unwrap();
            publish(&kv, &project, "2.0.0", "a.bin").unwrap();
            let id = package(kv, project.id, "tool", "1.0.0")
                .unwrap()
                .unwrap()
                .id;
            (project, id)
        },
        |kv, (project, id)| kv.delete_package(project.id, *id),
    );
    assert!(points >= 3, "{points} crash points");
}

#[test]
fn deleting_and_pruning_files_in_segments_survive_a_crash_after_any_write() {
    let setup = |kv: &MemoryStore| {
        let project = project_in(kv);
        for i in 0..packages::TAIL_FILES + 10 {
            publish(&kv, &project, "1.0.0", &format!("f{}.bin", i % 3)).unwrap();
        }
        let package = package(kv, project.id, "tool", "1.0.0").unwrap().unwrap();
        let first = package_files(kv, &package).unwrap()[0].id;
        (project, package.id, first)
    };
    let points = at_every_crash_point(setup, |kv, (project, package, first)| {
        kv.delete_file(project.id, *package, *first)
    });
    assert!(points >= 2, "{points} crash points");
    let points = at_every_crash_point(setup, |kv, (project, package, _)| {
        kv.prune(project.id, *package, "f1.bin")
    });
    assert!(points >= 2, "{points} crash points");
}

#[test]
fn creating_a_project_survives_a_crash_after_any_write() {
    let points = at_every_crash_point(|_| (), |kv, _| kv.create_project("tools"));
    assert!(points >= 5, "{points} crash points");
}

#[test]
fn changing_visibility_survives_a_crash_after_any_write() {
    let points = at_every_crash_point(project_in, |kv, project| {
        kv.set_visibility(project.id, Visibility::Public)
    });
    assert!(points >= 3, "{points} crash points");
}

#[test]
fn deleting_a_project_survives_a_crash_after_any_write() {
    let points = at_every_crash_point(project_in, |kv, project| kv.delete_project(project.id));
    assert!(points >= 3, "{points} crash points");
}
