//! RPM package versions (`[epoch:]version[-release]`), ordered as rpm's `rpmvercmp` orders them: epoch, then
//! version, then release, each compared as alternating runs of digits and of letters.

use std::cmp::Ordering;

use crate::digits::{compare_digits, split_while};

/// Compares two RPM versions. Every string is a valid RPM version to rpm, so there is no parse failure: a missing
/// epoch reads as `0`, and a version without a release sorts before the same version with any release, as rpm sorts
/// it (`1.0` < `1.0-~` < `1.0-`).
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = RpmVersion::parse(a.as_bytes());
    let b = RpmVersion::parse(b.as_bytes());
    compare_digits(a.epoch, b.epoch).then_with(|| compare_segments(a.version, b.version)).then_with(|| match (a.release, b.release) {
        (Some(a), Some(b)) => compare_segments(a, b),
        (a, b) => a.is_some().cmp(&b.is_some()),
    })
}

struct RpmVersion<'a> {
    epoch: &'a [u8],
    version: &'a [u8],
    release: Option<&'a [u8]>,
}

impl<'a> RpmVersion<'a> {
    /// The epoch is the leading digits when a `:` follows them; the release is what follows the last `-` after them.
    fn parse(text: &'a [u8]) -> Self {
        let (digits, after_digits) = split_while(text, |byte| byte.is_ascii_digit());
        let (epoch, rest) = match after_digits.split_first() {
            Some((b':', rest)) => (digits, rest),
            _ => (&b""[..], text),
        };
        match rest.iter().rposition(|&byte| byte == b'-') {
            Some(hyphen) => RpmVersion { epoch, version: &rest[..hyphen], release: Some(&rest[hyphen + 1..]) },
            None => RpmVersion { epoch, version: rest, release: None },
        }
    }
}

/// rpmvercmp: separators (anything but letters, digits, `~` and `^`) only split segments. `~` sorts before anything,
/// even the end (`1.0~rc1` < `1.0`); `^` sorts after the end but before anything else (`1.0` < `1.0^git1` < `1.0.1`).
/// A numeric segment is newer than an alphabetic one, and a version with segments left over is the newer.
fn compare_segments(mut a: &[u8], mut b: &[u8]) -> Ordering {
    loop {
        a = skip_separators(a);
        b = skip_separators(b);
        let (a_first, b_first) = match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) | (Some(b'^'), Some(b'^')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (Some(b'^'), None) | (Some(_), Some(b'^')) => return Ordering::Greater,
            (None, Some(b'^')) | (Some(b'^'), Some(_)) => return Ordering::Less,
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(&a_first), Some(&b_first)) => (a_first, b_first),
        };
        let numeric = a_first.is_ascii_digit();
        let in_segment = |byte: u8| if numeric { byte.is_ascii_digit() } else { byte.is_ascii_alphabetic() };
        let (a_segment, a_rest) = split_while(a, in_segment);
        let (b_segment, b_rest) = split_while(b, in_segment);
        if b_segment.is_empty() {
            debug_assert!(b_first.is_ascii_digit() != numeric);
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let order = if numeric { compare_digits(a_segment, b_segment) } else { a_segment.cmp(b_segment) };
        if order.is_ne() {
            return order;
        }
        a = a_rest;
        b = b_rest;
    }
}

fn skip_separators(text: &[u8]) -> &[u8] {
    split_while(text, |byte| !byte.is_ascii_alphanumeric() && byte != b'~' && byte != b'^').1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ordering_tests::assert_compares;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn numeric_segments_compare_as_numbers() {
        assert_compares(compare, "1.10", Greater, "1.9");
        assert_compares(compare, "1.010", Equal, "1.10");
        assert_compares(compare, "2.0.1", Greater, "2.0");
        assert_compares(compare, "5.14.0-427.13.1.el9_4", Greater, "5.14.0-427.2.1.el9_4");
    }

    #[test]
    fn numbers_are_newer_than_letters() {
        assert_compares(compare, "1.1", Greater, "1.a");
        assert_compares(compare, "2.0a", Greater, "2.0");
        assert_compares(compare, "1.0a", Less, "1.0.1");
        assert_compares(compare, "abc", Less, "abd");
        assert_compares(compare, "abc", Less, "abcd");
    }

    #[test]
    fn separators_only_split() {
        assert_compares(compare, "1.0", Equal, "1_0");
        assert_compares(compare, "1..0", Equal, "1.0");
        assert_compares(compare, "1.0.", Equal, "1.0");
        assert_compares(compare, "1.0+", Equal, "1.0");
        assert_compares(compare, "1.0", Greater, "1");
    }

    #[test]
    fn tilde_sorts_before_everything() {
        assert_compares(compare, "1.0~rc1", Less, "1.0");
        assert_compares(compare, "1.0~rc1", Less, "1.0~rc2");
        assert_compares(compare, "1.0~~", Less, "1.0~");
        assert_compares(compare, "1.0~rc1", Less, "1.0a");
    }

    #[test]
    fn caret_sorts_after_the_end_but_before_more_segments() {
        assert_compares(compare, "1.0^git1", Greater, "1.0");
        assert_compares(compare, "1.0^git1", Less, "1.0.1");
        assert_compares(compare, "1.0^git1", Less, "1.0a");
        assert_compares(compare, "1.0^git2", Greater, "1.0^git1");
        assert_compares(compare, "1.0^", Greater, "1.0");
        assert_compares(compare, "1.0~rc1^git1", Less, "1.0");
        assert_compares(compare, "1.0~rc1^git1", Greater, "1.0~rc1");
    }

    #[test]
    fn epoch_version_release() {
        assert_compares(compare, "1:1.0-1", Greater, "2.0-1");
        assert_compares(compare, "0:1.0-1", Equal, "1.0-1");
        assert_compares(compare, "1.0-2.el9", Greater, "1.0-1.el9");
        assert_compares(compare, "1.0-1.el9_4.1", Greater, "1.0-1.el9_4");
        assert_compares(compare, ":1.0", Equal, "0:1.0");
        assert_compares(compare, "a:1", Less, "1");
    }

    #[test]
    fn a_missing_release_sorts_before_any_release() {
        assert_compares(compare, "1.0", Less, "1.0-1");
        assert_compares(compare, "1.0", Less, "1.0-0");
        assert_compares(compare, "1.0", Less, "1.0-~");
        assert_compares(compare, "1.0-~", Less, "1.0-");
        assert_compares(compare, "1.0-.", Equal, "1.0-");
    }

    #[test]
    fn anything_compares() {
        assert_compares(compare, "", Equal, "");
        assert_compares(compare, "", Less, "0");
        assert_compares(compare, "é", Equal, "");
        assert_compares(compare, "-", Greater, "");
    }
}
