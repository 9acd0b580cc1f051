//! The byte ranges clients send: `Range` on blob downloads and `Content-Range` on upload chunks, parsed as pure
//! functions of the header text so every number a client sends is checked before anything uses it.

use crate::{error::Error, store::ByteRange};

/// A single `bytes=` range (`a-b`, `a-`, `-suffix`) resolved against the blob's size.
pub(super) fn parse_range(range: &str, size: u64) -> Result<Option<ByteRange>, Error> {
    let unsatisfiable = || Error::RangeNotSatisfiable { size };
    let spec = range.strip_prefix("bytes=").ok_or_else(unsatisfiable)?;
    let (first, last) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    // Positions past the end are clamped to it, so one too large for u64 is simply past the end: a first byte there
    // is unsatisfiable, a last byte or a suffix there reaches the end.
    let position = |text: &str| digits(text.trim()).map(|digits| digits.parse().unwrap_or(u64::MAX)).ok_or_else(unsatisfiable);
    let end = size.checked_sub(1).ok_or_else(unsatisfiable)?;
    let (first, last) = match (first.trim(), last.trim()) {
        ("", suffix) => (size - position(suffix)?.min(size), end),
        (first, "") => (position(first)?, end),
        (first, last) => (position(first)?, position(last)?.min(end)),
    };
    if first > last || first >= size {
        return Err(unsatisfiable());
    }
    Ok(Some(ByteRange { first, last }))
}

/// `text` if it is a decimal number as HTTP writes them (`1*DIGIT`), which `u64::from_str` alone is not: it takes a
/// leading `+`. Parsing the result can then only fail by overflow.
fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())).then_some(text)
}

/// Where an upload chunk says it starts and how many bytes it says it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChunkSpan {
    pub start: Option<u64>,
    pub length: Option<u64>,
}

/// A chunk's span from its `Content-Range` and `Content-Length`, either of which may be missing; when both are
/// given they must agree.
pub(super) fn chunk_span(content_range: Option<&str>, content_length: Option<u64>) -> Result<ChunkSpan, Error> {
    let Some(text) = content_range else {
        return Ok(ChunkSpan { start: None, length: content_length });
    };
    let (first, last) = parse_content_range(text)?;
    // `0-18446744073709551615` spans 2^64 bytes, which no u64 holds and no blob reaches.
    let span = (last - first)
        .checked_add(1)
        .ok_or_else(|| Error::BlobUploadInvalid(format!("Content-Range {first}-{last} is longer than any blob")))?;
    if let Some(length) = content_length
        && length != span
    {
        return Err(Error::BlobUploadInvalid(format!("Content-Range {first}-{last} does not match Content-Length {length}")));
    }
    Ok(ChunkSpan { start: Some(first), length: Some(span) })
}

/// `Content-Range: <first>-<last>` (inclusive), as the spec writes it; a `bytes ` prefix is tolerated.
fn parse_content_range(text: &str) -> Result<(u64, u64), Error> {
    let invalid = || Error::BlobUploadInvalid(format!("bad Content-Range {text}"));
    let spec = text.trim().trim_start_matches("bytes").trim_start_matches([' ', '=']);
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    let number = |text: &str| digits(text).and_then(|digits| digits.parse::<u64>().ok()).ok_or_else(invalid);
    let (first, last) = (number(first)?, number(last.split('/').next().unwrap_or_default())?);
    if last < first {
        return Err(invalid());
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_against_the_size() {
        let range = |first, last| Some(ByteRange { first, last });
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), range(0, 9));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), range(90, 99));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), range(90, 99));
        assert_eq!(parse_range("bytes=95-200", 100).unwrap(), range(95, 99));
        for bad in ["bytes=100-", "bytes=5-1", "items=0-1", "bytes=a-b", "bytes=0-1,3-4"] {
            assert!(matches!(parse_range(bad, 100), Err(Error::RangeNotSatisfiable { size: 100 })), "{bad}");
        }
        assert!(parse_range("bytes=0-0", 0).is_err());
    }

    #[test]
    fn range_positions_are_digits_and_may_pass_u64() {
        // Found by the properties: `u64::from_str` took `+0`, and refused a last byte past u64 that is only past the end.
        let range = |first, last| Some(ByteRange { first, last });
        assert!(matches!(parse_range("bytes=+0-9", 100), Err(Error::RangeNotSatisfiable { size: 100 })));
        assert_eq!(parse_range("bytes=10-99999999999999999999", 100).unwrap(), range(10, 99));
        assert_eq!(parse_range("bytes=-99999999999999999999", 100).unwrap(), range(0, 99));
        assert!(matches!(chunk_span(Some("+0-9"), None), Err(Error::BlobUploadInvalid(_))));
    }

    #[test]
    fn content_ranges_are_inclusive_spans() {
        assert_eq!(parse_content_range("0-99").unwrap(), (0, 99));
        assert_eq!(parse_content_range("bytes 100-199/*").unwrap(), (100, 199));
        for bad in ["", "5", "9-3", "a-b", "-1"] {
            assert!(parse_content_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_content_range_longer_than_any_blob_is_invalid() {
        // The span of 0-u64::MAX has no u64 length; computing it once overflowed.
        for length in [None, Some(0), Some(u64::MAX)] {
            let span = chunk_span(Some("0-18446744073709551615"), length);
            assert!(matches!(span, Err(Error::BlobUploadInvalid(_))), "{length:?}: {span:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Blob sizes at the edges and anywhere: empty, small, up to `u64::MAX`.
    fn size() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0), 1..300u64, any::<u64>(), Just(u64::MAX)]
    }

    fn position() -> impl Strategy<Value = u64> {
        prop_oneof![0..300u64, any::<u64>(), Just(u64::MAX)]
    }

    /// Two positions, often in order and close.
    fn positions() -> impl Strategy<Value = (u64, u64)> {
        prop_oneof![(position(), position()), (position(), 0..300u64).prop_map(|(first, gap)| (first, first.saturating_add(gap)))]
    }

    /// A number with more digits than `u64` holds.
    fn too_large() -> impl Strategy<Value = String> {
        "[0-9]{1,4}".prop_map(|extra| format!("{}{extra}", u64::MAX))
    }

    fn is_416(error: &Error, size: u64) -> bool {
        matches!(error, Error::RangeNotSatisfiable { size: reported } if *reported == size) && error.wire().1.as_u16() == 416
    }

    fn is_upload_invalid(error: &Error) -> bool {
        matches!(error, Error::BlobUploadInvalid(_)) && error.wire() == ("BLOB_UPLOAD_INVALID", axum::http::StatusCode::BAD_REQUEST)
    }

    proptest! {
        #[test]
        fn a_range_is_within_the_blob_or_416(
            text in prop_oneof![
                any::<String>(),
                "(bytes=|bytes |Bytes=|items=|)[ ]?[+]?[0-9]{0,22}[ ]?-?[ ]?[+]?[0-9]{0,22}(,[0-9]{1,3}-[0-9]{0,3})?",
            ],
            size in size(),
        ) {
            match parse_range(&text, size) {
                Ok(Some(range)) => prop_assert!(range.first <= range.last && range.last < size, "{text:?} gave {range:?}"),
                Ok(None) => prop_assert!(false, "{text:?} gave no range"),
                Err(error) => prop_assert!(is_416(&error, size), "{text:?} gave {error:?}"),
            }
        }

        /// RFC 9110 §14.1.2: `a-b` and `a-` from `a` to `b` or the end, `-s` the last `s` bytes; what is past the end
        /// is clamped to it, and a range starting past the end (or an empty suffix) is unsatisfiable.
        #[test]
        fn ranges_resolve_as_rfc_9110_says((first, last) in positions(), size in size()) {
            let to_end = size.checked_sub(1);
            let resolve = |text: String| parse_range(&text, size).ok().flatten();
            let bounded = to_end.filter(|_| first <= last && first < size).map(|end| ByteRange { first, last: last.min(end) });
            prop_assert_eq!(resolve(format!("bytes={first}-{last}")), bounded);
            let open = to_end.filter(|_| first < size).map(|end| ByteRange { first, last: end });
            prop_assert_eq!(resolve(format!("bytes={first}-")), open);
            let suffix = to_end.filter(|_| last > 0).map(|end| ByteRange { first: size - last.min(size), last: end });
            prop_assert_eq!(resolve(format!("bytes=-{last}")), suffix);
        }

        /// A position past the end needs no u64 to be known as past the end: a last byte or a suffix too large for
        /// u64 reaches the end, a first byte that large is unsatisfiable.
        #[test]
        fn positions_too_large_for_u64_are_past_the_end(first in position(), huge in too_large(), size in size()) {
            let resolve = |text: String| parse_range(&text, size);
            let to_end = size.checked_sub(1);
            prop_assert_eq!(
                resolve(format!("bytes={first}-{huge}")).ok().flatten(),
                to_end.filter(|_| first < size).map(|end| ByteRange { first, last: end })
            );
            prop_assert_eq!(resolve(format!("bytes=-{huge}")).ok().flatten(), to_end.map(|end| ByteRange { first: 0, last: end }));
            let unsatisfiable = resolve(format!("bytes={huge}-")).unwrap_err();
            prop_assert!(is_416(&unsatisfiable, size), "{unsatisfiable:?}");
        }

        /// Positions are `1*DIGIT`: what `u64::from_str` takes besides digits (a `+`) is not a position.
        #[test]
        fn range_positions_are_digits_only((first, last) in positions(), size in size()) {
            for text in [format!("bytes=+{first}-{last}"), format!("bytes={first}-+{last}"), format!("bytes=-+{last}")] {
                prop_assert!(is_416(&parse_range(&text, size).unwrap_err(), size), "{text:?} accepted");
            }
        }

        #[test]
        fn a_chunk_span_is_consistent_or_invalid(
            text in prop_oneof![any::<String>(), "(bytes |bytes=|bytes|)[ ]?[+]?[0-9]{0,22}-?[+]?[0-9]{0,22}(/[0-9*]{0,3})?"],
            length in prop::option::of(prop_oneof![0..300u64, any::<u64>()]),
        ) {
            match chunk_span(Some(&text), length) {
                Ok(ChunkSpan { start: Some(start), length: Some(span) }) => {
                    prop_assert!(span >= 1 && start.checked_add(span - 1).is_some(), "{text:?} gave {start} + {span}");
                    prop_assert!(length.is_none_or(|length| length == span));
                }
                Ok(span) => prop_assert!(false, "{text:?} gave {span:?}"),
                Err(error) => prop_assert!(is_upload_invalid(&error), "{text:?} gave {error:?}"),
            }
        }

        /// `Content-Range: a-b` is the chunk of bytes `a` to `b` inclusive, in any of the forms clients send; a
        /// `Content-Length` must agree with it, and a span no `u64` counts is invalid, not an overflow.
        #[test]
        fn a_content_range_is_its_inclusive_span(
            (first, last) in positions(),
            form in 0..3u8,
            announced in 0..3u8,
            other_length in any::<u64>(),
        ) {
            let text = match form {
                0 => format!("{first}-{last}"),
                1 => format!("bytes {first}-{last}/*"),
                _ => format!("bytes={first}-{last}/{}", u128::from(last) + 1),
            };
            let span = (first <= last).then(|| u128::from(last - first) + 1).and_then(|span| u64::try_from(span).ok());
            let length = match announced {
                0 => None,
                1 => span,
                _ => Some(other_length),
            };
            let expected = span.filter(|span| length.is_none_or(|length| length == *span));
            match chunk_span(Some(&text), length) {
                Ok(got) => prop_assert_eq!(Some(got), expected.map(|span| ChunkSpan { start: Some(first), length: Some(span) })),
                Err(error) => prop_assert!(expected.is_none() && is_upload_invalid(&error), "{text:?} gave {error:?}"),
            }
        }

        #[test]
        fn content_range_positions_are_digits_only((first, last) in positions(), huge in too_large()) {
            for text in [format!("+{first}-{last}"), format!("{first}-+{last}"), format!("{first}-{huge}"), format!("{huge}-{huge}")] {
                prop_assert!(is_upload_invalid(&chunk_span(Some(&text), None).unwrap_err()), "{text:?} accepted");
            }
        }

        #[test]
        fn without_a_content_range_the_length_is_content_length(length in prop::option::of(any::<u64>())) {
            prop_assert_eq!(chunk_span(None, length).unwrap(), ChunkSpan { start: None, length });
        }
    }
}
