//! A seeded generator (SplitMix64): which requests fail, where bodies are
//! cut and what bytes are published come from it, so a run is reproduced by
//! its seed.

/// The seed of every generator in the suite: `GENREG_FAULT_SEED` when set
/// (decimal), else a fixed value.
pub fn suite_seed() -> u64 {
    std::env::var("GENREG_FAULT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0x5EED_F00D)
}

#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for one named part of a scenario, independent of how
    /// many values the others drew.
    pub fn derived(seed: u64, label: &str) -> Self {
        let mut mixed = seed;
        for byte in label.bytes() {
            mixed = Rng(mixed ^ u64::from(byte)).next_u64();
        }
        Rng(mixed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }

    /// `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
