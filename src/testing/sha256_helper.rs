//! A SHA-256 helper in memory: it resumes the hash from the state it is
//! given and answers the state it reached, as the helper instance does.

use std::cell::Cell;
use std::rc::Rc;

use crate::blob::sha256_helper::{Sha256Helper, Sha256Stream};
use crate::checksum::Sha256Resumed;

/// `fail_after` makes its streams fail once sent that many bytes (at the
/// answer when sent exactly that many); `available` false makes it
/// unavailable.
pub struct MemoryHelper {
    pub after: u64,
    pub available: bool,
    pub fail_after: Option<u64>,
    /// Helpers started.
    pub started: Cell<u32>,
    /// Bytes its streams were sent.
    pub sent: Rc<Cell<u64>>,
}

impl MemoryHelper {
    /// A helper asked for once `after` bytes are hashed.
    pub fn new(after: u64) -> Self {
        MemoryHelper {
            after,
            available: true,
            fail_after: None,
            started: Cell::new(0),
            sent: Rc::default(),
        }
    }
}

struct MemoryHelperStream {
    sha256: Sha256Resumed,
    fail_after: Option<u64>,
    sent: Rc<Cell<u64>>,
}

impl Sha256Helper for MemoryHelper {
    fn hand_off_after(&self) -> u64 {
        self.after
    }

    fn start(&self, state: &str) -> Option<Box<dyn Sha256Stream + '_>> {
        if !self.available {
            return None;
        }
        self.started.set(self.started.get() + 1);
        Some(Box::new(MemoryHelperStream {
            sha256: Sha256Resumed::resume(state).expect("a state the uploader made"),
            fail_after: self.fail_after,
            sent: self.sent.clone(),
        }))
    }
}

impl Sha256Stream for MemoryHelperStream {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.sent.set(self.sent.get() + bytes.len() as u64);
        if self.fail_after.is_some_and(|n| self.sent.get() > n) {
            return Err("helper connection reset".into());
        }
        self.sha256.update(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<String, String> {
        if self.fail_after.is_some_and(|n| self.sent.get() >= n) {
            return Err("helper answered no state".into());
        }
        Ok(self.sha256.state())
    }
}
