//! The byte ranges clients send: `Range` on blob downloads and `Content-Range` on upload chunks, parsed as pure
//! functions of the header text so every number a client sends is checked before anything uses it.

use crate::{error::Error, store::ByteRange};

/// A single `bytes=` range (`a-b`, `a-`, `-suffix`) resolved against the blob's size.
pub(super) fn parse_range(range: &str, size: u64) -> Result<Option<ByteRange>, Error> {
    let unsatisfiable = || Error::RangeNotSatisfiable { size };
    let spec = range.strip_prefix("bytes=").ok_or_else(unsatisfiable)?;
    let (first, last) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let number = |text: &str| text.trim().parse::<u64>().map_err(|_| unsatisfiable());
    let (first, last) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let suffix = number(suffix)?.min(size);
            (size - suffix, size.checked_sub(1).ok_or_else(unsatisfiable)?)
        }
        (first, "") => (number(first)?, size.checked_sub(1).ok_or_else(unsatisfiable)?),
        (first, last) => (number(first)?, number(last)?.min(size.saturating_sub(1))),
    };
    if first > last || first >= size {
        return Err(unsatisfiable());
    }
    Ok(Some(ByteRange { first, last }))
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
    let (first, last): (u64, u64) =
        (first.parse().map_err(|_| invalid())?, last.split('/').next().unwrap_or_default().parse().map_err(|_| invalid())?);
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
