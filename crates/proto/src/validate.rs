//! Range checks applied to every decoded message (and every message before it is encoded).
//!
//! Owns the rules for "in range": finite numbers, lengths, identifier alphabets. Serde only
//! checks shapes; these checks are what keep a NaN position or a megabyte display name out of
//! the room core.

use crate::error::FieldError;
use crate::limits::{MAX_POSITION_SECONDS, MAX_RATE, MIN_RATE};

/// Something that can check its own fields against the protocol's ranges.
pub trait Validate {
    /// `Ok` when every field is within the ranges PROTOCOL.md gives.
    fn validate(&self) -> Result<(), FieldError>;
}

impl<T: Validate> Validate for Option<T> {
    fn validate(&self) -> Result<(), FieldError> {
        self.as_ref().map_or(Ok(()), Validate::validate)
    }
}

/// Free text: at most `max` characters, no control characters other than newline and tab.
pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::new(field, "contains control characters"));
    }
    Ok(())
}

/// A name shown to people: 1..=`max` characters, single line, not only white space.
pub(crate) fn name(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "is empty"));
    }
    if value.contains(['\n', '\t']) {
        return Err(FieldError::new(field, "must be a single line"));
    }
    text(field, value, max)
}

/// An opaque token or identifier: 1..=`max` bytes of visible ASCII.
pub(crate) fn token(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "is empty"));
    }
    if value.len() > max {
        return Err(FieldError::new(
            field,
            format!("is longer than {max} bytes"),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(field, "must be visible ASCII"));
    }
    Ok(())
}

/// A room id or invite code: 1..=`max` bytes of `A-Z a-z 0-9 _ -`.
pub(crate) fn identifier(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    token(field, value, max)?;
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(FieldError::new(field, "may hold only A-Z a-z 0-9 _ -"));
    }
    Ok(())
}

/// A byte string of 1..=`max` bytes (passwords may hold any UTF-8).
pub(crate) fn secret(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "is empty"));
    }
    if value.len() > max {
        return Err(FieldError::new(
            field,
            format!("is longer than {max} bytes"),
        ));
    }
    Ok(())
}

/// A media position in seconds: finite, within `0..=MAX_POSITION_SECONDS`.
pub(crate) fn position(field: &str, value: f64) -> Result<(), FieldError> {
    if !value.is_finite() {
        return Err(FieldError::new(field, "must be a finite number"));
    }
    if !(0.0..=MAX_POSITION_SECONDS).contains(&value) {
        return Err(FieldError::new(
            field,
            format!("must be within 0..={MAX_POSITION_SECONDS} seconds"),
        ));
    }
    Ok(())
}

/// A media duration in seconds: finite, above zero, at most `MAX_POSITION_SECONDS`.
pub(crate) fn duration(field: &str, value: f64) -> Result<(), FieldError> {
    position(field, value)?;
    if value <= 0.0 {
        return Err(FieldError::new(field, "must be above zero"));
    }
    Ok(())
}

/// A group playback rate: finite, within `MIN_RATE..=MAX_RATE`.
pub(crate) fn rate(field: &str, value: f64) -> Result<(), FieldError> {
    if !value.is_finite() {
        return Err(FieldError::new(field, "must be a finite number"));
    }
    if !(MIN_RATE..=MAX_RATE).contains(&value) {
        return Err(FieldError::new(
            field,
            format!("must be within {MIN_RATE}..={MAX_RATE}"),
        ));
    }
    Ok(())
}

/// A list of at most `max` entries.
pub(crate) fn count<T>(field: &str, items: &[T], max: usize) -> Result<(), FieldError> {
    if items.len() > max {
        return Err(FieldError::new(
            field,
            format!("has more than {max} entries"),
        ));
    }
    Ok(())
}

/// Validates every entry of a list, naming the failing index.
pub(crate) fn each<T: Validate>(field: &str, items: &[T]) -> Result<(), FieldError> {
    for (i, item) in items.iter().enumerate() {
        item.validate()
            .map_err(|e| e.within(&format!("{field}[{i}]")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_reject_nan_infinity_and_negatives() {
        assert!(position("p", 0.0).is_ok());
        assert!(position("p", 3600.5).is_ok());
        assert!(position("p", f64::NAN).is_err());
        assert!(position("p", f64::INFINITY).is_err());
        assert!(position("p", -0.001).is_err());
        assert!(position("p", MAX_POSITION_SECONDS * 2.0).is_err());
    }

    #[test]
    fn rates_stay_in_their_range() {
        assert!(rate("r", 1.0).is_ok());
        assert!(rate("r", 0.25).is_ok());
        assert!(rate("r", 4.0).is_ok());
        assert!(rate("r", 0.0).is_err());
        assert!(rate("r", -1.0).is_err());
        assert!(rate("r", f64::NAN).is_err());
        assert!(rate("r", 4.01).is_err());
    }

    #[test]
    fn names_are_single_line_and_bounded() {
        assert!(name("n", "Ada", 64).is_ok());
        assert!(name("n", "   ", 64).is_err());
        assert!(name("n", "a\nb", 64).is_err());
        assert!(name("n", &"é".repeat(64), 64).is_ok());
        assert!(name("n", &"é".repeat(65), 64).is_err());
        assert!(name("n", "bell\u{7}", 64).is_err());
    }

    #[test]
    fn identifiers_use_a_safe_alphabet() {
        assert!(identifier("id", "abc_DEF-123", 64).is_ok());
        assert!(identifier("id", "", 64).is_err());
        assert!(identifier("id", "a b", 64).is_err());
        assert!(identifier("id", "a/b", 64).is_err());
        assert!(identifier("id", &"a".repeat(65), 64).is_err());
    }

    #[test]
    fn errors_name_their_path() {
        let err = FieldError::new("rate", "bad").within("timeline");
        assert_eq!(err.to_string(), "field `timeline.rate` bad");
    }
}
