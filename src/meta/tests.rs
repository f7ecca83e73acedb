use super::*;
use crate::testing::MemoryStore;

/// [`super::commit_file`], with the committed record's files decoded for
/// the tests to look at.
fn commit_file<K: KeyValue>(
    kv: &K,
    commit: &Commit,
    file: NewFile,
) -> Result<(Package, PackageFile), MetaError> {
    super::commit_file(kv, commit, file).map(decoded)
}

/// [`super::commit_file_with_id`], with the files decoded.
fn commit_file_with_id<K: KeyValue>(
    kv: &K,
    commit: &Commit,
    file: NewFile,
    file_id: u64,
) -> Result<(Package, PackageFile), MetaError> {
    super::commit_file_with_id(kv, commit, file, file_id).map(decoded)
}

fn decoded((package, file): (Package<RawFile>, PackageFile)) -> (Package, PackageFile) {
    (package.decode_files().expect("stored files decode"), file)
}

fn new_project(kv: &MemoryStore, path: &str) -> Project {
    project_in(kv, "acme/platform", path)
}

/// Creates a private project `namespace/path` (for the tests of every
/// `meta` module).
pub(super) fn project_in(kv: &MemoryStore, namespace: &str, path: &str) -> Project {
    create_project(
        kv,
        NewProject {
            name: path.into(),
            path: path.into(),
            namespace: namespace.into(),
            visibility: Visibility::Private,
        },
        1_000,
    )
    .unwrap()
}

fn index_of(kv: &MemoryStore, project_id: u64) -> Vec<PackageSummary> {
    let bytes = kv
        .get(&keys::package_index(project_id, 0))
        .unwrap()
        .unwrap();
    serde_json::from_slice::<IndexShard>(&bytes)
        .unwrap()
        .entries
}

/// Runs `check` on a fresh store with a project, once per way a store may
/// report swaps (see [`crate::testing::SwapReports`]).
fn with_every_swap_report(check: impl Fn(&MemoryStore, &Project, crate::testing::SwapReports)) {
    for reports in [
        crate::testing::SwapReports::Truthful,
        crate::testing::SwapReports::AlwaysFailed,
        crate::testing::SwapReports::Inverted,
    ] {
        let kv = MemoryStore::default();
        kv.reports.set(reports);
        let project = new_project(&kv, "tools");
        check(&kv, &project, reports);
    }
}

fn file(name: &str, sha256: &str) -> NewFile {
    NewFile {
        file_name: name.into(),
        size: 3,
        md5: "m".into(),
        sha1: "s".into(),
        sha256: sha256.into(),
        object_key: format!("objects/{}", sha256.len()),
    }
}

fn commit(project: &Project) -> Commit<'_> {
    Commit {
        project,
        name: "tool",
        version: "1.0.0",
        status: None,
        now: 2_000,
        read_after: &[],
        index_shards: None,
    }
}

/// Stores the project's namespace settings with duplicates not allowed.
fn forbid_duplicates(kv: &MemoryStore, project: &Project) {
    change_namespace_settings(kv, &project.namespace, |settings| {
        settings.generic_duplicates_allowed = false;
    })
    .unwrap();
}

#[test]
fn projects_are_found_by_id_and_by_case_insensitive_path() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    assert_eq!(project.full_path(), "acme/platform/tools");
    let by_id = super::project(&kv, &ProjectRef::Id(project.id)).unwrap();
    let by_path = super::project(&kv, &ProjectRef::parse("ACME/Platform/tools")).unwrap();
    assert_eq!(by_id.as_ref(), Some(&project));
    assert_eq!(by_path.as_ref(), Some(&project));
    assert_eq!(super::project(&kv, &ProjectRef::Id(999)).unwrap(), None);
}

#[test]
fn a_taken_project_path_is_refused_and_leaves_no_record() {
    let kv = MemoryStore::default();
    new_project(&kv, "tools");
    let before = kv.values.borrow().len();
    let err = create_project(
        &kv,
        NewProject {
            name: "x".into(),
            path: "TOOLS".into(),
            namespace: "acme/platform".into(),
            visibility: Visibility::Public,
        },
        1,
    )
    .unwrap_err();
    assert!(matches!(err, MetaError::PathTaken));
    // Only the id counter moved.
    assert_eq!(kv.values.borrow().len(), before);
}

#[test]
fn first_file_creates_the_package_and_indexes_it() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let (package, stored) = commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    assert_eq!(package.files, vec![stored.clone()]);
    assert_eq!(package.status, PackageStatus::Default);
    // The package takes its first file's id and names its shard itself:
    // no location key, no package counter.
    assert_eq!(package.id, stored.id);
    assert_eq!(package.index_shard, Some(0));
    assert_eq!(kv.get(&keys::package_by_id(package.id)).unwrap(), None);
    assert_eq!(kv.get(&keys::sequence("package")).unwrap(), None);
    let index = index_of(&kv, project.id);
    assert_eq!(index.len(), 1);
    assert_eq!((index[0].id, index[0].name.as_str()), (package.id, "tool"));
    assert!(index[0].creating.is_some(), "settled by a later write");
    assert_eq!(
        package_by_id(&kv, project.id, package.id).unwrap(),
        Some(package)
    );
}

#[test]
fn creations_settle_the_earlier_ones_in_batches_or_once_they_waited() {
    use super::packages::{SETTLE_AFTER_MS, SETTLE_BATCH};
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let publish = |version: &str| {
        let mut c = commit(&project);
        c.version = version;
        commit_file(&kv, &c, file("a.bin", version)).unwrap();
    };
    let unsure = || -> Vec<String> {
        index_of(&kv, project.id)
            .into_iter()
            .filter(|e| e.is_unsure())
            .map(|e| e.version)
            .collect()
    };
    // Below the batch, creations leave each other unsure...
    for n in 0..SETTLE_BATCH {
        publish(&format!("1.{n}"));
    }
    assert_eq!(unsure().len(), SETTLE_BATCH);
    // ...and the one that finds a full batch settles it.
    publish("2.0");
    assert_eq!(unsure(), ["2.0"]);
    // A lone creation settles one that waited long enough.
    publish("2.1");
    assert_eq!(unsure(), ["2.0", "2.1"]);
    kv.clock.set(kv.clock.get() + SETTLE_AFTER_MS);
    publish("2.2");
    assert_eq!(unsure(), ["2.2"]);
    // Settling never changes what a listing shows.
    assert_eq!(
        package_summaries(&kv, project.id).unwrap().len(),
        SETTLE_BATCH + 3
    );
}

#[test]
fn a_creation_that_never_wrote_its_record_is_not_listed_and_is_dropped_later() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    // A creator that died after entering its package in the index.
    let mut entries = index_of(&kv, project.id);
    entries.push(PackageSummary {
        id: 999,
        name: "ghost".into(),
        version: "1.0".into(),
        status: PackageStatus::Default,
        created_at: 1,
        pending: false,
        changes: Vec::new(),
        creating: Some(kv.now_millis()),
    });
    kv.set(&keys::package_index(project.id, 0), &encode(&entries))
        .unwrap();
    let live = |kv: &MemoryStore| -> Vec<String> {
        package_summaries(kv, project.id)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(live(&kv), ["tool"]);
    assert_eq!(package_by_id(&kv, project.id, 999).unwrap(), None);

    let publish = |kv: &MemoryStore, version: &str| {
        let mut c = commit(&project);
        c.version = version;
        commit_file(kv, &c, file("a.bin", version)).unwrap();
    };
    let ghost_entered = |kv: &MemoryStore| index_of(kv, project.id).iter().any(|e| e.id == 999);
    // Within ABANDONED_AFTER_MS it may still be on its way: kept.
    publish(&kv, "2.0");
    assert!(ghost_entered(&kv));
    kv.clock
        .set(kv.clock.get() + super::packages::ABANDONED_AFTER_MS + 1);
    publish(&kv, "3.0");
    assert!(!ghost_entered(&kv));
    assert_eq!(live(&kv), ["tool", "tool", "tool"]);
}

#[test]
fn a_slow_creator_renews_its_entry_and_enters_it_again_if_dropped() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    let mut slow = commit(&project);
    slow.version = "2.0";
    let creating_at = |kv: &MemoryStore, id: u64| {
        index_of(kv, project.id)
            .iter()
            .filter(|e| e.id == id)
            .map(|e| e.creating)
            .collect::<Vec<_>>()
    };
    let entered_at = kv.now_millis();
    super::packages::refresh(&kv, &slow, 500, 0).unwrap();
    assert_eq!(creating_at(&kv, 500), [Some(entered_at)]);
    kv.clock.set(entered_at + 90_000);
    super::packages::refresh(&kv, &slow, 500, 0).unwrap();
    assert_eq!(
        creating_at(&kv, 500),
        [Some(entered_at + 90_000)],
        "renewed, once"
    );
    // Dropped as abandoned meanwhile: entered again.
    let others: Vec<PackageSummary> = index_of(&kv, project.id)
        .into_iter()
        .filter(|e| e.id != 500)
        .collect();
    kv.set(&keys::package_index(project.id, 0), &encode(&others))
        .unwrap();
    super::packages::refresh(&kv, &slow, 500, 0).unwrap();
    assert_eq!(creating_at(&kv, 500), [Some(entered_at + 90_000)]);
}

#[test]
fn packages_of_the_older_layout_are_still_found_changed_and_deleted() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    // As the older layout wrote them: a package id from its own sequence,
    // a location key, a settled entry, a counter of packages created, and
    // a record that does not name its shard.
    let (created, stored) = commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    let old = Package {
        id: 1,
        index_shard: None,
        file_ids: None,
        ..created.clone()
    };
    kv.set(&keys::package(project.id, "tool", "1.0"), &encode(&old))
        .unwrap();
    kv.set(
        &keys::package_by_id(1),
        &encode(&PackageLocation {
            project_id: project.id,
            name: "tool".into(),
            version: "1.0".into(),
            index_shard: 0,
        }),
    )
    .unwrap();
    kv.set(
        &keys::package_index(project.id, 0),
        &encode(&vec![PackageSummary::of(&old)]),
    )
    .unwrap();
    assert_eq!(
        package_by_id(&kv, project.id, 1).unwrap().map(|p| p.id),
        Some(1)
    );
    let mut second = commit(&project);
    second.version = "2.0";
    let (new, _) = commit_file(&kv, &second, file("b.bin", "2")).unwrap();
    assert!(new.id > stored.id, "a fresh id from the file sequence");
    let mut hide = commit(&project);
    hide.status = Some(PackageStatus::Hidden);
    commit_file(&kv, &hide, file("c.bin", "3")).unwrap();
    let listed = package_summaries(&kv, project.id).unwrap();
    let statuses: Vec<(u64, PackageStatus)> = listed.iter().map(|s| (s.id, s.status)).collect();
    assert_eq!(
        statuses,
        [(1, PackageStatus::Hidden), (new.id, PackageStatus::Default)]
    );
    delete_package(&kv, project.id, 1, 5_000).unwrap().unwrap();
    let left: Vec<u64> = package_summaries(&kv, project.id)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, [new.id]);
}

#[test]
fn a_full_shard_sends_new_packages_to_a_new_one() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    // The older counter said how many packages were created: 350 means
    // shard 1 holds up to 150 of them; it is filled up to the shard size.
    kv.increment(&keys::package_ordinal(project.id), 350)
        .unwrap();
    let full: Vec<PackageSummary> = (0..INDEX_SHARD_SIZE - 1)
        .map(|i| PackageSummary {
            id: 10_000 + i,
            name: format!("old{i}"),
            version: "1".into(),
            status: PackageStatus::Default,
            created_at: 0,
            pending: false,
            changes: Vec::new(),
            creating: None,
        })
        .collect();
    kv.set(&keys::package_index(project.id, 1), &encode(&full))
        .unwrap();
    let mut c = commit(&project);
    c.version = "1";
    let (last_in_one, _) = commit_file(&kv, &c, file("a.bin", "1")).unwrap();
    c.version = "2";
    let (first_in_two, _) = commit_file(&kv, &c, file("a.bin", "2")).unwrap();
    assert_eq!(last_in_one.index_shard, Some(1));
    assert_eq!(first_in_two.index_shard, Some(2));
    let listed: Vec<u64> = package_summaries(&kv, project.id)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .filter(|&id| id < 10_000)
        .collect();
    assert_eq!(listed, [last_in_one.id, first_in_two.id]);
}

#[test]
fn a_shard_count_read_before_a_shard_filled_still_finds_the_newest_shard() {
    use super::packages::index_shards;
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let publish = |version: &str, index_shards: Option<u64>| {
        let mut c = commit(&project);
        c.version = version;
        c.index_shards = index_shards;
        commit_file(&kv, &c, file("a.bin", version)).unwrap().0
    };
    publish("0", None);
    // What a request read ahead: one shard.
    let read_ahead = index_shards(&kv, project.id).unwrap();
    assert_eq!(read_ahead, 1);
    // Other publishes fill it and open the next before this one commits.
    for n in 1..=INDEX_SHARD_SIZE {
        publish(&n.to_string(), None);
    }
    assert_eq!(index_shards(&kv, project.id).unwrap(), 2);
    let late = publish("late", Some(read_ahead));
    assert_eq!(late.index_shard, Some(1));
    assert_eq!(index_shards(&kv, project.id).unwrap(), 2);
    let listed = package_summaries(&kv, project.id).unwrap();
    assert_eq!(listed.len(), INDEX_SHARD_SIZE as usize + 2);
    assert_eq!(listed.last().map(|s| s.id), Some(late.id));
}

#[test]
fn a_session_file_id_drawn_earlier_is_not_reused_as_a_package_id() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let drawn_earlier = next_id(&kv, "file").unwrap();
    let (package, stored) =
        commit_file_with_id(&kv, &commit(&project), file("a.bin", "1"), drawn_earlier).unwrap();
    assert_eq!(stored.id, drawn_earlier);
    assert!(package.id > drawn_earlier);
}

#[test]
fn same_file_name_twice_keeps_both_and_the_newest_wins() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    commit_file(&kv, &commit(&project), file("a.bin", "old")).unwrap();
    let (package, _) = commit_file(&kv, &commit(&project), file("a.bin", "new")).unwrap();
    assert_eq!(package.files.len(), 2);
    assert_eq!(package.newest_file("a.bin").unwrap().sha256, "new");
    // The package was created once and indexed once.
    assert_eq!(index_of(&kv, project.id).len(), 1);
}

#[test]
fn duplicates_are_refused_when_the_namespace_forbids_them() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    forbid_duplicates(&kv, &project);
    commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    let err = commit_file(&kv, &commit(&project), file("a.bin", "2")).unwrap_err();
    assert!(matches!(err, MetaError::Duplicate));
    commit_file(&kv, &commit(&project), file("b.bin", "3")).unwrap();
}

#[test]
fn a_publish_carries_the_records_other_files_through_as_stored() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    forbid_duplicates(&kv, &project);
    commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    // The first file as another writer could have stored it: spaces, other
    // field order, and escapes in its name and object.
    let key = keys::package(project.id, "tool", "1.0.0");
    let stored = String::from_utf8(kv.get(&key).unwrap().unwrap()).unwrap();
    let start = stored.find("\"files\":[").unwrap() + "\"files\":[".len();
    let end = start + stored[start..].find('}').unwrap() + 1;
    let first: PackageFile = serde_json::from_str(&stored[start..end]).unwrap();
    let written = format!(
        r#"{{ "created_at" : 5, "file_name" : "\u0061.bin", "id" : {}, "size" : 3, "md5" : "m", "sha1" : "s", "sha256" : "1", "object_key" : "objects\/1" }}"#,
        first.id
    );
    kv.set(
        &key,
        format!("{}{written}{}", &stored[..start], &stored[end..]).as_bytes(),
    )
    .unwrap();

    // Its name is still found: a duplicate is refused.
    let err = commit_file(&kv, &commit(&project), file("a.bin", "2")).unwrap_err();
    assert!(matches!(err, MetaError::Duplicate));
    // Another name is recorded, and the first file's text is left as it was.
    commit_file(&kv, &commit(&project), file("b.bin", "3")).unwrap();
    let after = String::from_utf8(kv.get(&key).unwrap().unwrap()).unwrap();
    assert!(after.contains(&written), "{after}");
    let package = package(&kv, project.id, "tool", "1.0.0").unwrap().unwrap();
    let names: Vec<&str> = package.files.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(names, ["a.bin", "b.bin"]);
    assert_eq!(package.files[0].object_key, "objects/1");
}

#[test]
fn commit_retries_after_a_conflicting_write() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    *kv.conflicts.borrow_mut() = 3;
    let (package, stored) = commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    assert_eq!(package.files.len(), 1);
    // One block of ids was drawn for the shard despite the retries: the
    // package took its first id, and so did its first file.
    assert_eq!(
        kv.increment(&keys::sequence("file"), 0).unwrap(),
        packages::SHARD_BLOCK as i64
    );
    assert_eq!((package.id, stored.id), (1, 1));
}

#[test]
fn a_package_hands_out_its_file_ids_in_growing_blocks() {
    use crate::testing::{Counting, Counts};
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let (_, first) = commit_file(&kv, &commit(&project), file("f0", "x")).unwrap();
    let counting = Counting::new(&kv);
    let mut ids = vec![first.id];
    for i in 1..100 {
        let (_, stored) =
            commit_file(&counting, &commit(&project), file(&format!("f{i}"), "x")).unwrap();
        ids.push(stored.id);
    }
    // Ids rise within the package. The new package took its first 8 from
    // the shard's block of 256; after that the sequence moved once per
    // block: 8, 16, 32 and 64 ids.
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids[..10], [1, 2, 3, 4, 5, 6, 7, 8, 257, 258]);
    let Counts { increment, .. } = counting.counts();
    assert_eq!(increment, 4);
    assert_eq!(
        kv.increment(&keys::sequence("file"), 0).unwrap(),
        256 + 8 + 16 + 32 + 64
    );
    // The next new package takes the shard's next 8, drawing nothing.
    let mut other = commit(&project);
    other.version = "2.0.0";
    let counting = Counting::new(&kv);
    let (package, stored) = commit_file(&counting, &other, file("a.bin", "y")).unwrap();
    assert_eq!((package.id, stored.id), (9, 9));
    let Counts { increment, .. } = counting.counts();
    assert_eq!(increment, 1, "the record's creation claim only");
}

#[test]
fn new_packages_take_distinct_ids_from_their_shard_whatever_swaps_report() {
    with_every_swap_report(|kv, project, reports| {
        let mut ids = Vec::new();
        // More versions than one shard block holds first blocks for.
        for i in 0..40 {
            *kv.conflicts.borrow_mut() = i % 3;
            let mut c = commit(project);
            let version = format!("1.{i}");
            c.version = &version;
            let (package, stored) = commit_file(kv, &c, file("a.bin", "x")).unwrap();
            assert_eq!(package.id, stored.id, "{reports:?}");
            ids.push(package.id);
        }
        let listed: Vec<u64> = package_summaries(kv, project.id)
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed, ids, "{reports:?}");
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 40, "{reports:?}: {ids:?}");
    });
}

#[test]
fn waiting_for_another_request_to_create_a_shard_draws_ids_once() {
    use crate::meta::kv::{creation_claim, CLAIM_EPOCH_MS};
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    // Another request holds the creation claim of the project's first
    // shard, and writes it (as shards were written before blocks) 2 s on.
    let shard = keys::package_index(project.id, 0);
    let epoch = kv.now_millis().div_euclid(CLAIM_EPOCH_MS);
    kv.increment(&creation_claim(&shard, epoch), 1).unwrap();
    kv.scheduled
        .borrow_mut()
        .push((kv.now_millis() + 2_000, shard, b"[]".to_vec()));
    let (package, _) = commit_file(&kv, &commit(&project), file("a.bin", "x")).unwrap();
    // One block drawn while the shard was absent, used by every attempt
    // meanwhile, and one for the shard the other request wrote.
    assert_eq!(
        kv.increment(&keys::sequence("file"), 0).unwrap(),
        2 * packages::SHARD_BLOCK as i64
    );
    assert_eq!(package.id, packages::SHARD_BLOCK + 1);
}

#[test]
fn file_ids_stay_unique_whatever_swaps_report() {
    with_every_swap_report(|kv, project, reports| {
        for i in 0..40 {
            *kv.conflicts.borrow_mut() = i % 3;
            commit_file(kv, &commit(project), file(&format!("f{i}"), "x")).unwrap();
        }
        let package = package(kv, project.id, "tool", "1.0.0").unwrap().unwrap();
        let mut ids: Vec<u64> = package_files(kv, &package)
            .unwrap()
            .iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(ids.len(), 40, "{reports:?}");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 40, "{reports:?}: {ids:?}");
    });
}

#[test]
fn a_lost_swap_is_retried_from_one_read() {
    use crate::testing::{Counting, Counts};
    let kv = MemoryStore::default();
    kv.set("k", b"0").unwrap();
    *kv.conflicts.borrow_mut() = 1;
    let counting = Counting::new(&kv);
    let mut runs = 0;
    kv::update(&counting, "k", |value| -> Step<(), KvError> {
        runs += 1;
        match value.as_deref() {
            Some(b"1") => Step::Keep(()),
            _ => Step::Write(b"1".to_vec(), ()),
        }
    })
    .unwrap();
    assert_eq!(kv.get("k").unwrap().as_deref(), Some(&b"1"[..]));
    // Lost, then read again (no read-back of the lost swap), won, and
    // confirmed by one read.
    assert_eq!(runs, 2);
    assert_eq!(
        counting.counts(),
        Counts {
            read_for_swap: 2,
            swap: 2,
            get: 1,
            ..Counts::NONE
        }
    );
}

#[test]
fn status_on_upload_sets_the_whole_package() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let mut hidden = commit(&project);
    hidden.status = Some(PackageStatus::Hidden);
    commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    let (package, _) = commit_file(&kv, &hidden, file("b.bin", "2")).unwrap();
    assert_eq!(package.status, PackageStatus::Hidden);
    assert_eq!(index_of(&kv, project.id)[0].status, PackageStatus::Hidden);
}

#[test]
fn a_file_record_that_would_outgrow_a_value_is_refused() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let big = "x".repeat(200 * 1024);
    commit_file(&kv, &commit(&project), file("a.bin", &big)).unwrap();
    let err = commit_file(&kv, &commit(&project), file("b.bin", &big)).unwrap_err();
    assert!(matches!(err, MetaError::PackageFull));
}

#[test]
fn last_downloaded_at_moves_at_most_once_a_minute() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    let at = |kv: &MemoryStore| {
        package(kv, project.id, "tool", "1.0.0")
            .unwrap()
            .unwrap()
            .last_downloaded_at
    };
    let stamp = |kv: &MemoryStore, now| {
        let read = package(kv, project.id, "tool", "1.0.0").unwrap().unwrap();
        mark_downloaded(kv, &read, now).unwrap();
    };
    stamp(&kv, 100_000);
    assert_eq!(at(&kv), Some(100_000));
    stamp(&kv, 150_000);
    assert_eq!(at(&kv), Some(100_000));
    // A download that read the record before another one stamped it does
    // not stamp it again.
    let stale = package(&kv, project.id, "tool", "1.0.0").unwrap().unwrap();
    stamp(&kv, 160_000);
    mark_downloaded(&kv, &stale, 170_000).unwrap();
    assert_eq!(at(&kv), Some(160_000));
}

#[test]
fn a_new_package_is_created_once_even_where_swap_from_absent_overwrites() {
    // Another publisher holds this epoch's creation claim and wrote the
    // package first: this commit must add to it, not overwrite it.
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    commit_file(&kv, &commit(&project), file("first.bin", "1")).unwrap();
    let key = keys::package(project.id, "tool", "1.0.0");
    let epoch = kv.now_millis() / kv::CLAIM_EPOCH_MS;
    assert_eq!(
        kv.increment(&kv::creation_claim(&key, epoch), 0).unwrap(),
        1
    );
    let (package, _) = commit_file(&kv, &commit(&project), file("second.bin", "2")).unwrap();
    let names: Vec<&str> = package.files.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(names, ["first.bin", "second.bin"]);
}

#[test]
fn a_creation_claimed_by_someone_who_never_wrote_is_busy_then_taken_over() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let key = keys::package(project.id, "tool", "1.0.0");
    // A publisher claimed the key in this epoch and died before writing.
    let epoch = kv.now_millis() / kv::CLAIM_EPOCH_MS;
    kv.increment(&kv::creation_claim(&key, epoch), 1).unwrap();
    let err = commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert_eq!(kv.get(&key).unwrap(), None);
    // Once the epoch is over, the next publish creates it.
    kv.pause(kv::CLAIM_EPOCH_MS as u64);
    let (package, _) = commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    assert_eq!(package.files.len(), 1);
    assert_eq!(package_summaries(&kv, project.id).unwrap().len(), 1);
}

#[test]
fn early_in_an_epoch_a_claim_of_the_previous_one_is_waited_out() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let key = keys::package(project.id, "tool", "1.0.0");
    let epoch = kv.now_millis() / kv::CLAIM_EPOCH_MS + 1;
    let epoch_start = epoch * kv::CLAIM_EPOCH_MS;
    // A claimer of the previous epoch whose clock runs behind may still be
    // writing 1 s into this one.
    kv.increment(&kv::creation_claim(&key, epoch - 1), 1)
        .unwrap();
    kv.clock.set(epoch_start + 1_000);
    commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    assert!(kv.now_millis() >= epoch_start + kv::CLOCK_SKEW_MS);
    // Past the skew, nothing is waited for (nor read).
    let mut later = commit(&project);
    later.version = "2.0";
    let later_key = keys::package(project.id, "tool", "2.0");
    let epoch = kv.now_millis() / kv::CLAIM_EPOCH_MS;
    kv.increment(&kv::creation_claim(&later_key, epoch - 1), 1)
        .unwrap();
    let before = kv.now_millis();
    commit_file(&kv, &later, file("a.bin", "1")).unwrap();
    assert_eq!(kv.now_millis(), before);
}

/// A step that creates `key` with `mine` or keeps what is there.
fn create_or_keep(current: Option<Vec<u8>>) -> kv::Step<Vec<u8>, KvError> {
    match current {
        Some(stored) => kv::Step::Keep(stored),
        None => kv::Step::Write(b"mine".to_vec(), b"mine".to_vec()),
    }
}

/// Another request, holding the creation claim of `k` for `epoch`, creates
/// it with `theirs` at `at`.
fn created_by_another(kv: &MemoryStore, epoch: i64, at: i64) {
    kv.increment(&kv::creation_claim("k", epoch), 1).unwrap();
    kv.scheduled
        .borrow_mut()
        .push((at, "k".into(), b"theirs".to_vec()));
}

#[test]
fn early_in_an_epoch_the_previous_claimers_write_is_taken_as_soon_as_it_lands() {
    let kv = MemoryStore::default();
    let epoch = kv.now_millis() / kv::CLAIM_EPOCH_MS + 1;
    let epoch_start = epoch * kv::CLAIM_EPOCH_MS;
    // The previous epoch's claimer, its clock behind, writes 1.2 s into
    // this epoch.
    created_by_another(&kv, epoch - 1, epoch_start + 1_200);
    kv.clock.set(epoch_start + 1_000);
    let kept = kv::update(&kv, "k", create_or_keep).unwrap();
    assert_theirs(&kv, &kept);
    // Seen within one poll of landing, not once the skew is over.
    assert!(
        kv.now_millis() <= epoch_start + 1_300,
        "{}",
        kv.now_millis() - epoch_start
    );
}

#[test]
fn a_claim_won_after_a_slow_step_reads_the_key_again_before_creating_it() {
    let kv = MemoryStore::default();
    let epoch = kv.now_millis() / kv::CLAIM_EPOCH_MS;
    let epoch_start = epoch * kv::CLAIM_EPOCH_MS;
    kv.clock.set(epoch_start + 10_000);
    // Another request holds this epoch's claim and creates the key 1 s
    // after this one read it absent.
    created_by_another(&kv, epoch, epoch_start + 11_000);
    // This request's step takes 30 s: it claims the next epoch, past the
    // skew, with a read from before that write.
    let mut slow = true;
    let kept = kv::update(&kv, "k", |current| {
        if current.is_none() && std::mem::take(&mut slow) {
            kv.pause(30_000);
        }
        create_or_keep(current)
    })
    .unwrap();
    assert_theirs(&kv, &kept);
}

/// That the request kept what the other one created, and that it is stored.
fn assert_theirs(kv: &MemoryStore, kept: &[u8]) {
    assert_eq!(kept, b"theirs");
    assert_eq!(kv.get("k").unwrap().as_deref(), Some(&b"theirs"[..]));
}

#[test]
fn a_claimer_late_in_its_epoch_yields_to_a_claimer_of_the_next() {
    let kv = MemoryStore::default();
    let epoch = kv.now_millis() / kv::CLAIM_EPOCH_MS + 1;
    let epoch_start = epoch * kv::CLAIM_EPOCH_MS;
    // Another instance, its clock 2 s ahead of this one's, is already in
    // the next epoch: it claimed it, found the previous one unclaimed, and
    // creates the key 0.5 s later.
    created_by_another(&kv, epoch, epoch_start - 1_500);
    // By this instance's clock the previous epoch still runs: its claim of
    // it is the first, and it must not write what the other may overwrite.
    kv.clock.set(epoch_start - 2_000);
    let kept = kv::update(&kv, "k", create_or_keep).unwrap();
    assert_theirs(&kv, &kept);
}

#[test]
fn a_claimer_whose_own_claim_lapsed_does_not_wait_for_itself() {
    let kv = MemoryStore::default();
    let epoch = kv.now_millis() / kv::CLAIM_EPOCH_MS + 1;
    let epoch_start = epoch * kv::CLAIM_EPOCH_MS;
    // Each store call takes 1 ms: the claim is won in the last millisecond
    // of the previous epoch, which ends before the write.
    kv.call_millis.set(1);
    kv.clock.set(epoch_start - 2);
    let created = kv::update(&kv, "k", create_or_keep).unwrap();
    assert_eq!(created, b"mine");
    assert_eq!(kv.get("k").unwrap().as_deref(), Some(&b"mine"[..]));
    assert_eq!(
        kv.increment(&kv::creation_claim("k", epoch - 1), 0)
            .unwrap(),
        1
    );
    // No claimer but itself in the previous epoch: nothing to wait out.
    assert!(
        kv.now_millis() < epoch_start + 100,
        "{}",
        kv.now_millis() - epoch_start
    );
}

#[test]
fn a_claim_left_by_the_old_protocol_blocks_nothing() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let key = keys::package(project.id, "claimed", "1.0");
    kv.increment(&format!("{key}#created"), 1).unwrap();
    let mut c = commit(&project);
    c.name = "claimed";
    c.version = "1.0";
    commit_file(&kv, &c, file("a.bin", "1")).unwrap();
}

/// Files enough for five segments and one more in the record, published
/// into `tool/1.0.0`: the first named `oldest.bin`, the others `f<n>.bin`,
/// each with its number as its sha256.
const SEGMENTED_FILES: usize = 5 * packages::TAIL_FILES + 1;

fn segmented_package(kv: &MemoryStore) -> (Project, Package) {
    let project = new_project(kv, "tools");
    for i in 0..SEGMENTED_FILES {
        let name = match i {
            0 => "oldest.bin".to_string(),
            _ => format!("f{i}.bin"),
        };
        commit_file(kv, &commit(&project), file(&name, &i.to_string())).unwrap();
    }
    let package = package(kv, project.id, "tool", "1.0.0").unwrap().unwrap();
    (project, package)
}

#[test]
fn segments_are_read_in_batches_and_an_old_name_in_few_round_trips() {
    use crate::testing::Counting;
    let kv = MemoryStore::default();
    let count = SEGMENTED_FILES;
    let (_, package) = segmented_package(&kv);
    assert_eq!(package.segments.len(), 5);

    // The oldest name: batches of one, two and two segments.
    let counting = Counting::new(&kv);
    let oldest = newest_file(&counting, &package, "oldest.bin")
        .unwrap()
        .unwrap();
    assert_eq!(oldest.sha256, "0");
    assert_eq!(counting.counts().reads(), 3, "{}", counting.counts());
    // A name in the newest segment: one read of one segment.
    let counting = Counting::new(&kv);
    let last_sealed = format!("f{}.bin", 5 * packages::TAIL_FILES - 1);
    assert!(newest_file(&counting, &package, &last_sealed)
        .unwrap()
        .is_some());
    assert_eq!(counting.counts().reads(), 1, "{}", counting.counts());
    // A name in none: every segment, still in three reads.
    let counting = Counting::new(&kv);
    assert_eq!(newest_file(&counting, &package, "never.bin").unwrap(), None);
    assert_eq!(counting.counts().reads(), 3, "{}", counting.counts());
    // Every file: the five segments in one read.
    let counting = Counting::new(&kv);
    assert_eq!(package_files(&counting, &package).unwrap().len(), count);
    assert_eq!(counting.counts().reads(), 1, "{}", counting.counts());

    // By id: the newest file from the record, an id no segment's range
    // holds without a read, the oldest from its segment alone.
    let counting = Counting::new(&kv);
    let newest = package.files.last().unwrap();
    assert_eq!(
        file_by_id(&counting, &package, newest.id).unwrap().as_ref(),
        Some(newest)
    );
    assert_eq!(file_by_id(&counting, &package, u64::MAX).unwrap(), None);
    assert_eq!(counting.counts().reads(), 0, "{}", counting.counts());
    for later in &package.segments[1..] {
        kv.delete(&keys::package_segment(package.id, &later.digest))
            .unwrap();
    }
    assert_eq!(
        file_by_id(&counting, &package, oldest.id).unwrap(),
        Some(oldest)
    );
    assert_eq!(counting.counts().reads(), 1, "{}", counting.counts());
    assert!(package_files(&kv, &package).is_err());
}

#[test]
fn removing_a_file_reads_only_the_segment_that_holds_it() {
    use crate::testing::Counting;
    let kv = MemoryStore::default();
    let count = SEGMENTED_FILES;
    let (project, package) = segmented_package(&kv);
    let victim = file_by_id(&kv, &package, package.segments[2].min_id)
        .unwrap()
        .unwrap();

    // The record for the swap, every file (one batch) to find it, the one
    // segment that holds it, and the record read back after the swap.
    let counting = Counting::new(&kv);
    let removed = remove_file(&counting, &package, victim.id, 9).unwrap();
    assert_eq!(removed, Some(victim.clone()));
    assert_eq!(counting.counts().reads(), 4, "{}", counting.counts());
    assert_eq!(counting.counts().set, 1, "{}", counting.counts());

    let package = package_by_id(&kv, project.id, package.id).unwrap().unwrap();
    let left = package_files(&kv, &package).unwrap();
    assert_eq!(left.len(), count - 1);
    assert!(!left.iter().any(|f| f.id == victim.id));
}

#[test]
fn a_package_holds_files_far_beyond_one_value_in_segments() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let count = 2 * packages::TAIL_FILES + 50;
    let mut ids = Vec::new();
    for i in 0..count {
        let name = match i {
            5 => "early.bin".to_string(),
            _ => format!("f{}.bin", i % 7),
        };
        let (_, stored) = commit_file(&kv, &commit(&project), file(&name, &i.to_string())).unwrap();
        ids.push(stored.id);
    }
    let package = package(&kv, project.id, "tool", "1.0.0").unwrap().unwrap();
    assert_eq!(package.segments.len(), 2);
    assert_eq!(package.files.len(), 50);
    let all: Vec<u64> = package_files(&kv, &package)
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(all, ids);
    // A name last published before the newest 50 is found in a segment.
    assert_eq!(package.newest_file("early.bin"), None);
    let early = newest_file(&kv, &package, "early.bin").unwrap().unwrap();
    assert_eq!(early.id, ids[5]);
    assert_eq!(newest_file(&kv, &package, "never.bin").unwrap(), None);

    // Deleting a file in a segment rewrites that segment.
    let victim = ids[3];
    let removed = delete_file(&kv, project.id, package.id, victim, 9)
        .unwrap()
        .unwrap();
    assert_eq!(removed.id, victim);
    let package = super::package(&kv, project.id, "tool", "1.0.0")
        .unwrap()
        .unwrap();
    let left = package_files(&kv, &package).unwrap();
    assert_eq!(left.len(), count - 1);
    assert!(left.iter().all(|f| f.id != victim));

    // Pruning reaches into the segments too.
    let pruned = prune_files(&kv, &package, "f0.bin", 1, 10).unwrap();
    let f0_total = (0..count).filter(|i| i % 7 == 0).count();
    assert_eq!(pruned.len(), f0_total - 1);
    let package = super::package(&kv, project.id, "tool", "1.0.0")
        .unwrap()
        .unwrap();
    let f0: Vec<PackageFile> = package_files(&kv, &package)
        .unwrap()
        .into_iter()
        .filter(|f| f.file_name == "f0.bin")
        .collect();
    assert_eq!(f0.len(), 1);
    assert_eq!(f0[0].sha256, ((count - 1) / 7 * 7).to_string());

    // Deleting the package hands back every file left.
    let files = delete_package(&kv, project.id, package.id, 11)
        .unwrap()
        .unwrap();
    assert_eq!(files.len(), count - 1 - pruned.len());
}

#[test]
fn duplicates_are_found_in_segments_too() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    forbid_duplicates(&kv, &project);
    for i in 0..packages::TAIL_FILES + 1 {
        commit_file(&kv, &commit(&project), file(&format!("f{i}.bin"), "x")).unwrap();
    }
    let err = commit_file(&kv, &commit(&project), file("f0.bin", "y")).unwrap_err();
    assert!(matches!(err, MetaError::Duplicate));
}

#[test]
fn every_publish_lands_exactly_once_whatever_swaps_report() {
    with_every_swap_report(|kv, project, reports| {
        for i in 0..5 {
            *kv.conflicts.borrow_mut() = i % 3;
            let mut c = commit(project);
            let version = format!("1.{}", i % 2);
            c.version = &version;
            commit_file(kv, &c, file(&format!("f{i}.bin"), "x")).unwrap();
        }
        let listed = package_summaries(kv, project.id).unwrap();
        assert_eq!(listed.len(), 2, "{reports:?}");
        let files: usize = listed
            .iter()
            .map(|s| {
                let p = package_by_id(kv, project.id, s.id).unwrap().unwrap();
                package_files(kv, &p).unwrap().len()
            })
            .sum();
        assert_eq!(files, 5, "{reports:?}");
    });
}

#[test]
fn a_change_whose_swap_is_reported_lost_answers_what_it_did() {
    // Spin 4.0.2's Redis store reports every written swap as lost: the
    // next read must tell the change was made, not run it again on its own
    // result (a removed file would then be "not found").
    for reports in [
        crate::testing::SwapReports::AlwaysFailed,
        crate::testing::SwapReports::Inverted,
    ] {
        let kv = MemoryStore::default();
        kv.reports.set(reports);
        let project = new_project(&kv, "tools");
        commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
        let (package, second) = commit_file(&kv, &commit(&project), file("b.bin", "2")).unwrap();
        let removed = delete_file(&kv, project.id, package.id, second.id, 3_000).unwrap();
        assert_eq!(removed.map(|f| f.id), Some(second.id), "{reports:?}");
        let left = package_by_id(&kv, project.id, package.id).unwrap().unwrap();
        assert_eq!(left.files.len(), 1, "{reports:?}");
    }
}

#[test]
fn deleted_packages_leave_listings_and_lookups_and_can_be_published_again() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let (old, _) = commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    let files = delete_package(&kv, project.id, old.id, 5_000)
        .unwrap()
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(package(&kv, project.id, "tool", "1.0.0").unwrap(), None);
    assert_eq!(package_by_id(&kv, project.id, old.id).unwrap(), None);
    assert!(package_summaries(&kv, project.id).unwrap().is_empty());
    assert_eq!(
        delete_package(&kv, project.id, old.id, 6_000).unwrap(),
        None
    );

    let (new, _) = commit_file(&kv, &commit(&project), file("b.bin", "2")).unwrap();
    assert_ne!(new.id, old.id);
    assert_eq!(new.files.len(), 1);
    let listed: Vec<u64> = package_summaries(&kv, project.id)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![new.id]);
    assert_eq!(package_by_id(&kv, project.id, old.id).unwrap(), None);
    assert_eq!(
        package_by_id(&kv, project.id, new.id).unwrap().unwrap().id,
        new.id
    );
}

#[test]
fn a_package_is_only_found_in_its_own_project() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let other = new_project(&kv, "other");
    let (package, _) = commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    assert_eq!(package_by_id(&kv, other.id, package.id).unwrap(), None);
    assert_eq!(delete_package(&kv, other.id, package.id, 1).unwrap(), None);
    assert_eq!(
        delete_file(&kv, other.id, package.id, package.files[0].id, 1).unwrap(),
        None
    );
}

#[test]
fn deleting_a_file_keeps_the_others() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    let (package, second) = commit_file(&kv, &commit(&project), file("a.bin", "2")).unwrap();
    let removed = delete_file(&kv, project.id, package.id, second.id, 9)
        .unwrap()
        .unwrap();
    assert_eq!(removed.id, second.id);
    let left = super::package(&kv, project.id, "tool", "1.0.0")
        .unwrap()
        .unwrap();
    assert_eq!(left.newest_file("a.bin").unwrap().sha256, "1");
    assert_eq!(
        delete_file(&kv, project.id, package.id, second.id, 9).unwrap(),
        None
    );
}

#[test]
fn summaries_span_shards() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let versions: Vec<String> = (0..(INDEX_SHARD_SIZE + 5))
        .map(|i| format!("1.{i}"))
        .collect();
    for version in &versions {
        let mut c = commit(&project);
        c.version = version;
        commit_file(&kv, &c, file("a.bin", "1")).unwrap();
    }
    let listed: Vec<String> = package_summaries(&kv, project.id)
        .unwrap()
        .into_iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(listed, versions);
}

#[test]
fn counters_are_kept_as_the_shared_layout_encodes_them() {
    use genreg_layout::counter;
    let kv = MemoryStore::default();
    let id = next_id(&kv, "file").unwrap();
    let stored = kv.get(&keys::sequence("file")).unwrap().unwrap();
    assert_eq!(stored, counter::encode(id as i64));
    // A counter another store wrote (Spin's, genreg's) counts on.
    kv.set(&keys::sequence("package"), &counter::encode(41))
        .unwrap();
    assert_eq!(next_id(&kv, "package").unwrap(), 42);
    // Redis keeps counters as decimal text (INCRBY); they decode too.
    kv.set(&keys::sequence("project"), b"41").unwrap();
    assert_eq!(next_id(&kv, "project").unwrap(), 42);
    assert_eq!(super::kv::decode_counter(b"-7"), Some(-7));
}

#[test]
fn a_corrupt_record_stops_an_update_as_corrupt() {
    let kv = MemoryStore::default();
    kv.set(&keys::namespace_settings("acme"), b"{oops").unwrap();
    let error = change_namespace_settings(&kv, "acme", |s| s.generic_duplicates_allowed = false)
        .unwrap_err();
    assert!(
        matches!(&error, MetaError::Corrupt { key, .. } if key == "v1/settings/acme"),
        "{error:?}"
    );
    assert_eq!(
        kv.get(&keys::namespace_settings("acme")).unwrap().unwrap(),
        b"{oops"
    );
}

mod crashes;
mod schedules;

/// Another request, run against the store in the middle of this one.
type Interleaved<'a> = Box<dyn FnOnce(&MemoryStore) + 'a>;

/// A store that, right after one chosen swap lands, lets another request
/// run before the swapper reads its write back.
struct SwapThenInterleave<'a> {
    inner: &'a MemoryStore,
    swaps_before: std::cell::Cell<usize>,
    interleave: std::cell::RefCell<Option<Interleaved<'a>>>,
}

impl kv::KeyValue for SwapThenInterleave<'_> {
    type Cas = (String, Option<Vec<u8>>);

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, kv::KvError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), kv::KvError> {
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), kv::KvError> {
        self.inner.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, kv::KvError> {
        self.inner.increment(key, delta)
    }
    fn read_for_swap(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), kv::KvError> {
        self.inner.read_for_swap(key)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<kv::Swap, kv::KvError> {
        let answer = self.inner.swap(cas, value)?;
        let left = self.swaps_before.get();
        self.swaps_before.set(left.saturating_sub(1));
        if left == 0 {
            if let Some(other) = self.interleave.borrow_mut().take() {
                other(self.inner);
            }
        }
        Ok(answer)
    }
    fn now_millis(&self) -> i64 {
        self.inner.now_millis()
    }
    fn pause(&self, millis: u64) {
        self.inner.pause(millis)
    }
}

#[test]
fn a_retry_finds_its_file_after_another_publish_sealed_it() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    for i in 0..packages::TAIL_FILES - 2 {
        commit_file(&kv, &commit(&project), file(&format!("f{i}"), "x")).unwrap();
    }
    // Our publish lands as the 199th file; before it reads its write back,
    // another publish adds the 200th and seals both into a segment.
    let interleaved = SwapThenInterleave {
        inner: &kv,
        swaps_before: std::cell::Cell::new(0),
        interleave: std::cell::RefCell::new(Some(Box::new(|kv: &MemoryStore| {
            commit_file(kv, &commit(&project), file("other", "y")).unwrap();
        }))),
    };
    let (_, ours) = commit_file(&interleaved, &commit(&project), file("ours", "z")).unwrap();
    let package = package(&kv, project.id, "tool", "1.0.0").unwrap().unwrap();
    assert_eq!(package.segments.len(), 1);
    let all = package_files(&kv, &package).unwrap();
    assert_eq!(all.len(), packages::TAIL_FILES);
    assert_eq!(all.iter().filter(|f| f.id == ours.id).count(), 1);
}

#[test]
fn sealed_files_are_read_for_duplicates_only_when_the_namespace_refuses_them() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    let mut package = None;
    for i in 0..packages::TAIL_FILES {
        let name = format!("f{i}.bin");
        package = Some(
            commit_file(&kv, &commit(&project), file(&name, "x"))
                .unwrap()
                .0,
        );
    }
    let package = package.unwrap();
    let segment_key = keys::package_segment(package.id, &package.segments[0].digest);
    let segment = kv.get(&segment_key).unwrap().unwrap();

    // Duplicates allowed (the default): the segment is not read at all,
    // so a publish works even with it gone.
    kv.delete(&segment_key).unwrap();
    commit_file(&kv, &commit(&project), file("f0.bin", "again")).unwrap();
    kv.set(&segment_key, &segment).unwrap();

    // Refused: a name only the segment holds is found there.
    forbid_duplicates(&kv, &project);
    let err = commit_file(&kv, &commit(&project), file("f1.bin", "again")).unwrap_err();
    assert!(matches!(err, MetaError::Duplicate));
    commit_file(&kv, &commit(&project), file("new.bin", "x")).unwrap();
}

#[test]
fn an_entry_an_earlier_version_marked_pending_is_settled_by_the_next_change() {
    let kv = MemoryStore::default();
    let project = new_project(&kv, "tools");
    commit_file(&kv, &commit(&project), file("a.bin", "1")).unwrap();
    // The mark of a status change an earlier version cut short: the flag
    // alone, no change named.
    let key = keys::package_index(project.id, 0);
    let mut shard: IndexShard = decode(&key, &kv.get(&key).unwrap().unwrap()).unwrap();
    shard.entries[0].creating = None;
    shard.entries[0].pending = true;
    kv.set(&key, &encode(&shard)).unwrap();
    let mut hide = commit(&project);
    hide.status = Some(PackageStatus::Hidden);
    commit_file(&kv, &hide, file("b.bin", "2")).unwrap();
    let entry = &index_of(&kv, project.id)[0];
    assert!(!entry.pending && entry.changes.is_empty(), "{entry:?}");
    assert_eq!(entry.status, PackageStatus::Hidden);
}

#[test]
fn an_index_shard_is_a_bare_list_until_it_holds_ids_or_was_written() {
    let entry = PackageSummary {
        id: 3,
        name: "tool".into(),
        version: "1.0".into(),
        status: PackageStatus::Default,
        created_at: 0,
        pending: false,
        changes: Vec::new(),
        creating: None,
    };
    let bare = IndexShard {
        entries: vec![entry.clone()],
        file_ids: None,
        writes: 0,
    };
    let with_ids = IndexShard {
        entries: vec![entry],
        file_ids: Some(IdBlock { next: 9, end: 256 }),
        writes: 0,
    };
    assert!(encode(&bare).starts_with(b"["));
    assert!(encode(&with_ids).starts_with(b"{"));
    // A write counts itself, in the object form, and never gives the bytes
    // a shard had before.
    let mut written = bare.clone();
    let once = written.encode_next();
    assert!(once.starts_with(b"{"));
    assert_ne!(written.encode_next(), once);
    for shard in [bare, with_ids, written] {
        let read: IndexShard = decode("shard", &encode(&shard)).unwrap();
        assert_eq!(read, shard);
    }
    assert!(decode::<IndexShard>("shard", b"\"neither\"").is_err());
}
