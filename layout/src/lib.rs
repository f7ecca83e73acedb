//! The registry's key-value layout and the shapes of the records stored in
//! it, shared by the component (which writes them, in `meta`) and by
//! `genreg gc` (which reads them to learn which objects are referenced).
//!
//! - [`keys`]: every key and key prefix, builders and parsers.
//! - [`records`]: the stored JSON records both sides read (projects,
//!   packages with their file tail, sealed segments, files).
//! - [`counter`]: how atomic counters are stored.
//!
//! Nothing here does I/O; the write protocols live in the component's
//! `meta` module.

pub mod counter;
pub mod keys;
pub mod records;
