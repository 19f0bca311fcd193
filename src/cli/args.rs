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

fn number(s: &str) -> Result<f32, String> {
    let v: f32 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{s} is not a finite number"));
    }
    Ok(v)
}

/// A finite number > 0 (learning rates, LoRA alpha, gradient-norm limits).
pub fn positive(s: &str) -> Result<f32, String> {
    let v = number(s)?;
    if v <= 0.0 {
        return Err(format!("{s} must be greater than 0"));
    }
    Ok(v)
}

/// A finite number >= 0 (weight decay).
pub fn non_negative(s: &str) -> Result<f32, String> {
    let v = number(s)?;
    if v < 0.0 {
        return Err(format!("{s} must not be negative"));
    }
    Ok(v)
}

/// A finite number within 0..=1 (WiSE-FT alpha, retention fractions).
pub fn fraction(s: &str) -> Result<f32, String> {
    let v = number(s)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s} must be within 0 and 1"));
    }
    Ok(v)
}

/// A finite number within 0..1, 1 excluded (dropout: 1 would drop everything).
pub fn dropout(s: &str) -> Result<f32, String> {
    let v = fraction(s)?;
    if v >= 1.0 {
        return Err(format!("{s} must be below 1 (1 drops every input)"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonsense_values_are_refused() {
        assert_eq!(positive("1e-4"), Ok(1e-4));
        for bad in ["-1e-4", "0", "nan", "inf", "x"] {
            assert!(positive(bad).is_err(), "{bad}");
        }
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(non_negative("-0.1").is_err() && non_negative("NaN").is_err());
        assert!(fraction("1.5").is_err() && fraction("1").is_ok());
        assert!(dropout("1").is_err() && dropout("0.1").is_ok());
        assert!(positive_count("0").is_err() && positive_count("-3").is_err() && positive_count("4") == Ok(4));
    }
}
