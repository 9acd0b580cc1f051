//! Go binaries: the build info the Go linker embeds (what `go version -m` prints), found by streaming the file.
//!
//! Layout (Go's `debug/buildinfo`): a 32-byte header at a 16-byte-aligned offset, starting with the magic
//! `\xff Go buildinf:`, then the pointer size and a flags byte. Since Go 1.18 (flag bit 2) the Go version and the
//! module info follow the header inline, each a uvarint length and the bytes. The module info is lines of
//! tab-separated fields, `mod` for the main module, `dep` for each dependency, `=>` for the module that replaces the
//! one on the line before, wrapped in 16-byte sentinels.

use std::io::{self, Read};

use super::PackageRecord;
use super::go_mod::module_version;

const ELF_MAGIC: &[u8] = b"\x7fELF";
const BUILD_INFO_MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_BYTES: usize = 32;
const HEADER_ALIGNMENT: usize = 16;
/// Flag bit of Go 1.18 and later: the version and module info are inline after the header.
const FLAG_INLINE_STRINGS: u8 = 2;
const SENTINEL_BYTES: usize = 16;
/// The most build info read past the header; real module lists are tens of kilobytes.
const MAX_BUILD_INFO_BYTES: usize = 1 << 20;
const CHUNK_BYTES: usize = 64 << 10;

pub(super) enum Scan {
    NotElf,
    /// The modules compiled in, with `stdlib` at the toolchain's version; none for an ELF file that is not a Go
    /// binary.
    Packages(Vec<PackageRecord>),
    Unreadable(String),
}

/// Reads `file` to its end in chunks, holding one chunk (and the build info, once found) at a time.
pub(super) fn scan(file: &mut impl Read) -> io::Result<Scan> {
    let mut window = Vec::with_capacity(CHUNK_BYTES);
    fill(file, &mut window, ELF_MAGIC.len())?;
    if !window.starts_with(ELF_MAGIC) {
        return Ok(Scan::NotElf);
    }
    let mut saw_old_format = false;
    loop {
        let at_end = !fill(file, &mut window, CHUNK_BYTES)?;
        let mut start = 0;
        while start + BUILD_INFO_MAGIC.len() <= window.len() {
            if window[start..].starts_with(BUILD_INFO_MAGIC) {
                match read_build_info(file, &mut window, start)? {
                    Candidate::BuildInfo(packages) => return Ok(Scan::Packages(packages)),
                    Candidate::OldFormat => saw_old_format = true,
                    Candidate::NotBuildInfo => {}
                }
            }
            start += HEADER_ALIGNMENT;
        }
        if at_end {
            break;
        }
        // Keep the aligned tail where a magic may have begun but not ended; the window stays aligned to the file.
        window.drain(..start.min(window.len()) / HEADER_ALIGNMENT * HEADER_ALIGNMENT);
    }
    Ok(if saw_old_format {
        Scan::Unreadable("Go build info of a toolchain before Go 1.18 (version strings out of line) is not read".to_owned())
    } else {
        Scan::Packages(Vec::new())
    })
}

enum Candidate {
    BuildInfo(Vec<PackageRecord>),
    OldFormat,
    /// The magic bytes, but not a header: a Go program that reads build info has the magic among its constants.
    NotBuildInfo,
}

fn read_build_info(file: &mut impl Read, window: &mut Vec<u8>, start: usize) -> io::Result<Candidate> {
    let limit = start + HEADER_BYTES + MAX_BUILD_INFO_BYTES;
    let mut wanted = start + HEADER_BYTES;
    loop {
        if !fill(file, window, wanted)? && window.len() < wanted {
            return Ok(Candidate::NotBuildInfo);
        }
        let header = &window[start..];
        let (pointer_size, flags) = (header[14], header[15]);
        if !matches!(pointer_size, 4 | 8) || flags & !3 != 0 {
            return Ok(Candidate::NotBuildInfo);
        }
        if flags & FLAG_INLINE_STRINGS == 0 {
            return Ok(Candidate::OldFormat);
        }
        match inline_strings(&header[HEADER_BYTES..]) {
            Inline::Complete(version, modules) => return Ok(build_info(version, modules)),
            Inline::NeedsBytes(more) if start + HEADER_BYTES + more <= limit => wanted = start + HEADER_BYTES + more,
            Inline::NeedsBytes(_) | Inline::Invalid => return Ok(Candidate::NotBuildInfo),
        }
    }
}

enum Inline<'a> {
    Complete(&'a [u8], &'a [u8]),
    /// The bytes after the header it takes to read both strings.
    NeedsBytes(usize),
    Invalid,
}

fn inline_strings(data: &[u8]) -> Inline<'_> {
    let mut position = 0;
    let mut strings = [&[][..]; 2];
    for string in &mut strings {
        let Some((length, varint_bytes)) = uvarint(&data[position..]) else {
            // A uvarint of a 64-bit length has at most 10 bytes.
            return if data.len() - position >= 10 { Inline::Invalid } else { Inline::NeedsBytes(position + 10) };
        };
        let Ok(length) = usize::try_from(length) else { return Inline::Invalid };
        let end = position + varint_bytes + length;
        if end > data.len() {
            return Inline::NeedsBytes(end);
        }
        *string = &data[position + varint_bytes..end];
        position = end;
    }
    Inline::Complete(strings[0], strings[1])
}

/// An unsigned LEB128 number and its length in bytes; `None` when `data` ends first.
fn uvarint(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (index, &byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

fn build_info(version: &[u8], modules: &[u8]) -> Candidate {
    // The sentinels are not text, so they go before the module info is read as UTF-8.
    let (Ok(version), Ok(modules)) = (std::str::from_utf8(version), std::str::from_utf8(strip_sentinels(modules))) else {
        return Candidate::NotBuildInfo;
    };
    // `go1.23.4`, maybe followed by experiment tags (`go1.23.4 X:boringcrypto`); a `devel` toolchain has no release.
    let Some(release) = version.split_whitespace().next().and_then(|release| release.strip_prefix("go")) else {
        return Candidate::NotBuildInfo;
    };
    let mut packages = vec![module_version("stdlib", release)];
    packages.extend(compiled_modules(modules));
    Candidate::BuildInfo(packages)
}

fn strip_sentinels(modules: &[u8]) -> &[u8] {
    let length = modules.len();
    if length > 2 * SENTINEL_BYTES && modules[length - SENTINEL_BYTES - 1] == b'\n' {
        &modules[SENTINEL_BYTES..length - SENTINEL_BYTES]
    } else {
        modules
    }
}

/// The modules whose code is in the binary: each `mod` and `dep`, or the `=>` module that replaced it; a module
/// replaced by a local directory (no version) and a main module built from a checkout (`(devel)`) have no version to
/// match and are left out.
fn compiled_modules(modules: &str) -> Vec<PackageRecord> {
    let mut compiled: Vec<Option<(&str, &str)>> = Vec::new();
    for line in modules.lines() {
        let mut fields = line.split('\t');
        let (kind, path, version) = (fields.next(), fields.next().unwrap_or_default(), fields.next().unwrap_or_default());
        match kind {
            Some("mod" | "dep") => compiled.push(Some((path, version))),
            Some("=>") => {
                if let Some(replaced) = compiled.last_mut() {
                    *replaced = Some((path, version));
                }
            }
            _ => {}
        }
    }
    compiled
        .into_iter()
        .flatten()
        .filter(|(_, version)| !version.is_empty() && *version != "(devel)")
        .map(|(path, version)| module_version(path, version))
        .collect()
}

/// Reads until `window` holds `length` bytes; `false` when the file ended first.
fn fill(file: &mut impl Read, window: &mut Vec<u8>, length: usize) -> io::Result<bool> {
    while window.len() < length {
        let before = window.len();
        window.resize(length, 0);
        let read = loop {
            match file.read(&mut window[before..]) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                result => break result,
            }
        };
        window.truncate(before + read.as_ref().copied().unwrap_or(0));
        if read? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}
