//! What one request asked of its key-value store and over outbound HTTP,
//! counted by the host as the guest calls it. The access log line ends with
//! these counts, and a request whose counts include a write waits for the
//! store to sync before its answer goes out (`handler.rs`).
//!
//! They are what the store and S3 really served, retries included: a swap
//! that lost and was tried again counts twice, which the component's own
//! round-trip table (`src/testing/api/round_trips.rs`, one caller, no
//! races) does not show.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// Counters of one request, shared by its store data and its log line.
#[derive(Debug, Default)]
pub struct RequestCounts {
    /// `get`, `exists`, `get-many`, `list-keys` and a swap's read of the
    /// current value: one round trip each.
    reads: AtomicU32,
    /// `set`, `delete`, `increment`, `set-many` and `delete-many`.
    writes: AtomicU32,
    /// Compare-and-swap attempts, and how many of them the store refused.
    swaps: AtomicU32,
    lost_swaps: AtomicU32,
    /// Outbound requests to S3 (every outbound host but the registry's
    /// own), and self requests.
    s3_requests: AtomicU32,
    self_requests: AtomicU32,
}

impl RequestCounts {
    pub fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    pub fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// A swap attempt; `lost` when the store refused it.
    pub fn swapped(&self, lost: bool) {
        self.swaps.fetch_add(1, Ordering::Relaxed);
        if lost {
            self.lost_swaps.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An outbound request: to the registry itself, or to S3.
    pub fn sent(&self, self_request: bool) {
        let counter = if self_request {
            &self.self_requests
        } else {
            &self.s3_requests
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the request changed the store (a write, or a swap attempt,
    /// which may have landed even when reported lost), so that its answer
    /// waits for the store to sync.
    pub fn changed_store(&self) -> bool {
        self.writes.load(Ordering::Relaxed) + self.swaps.load(Ordering::Relaxed) > 0
    }

    /// The counts so far.
    pub fn counted(&self) -> Counted {
        let get = |counter: &AtomicU32| u64::from(counter.load(Ordering::Relaxed));
        Counted {
            reads: get(&self.reads),
            writes: get(&self.writes),
            swaps: get(&self.swaps),
            lost_swaps: get(&self.lost_swaps),
            s3_requests: get(&self.s3_requests),
            self_requests: get(&self.self_requests),
        }
    }
}

impl fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.counted().fmt(f)
    }
}

/// One request's counts (or several requests' added up), as numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub reads: u64,
    pub writes: u64,
    pub swaps: u64,
    pub lost_swaps: u64,
    pub s3_requests: u64,
    pub self_requests: u64,
}

/// The names the log line gives the counts, in [`Counted`]'s order.
const NAMES: [&str; 6] = ["reads", "writes", "swaps", "lost", "s3", "self"];

impl Counted {
    fn values(&self) -> [u64; 6] {
        [
            self.reads,
            self.writes,
            self.swaps,
            self.lost_swaps,
            self.s3_requests,
            self.self_requests,
        ]
    }

    /// The counts an access log line ends with; `None` for a line without
    /// them (a request the component did not run) or cut short.
    pub fn from_log_line(line: &str) -> Option<Counted> {
        let mut fields = line.split(' ').rev().take(NAMES.len()).collect::<Vec<_>>();
        fields.reverse();
        let mut values = [0; 6];
        for ((value, name), field) in values.iter_mut().zip(NAMES).zip(fields) {
            *value = field.strip_prefix(name)?.strip_prefix('=')?.parse().ok()?;
        }
        let [reads, writes, swaps, lost_swaps, s3_requests, self_requests] = values;
        Some(Counted {
            reads,
            writes,
            swaps,
            lost_swaps,
            s3_requests,
            self_requests,
        })
    }
}

impl std::ops::AddAssign for Counted {
    fn add_assign(&mut self, other: Counted) {
        self.reads += other.reads;
        self.writes += other.writes;
        self.swaps += other.swaps;
        self.lost_swaps += other.lost_swaps;
        self.s3_requests += other.s3_requests;
        self.self_requests += other.self_requests;
    }
}

/// `reads=3 writes=0 swaps=1 lost=0 s3=1 self=0`, as the log line ends.
impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in NAMES.iter().zip(self.values()).enumerate() {
            let space = if i == 0 { "" } else { " " };
            write!(f, "{space}{name}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_the_log_line_ends() {
        let counts = RequestCounts::default();
        assert_eq!(
            counts.to_string(),
            "reads=0 writes=0 swaps=0 lost=0 s3=0 self=0"
        );
        counts.read();
        counts.read();
        counts.swapped(true);
        counts.swapped(false);
        counts.wrote();
        counts.sent(false);
        counts.sent(true);
        assert_eq!(
            counts.to_string(),
            "reads=2 writes=1 swaps=2 lost=1 s3=1 self=1"
        );
    }

    #[test]
    fn a_log_line_gives_back_its_counts() {
        let counts = RequestCounts::default();
        counts.read();
        counts.swapped(true);
        counts.sent(false);
        let line = format!("PUT /api/v4/projects/1/x 201 3.2ms {counts}");
        assert_eq!(Counted::from_log_line(&line), Some(counts.counted()));
        assert_eq!(Counted::from_log_line("GET /-/health 503 0.1ms"), None);
        assert_eq!(Counted::from_log_line("PUT /x 201 1.0ms reads=1 wri"), None);
    }

    #[test]
    fn only_writes_and_swaps_change_the_store() {
        let counts = RequestCounts::default();
        counts.read();
        counts.sent(false);
        assert!(!counts.changed_store());
        counts.swapped(true);
        assert!(counts.changed_store(), "a lost swap may have landed");
        let counts = RequestCounts::default();
        counts.wrote();
        assert!(counts.changed_store());
    }
}
