//! Packages and their files: the write protocols and how they stay whole
//! through a crash between any two writes.
//!
//! A package lives in two places, three for older ones:
//!
//! - its record, `pkg/<project>/<name>/<version>`: the truth about the
//!   package (id, status, deletion, the index shard that lists it) and its
//!   newest files;
//! - its entry in the project's package index, a sharded list of summaries
//!   that listings filter, sort and page, and that lookups by id search;
//! - for packages created before records named their shard, a location,
//!   `pkg-id/<id>`, saying where the record of that id lives.
//!
//! **Invariant.** A listing shows exactly the live packages, each with its
//! stored status. An entry is either settled, and then trusted, or unsure,
//! and then the record at its name and version decides: the package is
//! listed if that record is live and has the entry's id, with the record's
//! status. Creating a package enters it in the newest shard as *creating*
//! before its record is written; a later creation in that shard settles it
//! from the record (in batches, see [`SETTLE_BATCH`]), so a new package
//! costs no second index write. Every other change that touches what an
//! entry says (status, deletion) first marks the entry *pending* with its
//! own name (a publish's file id, or a deletion), then changes the record,
//! then writes the entry from the record and takes its mark off; the entry
//! stays pending while another change's mark is on it, so a change that
//! finishes first never settles an entry whose record another is about to
//! change. Every write of a shard raises its count of writes, so a
//! compare-and-swap of a shard never takes one changed and changed back
//! for one nobody wrote. So a crash after any write, and a listing at any
//! moment, tell the truth. Entries of creations that never wrote their
//! record are dropped by the shard's next write once
//! [`ABANDONED_AFTER_MS`] passed; a creator whose package was deleted
//! before it confirmed its write does not create it again.
//!
//! File ids come from one sequence, in blocks: a package holds the block
//! it hands out next (`file_ids` in its record), and a publish takes the
//! next id from it in the same write that records the file, so two files
//! never share an id and most publishes draw nothing from the sequence. A
//! block drawn for a write that was lost (a crash, a lost swap) is never
//! used: ids may skip, never repeat. A package created by a publish takes
//! its first block from its index shard's block, in the compare-and-swap
//! that enters it there, and takes the first id of it as its own, which its
//! first file takes too, so creating it draws from the sequence only once
//! per [`SHARD_BLOCK`] ids. That sequence moved at least
//! once for every package id ever drawn from the older package sequence,
//! so the ids are new to packages too.
//!
//! A package's files form a log: the newest ones sit in the record, and
//! when the record holds [`TAIL_FILES`] of them they are sealed into an
//! immutable segment, `pkg-files/<id>/<digest>`, named by a digest of the
//! files it holds (their ids and objects). A segment is written before the record points to it
//! and never changed (removing a file writes a new segment), so a crash
//! leaves at most a segment that nothing points to, and a write repeated by
//! a retry writes the same bytes again.

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::kv::{decode_counter, KeyValue, KvError, Step};
use super::model::{
    IdBlock, IndexShard, Marked, Millis, Package, PackageFile, PackageLocation, PackageStatus,
    PackageSummary, Project, RawFile, Segment, SegmentRef, Shard, DELETION,
};
use super::raw;
use super::{
    corrupt, decode, encode, keys, namespace_settings, raise_sequence, read, read_counter,
    update_record, update_record_then_read, MetaError, MAX_VALUE_BYTES,
};

/// Packages per shard of a project's package index. With names and versions
/// of at most 255 bytes a full shard stays far below [`MAX_VALUE_BYTES`].
pub const INDEX_SHARD_SIZE: u64 = 200;

/// How many files a package record holds before they are sealed into a
/// segment. About 70 KiB of records; a package of 100,000 files has 500
/// segments, whose references keep the record near 30 KiB more.
pub const TAIL_FILES: usize = 200;

/// The live package with this name and version, if any.
pub fn package<K: KeyValue>(
    kv: &K,
    project_id: u64,
    name: &str,
    version: &str,
) -> Result<Option<Package>, MetaError> {
    live_package(kv, project_id, name, version)
}

/// [`package`] with its files held as they are stored (see
/// [`raw`]), for a request that needs one of them at most.
pub fn package_as_stored<K: KeyValue>(
    kv: &K,
    project_id: u64,
    name: &str,
    version: &str,
) -> Result<Option<Package<RawFile>>, MetaError> {
    live_package(kv, project_id, name, version)
}

/// The live package with this name and version, its files read as `F`.
fn live_package<K: KeyValue, F: serde::de::DeserializeOwned>(
    kv: &K,
    project_id: u64,
    name: &str,
    version: &str,
) -> Result<Option<Package<F>>, MetaError> {
    let package: Option<Package<F>> = read(kv, &keys::package(project_id, name, version))?;
    Ok(package.filter(|p| !p.is_deleted()))
}

/// The live package with this id in this project, if any.
pub fn package_by_id<K: KeyValue>(
    kv: &K,
    project_id: u64,
    package_id: u64,
) -> Result<Option<Package>, MetaError> {
    let Some((name, version)) = name_of(kv, project_id, package_id)? else {
        return Ok(None);
    };
    let package = package(kv, project_id, &name, &version)?;
    // The same name and version may have been deleted and published again.
    Ok(package.filter(|p| p.id == package_id))
}

/// The name and version of the package with this id in this project: from
/// its location when it has one (older packages), else from its index
/// entry.
fn name_of<K: KeyValue>(
    kv: &K,
    project_id: u64,
    package_id: u64,
) -> Result<Option<(String, String)>, MetaError> {
    if let Some(location) = package_location(kv, package_id)? {
        return Ok((location.project_id == project_id).then_some((location.name, location.version)));
    }
    Ok(listed_packages(kv, project_id)?
        .into_iter()
        .find(|e| e.id == package_id)
        .map(|e| (e.name, e.version)))
}

/// The most segments read in one round trip (at most about 1 MiB of
/// records).
pub const SEGMENTS_PER_READ: usize = 16;

/// Every file of a package, oldest first. Reads the segments
/// [`SEGMENTS_PER_READ`] at a time.
pub fn package_files<K: KeyValue>(
    kv: &K,
    package: &Package,
) -> Result<Vec<PackageFile>, MetaError> {
    let mut files: Vec<PackageFile> = read_segments_batched(kv, package.id, &package.segments)?
        .into_iter()
        .flatten()
        .collect();
    files.extend(package.files.iter().cloned());
    Ok(files)
}

/// The file with this id: among the record's own files, or in the
/// segments whose id range holds it (usually one), read in one round trip,
/// instead of every file of the package.
pub fn file_by_id<K: KeyValue>(
    kv: &K,
    package: &Package,
    file_id: u64,
) -> Result<Option<PackageFile>, MetaError> {
    if let Some(file) = package.files.iter().find(|f| f.id == file_id) {
        return Ok(Some(file.clone()));
    }
    sealed_file_by_id(kv, package, file_id)
}

/// [`file_by_id`] among the package's segments only.
fn sealed_file_by_id<K: KeyValue, F>(
    kv: &K,
    package: &Package<F>,
    file_id: u64,
) -> Result<Option<PackageFile>, MetaError> {
    let holding = package.segments.iter().filter(|s| may_hold(s, file_id));
    Ok(read_segments_batched(kv, package.id, holding)?
        .into_iter()
        .flatten()
        .find(|f| f.id == file_id))
}

/// Whether `segment`'s id range holds `file_id`, so that only it needs
/// reading to find the file.
fn may_hold(segment: &SegmentRef, file_id: u64) -> bool {
    (segment.min_id..=segment.max_id).contains(&file_id)
}

/// The newest file stored under this name: the record's own files first,
/// then the segments from the newest. The segments are read in batches
/// that double from one up to [`SEGMENTS_PER_READ`]: a recent name costs
/// one read of one segment, the oldest of `n` segments about `log2(n)`
/// round trips instead of `n`, and no more than twice the segments it
/// passes are read.
pub fn newest_file<K: KeyValue>(
    kv: &K,
    package: &Package,
    stored_name: &str,
) -> Result<Option<PackageFile>, MetaError> {
    if let Some(file) = package.newest_file(stored_name) {
        return Ok(Some(file.clone()));
    }
    newest_sealed_file(kv, package, stored_name)
}

/// [`newest_file`] of a record whose files are held as stored.
pub fn newest_file_as_stored<K: KeyValue>(
    kv: &K,
    package: &Package<RawFile>,
    stored_name: &str,
) -> Result<Option<PackageFile>, MetaError> {
    match newest_in_record(package, stored_name)? {
        Some(file) => Ok(Some(file)),
        None => newest_sealed_file(kv, package, stored_name),
    }
}

/// [`newest_file`] among the record's own files, held as stored.
fn newest_in_record(
    package: &Package<RawFile>,
    stored_name: &str,
) -> Result<Option<PackageFile>, MetaError> {
    raw::newest_named(&package.files, stored_name).map_err(corrupt_record(package))
}

/// [`newest_file`] among the package's segments only.
fn newest_sealed_file<K: KeyValue, F>(
    kv: &K,
    package: &Package<F>,
    stored_name: &str,
) -> Result<Option<PackageFile>, MetaError> {
    let newest_first: Vec<&SegmentRef> = package.segments.iter().rev().collect();
    let mut rest = &newest_first[..];
    let mut batch = 1;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        for segment in read_segments(kv, package.id, now.iter().copied())? {
            let files = segment?;
            if let Some(file) = files.into_iter().rev().find(|f| f.file_name == stored_name) {
                return Ok(Some(file));
            }
        }
        rest = later;
        batch = (batch * 2).min(SEGMENTS_PER_READ);
    }
    Ok(None)
}

/// Every live package of a project, as its index lists them, oldest first.
/// Reads the project's shards in one round trip, and the records of its
/// unsure entries (see the module docs) in one more when there are any.
pub fn package_summaries<K: KeyValue>(
    kv: &K,
    project_id: u64,
) -> Result<Vec<PackageSummary>, MetaError> {
    let listed = listed_packages(kv, project_id)?;
    let unsure: Vec<&PackageSummary> = listed.iter().filter(|e| e.is_unsure()).collect();
    if unsure.is_empty() {
        return Ok(listed);
    }
    let record_keys: Vec<String> = unsure
        .iter()
        .map(|e| keys::package(project_id, &e.name, &e.version))
        .collect();
    let records: Vec<Option<Package<RawFile>>> = records_at(kv, &record_keys)?;
    let mut resolved = std::collections::HashMap::new();
    for (entry, record) in unsure.iter().zip(records) {
        resolved.insert(entry.id, settled(entry, record.as_ref()));
    }
    Ok(listed
        .into_iter()
        .filter_map(|entry| match resolved.remove(&entry.id) {
            None => Some(entry),
            Some(settled) => settled,
        })
        .collect())
}

/// Every entry of a project's package index, oldest first, unsure ones as
/// they are: a caller that reads the records anyway checks those with
/// [`settled`] and saves a round trip. Reads one key per
/// [`INDEX_SHARD_SIZE`] packages, in one round trip.
pub fn listed_packages<K: KeyValue>(
    kv: &K,
    project_id: u64,
) -> Result<Vec<PackageSummary>, MetaError> {
    let shards: Vec<String> = (0..index_shards(kv, project_id)?)
        .map(|shard| keys::package_index(project_id, shard))
        .collect();
    kv.read_ahead(&shards);
    let mut all = Vec::new();
    for shard in &shards {
        let stored: Option<IndexShard> = read(kv, shard)?;
        all.extend(stored.map(|s| s.entries).unwrap_or_default());
    }
    Ok(all)
}

/// The package records at these keys, in one round trip.
pub fn records_at<K: KeyValue, F: serde::de::DeserializeOwned>(
    kv: &K,
    keys: &[String],
) -> Result<Vec<Option<Package<F>>>, MetaError> {
    let values = kv.get_many(keys)?;
    keys.iter()
        .zip(values)
        .map(|(key, value)| value.map(|bytes| decode(key, &bytes)).transpose())
        .collect()
}

/// What an entry says once its record is known: the package if the record
/// is live under the entry's id, with the record's status.
pub fn settled<F>(entry: &PackageSummary, record: Option<&Package<F>>) -> Option<PackageSummary> {
    record
        .filter(|p| p.id == entry.id && !p.is_deleted())
        .map(PackageSummary::of)
}

/// How many shards the project's package index has. The counter at
/// `pkg-ordinal/<project>` only grows; it was once the number of packages
/// ever created, and now moves past a multiple of [`INDEX_SHARD_SIZE`]
/// each time a shard is opened, so the count is still its ceiling.
pub(super) fn index_shards<K: KeyValue>(kv: &K, project_id: u64) -> Result<u64, MetaError> {
    Ok(read_counter(kv, &keys::package_ordinal(project_id))?.div_ceil(INDEX_SHARD_SIZE))
}

/// [`index_shards`] from what the request read ahead, without a round
/// trip; `None` if it was not read ahead (or not readable as a counter).
pub fn index_shards_read_ahead<K: KeyValue>(kv: &K, project_id: u64) -> Option<u64> {
    let count = match kv.take_read_ahead(&keys::package_ordinal(project_id))? {
        None => 0,
        Some(bytes) => decode_counter(&bytes)?.max(0) as u64,
    };
    Some(count.div_ceil(INDEX_SHARD_SIZE))
}

/// A file whose bytes are safely in object storage, ready to be recorded.
pub struct NewFile {
    pub file_name: String,
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub object_key: String,
}

/// Where a file should go and under which rules.
pub struct Commit<'a> {
    pub project: &'a Project,
    pub name: &'a str,
    pub version: &'a str,
    pub status: Option<PackageStatus>,
    pub now: Millis,
    /// Keys the caller reads right after the commit: read in the round trip
    /// that confirms the package record's write (see
    /// [`super::kv::update_then_read`]).
    pub read_after: &'a [String],
    /// How many shards the project's package index had when the request
    /// read ahead, if it did ([`index_shards_read_ahead`]): a new package is entered
    /// from there without reading the count again. The count only grows, so
    /// one read earlier costs at most a turn through a shard that filled
    /// since.
    pub index_shards: Option<u64>,
}

/// Records a file in its package, creating the package if needed.
///
/// A compare-and-swap loop on the package record, so concurrent publishes
/// into the same (possibly new) package all land and the duplicate rule is
/// checked against what is stored at the moment of the write. A new package
/// is entered in the index (creating) before its record exists; a status
/// change marks the entry pending before the record changes. A retry finds
/// the file already there when a write landed unconfirmed.
///
/// The file's id comes from the package's block of ids (see
/// [`next_file_id`]), so most publishes into an existing package write
/// nothing but its record.
///
/// Answers the record as written, its files held as they are stored (see
/// [`raw`]: they are never decoded as a whole), and the file.
pub fn commit_file<K: KeyValue>(
    kv: &K,
    commit: &Commit,
    file: NewFile,
) -> Result<(Package<RawFile>, PackageFile), MetaError> {
    commit_file_as(kv, commit, file, None)
}

/// [`commit_file`] with a file id drawn from the file sequence beforehand:
/// committing the same id again, even concurrently, records the file once.
pub fn commit_file_with_id<K: KeyValue>(
    kv: &K,
    commit: &Commit,
    file: NewFile,
    file_id: u64,
) -> Result<(Package<RawFile>, PackageFile), MetaError> {
    commit_file_as(kv, commit, file, Some(file_id))
}

/// [`commit_file`], with the file's id given or taken from the package.
fn commit_file_as<K: KeyValue>(
    kv: &K,
    commit: &Commit,
    file: NewFile,
    given_id: Option<u64>,
) -> Result<(Package<RawFile>, PackageFile), MetaError> {
    let key = keys::package(commit.project.id, commit.name, commit.version);
    let mut file = PackageFile {
        id: given_id.unwrap_or(0),
        file_name: file.file_name,
        size: file.size,
        md5: file.md5,
        sha1: file.sha1,
        sha256: file.sha256,
        object_key: file.object_key,
        created_at: commit.now,
    };
    // The id the file had in the last attempt: a retry looks for it.
    let mut tried_id = given_id;
    // The namespace's settings matter only when the package already holds
    // a file of this name: they are read then, and once.
    let mut duplicates_allowed: Option<bool> = None;
    // A package that may be new gets its index entry once, before the
    // record that makes it real (again if the creation took long).
    let mut reserved: Option<Reservation> = None;
    // The change this publish marked the entry pending with, for a status
    // change.
    let mut marked: Option<String> = None;

    let package = update_record_then_read(
        kv,
        &key,
        commit.read_after,
        |stored: Option<Package<RawFile>>| {
            // This publish created the package, and a deletion that came
            // after it has deleted it since, the package's index entry
            // with it: the publish is done, and the package stays deleted.
            if let (Some(stored), Some(reservation)) = (&stored, &reserved) {
                if stored.is_deleted() && stored.id == reservation.ids.next {
                    return Ok(Step::Keep(stored.clone()));
                }
            }
            let (mut package, is_new) = match stored.filter(|p| !p.is_deleted()) {
                // A retry after a write that landed but was not confirmed.
                Some(package) if holds_file(kv, &package, tried_id, &file.object_key)? => {
                    return Ok(Step::Keep(package));
                }
                Some(package) => (package, false),
                None => {
                    let reservation = match reserved.take() {
                        Some(r) if kv.now_millis() - r.at < RESERVATION_REFRESH_MS => r,
                        Some(r) => Reservation {
                            at: refresh(kv, commit, r.ids.next, r.shard)?,
                            ..r
                        },
                        None => reserve(kv, commit)?,
                    };
                    let mut package = new_package(reservation.ids.next, reservation.shard, commit);
                    package.file_ids = Some(reservation.ids);
                    reserved = Some(reservation);
                    (package, true)
                }
            };
            if given_id.is_none() {
                file.id = next_file_id(kv, &mut package)?;
                tried_id = Some(file.id);
            }
            if is_refused_duplicate(
                kv,
                commit,
                &package,
                &file.file_name,
                &mut duplicates_allowed,
            )? {
                return Err(MetaError::Duplicate);
            }
            if let Some(status) = commit.status {
                if status != package.status && !is_new && marked.is_none() {
                    // Listings show the status: mark the entry first.
                    let change = format!("file {}", file.id);
                    mark_pending(kv, &package, &change)?;
                    marked = Some(change);
                }
                package.status = status;
            }
            package.files.push(file.to_raw());
            package.updated_at = commit.now;
            seal_if_full(kv, &mut package)?;
            let bytes = encode(&package);
            if bytes.len() > MAX_VALUE_BYTES {
                return Err(MetaError::PackageFull);
            }
            Ok(Step::Write(bytes, package))
        },
    )?;

    if let Some(reservation) = &reserved {
        if package.id != reservation.ids.next {
            // Another publish created the package first: ours was never
            // real, and its entry goes.
            remove_entry(
                kv,
                commit.project.id,
                reservation.shard,
                reservation.ids.next,
            )?;
        }
    }
    if let Some(change) = &marked {
        confirm_entry(kv, &package, change)?;
    }
    Ok((package, file))
}

/// Whether the package already holds a file of this name and the namespace
/// refuses duplicates. The record's own files are checked first; the
/// segments (one read per [`TAIL_FILES`] older files) only when the
/// namespace refuses duplicates, which it rarely does, so a publish into a
/// large package costs no more reads than into a small one.
fn is_refused_duplicate<K: KeyValue>(
    kv: &K,
    commit: &Commit,
    package: &Package<RawFile>,
    file_name: &str,
    duplicates_allowed: &mut Option<bool>,
) -> Result<bool, MetaError> {
    let held = if newest_in_record(package, file_name)?.is_some() {
        true
    } else if package.segments.is_empty() || allows_duplicates(kv, commit, duplicates_allowed)? {
        return Ok(false);
    } else {
        newest_sealed_file(kv, package, file_name)?.is_some()
    };
    Ok(held && !allows_duplicates(kv, commit, duplicates_allowed)?)
}

/// Whether the namespace lets this package hold several files of one name,
/// read from the store the first time it is asked.
fn allows_duplicates<K: KeyValue>(
    kv: &K,
    commit: &Commit,
    known: &mut Option<bool>,
) -> Result<bool, MetaError> {
    if let Some(allowed) = *known {
        return Ok(allowed);
    }
    let allowed = namespace_settings(kv, &commit.project.namespace)?
        .duplicates_allowed_for(commit.name, commit.version);
    *known = Some(allowed);
    Ok(allowed)
}

fn new_package<F>(id: u64, index_shard: u64, commit: &Commit) -> Package<F> {
    Package {
        id,
        project_id: commit.project.id,
        name: commit.name.to_string(),
        version: commit.version.to_string(),
        status: commit.status.unwrap_or(PackageStatus::Default),
        created_at: commit.now,
        updated_at: commit.now,
        last_downloaded_at: None,
        files: Vec::new(),
        segments: Vec::new(),
        deleted_at: None,
        index_shard: Some(index_shard),
        file_ids: None,
    }
}

/// How long a creating entry without its record is kept: far longer than a
/// creation can take (its record is written within a claim epoch, and a
/// creator that waited refreshes its entry, see [`RESERVATION_REFRESH_MS`]).
pub const ABANDONED_AFTER_MS: Millis = 10 * 60_000;

/// How old a creator's entry may be when it writes the record; older, it
/// enters the package again first, so a slow creation is never dropped as
/// abandoned.
const RESERVATION_REFRESH_MS: Millis = 60_000;

/// How many shards [`reserve`] tries before it gives up.
const MAX_SHARD_TURNS: usize = 100;

/// A new package's entry in its project's index.
pub(super) struct Reservation {
    shard: u64,
    /// When the entry was written (the creator's clock).
    at: Millis,
    /// The package's first block of file ids, taken from the shard's; the
    /// package's id is its first.
    ids: IdBlock,
}

/// How many file ids a shard draws from the file sequence at once: the
/// first blocks of 32 new packages, so most creations draw none.
pub const SHARD_BLOCK: u64 = 32 * FIRST_BLOCK;

/// The index entry of a package this commit creates, entered at `at`.
fn creating_entry(commit: &Commit, id: u64, at: Millis) -> PackageSummary {
    PackageSummary {
        id,
        name: commit.name.to_string(),
        version: commit.version.to_string(),
        status: commit.status.unwrap_or(PackageStatus::Default),
        created_at: commit.now,
        pending: false,
        changes: Vec::new(),
        creating: Some(at),
    }
}

/// Enters a new package in the newest shard of its project's index as
/// *creating*, opening a new shard when that one is full. The same write
/// takes the package's first block of file ids from the shard's (drawing
/// the shard a new one when it runs out), and settles the shard's earlier
/// creations when [`settling_due`] (see [`settle_creations`]), so creating
/// a package writes the index once and, mostly, nothing else. A retry
/// after a write that landed unconfirmed finds its entry there.
fn reserve<K: KeyValue>(kv: &K, commit: &Commit) -> Result<Reservation, MetaError> {
    let project_id = commit.project.id;
    let counter = keys::package_ordinal(project_id);
    let at = kv.now_millis();
    let mut shards = match commit.index_shards {
        Some(shards) => shards,
        None => index_shards(kv, project_id)?,
    };
    // The block the last attempt took, whose entry may have landed.
    let mut tried: Option<IdBlock> = None;
    // A block drawn for a shard that did not exist yet: nothing recorded
    // it while the shard is still absent, so the next attempt (after
    // waiting for the shard's creation) uses it again.
    let mut for_new_shard: Option<IdBlock> = None;
    // Each turn enters the entry or opens a shard: only creators filling
    // the new shard first make it take more than two.
    for _ in 0..MAX_SHARD_TURNS {
        if shards > 0 {
            let shard = shards - 1;
            let key = keys::package_index(project_id, shard);
            let entered = update_record(
                kv,
                &key,
                |stored: Option<Shard<Box<RawValue>>>| -> Result<_, MetaError> {
                    let absent = stored.is_none();
                    let mut stored = stored.unwrap_or(Shard {
                        entries: Vec::new(),
                        file_ids: for_new_shard,
                        writes: 0,
                    });
                    // Only the creating entries are decoded (see `raw`).
                    let creating = raw::maybe_creating(&stored.entries).map_err(corrupt(&key))?;
                    // An entry equal to the one the last attempt wrote is
                    // that one, or one a creator of the same package wrote
                    // at the same moment from the same block, which names
                    // the same package: either way the package is entered.
                    if let Some(ids) = tried {
                        let mine = creating_entry(commit, ids.next, at);
                        if creating.iter().any(|(_, entry)| *entry == mine) {
                            return Ok(Step::Keep(Some(ids)));
                        }
                    }
                    if settling_due(&creating, stored.entries.len(), at) {
                        settle_creations(kv, project_id, &mut stored.entries, creating, at)?;
                    }
                    if stored.entries.len() >= INDEX_SHARD_SIZE as usize {
                        return Ok(Step::Keep(None));
                    }
                    let ids = take_first_block(kv, &mut stored)?;
                    if absent {
                        for_new_shard = stored.file_ids.map(|rest| IdBlock {
                            next: ids.next,
                            end: rest.end,
                        });
                    }
                    stored
                        .entries
                        .push(to_raw(&creating_entry(commit, ids.next, at)));
                    tried = Some(ids);
                    Ok(Step::Write(stored.encode_next(), Some(ids)))
                },
            )?;
            if let Some(ids) = entered {
                return Ok(Reservation { shard, at, ids });
            }
        }
        shards = open_shard(kv, &counter, shards)?;
    }
    Err(MetaError::Store(KvError::Store(format!(
        "no room found in the package index of project {project_id}"
    ))))
}

/// A new package's first [`FIRST_BLOCK`] file ids, from the shard's block,
/// which the shard's write claims; when that runs out the shard draws
/// [`SHARD_BLOCK`] more from the file sequence. A block drawn for a write
/// that is lost is never used again.
fn take_first_block<K: KeyValue, E>(kv: &K, shard: &mut Shard<E>) -> Result<IdBlock, MetaError> {
    let block = match shard.file_ids.filter(|b| b.end - b.next >= FIRST_BLOCK) {
        Some(block) => block,
        None => draw_ids(kv, SHARD_BLOCK)?,
    };
    shard.file_ids = Some(IdBlock {
        next: block.next + FIRST_BLOCK,
        end: block.end,
    });
    Ok(IdBlock {
        next: block.next,
        end: block.next + FIRST_BLOCK,
    })
}

/// Renews the time on a creator's entry in `shard` (entering it again if a
/// shard write dropped it), so it is not taken for abandoned; answers the
/// new time.
pub(super) fn refresh<K: KeyValue>(
    kv: &K,
    commit: &Commit,
    id: u64,
    shard: u64,
) -> Result<Millis, MetaError> {
    let at = kv.now_millis();
    let entry = creating_entry(commit, id, at);
    change_index(kv, commit.project.id, shard, |entries| {
        match entries.iter_mut().find(|e| e.id == id) {
            Some(mine) if mine.pending || mine.creating.is_none() => return false,
            Some(mine) => mine.creating = Some(at),
            None => entries.push(entry.clone()),
        }
        true
    })?;
    Ok(at)
}

/// Raises the shard counter so that the index has at least `shards + 1`
/// shards, and answers how many it has now. Two creators opening at once
/// may open two; an empty shard is read as empty.
fn open_shard<K: KeyValue>(kv: &K, counter: &str, shards: u64) -> Result<u64, MetaError> {
    let now = read_counter(kv, counter)?;
    if now.div_ceil(INDEX_SHARD_SIZE) > shards {
        return Ok(now.div_ceil(INDEX_SHARD_SIZE));
    }
    let wanted = shards * INDEX_SHARD_SIZE + 1;
    let raised = kv.increment(counter, (wanted - now) as i64)?;
    Ok((raised.max(0) as u64).div_ceil(INDEX_SHARD_SIZE))
}

/// How many unsure creating entries a shard may hold before the next
/// creation settles them: settling reads their records inside the shard's
/// compare-and-swap, so doing it once per batch instead of on every
/// creation keeps that window short when many creators write the shard at
/// once. A listing reads the records of a shard's unsure entries, so this
/// also bounds what a listing reads beyond its page.
pub const SETTLE_BATCH: usize = 32;

/// How old the oldest unsure creating entry may be before the next creation
/// settles the shard anyway, so that a slow trickle of creations does not
/// leave entries unsure for long.
pub const SETTLE_AFTER_MS: Millis = 10_000;

/// Whether a creation entering this shard settles its creating entries
/// first: when enough are unsure, when one has waited long enough, or when
/// the shard is full (an abandoned entry dropped may make room). `creating`
/// holds at least the shard's creating entries ([`raw::maybe_creating`]),
/// `len` is how many entries it has.
fn settling_due(creating: &[(usize, PackageSummary)], len: usize, now: Millis) -> bool {
    let unsure: Vec<Millis> = creating
        .iter()
        .map(|(_, entry)| entry)
        .filter(|e| !e.pending)
        .filter_map(|e| e.creating)
        .collect();
    unsure.len() >= SETTLE_BATCH
        || unsure.iter().any(|&at| now - at >= SETTLE_AFTER_MS)
        || (!unsure.is_empty() && len >= INDEX_SHARD_SIZE as usize)
}

/// Settles the creating entries of a shard about to be written: an entry
/// whose record now exists takes the record's status and is trusted; one
/// whose record never came is dropped once [`ABANDONED_AFTER_MS`] passed.
/// Entries marked pending are left to the change that marked them.
/// `creating` holds at least the shard's creating entries, decoded, with
/// their positions in `entries`. Reads the records in one round trip.
fn settle_creations<K: KeyValue>(
    kv: &K,
    project_id: u64,
    entries: &mut Vec<Box<RawValue>>,
    creating: Vec<(usize, PackageSummary)>,
    now: Millis,
) -> Result<(), MetaError> {
    let unsure: Vec<(usize, PackageSummary)> = creating
        .into_iter()
        .filter(|(_, e)| e.creating.is_some() && !e.pending)
        .collect();
    if unsure.is_empty() {
        return Ok(());
    }
    let record_keys: Vec<String> = unsure
        .iter()
        .map(|(_, e)| keys::package(project_id, &e.name, &e.version))
        .collect();
    // Only the records' heads are needed: their files stay undecoded.
    let records: Vec<Option<Package<RawFile>>> = records_at(kv, &record_keys)?;
    let mut abandoned = Vec::new();
    for ((i, entry), record) in unsure.iter().zip(records) {
        match settled(entry, record.as_ref()) {
            Some(summary) => entries[*i] = to_raw(&summary),
            None if entry
                .creating
                .is_some_and(|then| now - then > ABANDONED_AFTER_MS) =>
            {
                abandoned.push(*i);
            }
            None => {}
        }
    }
    // In ascending order: removed from the last, the others stay in place.
    for i in abandoned.into_iter().rev() {
        entries.remove(i);
    }
    Ok(())
}

/// An index entry as the JSON text it is stored as.
fn to_raw(entry: &PackageSummary) -> Box<RawValue> {
    serde_json::value::to_raw_value(entry).expect("index entries always serialize")
}

/// The shard of the project's index that lists this package.
fn shard_of<K: KeyValue, F>(kv: &K, package: &Package<F>) -> Result<Option<u64>, MetaError> {
    if let Some(shard) = package.index_shard {
        return Ok(Some(shard));
    }
    Ok(package_location(kv, package.id)?.map(|l| l.index_shard))
}

/// Marks a package's index entry pending with `change`, before that change
/// is made to its record.
fn mark_pending<K: KeyValue, F>(
    kv: &K,
    package: &Package<F>,
    change: &str,
) -> Result<(), MetaError> {
    let Some(shard) = shard_of(kv, package)? else {
        return Ok(());
    };
    change_index(kv, package.project_id, shard, |entries| {
        entries
            .iter_mut()
            .find(|e| e.id == package.id)
            .is_some_and(|entry| entry.mark(change))
    })
}

/// Writes a package's index entry from its record as it is now, and takes
/// `change`'s mark off; the entry stays pending while other changes' marks
/// are on it. Drops the entry when the record is no longer live.
fn confirm_entry<K: KeyValue, F>(
    kv: &K,
    package: &Package<F>,
    change: &str,
) -> Result<(), MetaError> {
    let Some(shard) = shard_of(kv, package)? else {
        return Ok(());
    };
    let record_key = package.record_key();
    let index_key = keys::package_index(package.project_id, shard);
    update_record(kv, &index_key, |stored: Option<IndexShard>| {
        let Some(mut shard) = stored else {
            return Ok(Step::Keep(()));
        };
        // Read inside the step, so a retry copies the newest record.
        let record = read::<K, Package>(kv, &record_key)?;
        let before = shard.clone();
        match record.filter(|p| p.id == package.id && !p.is_deleted()) {
            Some(record) => {
                for entry in shard.entries.iter_mut().filter(|e| e.id == package.id) {
                    entry.settle_as(PackageSummary::of(&record), change);
                }
            }
            None => shard.entries.retain(|e| e.id != package.id),
        }
        Ok(if shard == before {
            Step::Keep(())
        } else {
            Step::Write(shard.encode_next(), ())
        })
    })
}

fn remove_entry<K: KeyValue>(
    kv: &K,
    project_id: u64,
    shard: u64,
    package_id: u64,
) -> Result<(), MetaError> {
    change_index(kv, project_id, shard, |entries| {
        let before = entries.len();
        entries.retain(|e| e.id != package_id);
        entries.len() != before
    })
}

/// Changes one shard of a project's package index; `change` answers
/// whether it changed anything.
fn change_index<K: KeyValue>(
    kv: &K,
    project_id: u64,
    shard: u64,
    change: impl Fn(&mut Vec<PackageSummary>) -> bool,
) -> Result<(), MetaError> {
    super::change_shard(kv, &keys::package_index(project_id, shard), change)
}

/// Marks a package deleted and takes it out of its project's index. Returns
/// its files, whose objects the caller deletes.
pub fn delete_package<K: KeyValue>(
    kv: &K,
    project_id: u64,
    package_id: u64,
    now: Millis,
) -> Result<Option<Vec<PackageFile>>, MetaError> {
    let Some(package) = package_by_id(kv, project_id, package_id)? else {
        return Ok(None);
    };
    remove_package(kv, &package, now)
}

/// [`delete_package`] of a package already found.
pub fn remove_package<K: KeyValue>(
    kv: &K,
    package: &Package,
    now: Millis,
) -> Result<Option<Vec<PackageFile>>, MetaError> {
    let package_id = package.id;
    mark_pending(kv, package, DELETION)?;
    let key = package.record_key();
    let removed = update_record(
        kv,
        &key,
        |stored: Option<Package>| -> Result<_, MetaError> {
            let Some(mut package) = stored.filter(|p| p.id == package_id && !p.is_deleted()) else {
                return Ok(Step::Keep(None));
            };
            let files = package_files(kv, &package)?;
            package.files.clear();
            package.segments.clear();
            package.deleted_at = Some(now);
            package.updated_at = now;
            Ok(Step::Write(encode(&package), Some(files)))
        },
    )?;
    confirm_entry(kv, package, DELETION)?;
    Ok(removed)
}

/// Removes one file record from a package. Returns it, so the caller can
/// delete its object.
pub fn delete_file<K: KeyValue>(
    kv: &K,
    project_id: u64,
    package_id: u64,
    file_id: u64,
    now: Millis,
) -> Result<Option<PackageFile>, MetaError> {
    match package_by_id(kv, project_id, package_id)? {
        Some(package) => remove_file(kv, &package, file_id, now),
        None => Ok(None),
    }
}

/// [`delete_file`] from a package already found.
pub fn remove_file<K: KeyValue>(
    kv: &K,
    package: &Package,
    file_id: u64,
    now: Millis,
) -> Result<Option<PackageFile>, MetaError> {
    let removed = change_files(kv, package, now, |files| {
        files.iter().position(|f| f.id == file_id).map(|i| vec![i])
    })?;
    Ok(removed.into_iter().next())
}

/// Removes the files named `file_name` beyond the newest `keep` from the
/// package and returns them, so their objects can be deleted.
pub fn prune_files<K: KeyValue, F>(
    kv: &K,
    package: &Package<F>,
    file_name: &str,
    keep: usize,
    now: Millis,
) -> Result<Vec<PackageFile>, MetaError> {
    change_files(kv, package, now, |files| {
        let same_name: Vec<usize> = (0..files.len())
            .filter(|&i| files[i].file_name == file_name)
            .collect();
        let surplus = same_name.len().saturating_sub(keep);
        // Files are oldest first: drop the first `surplus` with this name.
        (surplus > 0).then(|| same_name[..surplus].to_vec())
    })
}

/// Removes the files that `pick` chooses (positions in the package's files,
/// oldest first) from a live package, wherever they are stored, and returns
/// them. Segments that lose files are written anew under their new digest.
fn change_files<K: KeyValue, F>(
    kv: &K,
    found: &Package<F>,
    now: Millis,
    pick: impl Fn(&[PackageFile]) -> Option<Vec<usize>>,
) -> Result<Vec<PackageFile>, MetaError> {
    let package_id = found.id;
    let key = found.record_key();
    update_record(kv, &key, |stored: Option<Package>| {
        let Some(mut package) = stored.filter(|p| p.id == package_id && !p.is_deleted()) else {
            return Ok(Step::Keep(Vec::new()));
        };
        let all = package_files(kv, &package)?;
        let Some(positions) = pick(&all) else {
            return Ok(Step::Keep(Vec::new()));
        };
        let gone: Vec<u64> = positions.iter().map(|&i| all[i].id).collect();
        without_files(kv, &mut package, &gone)?;
        package.updated_at = now;
        let removed = positions.iter().map(|&i| all[i].clone()).collect();
        Ok(Step::Write(encode(&package), removed))
    })
}

/// Takes the files with these ids out of the record and its segments. Only
/// the segments whose id range holds one of them are read, in batches.
fn without_files<K: KeyValue>(
    kv: &K,
    package: &mut Package,
    gone: &[u64],
) -> Result<(), MetaError> {
    package.files.retain(|f| !gone.contains(&f.id));
    let segments = std::mem::take(&mut package.segments);
    let may_hold_one = |segment: &SegmentRef| gone.iter().any(|&id| may_hold(segment, id));
    let holding = segments.iter().filter(|s| may_hold_one(s));
    let mut read = read_segments_batched(kv, package.id, holding)?.into_iter();
    let mut kept = Vec::with_capacity(segments.len());
    for segment in segments {
        if !may_hold_one(&segment) {
            kept.push(segment);
            continue;
        }
        let files = read
            .next()
            .expect("each segment that may hold one was read");
        if !files.iter().any(|f| gone.contains(&f.id)) {
            kept.push(segment);
            continue;
        }
        let rest: Vec<PackageFile> = files
            .into_iter()
            .filter(|f| !gone.contains(&f.id))
            .collect();
        if !rest.is_empty() {
            kept.push(write_segment(kv, package.id, &rest)?);
        }
    }
    package.segments = kept;
    Ok(())
}

/// Whether the package already holds this file, as the id it was given in
/// an earlier attempt and its object: a retry after a write that landed
/// unconfirmed, whose file another publish may since have sealed into a
/// segment.
fn holds_file<K: KeyValue>(
    kv: &K,
    package: &Package<RawFile>,
    file_id: Option<u64>,
    object_key: &str,
) -> Result<bool, MetaError> {
    let Some(file_id) = file_id else {
        return Ok(false);
    };
    if raw::with_object(&package.files, file_id, object_key)
        .map_err(corrupt_record(package))?
        .is_some()
    {
        return Ok(true);
    }
    // Sealed since the write that recorded it, maybe.
    Ok(sealed_file_by_id(kv, package, file_id)?.is_some_and(|f| f.object_key == object_key))
}

/// The size of a new package's first block of file ids. Later blocks are
/// as large as the package (at most [`MAX_BLOCK`]), so a package of `n`
/// files draws about `log2(n)` blocks and leaves fewer than `n` ids unused.
pub const FIRST_BLOCK: u64 = 8;

/// The largest block of file ids a package draws at once.
pub const MAX_BLOCK: u64 = 1024;

/// The next id from the package's block, which the record's write claims
/// (so two publishes into one package never take the same id). When the
/// block is used up, a new one is drawn from the file sequence: one
/// increment per block instead of one per file. A block drawn in an
/// attempt whose write is lost is never used again.
fn next_file_id<K: KeyValue, F>(kv: &K, package: &mut Package<F>) -> Result<u64, MetaError> {
    let block = match package.file_ids.filter(|b| b.next < b.end) {
        Some(block) => block,
        None => draw_ids(kv, package.file_count().clamp(FIRST_BLOCK, MAX_BLOCK))?,
    };
    package.file_ids = Some(IdBlock {
        next: block.next + 1,
        end: block.end,
    });
    Ok(block.next)
}

/// Draws `count` consecutive ids from the file sequence.
fn draw_ids<K: KeyValue>(kv: &K, count: u64) -> Result<IdBlock, MetaError> {
    let last = raise_sequence(kv, "file", count)?;
    Ok(IdBlock {
        next: last + 1 - count,
        end: last + 1,
    })
}

/// Seals the record's files into a segment once there are [`TAIL_FILES`].
fn seal_if_full<K: KeyValue>(kv: &K, package: &mut Package<RawFile>) -> Result<(), MetaError> {
    if package.files.len() < TAIL_FILES {
        return Ok(());
    }
    let files = raw::decode_all(&package.files).map_err(corrupt_record(package))?;
    let sealed = write_segment(kv, package.id, &files)?;
    package.segments.push(sealed);
    package.files.clear();
    Ok(())
}

/// How a package record whose files do not decode is reported: its key is
/// made only then.
fn corrupt_record<F>(package: &Package<F>) -> impl Fn(serde_json::Error) -> MetaError + '_ {
    move |e| corrupt(&package.record_key())(e)
}

/// The name of the segment holding exactly these files: a digest of their
/// ids and objects. Two publishes racing to seal the same tail give their
/// own files the same id (only one of their writes lands), so the ids alone
/// would name both segments alike and the second would overwrite the
/// first; each upload's object is its own.
fn segment_digest(files: &[PackageFile]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.id.to_le_bytes());
        hasher.update((file.object_key.len() as u64).to_le_bytes());
        hasher.update(file.object_key.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

fn write_segment<K: KeyValue>(
    kv: &K,
    package_id: u64,
    files: &[PackageFile],
) -> Result<SegmentRef, MetaError> {
    let digest = segment_digest(files);
    let segment = Segment {
        files: files.to_vec(),
    };
    kv.set(
        &keys::package_segment(package_id, &digest),
        &encode(&segment),
    )?;
    Ok(SegmentRef {
        digest,
        files: files.len() as u32,
        min_id: files.iter().map(|f| f.id).min().unwrap_or(0),
        max_id: files.iter().map(|f| f.id).max().unwrap_or(0),
    })
}

/// The files of each of `segments`, in order, read [`SEGMENTS_PER_READ`]
/// to a round trip.
fn read_segments_batched<'a, K: KeyValue>(
    kv: &K,
    package_id: u64,
    segments: impl IntoIterator<Item = &'a SegmentRef>,
) -> Result<Vec<Vec<PackageFile>>, MetaError> {
    let segments: Vec<&SegmentRef> = segments.into_iter().collect();
    let mut files = Vec::with_capacity(segments.len());
    for batch in segments.chunks(SEGMENTS_PER_READ) {
        for segment in read_segments(kv, package_id, batch.iter().copied())? {
            files.push(segment?);
        }
    }
    Ok(files)
}

/// The files of `segments`, read in one round trip and decoded one by one
/// as the caller takes them (it may stop at the first).
fn read_segments<'a, K: KeyValue>(
    kv: &K,
    package_id: u64,
    segments: impl IntoIterator<Item = &'a SegmentRef>,
) -> Result<impl Iterator<Item = Result<Vec<PackageFile>, MetaError>>, MetaError> {
    let keys: Vec<String> = segments
        .into_iter()
        .map(|segment| keys::package_segment(package_id, &segment.digest))
        .collect();
    let values = kv.get_many(&keys)?;
    Ok(keys
        .into_iter()
        .zip(values)
        .map(|(key, value)| segment_files(key, value)))
}

/// The files of the segment stored at `key`; a segment a package points to
/// is never missing.
fn segment_files(key: String, value: Option<Vec<u8>>) -> Result<Vec<PackageFile>, MetaError> {
    match value {
        Some(bytes) => decode::<Segment>(&key, &bytes).map(|segment| segment.files),
        None => Err(MetaError::Corrupt {
            key,
            reason: "the package points to a missing segment".into(),
        }),
    }
}

/// Where the package with this id lives, if it is an older package that
/// has a location.
pub fn package_location<K: KeyValue>(
    kv: &K,
    package_id: u64,
) -> Result<Option<PackageLocation>, MetaError> {
    read(kv, &keys::package_by_id(package_id))
}

/// How often a package's `last_downloaded_at` is written at most.
pub const DOWNLOAD_STAMP_INTERVAL_MS: Millis = 60_000;

/// Sets `last_downloaded_at` of the package a download just read, at most
/// once per [`DOWNLOAD_STAMP_INTERVAL_MS`]. Best effort: a lost race means
/// someone else just wrote a fresh time.
pub fn mark_downloaded<K: KeyValue, F>(
    kv: &K,
    downloaded: &Package<F>,
    now: Millis,
) -> Result<(), MetaError> {
    let is_recent = |last_downloaded_at: Option<Millis>| {
        last_downloaded_at.is_some_and(|last| now - last < DOWNLOAD_STAMP_INTERVAL_MS)
    };
    // The record the download already read says whether a stamp is due, so
    // most downloads of a busy package cost no store round trip here.
    if is_recent(downloaded.last_downloaded_at) {
        return Ok(());
    }
    let key = downloaded.record_key();
    let (cas, current) = kv.read_for_swap(&key)?;
    let Some(bytes) = current else {
        return Ok(());
    };
    let mut package: Package<RawFile> = decode(&key, &bytes)?;
    if package.id != downloaded.id || is_recent(package.last_downloaded_at) {
        return Ok(());
    }
    package.last_downloaded_at = Some(now);
    kv.swap(cas, &encode(&package))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: u64, object_key: &str) -> PackageFile {
        PackageFile {
            id,
            file_name: "a.bin".into(),
            size: 1,
            md5: String::new(),
            sha1: String::new(),
            sha256: String::new(),
            object_key: object_key.into(),
            created_at: 0,
        }
    }

    #[test]
    fn racing_seals_of_one_tail_name_different_segments() {
        // Both publishes read the same tail and gave their own file the
        // block's next id: only one record write lands, and the segment it
        // points to must still hold its own file.
        let tail = [file(1, "files/aa"), file(2, "files/bb")];
        let mine = [&tail[..], &[file(3, "files/mine")]].concat();
        let theirs = [&tail[..], &[file(3, "files/theirs")]].concat();
        assert_ne!(segment_digest(&mine), segment_digest(&theirs));
        assert_eq!(segment_digest(&mine), segment_digest(&mine.clone()));
    }
}
