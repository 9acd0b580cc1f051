//! Assertions the version orderings' unit tests share.

use std::cmp::Ordering;

/// Asserts `compare(a, b) == expected`, and the reverse the other way round.
#[track_caller]
pub(crate) fn assert_compares(compare: fn(&str, &str) -> Ordering, a: &str, expected: Ordering, b: &str) {
    assert_eq!(compare(a, b), expected, "{a} vs {b}");
    assert_eq!(compare(b, a), expected.reverse(), "{b} vs {a}");
}

/// Asserts every version sorts strictly before each one after it.
#[track_caller]
pub(crate) fn assert_ascending(compare: fn(&str, &str) -> Ordering, versions: &[&str]) {
    for (index, lower) in versions.iter().enumerate() {
        for higher in &versions[index + 1..] {
            assert_compares(compare, lower, Ordering::Less, higher);
        }
    }
}
