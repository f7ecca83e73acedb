//! What /proc says of a process and of the machine, for the benches that
//! report server CPU time.

use anyhow::Context as _;

/// The fields of `/proc/<pid>/stat` after the command name (which is in
/// parentheses and may hold spaces); field 3 (state) comes first.
pub fn stat_fields(pid: u32) -> anyhow::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("/proc stat")?.1;
    Ok(after_name.split_whitespace().map(str::to_string).collect())
}

/// `field` (numbered as in proc(5)) of process `pid`.
pub fn stat_field(fields: &[String], field: usize) -> anyhow::Result<u64> {
    Ok(fields.get(field - 3).context("/proc stat field")?.parse()?)
}

/// utime + stime of process `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let fields = stat_fields(pid)?;
    let ticks = stat_field(&fields, 14)? + stat_field(&fields, 15)?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB; 0 when
/// the process or the field is gone.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak resident memory (`VmHWM`) of process `pid` to what it
/// holds now; `false` where the kernel does not allow it.
pub fn reset_peak_resident(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// `getconf CLK_TCK`: the unit of /proc's CPU times (100 on Linux).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
