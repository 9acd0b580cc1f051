//! One layer blob as a tar stream, entry by entry: only files that can hold packages are read, each up to
//! [`MAX_FILE_BYTES`]; everything else passes by without being kept.

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::MultiGzDecoder;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use tar::EntryType;

use super::{FileContents, LayerInventory, PackageRecord, SkippedFile, apk, cargo, dpkg, go_binary, go_mod, npm, os_release, python, rpm};

/// The most a single package database or lockfile may hold; a larger one is skipped and listed in
/// [`LayerInventory::skipped`], so a hostile layer cannot make the scanner hold more than this per file.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// rpm's SQLite database is copied to a temporary file rather than held, so its limit is higher: a full RHEL
/// system's is around 100 MB.
pub const MAX_RPM_DATABASE_BYTES: u64 = 512 << 20;

/// How much of the compressed blob is buffered at a time.
const BLOB_BUFFER_BYTES: usize = 64 << 10;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Uncompressed,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{0:?} is not a layer media type")]
    UnsupportedMediaType(String),
    #[error("reading the layer: {0}")]
    Read(#[from] io::Error),
}

impl Compression {
    /// The compression a layer media type names: OCI's `…tar`, `…tar+gzip`, `…tar+zstd` (also the non-distributable
    /// ones) and Docker's `…rootfs.diff.tar` and `…rootfs.diff.tar.gzip`.
    pub fn from_media_type(media_type: &str) -> Result<Compression, LayerError> {
        if media_type.ends_with("tar+gzip") || media_type.ends_with("tar.gzip") {
            Ok(Compression::Gzip)
        } else if media_type.ends_with("tar+zstd") {
            Ok(Compression::Zstd)
        } else if media_type.ends_with(".tar") {
            Ok(Compression::Uncompressed)
        } else {
            Err(LayerError::UnsupportedMediaType(media_type.to_owned()))
        }
    }

    /// The compression the blob's first bytes show, if they show one.
    fn sniff(start: &[u8]) -> Option<Compression> {
        if start.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if start.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }
}

/// Streams one layer blob and returns what it says about packages. The media type must be a layer's; the blob's
/// magic bytes win over it, since tools have labelled zstd layers as gzip, and a blob with neither magic is read as
/// plain tar.
pub fn read_layer(media_type: &str, blob: impl Read) -> Result<LayerInventory, LayerError> {
    let declared = Compression::from_media_type(media_type)?;
    let mut blob = BufReader::with_capacity(BLOB_BUFFER_BYTES, blob);
    let compression = Compression::sniff(blob.fill_buf()?).unwrap_or(declared);
    match compression {
        // Multi-member: parallel compressors and eStargz write one gzip member per chunk.
        Compression::Gzip => read_tar(MultiGzDecoder::new(blob)),
        Compression::Zstd => read_tar(ZstdFrames::new(blob)),
        Compression::Uncompressed => read_tar(blob),
    }
}

fn read_tar(tar: impl Read) -> Result<LayerInventory, LayerError> {
    let mut inventory = LayerInventory::default();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(path) = normalize(&entry.path()?.to_string_lossy()) else { continue };
        let (directory, name) = path.rsplit_once('/').unwrap_or(("", &path));
        if name == OPAQUE_WHITEOUT {
            inventory.opaque_directories.push(directory.to_owned());
            continue;
        }
        if let Some(deleted) = name.strip_prefix(WHITEOUT_PREFIX) {
            // `.wh..wh.*` names other than the opaque marker are overlay bookkeeping, not deletions.
            if !deleted.starts_with(WHITEOUT_PREFIX) {
                inventory.whiteouts.push(join(directory, deleted));
            }
            continue;
        }
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => {
                let executable = entry.header().mode()? & 0o111 != 0;
                let Some(kind) = FileKind::of(&path, executable) else { continue };
                let size = entry.size();
                read_file(&mut inventory, path, kind, size, &mut entry)?;
            }
            // A hard link repeats the contents of a file earlier in this same layer.
            EntryType::Link => {
                let Some(target) = entry.link_name()?.and_then(|target| normalize(&target.to_string_lossy())) else { continue };
                if let Some(contents) = inventory.files.get(&target).cloned() {
                    inventory.files.insert(path, contents);
                }
            }
            _ => {}
        }
    }
    Ok(inventory)
}

/// A file that can hold packages, by what reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    OsRelease,
    DpkgStatus,
    /// A file of distroless' `var/lib/dpkg/status.d/`: one package's stanza, without a `Status` field.
    DpkgStatusD,
    ApkInstalled,
    RpmDatabase,
    PythonMetadata,
    NpmLockfile,
    NpmPackageJson,
    CargoLock,
    GoMod,
    /// An executable, which may be a Go binary.
    Executable,
}

impl FileKind {
    fn of(path: &str, executable: bool) -> Option<FileKind> {
        let (directory, name) = path.rsplit_once('/').unwrap_or(("", path));
        let kind = match (path, name) {
            ("etc/os-release" | "usr/lib/os-release", _) => FileKind::OsRelease,
            ("var/lib/dpkg/status", _) => FileKind::DpkgStatus,
            ("lib/apk/db/installed", _) => FileKind::ApkInstalled,
            // The second is where Fedora and openSUSE moved it.
            ("var/lib/rpm/rpmdb.sqlite" | "usr/lib/sysimage/rpm/rpmdb.sqlite", _) => FileKind::RpmDatabase,
            (_, "package-lock.json") => FileKind::NpmLockfile,
            (_, "package.json") if npm::is_package_directory(directory) => FileKind::NpmPackageJson,
            (_, "Cargo.lock") => FileKind::CargoLock,
            (_, "go.mod") => FileKind::GoMod,
            _ if directory == "var/lib/dpkg/status.d" && !name.ends_with(".md5sums") => FileKind::DpkgStatusD,
            _ if python::is_metadata(path) => FileKind::PythonMetadata,
            _ if executable => FileKind::Executable,
            _ => return None,
        };
        Some(kind)
    }
}

fn read_file(inventory: &mut LayerInventory, path: String, kind: FileKind, size: u64, file: &mut impl Read) -> io::Result<()> {
    let contents = match read_contents(kind, &path, size, file)? {
        Some(Ok(contents)) => contents,
        Some(Err(reason)) => {
            inventory.skipped.push(SkippedFile { path: path.clone(), reason });
            FileContents::Packages { packages: Vec::new() }
        }
        None => return Ok(()),
    };
    // Whatever an earlier entry of this layer wrote at the same path, this one replaces it.
    inventory.files.insert(path, contents);
    Ok(())
}

/// What the file says, or why it could not be read; `None` for an executable that is not an ELF file.
fn read_contents(kind: FileKind, path: &str, size: u64, file: &mut impl Read) -> io::Result<Option<Result<FileContents, String>>> {
    match kind {
        FileKind::Executable => {
            return Ok(match go_binary::scan(file)? {
                go_binary::Scan::NotElf => None,
                go_binary::Scan::Packages(packages) => Some(Ok(FileContents::Packages { packages })),
                go_binary::Scan::Unreadable(reason) => Some(Err(reason)),
            });
        }
        FileKind::RpmDatabase if size > MAX_RPM_DATABASE_BYTES => {
            return Ok(Some(Err(format!("{size} bytes, over the {MAX_RPM_DATABASE_BYTES}-byte limit"))));
        }
        // SQLite reads files only: the database goes to a private temporary directory (with the journal files
        // SQLite may add), which is removed when read.
        FileKind::RpmDatabase => {
            let copy = tempfile::tempdir()?;
            let database = copy.path().join("rpmdb.sqlite");
            io::copy(file, &mut std::fs::File::create(&database)?)?;
            let packages = rpm::parse_database(&database);
            return Ok(Some(packages.map(|packages| FileContents::Packages { packages })));
        }
        _ => {}
    }
    if size > MAX_FILE_BYTES {
        return Ok(Some(Err(format!("{size} bytes, over the {MAX_FILE_BYTES}-byte limit"))));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes)?;
    Ok(Some(parse(kind, path, &String::from_utf8_lossy(&bytes))))
}

fn parse(kind: FileKind, path: &str, text: &str) -> Result<FileContents, String> {
    let packages: Vec<PackageRecord> = match kind {
        FileKind::OsRelease => return Ok(FileContents::OsRelease { distro: os_release::parse(text) }),
        FileKind::DpkgStatus => dpkg::parse_status(text),
        FileKind::DpkgStatusD => dpkg::parse_status_d(text),
        FileKind::ApkInstalled => apk::parse_installed(text),
        FileKind::PythonMetadata => python::parse_metadata(text).into_iter().collect(),
        FileKind::NpmLockfile => npm::parse_lockfile(path, text)?,
        FileKind::NpmPackageJson => npm::parse_package_json(path, text)?.into_iter().collect(),
        FileKind::CargoLock => cargo::parse_lockfile(text),
        FileKind::GoMod => go_mod::parse(text),
        FileKind::Executable | FileKind::RpmDatabase => unreachable!("read by read_contents as they stream"),
    };
    Ok(FileContents::Packages { packages })
}

/// A tar path as the image's filesystem names it: relative to the root, without `./`, `/` or a trailing slash;
/// `None` for the root itself.
fn normalize(path: &str) -> Option<String> {
    let mut path = path.trim_end_matches('/');
    loop {
        let stripped = path.trim_start_matches('/');
        let stripped = stripped.strip_prefix("./").unwrap_or(stripped);
        if stripped == path {
            break;
        }
        path = stripped;
    }
    (!path.is_empty() && path != ".").then(|| path.to_owned())
}

fn join(directory: &str, name: &str) -> String {
    if directory.is_empty() { name.to_owned() } else { format!("{directory}/{name}") }
}

/// A zstd stream of any number of frames, skippable frames included (zstd:chunked layers write many), read as one.
struct ZstdFrames<R: BufRead> {
    blob: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(blob: R) -> ZstdFrames<R> {
        ZstdFrames { blob, decoder: FrameDecoder::new(), in_frame: false }
    }

    /// Starts decoding the next data frame, past any skippable frames; `false` at the end of the blob.
    fn start_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.blob.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.blob) {
                Ok(()) => {
                    self.in_frame = true;
                    return Ok(true);
                }
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame { length, .. })) => {
                    io::copy(&mut (&mut self.blob).take(u64::from(length)), &mut io::sink())?;
                }
                Err(error) => return Err(io::Error::other(error)),
            }
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.in_frame {
                // Decoding a block may yield nothing collectable yet, so decode until `buf` can be filled.
                while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                    let wanted = buf.len() - self.decoder.can_collect();
                    self.decoder.decode_blocks(&mut self.blob, BlockDecodingStrategy::UptoBytes(wanted)).map_err(io::Error::other)?;
                }
                let read = self.decoder.read(buf)?;
                if read > 0 || buf.is_empty() {
                    return Ok(read);
                }
                self.in_frame = false;
            }
            if !self.start_frame()? {
                return Ok(0);
            }
        }
    }
}
