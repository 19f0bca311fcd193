//! `--max-memory`: the host heap budget of a workload run (see [`super::workload::run`]).
use crate::error::{Error, Result};

/// The host heap budget of a run (enforced only where [`alloc_guard`] is installed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HostBudget {
    /// Linux: the heap live at the start plus `MemAvailable` less 5 %, so the run stops
    /// with a report before the kernel OOM killer strikes; no budget without /proc/meminfo.
    Auto,
    /// At most this many live heap bytes in the whole process.
    Bytes(u64),
    /// No budget.
    Off,
}

const SIZE_FORMS: &str = "bytes (e.g. 1073741824) or a number with K, M, G or T \
(powers of 1024; KiB/MiB/GiB/TiB and KB/MB/GB/TB mean the same), e.g. 512M, 2G, 1.5G, 1500MiB; \
or none for no budget";

impl HostBudget {
    /// Parse a `--max-memory` value.
    pub fn parse(s: &str) -> Result<HostBudget> {
        let bad = |why: &str| Error::invalid(format!("--max-memory '{s}': {why}; expected {SIZE_FORMS}"));
        let t = s.trim();
        if t.eq_ignore_ascii_case("none") {
            return Ok(HostBudget::Off);
        }
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = (&t[..split], t[split..].trim());
        let shift = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            _ => return Err(bad("not a size")),
        };
        let x: f64 = num.parse().map_err(|_| bad("not a size"))?;
        let bytes = (x * (1u64 << shift) as f64).round();
        if bytes < 1.0 {
            return Err(bad("must be more than 0"));
        }
        if bytes >= usize::MAX as f64 {
            return Err(bad("too large"));
        }
        Ok(HostBudget::Bytes(bytes as u64))
    }

    /// The budget in bytes, given the heap live now.
    pub fn resolve(self, live: usize) -> Option<usize> {
        match self {
            HostBudget::Off => None,
            HostBudget::Bytes(b) => Some(b as usize),
            HostBudget::Auto => crate::util::mem_available_bytes().map(|a| live.saturating_add((a - a / 20) as usize)),
        }
    }
}
