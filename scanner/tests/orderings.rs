//! Every version ordering is a total order on any string: it never panics, and sorting by it leaves every pair in
//! order (which a comparison that is not antisymmetric or transitive cannot do).

use std::cmp::Ordering;

use proptest::prelude::*;
use scanner::VersionScheme;

const SCHEMES: [VersionScheme; 5] =
    [VersionScheme::Dpkg, VersionScheme::Apk, VersionScheme::Rpm, VersionScheme::Pep440, VersionScheme::SemVer];

/// Pieces every ordering gives a meaning to, so that random versions share prefixes and hit each rule.
const PIECE: &str = "(0|1|2|10|01|00|a|b|c|z|A|r|rc|p|pre|alpha|post|dev|git|deb12u1)";

fn version() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::string::string_regex(&format!("{PIECE}([.~^+:_!-]?{PIECE}){{0,5}}")).unwrap(),
        1 => "[0-9a-zA-Z.~^+:_! -]{0,8}",
        1 => any::<String>(),
    ]
}

proptest! {
    #[test]
    fn each_ordering_sorts_any_strings_consistently(versions in prop::collection::vec(version(), 1..12)) {
        for scheme in SCHEMES {
            let mut sorted = versions.clone();
            sorted.sort_by(|a, b| scheme.compare(a, b));
            for (index, lower) in sorted.iter().enumerate() {
                prop_assert_eq!(scheme.compare(lower, lower), Ordering::Equal, "{:?}: {:?} vs itself", scheme, lower);
                for higher in &sorted[index + 1..] {
                    let order = scheme.compare(lower, higher);
                    prop_assert_ne!(order, Ordering::Greater, "{:?}: {:?} sorted before {:?}", scheme, lower, higher);
                    prop_assert_eq!(scheme.compare(higher, lower), order.reverse(), "{:?}: {:?} vs {:?}", scheme, higher, lower);
                }
            }
        }
    }
}
