//! One sync shared by the writers that finish together (a group commit).
//!
//! Writers are counted as each finishes (by the caller: a counter of its
//! own, or one the storage keeps). A writer whose count a sync that started
//! after it already covered needs no sync of its own; otherwise it syncs,
//! and that sync covers every writer counted when it started. Writers
//! arriving while a sync runs wait for it, then usually find themselves
//! covered.

use std::sync::Mutex;

/// How many writers the last sync covered.
#[derive(Default)]
pub struct GroupSync {
    synced: Mutex<u64>,
}

impl GroupSync {
    /// Makes writer `mine` durable: returns at once if an earlier sync
    /// covered it, else runs `sync`, which covers every writer `finished()`
    /// counts when it starts. `finished()` counts only writers whose work is
    /// done, so whatever it counts is on the disk once `sync` returns.
    pub fn cover<E>(
        &self,
        mine: u64,
        finished: impl Fn() -> u64,
        sync: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= mine {
            return Ok(());
        }
        let covered = finished();
        sync()?;
        *synced = covered;
        Ok(())
    }

    /// How many writers the last sync covered.
    #[cfg(test)]
    pub fn covered(&self) -> u64 {
        *self.synced.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_writer_covered_by_an_earlier_sync_does_not_sync_again() {
        let group = GroupSync::default();
        let syncs = Cell::new(0);
        let sync = || -> Result<(), ()> {
            syncs.set(syncs.get() + 1);
            Ok(())
        };
        // Writers 1 to 3 finished before writer 1's sync started.
        group.cover(1, || 3, sync).unwrap();
        group.cover(3, || 3, sync).unwrap();
        assert_eq!((syncs.get(), group.covered()), (1, 3));
        // Writer 4 finished after it: it syncs.
        group.cover(4, || 4, sync).unwrap();
        assert_eq!((syncs.get(), group.covered()), (2, 4));
        // A failed sync covers nothing.
        assert!(group.cover(5, || 5, || Err(())).is_err());
        assert_eq!(group.covered(), 4);
    }
}
