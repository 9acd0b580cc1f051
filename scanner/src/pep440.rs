//! Python package versions (PEP 440: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`), in every spelling the PEP
//! normalises (`1.0-ALPHA.1`, `1.0c1`, `1.0-1`, `v1.0`), ordered as PEP 440 orders them.

use std::cmp::Ordering;

use crate::digits::{Number, split_while};
use crate::parsed::compare_parsed;

/// Compares two PEP 440 versions. Strings that are not PEP 440 versions sort before every valid one.
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_parsed(a, b, Pep440Version::parse, Pep440Version::compare)
}

#[derive(Debug)]
struct Pep440Version<'a> {
    epoch: Number<'a>,
    release: Vec<Number<'a>>,
    pre: Option<(PreRelease, Number<'a>)>,
    post: Option<Number<'a>>,
    dev: Option<Number<'a>>,
    /// The segments after `+`; empty when there is no local version label, which sorts first.
    local: Vec<LocalSegment<'a>>,
}

/// A segment of a local version label. Words sort before numbers and compare case-insensitively; numbers compare as
/// numbers. Labels compare segment by segment, and a label that goes on is the greater.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LocalSegment<'a> {
    /// Lowercased.
    Word(Vec<u8>),
    Number(Number<'a>),
}

impl<'a> LocalSegment<'a> {
    fn new(text: &'a [u8]) -> Self {
        if text.iter().all(u8::is_ascii_digit) {
            LocalSegment::Number(Number::new(text))
        } else {
            LocalSegment::Word(text.to_ascii_lowercase())
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PreRelease {
    Alpha,
    Beta,
    ReleaseCandidate,
}

/// Every spelling of each pre-release kind; longer spellings first, so `alpha` is not read as `a` followed by `lpha`.
const PRE_RELEASE_SPELLINGS: [(&str, PreRelease); 8] = [
    ("alpha", PreRelease::Alpha),
    ("a", PreRelease::Alpha),
    ("beta", PreRelease::Beta),
    ("b", PreRelease::Beta),
    ("preview", PreRelease::ReleaseCandidate),
    ("pre", PreRelease::ReleaseCandidate),
    ("rc", PreRelease::ReleaseCandidate),
    ("c", PreRelease::ReleaseCandidate),
];

const POST_RELEASE_SPELLINGS: [(&str, ()); 3] = [("post", ()), ("rev", ()), ("r", ())];
const DEV_RELEASE_SPELLINGS: [(&str, ()); 1] = [("dev", ())];

/// Where a part of the version sorts when it is absent, relative to the values it takes when present.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot<T> {
    BeforeAll,
    At(T),
    AfterAll,
}

impl<'a> Pep440Version<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let mut rest = text.trim().as_bytes();
        if let Some(after_v) = rest.strip_prefix(b"v").or_else(|| rest.strip_prefix(b"V")) {
            rest = after_v;
        }
        let (first_number, after_first) = split_while(rest, |byte| byte.is_ascii_digit());
        let epoch = match after_first.split_first() {
            Some((b'!', after_epoch)) if !first_number.is_empty() => {
                rest = after_epoch;
                Number::new(first_number)
            }
            _ => Number::ZERO,
        };
        let mut release = Vec::new();
        loop {
            let (number, after) = split_while(rest, |byte| byte.is_ascii_digit());
            if number.is_empty() {
                return None;
            }
            release.push(Number::new(number));
            rest = after;
            match rest.split_first() {
                Some((b'.', after_dot)) if after_dot.first().is_some_and(u8::is_ascii_digit) => rest = after_dot,
                _ => break,
            }
        }
        let pre = read_labelled_number(&mut rest, &PRE_RELEASE_SPELLINGS);
        let post =
            read_implicit_post(&mut rest).or_else(|| read_labelled_number(&mut rest, &POST_RELEASE_SPELLINGS).map(|((), number)| number));
        let dev = read_labelled_number(&mut rest, &DEV_RELEASE_SPELLINGS).map(|((), number)| number);
        let local = match rest.split_first() {
            None => Vec::new(),
            Some((b'+', label)) => parse_local(label)?,
            Some(_) => return None,
        };
        Some(Pep440Version { epoch, release, pre, post, dev, local })
    }

    fn compare(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_release(&self.release, &other.release))
            .then_with(|| self.pre_slot().cmp(&other.pre_slot()))
            .then_with(|| Slot::from_option(self.post, Slot::BeforeAll).cmp(&Slot::from_option(other.post, Slot::BeforeAll)))
            .then_with(|| Slot::from_option(self.dev, Slot::AfterAll).cmp(&Slot::from_option(other.dev, Slot::AfterAll)))
            .then_with(|| self.local.cmp(&other.local))
    }

    /// A final release sorts after its pre-releases, but a bare dev release (`1.0.dev1`) sorts before them.
    fn pre_slot(&self) -> Slot<(PreRelease, Number<'a>)> {
        match (self.pre, self.post, self.dev) {
            (Some(pre), _, _) => Slot::At(pre),
            (None, None, Some(_)) => Slot::BeforeAll,
            (None, _, _) => Slot::AfterAll,
        }
    }
}

impl<T> Slot<T> {
    fn from_option(value: Option<T>, when_absent: Slot<T>) -> Slot<T> {
        value.map_or(when_absent, Slot::At)
    }
}

/// Reads `[-_.]?label[-_.]?N?` for one of `spellings` (case-insensitive); the number defaults to 0. Leaves `rest`
/// untouched when no label is there.
fn read_labelled_number<'a, T: Copy>(rest: &mut &'a [u8], spellings: &[(&str, T)]) -> Option<(T, Number<'a>)> {
    let after_separator = skip_separator(rest);
    let (spelling, kind) = spellings.iter().find(|(spelling, _)| starts_with_ignoring_case(after_separator, spelling))?;
    let after_label = skip_separator(&after_separator[spelling.len()..]);
    let (number, after_number) = split_while(after_label, |byte| byte.is_ascii_digit());
    *rest = after_number;
    Some((*kind, Number::new(number)))
}

/// The post-release spelling without a label: `1.0-1` is `1.0.post1`.
fn read_implicit_post<'a>(rest: &mut &'a [u8]) -> Option<Number<'a>> {
    let after_hyphen = rest.strip_prefix(b"-")?;
    let (number, after_number) = split_while(after_hyphen, |byte| byte.is_ascii_digit());
    if number.is_empty() {
        return None;
    }
    *rest = after_number;
    Some(Number::new(number))
}

fn skip_separator(text: &[u8]) -> &[u8] {
    match text.split_first() {
        Some((b'-' | b'_' | b'.', rest)) => rest,
        _ => text,
    }
}

fn starts_with_ignoring_case(text: &[u8], prefix: &str) -> bool {
    text.get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// A local label is alphanumeric segments separated by `-`, `_` or `.`.
fn parse_local(label: &[u8]) -> Option<Vec<LocalSegment<'_>>> {
    let segments: Vec<&[u8]> = label.split(|&byte| matches!(byte, b'-' | b'_' | b'.')).collect();
    let well_formed = segments.iter().all(|segment| !segment.is_empty() && segment.iter().all(u8::is_ascii_alphanumeric));
    well_formed.then(|| segments.into_iter().map(LocalSegment::new).collect())
}

/// Trailing zeros do not count: `1.0` == `1.0.0`.
fn compare_release(a: &[Number], b: &[Number]) -> Ordering {
    let significant = |release: &[Number]| release.len() - release.iter().rev().take_while(|&&number| number == Number::ZERO).count();
    a[..significant(a)].cmp(&b[..significant(b)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ordering_tests::{assert_ascending, assert_compares};
    use Ordering::{Equal, Greater, Less};

    /// The order PEP 440's own example lists, every version strictly before the next.
    #[test]
    fn the_full_ordering_of_a_release_cycle() {
        let ascending = [
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        assert_ascending(compare, &ascending);
    }

    #[test]
    fn trailing_zeros_do_not_count() {
        assert_compares(compare, "1.0", Equal, "1.0.0");
        assert_compares(compare, "1", Equal, "1.0.0.0");
        assert_compares(compare, "2.0.1", Greater, "2");
        assert_compares(compare, "2022.9.24", Less, "2022.12.7");
    }

    #[test]
    fn alternative_spellings_normalise() {
        assert_compares(compare, "1.0alpha1", Equal, "1.0a1");
        assert_compares(compare, "1.0-ALPHA.1", Equal, "1.0a1");
        assert_compares(compare, "1.0beta2", Equal, "1.0b2");
        assert_compares(compare, "1.0c1", Equal, "1.0rc1");
        assert_compares(compare, "1.0pre1", Equal, "1.0rc1");
        assert_compares(compare, "1.0preview1", Equal, "1.0rc1");
        assert_compares(compare, "1.0a", Equal, "1.0a0");
        assert_compares(compare, "1.0-1", Equal, "1.0.post1");
        assert_compares(compare, "1.0-r1", Equal, "1.0.post1");
        assert_compares(compare, "1.0rev1", Equal, "1.0.post1");
        assert_compares(compare, "1.0.post", Equal, "1.0.post0");
        assert_compares(compare, "1.0-dev", Equal, "1.0.dev0");
        assert_compares(compare, "1.0_DEV_3", Equal, "1.0.dev3");
        assert_compares(compare, "v1.0", Equal, "1.0");
        assert_compares(compare, " 1.0\n", Equal, "1.0");
        assert_compares(compare, "1.0+Ubuntu.1", Equal, "1.0+ubuntu-1");
        assert_compares(compare, "01.02", Equal, "1.2");
    }

    #[test]
    fn epochs_outweigh_the_release() {
        assert_compares(compare, "1!1.0", Greater, "2024.1");
        assert_compares(compare, "0!1.0", Equal, "1.0");
    }

    #[test]
    fn local_labels_order_numbers_after_words() {
        assert_compares(compare, "1.0+1", Greater, "1.0+abc");
        assert_compares(compare, "1.0+abc.1", Less, "1.0+abc.1.1");
        assert_compares(compare, "1.0+10", Greater, "1.0+9");
    }

    #[test]
    fn invalid_versions_sort_first() {
        for invalid in ["", "abc", "1.0+", "1.0+a..b", "1.0.x", "1.0-", "1!", "1.0 1", "1.0a1b1", "1..0"] {
            assert_compares(compare, invalid, Less, "0.dev0");
        }
        assert_compares(compare, "abc", Equal, "abc");
    }

    #[test]
    fn big_numbers() {
        assert_compares(compare, "1.123456789012345678901234567890", Less, "1.123456789012345678901234567891");
    }
}
