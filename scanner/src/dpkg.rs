//! Debian package versions (`[epoch:]upstream[-revision]`, deb-version(7)), ordered exactly as
//! `dpkg --compare-versions` orders them.

use std::cmp::Ordering;

use crate::digits::{compare_digits, split_while};
use crate::parsed::compare_parsed;

/// Compares two Debian versions. Strings dpkg rejects outright (an empty or non-numeric epoch, an empty upstream
/// version or revision, embedded spaces) sort before every valid version; strings dpkg only warns about (an upstream
/// version not starting with a digit, unusual characters) compare the way dpkg compares them.
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_parsed(a, b, DebianVersion::parse, DebianVersion::compare)
}

struct DebianVersion<'a> {
    epoch: u32,
    upstream: &'a [u8],
    /// Empty when the version has no `-`: dpkg reads that the same as revision `0`.
    revision: &'a [u8],
}

impl<'a> DebianVersion<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        // dpkg ignores surrounding whitespace but rejects it inside a version.
        let text = text.trim_ascii();
        if text.is_empty() || text.bytes().any(|byte| byte.is_ascii_whitespace()) {
            return None;
        }
        let (epoch, rest) = match text.split_once(':') {
            Some((epoch, rest)) => (parse_epoch(epoch)?, rest),
            None => (0, text),
        };
        // The revision is whatever follows the last hyphen, so the upstream version may itself contain hyphens.
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((_, "")) => return None,
            Some((upstream, revision)) => (upstream, revision),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return None;
        }
        Some(DebianVersion { epoch, upstream: upstream.as_bytes(), revision: revision.as_bytes() })
    }

    fn compare(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(self.upstream, other.upstream))
            .then_with(|| compare_part(self.revision, other.revision))
    }
}

/// dpkg stores the epoch in a C `int`, so it refuses epochs beyond `i32::MAX`.
fn parse_epoch(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|&epoch| epoch <= i32::MAX as u32)
}

/// Compares an upstream version or a revision: alternately a run of non-digits, compared character by character by
/// [`weight`], and a run of digits, compared as a number.
fn compare_part(mut a: &[u8], mut b: &[u8]) -> Ordering {
    while !a.is_empty() || !b.is_empty() {
        let (a_text, a_rest) = split_while(a, |byte| !byte.is_ascii_digit());
        let (b_text, b_rest) = split_while(b, |byte| !byte.is_ascii_digit());
        let (a_number, a_rest) = split_while(a_rest, |byte| byte.is_ascii_digit());
        let (b_number, b_rest) = split_while(b_rest, |byte| byte.is_ascii_digit());
        let order = compare_text(a_text, b_text).then_with(|| compare_digits(a_number, b_number));
        if order != Ordering::Equal {
            return order;
        }
        a = a_rest;
        b = b_rest;
    }
    Ordering::Equal
}

/// Compares two runs of non-digits; the shorter run is read as continuing with the end-of-run weight.
fn compare_text(a: &[u8], b: &[u8]) -> Ordering {
    let length = a.len().max(b.len());
    (0..length)
        .map(|index| weight(a.get(index).copied()).cmp(&weight(b.get(index).copied())))
        .find(|order| order.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A character's rank in dpkg's order: `~` before the end of a run (so `1.0~rc1` < `1.0`), the end before letters
/// (so `1.0` < `1.0a`), letters in ASCII order before every other character (so `1.0a` < `1.0+`).
fn weight(byte: Option<u8>) -> i32 {
    match byte {
        None => 0,
        Some(b'~') => -1,
        Some(letter) if letter.is_ascii_alphabetic() => i32::from(letter),
        Some(other) => i32::from(other) + 256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ordering_tests::assert_compares;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn tilde_sorts_before_everything_even_the_end() {
        assert_compares(compare, "1.0~rc1", Less, "1.0");
        assert_compares(compare, "1.0~~", Less, "1.0~");
        assert_compares(compare, "1.0~~a", Less, "1.0~");
        assert_compares(compare, "3.0.22-1~deb12u1", Less, "3.0.22-1");
        assert_compares(compare, "3.0.19-1~deb12u2", Greater, "3.0.19-1~deb12u1");
    }

    #[test]
    fn letters_sort_before_other_characters() {
        assert_compares(compare, "1.0a", Greater, "1.0");
        assert_compares(compare, "1.0a", Less, "1.0+");
        assert_compares(compare, "1.0a", Less, "1.0.");
        assert_compares(compare, "1.0z", Less, "1.0+");
        assert_compares(compare, "1.0Z", Less, "1.0a");
        assert_compares(compare, "10.42-1", Less, "10.42-1+deb12u1");
    }

    #[test]
    fn digit_runs_compare_as_numbers() {
        assert_compares(compare, "1.10", Greater, "1.9");
        assert_compares(compare, "1.010", Equal, "1.10");
        assert_compares(compare, "1.0", Equal, "1.00");
        assert_compares(compare, "2.36-9+deb12u14", Greater, "2.36-9+deb12u9");
        assert_compares(compare, "150.0.7871.100-1~deb12u1", Greater, "150.0.7871.99-1~deb12u1");
    }

    #[test]
    fn epoch_outweighs_everything_else() {
        assert_compares(compare, "1:9.2p1-2+deb12u6", Greater, "9.9");
        assert_compares(compare, "3:3.2.25-0+deb12u3", Greater, "2:99");
        assert_compares(compare, "0:1.0", Equal, "1.0");
        assert_compares(compare, "2147483647:1", Greater, "2147483646:9");
    }

    #[test]
    fn revision_is_after_the_last_hyphen() {
        assert_compares(compare, "2.1.12-stable-8", Greater, "2.1.12-stable-7");
        assert_compares(compare, "1.0", Equal, "1.0-0");
        assert_compares(compare, "1.0-1", Greater, "1.0");
        assert_compares(compare, "1:1:1", Greater, "1:1");
    }

    #[test]
    fn versions_dpkg_rejects_sort_first_and_consistently() {
        for invalid in ["", "1.0-", ":1", "x:1", "1:", "1:-1", "1.0 x", "99999999999:1"] {
            assert_compares(compare, invalid, Less, "0");
        }
        assert_compares(compare, "1.0-", Greater, "1.0 x");
        assert_compares(compare, "x:1", Equal, "x:1");
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_compares(compare, " 1.0 ", Equal, "1.0");
    }

    #[test]
    fn non_ascii_bytes_sort_after_ascii_punctuation() {
        assert_compares(compare, "1.0-é", Greater, "1.0-+");
    }
}
