//! Numbers as the benchmark reports print them.

/// `x` rounded to a whole number, thousands separated by commas (`1,234,567`), so the figures
/// in a table read at a glance.
///
/// ```
/// assert_eq!(lockstep_benches::number::thousands(-1_234_567.4), "-1,234,567");
/// ```
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn groups_of_three() {
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(-1_234.0), "-1,234");
        assert_eq!(thousands(0.4), "0");
    }
}
