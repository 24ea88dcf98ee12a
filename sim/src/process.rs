//! What the benches read of a running process.

/// A `kB` field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:` ...), in KiB; `None` when the
/// process or the field is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let rss = status_kib(std::process::id(), "VmRSS:").expect("Linux /proc");
        assert!(rss > 100, "a test process holds more than 100 KiB: {rss}");
        assert_eq!(status_kib(std::process::id(), "NoSuchField:"), None);
    }
}
