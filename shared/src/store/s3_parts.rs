//! How an S3 upload's parts are recorded in its session: compactly, because the session is one DynamoDB item (at most
//! 400 KB) and an upload of a 200 GiB layer has thousands of parts. Part numbers run 1, 2, 3, … so they are implied;
//! sizes are stored as runs of equal sizes; an ETag that is the usual quoted MD5 hex takes 22 characters (its 16 bytes
//! in unpadded base64) instead of 36, and any other ETag is kept as it is behind a `=`, which base64 never starts with.
//! 10,000 parts take about 250 KB.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One part of a multipart upload, as CompleteMultipartUpload needs it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub etag: String,
    pub size: u64,
}

/// The stored form: `sizes` as `[size, count]` runs in part order, `etags` one string per part.
#[derive(Serialize, Deserialize)]
struct Stored {
    sizes: Vec<(u64, u32)>,
    etags: Vec<String>,
}

/// For `#[serde(with = "…")]` on a `Vec<Part>`.
pub fn serialize<S: Serializer>(parts: &[Part], serializer: S) -> Result<S::Ok, S::Error> {
    let mut sizes: Vec<(u64, u32)> = Vec::new();
    for part in parts {
        match sizes.last_mut() {
            Some((size, count)) if *size == part.size => *count += 1,
            _ => sizes.push((part.size, 1)),
        }
    }
    Stored { sizes, etags: parts.iter().map(|part| compact_etag(&part.etag)).collect() }.serialize(serializer)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Part>, D::Error> {
    let stored = Stored::deserialize(deserializer)?;
    let sizes = stored.sizes.iter().flat_map(|&(size, count)| std::iter::repeat_n(size, count as usize));
    let parts: Vec<Part> = sizes
        .zip(&stored.etags)
        .zip(1..)
        .map(|((size, etag), number)| {
            Ok(Part { number, etag: full_etag(etag).ok_or_else(|| D::Error::custom(format!("bad part ETag {etag:?}")))?, size })
        })
        .collect::<Result<_, D::Error>>()?;
    let counted: u64 = stored.sizes.iter().map(|&(_, count)| u64::from(count)).sum();
    if counted != stored.etags.len() as u64 {
        return Err(D::Error::custom(format!("{counted} part sizes for {} ETags", stored.etags.len())));
    }
    Ok(parts)
}

fn compact_etag(etag: &str) -> String {
    let md5 =
        etag.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')).filter(|hex| hex.len() == 32).and_then(|hex| hex::decode(hex).ok());
    match md5 {
        // Only lowercase hex survives the round trip as it was.
        Some(bytes) if etag[1..33].bytes().all(|b| !b.is_ascii_uppercase()) => STANDARD_NO_PAD.encode(bytes),
        _ => format!("={etag}"),
    }
}

fn full_etag(stored: &str) -> Option<String> {
    if let Some(raw) = stored.strip_prefix('=') {
        return Some(raw.to_owned());
    }
    let bytes = STANDARD_NO_PAD.decode(stored).ok().filter(|bytes| bytes.len() == 16)?;
    Some(format!("\"{}\"", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "super")]
        parts: Vec<Part>,
    }

    fn parts(etags: &[&str], sizes: &[u64]) -> Vec<Part> {
        etags.iter().zip(sizes).zip(1..).map(|((etag, &size), number)| Part { number, etag: (*etag).to_owned(), size }).collect()
    }

    #[test]
    fn parts_round_trip_whatever_their_etags() {
        let holder = Holder {
            parts: parts(
                &[
                    "\"9b2cf535f27731c974343645a3985328\"",
                    "\"ABCDEF35f27731c974343645a3985328\"",
                    "\"d41d8cd98f00b204e9800998ecf8427e-2\"",
                    "plain",
                    "",
                ],
                &[8 << 20, 8 << 20, 16 << 20, 16 << 20, 5],
            ),
        };
        let json = serde_json::to_string(&holder).unwrap();
        assert!(json.contains(r#""sizes":[[8388608,2],[16777216,2],[5,1]]"#), "{json}");
        assert!(json.contains(r#""myz1NfJ3Mcl0NDZFo5hTKA""#), "an MD5 ETag is its 16 bytes in base64: {json}");
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), holder);
    }

    /// The session item must stay under DynamoDB's 400 KB with S3's 10,000 parts, their sizes as Berth grows them.
    #[test]
    fn ten_thousand_parts_fit_in_one_dynamodb_item() {
        let sizes: Vec<u64> = (1..=10_000u32).map(|number| (8u64 << 20) << ((number - 1) / 1000).min(9)).collect();
        let etags: Vec<String> =
            (0..10_000u128).map(|n| format!("\"{:032x}\"", n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834))).collect();
        let holder = Holder { parts: parts(&etags.iter().map(String::as_str).collect::<Vec<_>>(), &sizes) };
        let json = serde_json::to_string(&holder).unwrap();
        assert!(json.len() < 260_000, "{} bytes", json.len());
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), holder);
    }

    #[test]
    fn a_stored_state_that_does_not_add_up_is_refused() {
        let refused = serde_json::from_str::<Holder>(r#"{"parts":{"sizes":[[5,2]],"etags":["=a"]}}"#);
        assert!(refused.unwrap_err().to_string().contains("2 part sizes for 1 ETags"));
    }
}
