//! Layer blobs built in the test, as image builders write them: tar entries, whiteouts, and each compression.

#![allow(dead_code)] // Each test binary uses its own part of these helpers.

use std::io::Write;

use scanner::inventory::{LayerInventory, read_layer};

pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The shared vulnerability data, beside the repository.
pub const VULNDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vulndata");

pub fn inventory_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{VULNDATA}/inventories/{name}")).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// A tar stream under construction.
pub struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer { builder: tar::Builder::new(Vec::new()) }
    }

    pub fn file(self, path: &str, contents: &[u8]) -> Layer {
        self.entry(path, tar::EntryType::Regular, 0o644, contents)
    }

    pub fn executable(self, path: &str, contents: &[u8]) -> Layer {
        self.entry(path, tar::EntryType::Regular, 0o755, contents)
    }

    pub fn directory(self, path: &str) -> Layer {
        self.entry(path, tar::EntryType::Directory, 0o755, b"")
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Layer {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        self.builder.append_link(&mut header, path, target).unwrap();
        self
    }

    pub fn hard_link(mut self, path: &str, target: &str) -> Layer {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Link);
        header.set_size(0);
        self.builder.append_link(&mut header, path, target).unwrap();
        self
    }

    /// Deletes `path` (and everything under it) from the layers below: an empty `.wh.NAME` beside it.
    pub fn whiteout(self, path: &str) -> Layer {
        let (directory, name) = path.rsplit_once('/').unwrap_or(("", path));
        let marker = if directory.is_empty() { format!(".wh.{name}") } else { format!("{directory}/.wh.{name}") };
        self.file(&marker, b"")
    }

    /// Hides everything the layers below have under `directory`.
    pub fn opaque(self, directory: &str) -> Layer {
        self.file(&format!("{directory}/.wh..wh..opq"), b"")
    }

    fn entry(mut self, path: &str, kind: tar::EntryType, mode: u32, contents: &[u8]) -> Layer {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        self.builder.append_data(&mut header, path, contents).unwrap();
        self
    }

    pub fn tar(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }

    pub fn gzip(self) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&self.tar()).unwrap();
        encoder.finish().unwrap()
    }

    pub fn zstd(self) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(self.tar().as_slice(), ruzstd::encoding::CompressionLevel::Fastest)
    }
}

pub fn read(media_type: &str, blob: &[u8]) -> LayerInventory {
    read_layer(media_type, blob).unwrap_or_else(|error| panic!("{media_type}: {error}"))
}

pub fn debian_os_release() -> &'static [u8] {
    b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"
}

/// Alpine 3.20 with the apk database of `shared/vulndata`.
pub fn alpine_layer() -> LayerInventory {
    read(
        GZIP,
        &Layer::new()
            .file("etc/os-release", b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n")
            .file("lib/apk/db/installed", &inventory_file("alpine-v3.20.apk-installed"))
            .gzip(),
    )
}

/// An ELF file whose data holds Go 1.18+ build info at `offset` (a multiple of 16), as `debug/buildinfo` reads it:
/// the 32-byte header (magic, pointer size 8, the inline-strings flag), then the Go version and the module info
/// (wrapped in 16-byte sentinels), each prefixed by its uvarint length.
pub fn go_binary(offset: usize, version: &str, modules: &str) -> Vec<u8> {
    let mut binary = b"\x7fELF".to_vec();
    binary.resize(offset, 0x90);
    binary.extend_from_slice(b"\xff Go buildinf:");
    binary.extend_from_slice(&[8, 2]);
    binary.resize(offset + 32, 0);
    // Go's own sentinels, which are not UTF-8.
    let sentinel = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    let modules = [&sentinel[..], modules.as_bytes(), &sentinel[..]].concat();
    for string in [version.as_bytes(), &modules] {
        let mut length = string.len();
        while length >= 0x80 {
            binary.push(length as u8 | 0x80);
            length >>= 7;
        }
        binary.push(length as u8);
        binary.extend_from_slice(string);
    }
    binary.resize(binary.len() + 4096, 0);
    binary
}

/// A module list as `go version -m` shows it: a main module built from a checkout, a dependency, one replaced by
/// another module, and one replaced by a local directory.
pub const GO_MODULES: &str = "path\texample.com/tool\nmod\texample.com/tool\t(devel)\t\n\
    dep\tgolang.org/x/net\tv0.17.0\th1:abc=\n\
    dep\tgithub.com/old/name\tv1.0.0\th1:def=\n=>\tgithub.com/new/name\tv1.2.0\th1:ghi=\n\
    dep\tgithub.com/local/fork\tv2.0.0\t\n=>\t../fork\t\t\n\
    build\t-compiler=gc\n";
