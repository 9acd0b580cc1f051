//! `scanner::pep440::compare` against the order of Python's `packaging` library, the reference implementation of
//! PEP 440, recorded in `data/pep440_packaging_order.json` (so the test runs offline): every PyPI version of the shared
//! vulnerability data plus hand-picked spellings, as classes of equal versions in ascending order, and the strings
//! `packaging` refuses.

use std::fs;

use scanner::pep440;
use serde::Deserialize;

#[derive(Deserialize)]
struct PackagingOrder {
    invalid: Vec<String>,
    ascending_classes: Vec<Vec<String>>,
}

fn packaging_order() -> PackagingOrder {
    serde_json::from_slice(&fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pep440_packaging_order.json")).unwrap()).unwrap()
}

#[test]
fn agrees_with_packaging_on_every_pair_of_valid_versions() {
    let order = packaging_order();
    let ranked: Vec<(usize, &str)> = order
        .ascending_classes
        .iter()
        .enumerate()
        .flat_map(|(rank, class)| class.iter().map(move |version| (rank, version.as_str())))
        .collect();
    assert_eq!(ranked.len(), 691);
    for &(a_rank, a) in &ranked {
        for &(b_rank, b) in &ranked {
            assert_eq!(pep440::compare(a, b), a_rank.cmp(&b_rank), "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn what_packaging_refuses_sorts_before_every_valid_version() {
    let order = packaging_order();
    assert_eq!(order.invalid.len(), 12);
    for invalid in &order.invalid {
        for valid in order.ascending_classes.iter().flatten() {
            assert!(pep440::compare(invalid, valid).is_lt(), "{invalid:?} vs {valid:?}");
        }
    }
}
