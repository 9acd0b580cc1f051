//! Byte-level helpers the version orderings share: splitting off runs of bytes and comparing digit runs as numbers.

use std::cmp::Ordering;

/// Splits `bytes` after its longest prefix whose bytes all satisfy `keep`.
pub(crate) fn split_while(bytes: &[u8], keep: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let end = bytes.iter().position(|&byte| !keep(byte)).unwrap_or(bytes.len());
    bytes.split_at(end)
}

/// Compares two runs of ASCII digits as the numbers they spell. Leading zeros do not count and length is not limited,
/// so a 40-digit snapshot date compares correctly where an integer type would overflow.
pub(crate) fn compare_digits(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_leading_zeros(a);
    let b = strip_leading_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_leading_zeros(digits: &[u8]) -> &[u8] {
    split_while(digits, |byte| byte == b'0').1
}

/// A non-negative integer of any size, kept as the digits that spell it; ordered as a number.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Number<'a>(&'a [u8]);

impl<'a> Number<'a> {
    /// `digits` must be ASCII digits; an empty run reads as zero.
    pub(crate) fn new(digits: &'a [u8]) -> Self {
        Number(digits)
    }

    pub(crate) const ZERO: Number<'static> = Number(b"");
}

impl Ord for Number<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_digits(self.0, other.0)
    }
}

impl PartialOrd for Number<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Number<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Number<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_runs_compare_as_numbers() {
        assert_eq!(compare_digits(b"10", b"9"), Ordering::Greater);
        assert_eq!(compare_digits(b"007", b"7"), Ordering::Equal);
        assert_eq!(compare_digits(b"", b"0"), Ordering::Equal);
        assert_eq!(compare_digits(b"123456789012345678901234567890", b"123456789012345678901234567891"), Ordering::Less);
    }

    #[test]
    fn split_while_stops_at_the_first_rejected_byte() {
        assert_eq!(split_while(b"123abc", |byte| byte.is_ascii_digit()), (&b"123"[..], &b"abc"[..]));
        assert_eq!(split_while(b"abc", |byte| byte.is_ascii_digit()), (&b""[..], &b"abc"[..]));
        assert_eq!(split_while(b"42", |byte| byte.is_ascii_digit()), (&b"42"[..], &b""[..]));
    }
}
