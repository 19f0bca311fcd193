//! Value parsers shared by every subcommand's flags, so a bad value is refused by clap at
//! parse time, with the flag's name, instead of surfacing later as an unrelated error (a
//! `--batch 0` reported as a broadcast error).

/// A count that must be at least 1 (batch sizes, epochs, steps, ranks, top-k).
pub fn positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1, got 0".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("must be a whole number of at least 1, got '{s}'")),
    }
}
