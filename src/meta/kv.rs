//! The small key-value interface the metadata code is written against, and
//! the one write protocol every shared key goes through ([`update`]).
//!
//! It is the shape of `wasi:keyvalue` store + atomics: plain reads and writes,
//! atomic counters, and compare-and-swap where a swap fails if the value
//! changed since it was read. The component plugs in the WASI store; unit
//! tests plug in the in-memory store of `crate::testing`.
//!
//! What the stores Spin ships really promise shapes [`update`]:
//!
//! - Atomic increments are atomic and report truthfully everywhere.
//! - A swap of a *present* value is atomic everywhere, but its answer is only
//!   a hint: Spin 4.0.2's Redis store reports a written swap as failed (and a
//!   lost one may be reported as written). So every swap is confirmed by
//!   reading the value back, and every step given to [`update`] must be
//!   idempotent: run again on a value that already holds its change, it
//!   keeps it as it is.
//! - A swap "from absent" is unconditional on Spin's SQLite store, so it
//!   cannot create a key exactly once. A key is created by whoever holds its
//!   creation claim for the current claim epoch (the first to raise the
//!   epoch's claim counter), who writes it only while the epoch lasts, and
//!   only a value computed from a read made since any other claimer may
//!   have written it: since its epoch began, or since the previous epoch
//!   ended by every clock if that one was claimed. Two claimers of
//!   neighbouring epochs (clocks differ between instances) each look for
//!   the other's claim after raising their own, so at least one sees the
//!   other: the later one waits the earlier one out, the earlier one yields.
//!   A claimer that dies before writing blocks the key only until the epoch
//!   ends: the next epoch's claimer takes over, after waiting out the clock
//!   skew allowed between instances, so no key is ever unusable for longer
//!   than [`CLAIM_EPOCH_MS`] + [`CLOCK_SKEW_MS`].

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The store failed or answered something unusable.
    #[error("key-value store: {0}")]
    Store(String),
    /// Another caller is creating this key and has not finished yet; the
    /// request may be retried in a moment.
    #[error("{0} is being created by another request; try again")]
    Busy(String),
}

/// What a compare-and-swap reported. Only a hint: [`update`] reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    Done,
    /// Someone changed the value since it was read; read again and retry.
    Conflict,
}

pub trait KeyValue {
    /// A value read for a later [`KeyValue::swap`].
    type Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Atomically adds `delta` to the counter at `key` (absent counts as 0)
    /// and returns the new value. Counters are 8 bytes, little-endian, as
    /// Spin's SQLite store keeps them (Spin panics on anything else).
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError>;
    /// The values at `keys`, in the order asked, read in one round trip
    /// where the store can.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        keys.iter().map(|key| self.get(key)).collect()
    }
    /// The values at `keys` in one round trip, or an error where the store
    /// cannot read them at once; never a read per key. For reads worth
    /// making only at the cost of one round trip ([`KeyValue::read_ahead`]).
    fn get_batch(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.get_many(keys)
    }
    /// Reads `keys` now, in one round trip where the store can, so that the
    /// next [`KeyValue::get`] of each is answered without another. A hint:
    /// stores that keep nothing per request ignore it (see
    /// [`super::read_ahead::ReadAhead`], which keeps them).
    fn read_ahead(&self, _keys: &[String]) {}
    /// The value [`KeyValue::read_ahead`] kept for `key`, taken without a
    /// round trip, or `None` when none was kept (then nothing is read).
    fn take_read_ahead(&self, _key: &str) -> Option<Option<Vec<u8>>> {
        None
    }
    /// The value at `key`, as the request's next [`KeyValue::get`] of it
    /// will answer: read now (or found among what was read ahead) and kept
    /// for that `get`, so a key looked at early, to learn which keys to
    /// read ahead next, costs no second round trip. Stores that keep
    /// nothing per request just read it.
    fn look_ahead(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.get(key)
    }
    /// Reads `key` and remembers what was read.
    fn read_for_swap(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), KvError>;
    /// Writes `value` only if `key` still holds what `cas` read. When `cas`
    /// read nothing, stores may write unconditionally (Spin's SQLite does).
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap, KvError>;
    /// Wall-clock milliseconds since the Unix epoch, for creation claims.
    fn now_millis(&self) -> i64;
    /// Waits before reading a key that another caller is creating.
    fn pause(&self, millis: u64);
}

/// How long one creation-claim epoch lasts: the longest a key stays
/// uncreatable after its claimer died before writing it.
pub const CLAIM_EPOCH_MS: i64 = 30_000;

/// How far apart the clocks of two instances sharing a store may be. A
/// claimer of a new epoch waits this long past the epoch's start before it
/// writes a key whose previous epoch was claimed too.
pub const CLOCK_SKEW_MS: i64 = 5_000;

/// How long a request waits, in total, for a key another caller is creating
/// before it gives up with [`KvError::Busy`].
pub const MAX_CREATION_WAIT_MS: u64 = 3_000;

/// How many times a compare-and-swap loop retries before giving up. Every
/// conflict means another writer succeeded, so this is only reached if the
/// store itself misbehaves.
pub const MAX_SWAP_ATTEMPTS: usize = 1_000;

/// Outcome of one step of an [`update`] loop.
pub enum Step<T, E> {
    /// Write this value and return `T` once it is confirmed written.
    Write(Vec<u8>, T),
    /// Leave the value alone and return `T`.
    Keep(T),
    /// Stop with this error.
    Fail(E),
}

/// Creation-claim keys are part of the shared layout (`genreg gc` skips them).
pub use genreg_layout::keys::{creation_claim, is_creation_claim};

/// Read-modify-write of one key: `step` sees the current value and decides;
/// when another writer came first it runs again on the newer value.
///
/// An existing value is replaced by compare-and-swap and read back to
/// confirm. An absent one is created only by the holder of the key's
/// creation claim (see the module docs); the others wait for its value and
/// then change that.
pub fn update<K: KeyValue, T, E: From<KvError>>(
    kv: &K,
    key: &str,
    step: impl FnMut(Option<Vec<u8>>) -> Step<T, E>,
) -> Result<T, E> {
    update_then_read(kv, key, &[], step)
}

/// [`update`] for a caller that reads `read_after` right after it: those
/// keys are read ahead in the same round trip that reads a swapped value
/// back, so confirming the write costs no extra round trip. They are read
/// after the write, as the caller would have read them.
pub fn update_then_read<K: KeyValue, T, E: From<KvError>>(
    kv: &K,
    key: &str,
    read_after: &[String],
    mut step: impl FnMut(Option<Vec<u8>>) -> Step<T, E>,
) -> Result<T, E> {
    let mut creation = Creation::default();
    // A swap reported lost, with what it would return: the next read tells
    // whether it was written after all.
    let mut unconfirmed: Option<(Vec<u8>, T)> = None;
    for _ in 0..MAX_SWAP_ATTEMPTS {
        // Taken before the read: the read saw every write made before it.
        let read_at = kv.now_millis();
        let (cas, current) = kv.read_for_swap(key)?;
        if let Some((value, result)) = unconfirmed.take() {
            if holds(current.as_deref(), &value) {
                return Ok(result);
            }
        }
        let exists = current.is_some();
        match step(current) {
            Step::Keep(result) => return Ok(result),
            Step::Fail(error) => return Err(error),
            Step::Write(value, result) if exists => {
                // The answer is a hint; what is stored now decides. A swap
                // reported lost is not read back on its own: the next
                // attempt's read is its read back.
                if kv.swap(cas, &value)? == Swap::Conflict {
                    unconfirmed = Some((value, result));
                    continue;
                }
                if !read_after.is_empty() {
                    let mut batch = vec![key.to_string()];
                    batch.extend_from_slice(read_after);
                    kv.read_ahead(&batch);
                }
                if holds(kv.get(key)?.as_deref(), &value) {
                    return Ok(result);
                }
            }
            Step::Write(value, result) => {
                if creation.try_create(kv, key, &value, read_at)? {
                    return Ok(result);
                }
            }
        }
    }
    Err(KvError::Store(format!("too many conflicting writes to {key}")).into())
}

/// Whether a value read back is the one written. Compares 16 bytes at a
/// time: `==` on byte slices is a byte-at-a-time `memcmp` in WebAssembly,
/// and a package record read back after each publish runs to tens of
/// kilobytes.
fn holds(read: Option<&[u8]>, written: &[u8]) -> bool {
    let Some(read) = read else {
        return false;
    };
    if read.len() != written.len() {
        return false;
    }
    let (read_blocks, read_rest) = read.as_chunks::<16>();
    let (written_blocks, written_rest) = written.as_chunks::<16>();
    read_blocks
        .iter()
        .zip(written_blocks)
        .all(|(r, w)| u128::from_ne_bytes(*r) == u128::from_ne_bytes(*w))
        && read_rest == written_rest
}

/// How often a claimer waiting out the clock skew reads the key again: the
/// previous epoch's claimer has usually written it already, and then it is
/// changed rather than created.
const SKEW_POLL_MS: u64 = 50;

/// One caller's attempts to create a key inside [`update`].
#[derive(Default)]
struct Creation {
    /// The epoch whose claim this caller holds.
    held_epoch: Option<i64>,
    /// An epoch whose claim this caller held and let end without writing.
    lapsed_epoch: Option<i64>,
    /// The epoch whose claim another caller won.
    lost_epoch: Option<i64>,
    /// From when the held claim may write, and the earliest read it may
    /// write from: the start of its epoch, or, when a claimer of the
    /// previous epoch may have written since then, the moment it has stopped
    /// by every clock.
    fresh_from: i64,
    /// Milliseconds spent waiting for someone else's creation.
    waited_ms: u64,
}

impl Creation {
    /// Writes `value`, computed from a read of `key` (absent) made at
    /// `read_at`, if this caller may create the key now. `Ok(false)` means:
    /// read the key again (after a pause when someone else is creating it).
    fn try_create<K: KeyValue>(
        &mut self,
        kv: &K,
        key: &str,
        value: &[u8],
        read_at: i64,
    ) -> Result<bool, KvError> {
        let now = kv.now_millis();
        let epoch = now.div_euclid(CLAIM_EPOCH_MS);
        if self.held_epoch != Some(epoch) {
            self.held_epoch = None;
            if self.lost_epoch != Some(epoch) {
                if kv.increment(&creation_claim(key, epoch), 1)? == 1 {
                    self.held_epoch = Some(epoch);
                } else {
                    self.lost_epoch = Some(epoch);
                }
            }
            if self.held_epoch != Some(epoch) {
                // Another caller creates it in this epoch: give it time.
                self.wait(kv, key)?;
                return Ok(false);
            }
            // An instance whose clock runs ahead may already hold the next
            // epoch's claim, and may have found this one unclaimed: it
            // creates the key then. Only late in the epoch can that be;
            // earlier, a claimer of the next epoch comes after this claim,
            // finds it, and waits this claimer out.
            let next_start = (epoch + 1) * CLAIM_EPOCH_MS;
            if kv.now_millis() >= next_start - CLOCK_SKEW_MS
                && kv.get(&creation_claim(key, epoch + 1))?.is_some()
            {
                self.held_epoch = None;
                self.lost_epoch = Some(epoch);
                self.wait(kv, key)?;
                return Ok(false);
            }
            // The previous epoch's claimer may still be writing, until its
            // epoch ends by its own clock: within the skew allowed past our
            // epoch's start, let that moment pass on every clock if the
            // previous epoch was claimed, reading the key again meanwhile.
            // Later in the epoch it has passed, so the claim is not even
            // read; and a claimer that was itself the previous epoch's
            // claimer knows nobody wrote in it.
            let epoch_start = epoch * CLAIM_EPOCH_MS;
            let safe_from = epoch_start + CLOCK_SKEW_MS;
            let held_previous = self.lapsed_epoch == Some(epoch - 1);
            let previous_may_write =
                !held_previous && (safe_from <= now || previous_epoch_claimed(kv, key, epoch)?);
            self.fresh_from = if previous_may_write {
                safe_from
            } else {
                epoch_start
            };
        }
        let now = kv.now_millis();
        if now < self.fresh_from {
            kv.pause(((self.fresh_from - now) as u64).min(SKEW_POLL_MS));
            return Ok(false);
        }
        // Our claim holds only until the epoch ends.
        if now.div_euclid(CLAIM_EPOCH_MS) != epoch {
            self.held_epoch = None;
            self.lapsed_epoch = Some(epoch);
            return Ok(false);
        }
        // A read from before may have missed the previous epoch's claimer's
        // write (a slow step between the read and the claim).
        if read_at < self.fresh_from {
            return Ok(false);
        }
        kv.set(key, value)?;
        Ok(true)
    }

    fn wait<K: KeyValue>(&mut self, kv: &K, key: &str) -> Result<(), KvError> {
        if self.waited_ms >= MAX_CREATION_WAIT_MS {
            return Err(KvError::Busy(key.to_string()));
        }
        let pause = (5u64 << (self.waited_ms / 100).min(5)).min(200);
        kv.pause(pause);
        self.waited_ms += pause;
        Ok(())
    }
}

fn previous_epoch_claimed<K: KeyValue>(kv: &K, key: &str, epoch: i64) -> Result<bool, KvError> {
    Ok(kv.get(&creation_claim(key, epoch - 1))?.is_some())
}

/// Decodes a counter as the stores keep it: 8 bytes little-endian (SQLite)
/// or decimal text (Redis); see `genreg_layout::counter`.
pub fn decode_counter(bytes: &[u8]) -> Option<i64> {
    genreg_layout::counter::decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::holds;

    #[test]
    fn a_value_read_back_holds_the_write_only_when_every_byte_matches() {
        let written: Vec<u8> = (0..=255u8).cycle().take(16 * 5 + 7).collect();
        assert!(holds(Some(&written), &written));
        assert!(!holds(None, &written));
        assert!(!holds(Some(&written[..written.len() - 1]), &written));
        // A change in each of the blocks compared 16 bytes at a time, and
        // in the bytes after them.
        for at in [0, 15, 16, 47, 79, 80, written.len() - 1] {
            let mut read = written.clone();
            read[at] ^= 1;
            assert!(!holds(Some(&read), &written), "byte {at}");
        }
        assert!(holds(Some(b""), b""));
    }
}
