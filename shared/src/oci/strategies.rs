//! Proptest strategies for what clients send, valid by the spec's grammar or nearly so, shared by the properties of
//! every parser they reach.

use proptest::{prelude::*, sample::Index};

use super::{Digest, RepositoryName, Tag, name::MAX_NAME_LENGTH};

/// One name component, `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, with the unbounded repetitions bounded.
const COMPONENT: &str = "[a-z0-9]{1,20}((\\.|_|__|-{1,3})[a-z0-9]{1,20}){0,4}";

/// Repository names of the spec's grammar, up to the longest accepted: components are joined while they fit, so no
/// case is filtered away (a million cases would exhaust proptest's rejection budget).
pub fn name_text() -> impl Strategy<Value = String> {
    prop::collection::vec(COMPONENT, 1..10).prop_map(|components| {
        let mut name = String::new();
        for component in components {
            let separator = usize::from(!name.is_empty());
            if name.len() + separator + component.len() > MAX_NAME_LENGTH {
                break;
            }
            if separator == 1 {
                name.push('/');
            }
            name.push_str(&component);
        }
        name
    })
}

/// Tags of the spec's grammar, `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn tag_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
}

/// Digests of both registered algorithms: `sha256:` and 64 lowercase hex digits, `sha512:` and 128.
pub fn digest_text() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9a-f]{64}".prop_map(|hex| format!("sha256:{hex}")), "[0-9a-f]{128}".prop_map(|hex| format!("sha512:{hex}"))]
}

/// `valid` with one change a parser must notice or shrug off: a character inserted, replaced or removed, the text
/// cut short or doubled. Most results are invalid, some still valid; the properties compare with a reference.
pub fn near(valid: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    let inserted = prop_oneof![
        Just('/'),
        Just(':'),
        Just('.'),
        Just('_'),
        Just('-'),
        Just(' '),
        Just('+'),
        Just('%'),
        Just('A'),
        Just('\u{0}'),
        Just('é'),
        any::<char>()
    ];
    (valid, 0..5u8, any::<Index>(), inserted).prop_map(|(text, change, at, character)| {
        let boundaries: Vec<usize> = text.char_indices().map(|(index, _)| index).chain([text.len()]).collect();
        let at = boundaries[at.index(boundaries.len())];
        let next = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
        match change {
            0 => format!("{}{character}{}", &text[..at], &text[at..]),
            1 => format!("{}{character}{}", &text[..at], &text[next..]),
            2 => format!("{}{}", &text[..at], &text[next..]),
            3 => text[..at].to_owned(),
            _ => format!("{text}{text}"),
        }
    })
}

pub fn name() -> impl Strategy<Value = RepositoryName> {
    name_text().prop_map(|text| RepositoryName::parse(&text).expect("a name of the grammar"))
}

pub fn tag() -> impl Strategy<Value = Tag> {
    tag_text().prop_map(|text| Tag::parse(&text).expect("a tag of the grammar"))
}

pub fn digest() -> impl Strategy<Value = Digest> {
    digest_text().prop_map(|text| Digest::parse(&text).expect("a digest of the grammar"))
}
