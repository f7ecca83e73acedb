//! The key-value layout, as the shared `genreg-layout` crate defines it (so
//! `genreg gc` reads the same keys the component writes). Only `meta` builds
//! keys; everything else asks `meta` for records.

pub use genreg_layout::keys::*;
