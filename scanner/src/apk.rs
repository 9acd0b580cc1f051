//! Alpine package versions (`1.2.3a_rc1_p2~1a2b3c-r4`), ordered by the rules of current apk-tools: the version
//! tokenizer that knows `~hash` commit tokens (the older one ranked `6.0_pre1` above `6.0`).
//!
//! A version is a sequence of tokens, each of a kind given by how it starts: the first number, a `.`-number, one
//! letter right after a number, a `_suffix` word, the number after a suffix, a `~` commit hash and the `-rN`
//! revision, in that order. Two versions compare token by token while their tokens are of the same kind. Where the
//! kinds part, a pre-release suffix (`_alpha`, `_beta`, `_pre`, `_rc`) is the older; otherwise the version whose token
//! comes earlier in that order goes on where the other has moved further along or ended, and is the newer
//! (`1.2.1` > `1.2-r1` > `1.2`). What cannot be read (`1.0bc`'s second letter, `_foo`, `-x`) ends the version in an
//! invalid token, which sorts below the end: `1.0_foo` < `1.0`.

use std::cmp::Ordering;

use crate::digits::{compare_digits, split_while};

/// Compares two Alpine versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut a_tokens = Tokenizer { rest: a.as_bytes() };
    let mut b_tokens = Tokenizer { rest: b.as_bytes() };
    let mut a = a_tokens.first();
    let mut b = b_tokens.first();
    while a.kind == b.kind && a.kind < Kind::End {
        let order = a.compare_same_kind(&b);
        if order.is_ne() {
            return order;
        }
        a = a_tokens.after(a.kind);
        b = b_tokens.after(b.kind);
    }
    if a.kind == b.kind {
        Ordering::Equal
    } else if a.is_pre_release() {
        Ordering::Less
    } else if b.is_pre_release() {
        Ordering::Greater
    } else {
        // The version that moved further along (or ended, or broke off) is the older.
        b.kind.cmp(&a.kind)
    }
}

/// Token kinds in the order they may follow one another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    FirstNumber,
    /// A number after `.`.
    Number,
    Letter,
    Suffix,
    SuffixNumber,
    CommitHash,
    Revision,
    End,
    Invalid,
}

/// Suffix words, pre-release ones below the release (between `Rc` and `Cvs`), post-release ones above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Suffix {
    Alpha,
    Beta,
    Pre,
    Rc,
    Cvs,
    Svn,
    Git,
    Hg,
    P,
}

const SUFFIX_WORDS: [(&[u8], Suffix); 9] = [
    (b"alpha", Suffix::Alpha),
    (b"beta", Suffix::Beta),
    (b"pre", Suffix::Pre),
    (b"rc", Suffix::Rc),
    (b"cvs", Suffix::Cvs),
    (b"svn", Suffix::Svn),
    (b"git", Suffix::Git),
    (b"hg", Suffix::Hg),
    (b"p", Suffix::P),
];

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    kind: Kind,
    /// The token's text without its separator: the digits, the letter, the suffix word or the hash.
    text: &'a [u8],
    suffix: Option<Suffix>,
}

impl<'a> Token<'a> {
    fn new(kind: Kind, text: &'a [u8]) -> Self {
        Token { kind, text, suffix: None }
    }

    /// Number tokens must have digits.
    fn number(kind: Kind, digits: &'a [u8]) -> Self {
        Token::new(if digits.is_empty() { Kind::Invalid } else { kind }, digits)
    }

    fn is_pre_release(&self) -> bool {
        self.suffix.is_some_and(|suffix| suffix <= Suffix::Rc)
    }

    fn compare_same_kind(&self, other: &Self) -> Ordering {
        match self.kind {
            // A leading zero makes the component compare as text, so `1.01` < `1.1` and `1.0` < `1.00`.
            Kind::Number if self.text[0] == b'0' || other.text[0] == b'0' => self.text.cmp(other.text),
            Kind::FirstNumber | Kind::Number | Kind::SuffixNumber | Kind::Revision => compare_digits(self.text, other.text),
            Kind::Suffix => self.suffix.cmp(&other.suffix),
            Kind::Letter | Kind::CommitHash | Kind::End | Kind::Invalid => self.text.cmp(other.text),
        }
    }
}

struct Tokenizer<'a> {
    rest: &'a [u8],
}

impl<'a> Tokenizer<'a> {
    fn first(&mut self) -> Token<'a> {
        Token::number(Kind::FirstNumber, self.take_while(|byte| byte.is_ascii_digit()))
    }

    /// The token after one of kind `previous`; a token that may not follow it is invalid.
    fn after(&mut self, previous: Kind) -> Token<'a> {
        let Some(&first) = self.rest.first() else {
            return Token::new(Kind::End, b"");
        };
        let numbers_so_far = previous <= Kind::Number;
        match first {
            b'a'..=b'z' if numbers_so_far => {
                let (letter, rest) = self.rest.split_at(1);
                self.rest = rest;
                Token::new(Kind::Letter, letter)
            }
            b'.' if numbers_so_far => {
                self.rest = &self.rest[1..];
                Token::number(Kind::Number, self.take_while(|byte| byte.is_ascii_digit()))
            }
            b'0'..=b'9' if previous == Kind::Suffix => Token::number(Kind::SuffixNumber, self.take_while(|byte| byte.is_ascii_digit())),
            b'_' if previous <= Kind::SuffixNumber => {
                self.rest = &self.rest[1..];
                let word = self.take_while(|byte| byte.is_ascii_lowercase());
                match SUFFIX_WORDS.iter().find(|(name, _)| *name == word) {
                    Some(&(_, suffix)) => Token { kind: Kind::Suffix, text: word, suffix: Some(suffix) },
                    None => Token::new(Kind::Invalid, word),
                }
            }
            b'~' if previous < Kind::CommitHash => {
                self.rest = &self.rest[1..];
                Token::number(Kind::CommitHash, self.take_while(|byte| byte.is_ascii_hexdigit()))
            }
            b'-' if previous < Kind::Revision && self.rest.get(1) == Some(&b'r') => {
                self.rest = &self.rest[2..];
                Token::number(Kind::Revision, self.take_while(|byte| byte.is_ascii_digit()))
            }
            _ => Token::new(Kind::Invalid, b""),
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let (taken, rest) = split_while(self.rest, keep);
        self.rest = rest;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ordering_tests::assert_compares;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn revisions() {
        assert_compares(compare, "3.3.2-r0", Less, "3.3.2-r1");
        assert_compares(compare, "1.36.1-r29", Less, "1.36.1-r30");
        assert_compares(compare, "1.2.2-r1", Greater, "1.2.2");
        assert_compares(compare, "1.36.1-r9", Less, "1.36.1-r10");
        assert_compares(compare, "1.2-r1", Less, "1.2.1");
    }

    #[test]
    fn pre_release_suffixes_sort_below_the_release_and_post_release_ones_above() {
        assert_compares(compare, "1.1_alpha1", Less, "1.1");
        assert_compares(compare, "1.0_alpha", Less, "1.0_beta");
        assert_compares(compare, "1.0_beta", Less, "1.0_pre");
        assert_compares(compare, "1.0_pre", Less, "1.0_rc");
        assert_compares(compare, "1.0_rc1", Less, "1.0");
        assert_compares(compare, "1.0", Less, "1.0_cvs");
        assert_compares(compare, "1.0_cvs", Less, "1.0_svn");
        assert_compares(compare, "1.0_svn", Less, "1.0_git");
        assert_compares(compare, "1.0_git", Less, "1.0_hg");
        assert_compares(compare, "1.0_hg", Less, "1.0_p1");
        assert_compares(compare, "1.0_p9-r0", Less, "1.0_p10-r0");
        assert_compares(compare, "0.1.0_alpha_pre2", Less, "0.1.0_alpha");
        assert_compares(compare, "1.3_pre1-r1", Less, "1.3.2");
    }

    #[test]
    fn letters_follow_the_number_they_qualify() {
        assert_compares(compare, "1.0", Less, "1.0a");
        assert_compares(compare, "2.5.1-r8", Less, "2.5.1a-r1");
        assert_compares(compare, "1.1a", Less, "1.3a");
        assert_compares(compare, "0.9.8c-r1", Less, "0.9.8d");
    }

    #[test]
    fn leading_zeros_make_a_component_fraction_like() {
        assert_compares(compare, "1.01", Less, "1.1");
        assert_compares(compare, "1.001", Less, "1.01");
        assert_compares(compare, "1.2.07.8", Less, "1.2.12.04");
        assert_compares(compare, "1.02", Less, "1.03-r1");
        assert_compares(compare, "0.01", Less, "0.06");
        assert_compares(compare, "1.0", Less, "1.00");
        assert_compares(compare, "1.10", Greater, "1.09");
    }

    #[test]
    fn numbers_of_any_length() {
        assert_compares(compare, "1.0.0_pre20191002222144-r0", Less, "1.0.0_pre20210530193627-r0");
        assert_compares(compare, "1.0.123456789012345678901234567890", Less, "1.0.123456789012345678901234567891");
        assert_compares(compare, "20050718-r1", Greater, "2.59");
    }

    #[test]
    fn commit_hashes_sit_between_suffixes_and_the_revision() {
        assert_compares(compare, "1.0~abc", Less, "1.0~abd");
        assert_compares(compare, "1.0~abc-r1", Greater, "1.0~abc");
        assert_compares(compare, "1.0", Less, "1.0~abc");
        assert_compares(compare, "1.0_p1", Greater, "1.0~abc");
        assert_compares(compare, "1.0-r1", Less, "1.0~abc");
        assert_compares(compare, "1.0~", Less, "1.0");
    }

    #[test]
    fn equal_versions() {
        assert_compares(compare, "2.16.1-r3", Equal, "2.16.1-r3");
        assert_compares(compare, "0.1.0_alpha", Equal, "0.1.0_alpha");
    }

    #[test]
    fn malformed_versions_compare_as_far_as_they_read() {
        assert_compares(compare, "1.0", Less, "1.0bc");
        assert_compares(compare, "1.0_foo", Less, "1.0");
        assert_compares(compare, "1.0_foo", Greater, "1.0_alpha");
        assert_compares(compare, "", Less, "0");
        assert_compares(compare, "1.1-x", Less, "1.1");
        assert_compares(compare, "1.1a2", Less, "1.1a");
        assert_compares(compare, "1.1_rc", Greater, "1.1_rc.1");
    }

    /// Pairs from apk-tools' own test list (test/version.data), read here as facts about apk's order.
    #[test]
    fn pairs_from_apk_tools_test_list() {
        let pairs = [
            ("2.34", Greater, "0.1.0_alpha"),
            ("23_foo", Greater, "4_beta"),
            ("0.1.0_alpha2", Greater, "0.1.0_alpha"),
            ("4.8-r1", Greater, "3.10.18-r1"),
            ("3.10.18-r1", Greater, "2.3.0b-r1"),
            ("0.12.3", Greater, "0.12"),
            ("1.2.11", Less, "1.2.12.1"),
            ("3.1_p17", Greater, "1.06-r6"),
            ("1.06-r6", Less, "006"),
            ("006", Greater, "1.0.0"),
            ("3.9.8-r5", Greater, "2.01.01_alpha10"),
            ("1.0", Greater, "0.99.3.20040818"),
            ("1.39", Greater, "1.00_beta2"),
            ("3.0.20060720", Less, "20060720"),
            ("3.0.0-r2", Less, "021109-r3"),
            ("3.9_pre20060124", Greater, "0.01"),
            ("0.10.0", Less, "0.10.1_rc1"),
            ("0.15.1b-r2", Greater, "0.15.1b"),
            ("22.7-r1", Less, "22.7.3-r1"),
            ("2.10.1", Greater, "02.08.01b"),
            ("0.20070118", Less, "0.20070207_rc1"),
            ("4.5_p1-r1", Greater, "4.5_p1"),
            ("0.9.28.1", Less, "087-r1"),
            ("20040406-r1", Greater, "2.12r-r4"),
            ("2.12r-r4", Less, "2.12r-r5"),
            ("1.3-r0", Less, "1.3.1-r0"),
            ("1.0", Less, "1.0bc"),
            ("0.1.0_alpha_pre2", Less, "0.1.0_alpha"),
            // Pairs the tokenizer's rewrite added: a pre-release of a `.0` release sorts below it.
            ("6.0_pre1", Less, "6.0"),
            ("6.1_pre1", Less, "6.1"),
            ("6.0_p1", Greater, "6.0"),
            ("6.1_p1", Greater, "6.1"),
        ];
        for (a, expected, b) in pairs {
            assert_compares(compare, a, expected, b);
        }
    }
}
