//! The rule every parsing ordering applies to strings it cannot parse, so that each ordering stays total on any input.

use std::cmp::Ordering;

/// Orders `a` and `b` by their parsed forms. A string that does not parse sorts before every string that does, and two
/// such strings compare byte by byte: garbage never panics, never equals a real version, and always lands in the same
/// place.
pub(crate) fn compare_parsed<'a, T>(
    a: &'a str,
    b: &'a str,
    parse: impl Fn(&'a str) -> Option<T>,
    compare: impl Fn(&T, &T) -> Ordering,
) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => compare(&a, &b),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}
