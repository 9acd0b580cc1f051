//! Layers built in the test, read by `read_layer` and stacked by `ImageInventory::compose`: each compression, each
//! kind of whiteout, replacements, and a layer inventory that goes through JSON and back.

mod layers;

use layers::{DOCKER_GZIP, GO_MODULES, GZIP, Layer, TAR, ZSTD, alpine_layer, debian_os_release, go_binary, inventory_file, read};
use scanner::inventory::{Distro, FileContents, ImageInventory, LayerError, LayerInventory, Package, read_layer};

/// (path, ecosystem, name, version) of each package.
fn summary(image: &ImageInventory) -> Vec<(&str, &str, &str, &str)> {
    image
        .packages
        .iter()
        .map(|package| (package.path.as_str(), package.ecosystem.as_str(), package.name.as_str(), package.version.as_str()))
        .collect()
}

fn names(image: &ImageInventory) -> Vec<&str> {
    image.packages.iter().map(|package| package.name.as_str()).collect()
}

fn debian_base() -> Layer {
    Layer::new()
        .directory("./etc/")
        .symlink("./etc/os-release", "../usr/lib/os-release")
        .file("./usr/lib/os-release", debian_os_release())
        .file("./var/lib/dpkg/status", &inventory_file("debian12-minbase.status"))
        .executable("./usr/bin/env", b"\x7fELF not go")
}

#[test]
fn every_compression_gives_the_same_inventory() {
    let plain = read(TAR, &debian_base().tar());
    assert_eq!(read(GZIP, &debian_base().gzip()), plain);
    assert_eq!(read(DOCKER_GZIP, &debian_base().gzip()), plain);
    assert_eq!(read(ZSTD, &debian_base().zstd()), plain);
    // The magic bytes win over a media type that names another compression.
    assert_eq!(read(GZIP, &debian_base().zstd()), plain);
    let image = ImageInventory::compose(&[plain]);
    assert_eq!(image.packages.len(), 88);
    assert_eq!(
        image.distro,
        Some(Distro { id: "debian".into(), version_id: Some("12".into()), pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()) })
    );
    let pcre = image.packages.iter().find(|package| package.name == "libpcre2-8-0").unwrap();
    let ecosystem = pcre.ecosystem().unwrap();
    let installed = pcre.installed(&ecosystem);
    assert_eq!(
        (pcre.path.as_str(), installed.ecosystem.as_str(), installed.name, installed.version),
        ("var/lib/dpkg/status", "Debian:12", "pcre2", "10.42-1")
    );
}

#[test]
fn a_zstd_layer_of_several_frames_and_a_skippable_frame_is_one_stream() {
    let tar = debian_base().tar();
    let (first, second) = tar.split_at(tar.len() / 3);
    let mut blob = ruzstd::encoding::compress_to_vec(first, ruzstd::encoding::CompressionLevel::Fastest);
    // A skippable frame (magic 0x184D2A50, then a little-endian length), as zstd:chunked writes for its table of contents.
    blob.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0, 1, 2, 3, 4, 5]);
    blob.extend(ruzstd::encoding::compress_to_vec(second, ruzstd::encoding::CompressionLevel::Uncompressed));
    assert_eq!(read(ZSTD, &blob), read(TAR, &tar));
}

#[test]
fn media_types_that_are_not_layers_are_refused() {
    let error = read_layer("application/vnd.oci.image.config.v1+json", &b"{}"[..]).unwrap_err();
    assert!(matches!(error, LayerError::UnsupportedMediaType(_)), "{error}");
    assert!(read_layer(GZIP, &b"\x1f\x8bnot gzip at all"[..]).is_err());
}

#[test]
fn only_files_that_can_hold_packages_are_kept() {
    let layer =
        read(TAR, &debian_base().file("./usr/share/doc/README", b"text").executable("./usr/local/bin/script", b"#!/bin/sh\n").tar());
    let paths: Vec<&str> = layer.files.keys().map(String::as_str).collect();
    // The ELF executable is kept, with no packages: it replaces whatever a lower layer had at its path.
    assert_eq!(paths, ["usr/bin/env", "usr/lib/os-release", "var/lib/dpkg/status"]);
    assert_eq!(layer.files["usr/bin/env"], FileContents::Packages { packages: vec![] });
    assert!(layer.whiteouts.is_empty() && layer.opaque_directories.is_empty() && layer.skipped.is_empty());
}

#[test]
fn a_whiteout_deletes_a_file_of_the_layers_below() {
    let lower = read(
        GZIP,
        &Layer::new()
            .file("app/package-lock.json", &inventory_file("package-lock.json"))
            .file("app/Cargo.lock", &inventory_file("Cargo.lock"))
            .gzip(),
    );
    assert_eq!(ImageInventory::compose(std::slice::from_ref(&lower)).packages.len(), 16 + 15);
    let upper = read(GZIP, &Layer::new().whiteout("app/package-lock.json").gzip());
    assert_eq!(upper.whiteouts, ["app/package-lock.json"]);
    let image = ImageInventory::compose(&[lower, upper]);
    assert_eq!(image.packages.len(), 15);
    assert!(image.packages.iter().all(|package| package.ecosystem == "crates.io" && package.path == "app/Cargo.lock"));
}

#[test]
fn a_whiteout_of_a_directory_deletes_everything_under_it_and_nothing_beside_it() {
    let metadata = |name: &str| format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n").into_bytes();
    let lower = read(
        ZSTD,
        &Layer::new()
            .file("usr/lib/python3/dist-packages/a-1.0.dist-info/METADATA", &metadata("a"))
            .file("usr/lib/python3/dist-packages/sub/b-1.0.dist-info/METADATA", &metadata("b"))
            .file("usr/lib/python3/dist-packages-extra/c-1.0.dist-info/METADATA", &metadata("c"))
            .zstd(),
    );
    let upper = read(ZSTD, &Layer::new().whiteout("usr/lib/python3/dist-packages").zstd());
    // Ordered by path: `dist-packages-extra/` sorts before `dist-packages/`.
    assert_eq!(names(&ImageInventory::compose(std::slice::from_ref(&lower))), ["c", "a", "b"]);
    assert_eq!(names(&ImageInventory::compose(&[lower, upper])), ["c"]);
}

#[test]
fn an_opaque_directory_hides_the_layers_below_but_keeps_its_own_files() {
    let lower = read(
        TAR,
        &Layer::new()
            .file("opt/app/go.mod", &inventory_file("go.mod"))
            .file("opt/app/vendor/Cargo.lock", &inventory_file("Cargo.lock"))
            .file("opt/other/go.mod", b"module other\nrequire example.com/kept v1.0.0\n")
            .tar(),
    );
    let upper = read(
        TAR,
        &Layer::new().directory("opt/app").opaque("opt/app").file("opt/app/go.mod", b"module app\nrequire example.com/new v2.0.0\n").tar(),
    );
    assert_eq!(upper.opaque_directories, ["opt/app"]);
    let image = ImageInventory::compose(&[lower, upper]);
    assert_eq!(
        summary(&image),
        [("opt/app/go.mod", "Go", "example.com/new", "2.0.0"), ("opt/other/go.mod", "Go", "example.com/kept", "1.0.0")]
    );
}

#[test]
fn a_later_dpkg_status_replaces_the_earlier_one() {
    let upgraded = "Package: libpcre2-8-0\nStatus: install ok installed\nSource: pcre2\nVersion: 10.42-1+deb12u1\n\n\
                    Package: removed\nStatus: deinstall ok config-files\nVersion: 1\n";
    let upper = read(GZIP, &Layer::new().file("var/lib/dpkg/status", upgraded.as_bytes()).gzip());
    let image = ImageInventory::compose(&[read(GZIP, &debian_base().gzip()), upper]);
    assert_eq!(summary(&image), [("var/lib/dpkg/status", "Debian:12", "libpcre2-8-0", "10.42-1+deb12u1")]);
    assert_eq!(image.distro.unwrap().id, "debian", "the lower layer's os-release still holds");
}

#[test]
fn a_package_database_deleted_by_a_whiteout_takes_its_packages_along() {
    let upper = read(TAR, &Layer::new().whiteout("var/lib/dpkg/status").whiteout("usr/lib/os-release").tar());
    let image = ImageInventory::compose(&[read(TAR, &debian_base().tar()), upper]);
    assert_eq!(image, ImageInventory { distro: None, packages: vec![] });
}

#[test]
fn distroless_status_d_and_alpine_databases() {
    let distroless = read(
        TAR,
        &Layer::new()
            .file("etc/os-release", debian_os_release())
            .file("var/lib/dpkg/status.d/libssl3", b"Package: libssl3\nVersion: 3.0.15-1~deb12u1\nSource: openssl\n")
            .file("var/lib/dpkg/status.d/libssl3.md5sums", b"0123  usr/lib/libssl.so.3\n")
            .tar(),
    );
    let image = ImageInventory::compose(&[distroless]);
    assert_eq!(summary(&image), [("var/lib/dpkg/status.d/libssl3", "Debian:12", "libssl3", "3.0.15-1~deb12u1")]);
    assert_eq!(image.packages[0].source.as_ref().unwrap().name, "openssl");

    let alpine = alpine_layer();
    let image = ImageInventory::compose(&[alpine]);
    assert_eq!(image.packages.len(), 6);
    let libcrypto = image.packages.iter().find(|package| package.name == "libcrypto3").unwrap();
    let ecosystem = libcrypto.ecosystem().unwrap();
    let installed = libcrypto.installed(&ecosystem);
    assert_eq!((installed.ecosystem.as_str(), installed.name, installed.version), ("Alpine:v3.20", "openssl", "3.3.2-r0"));
}

#[test]
fn an_npm_package_in_the_lockfile_and_in_node_modules_is_one_package() {
    let layer = read(
        TAR,
        &Layer::new()
            .file("srv/package-lock.json", &inventory_file("package-lock.json"))
            .file("srv/node_modules/express/package.json", br#"{"name": "express", "version": "4.18.2"}"#)
            .file("srv/node_modules/express/node_modules/qs/package.json", br#"{"name": "qs", "version": "6.5.0"}"#)
            .file("srv/node_modules/express/lib/package.json", br#"{"name": "not-a-package", "version": "0.0.0"}"#)
            .tar(),
    );
    let image = ImageInventory::compose(&[layer]);
    assert_eq!(image.packages.len(), 17);
    let express: Vec<&Package> = image.packages.iter().filter(|package| package.name == "express").collect();
    assert_eq!(express.len(), 1);
    assert_eq!(express[0].path, "srv/node_modules/express");
    assert!(summary(&image).contains(&("srv/node_modules/express/node_modules/qs", "npm", "qs", "6.5.0")));
}

#[test]
fn go_binaries_list_their_modules_and_toolchain() {
    let binary = go_binary(4096, "go1.23.5", GO_MODULES);
    // Past a chunk of the streamed scan, with experiment tags after the version.
    let far = go_binary(3 * 65536 - 16, "go1.22.1 X:boringcrypto", GO_MODULES);
    // A program that reads build info carries the magic among its constants, not followed by a header.
    let mut decoy = go_binary(8192, "go1.21.0", GO_MODULES);
    decoy[1024..1024 + 15].copy_from_slice(b"\xff Go buildinf:x");
    let layer = read(
        GZIP,
        &Layer::new()
            .executable("usr/local/bin/tool", &binary)
            .hard_link("usr/local/bin/tool-link", "usr/local/bin/tool")
            .executable("usr/local/bin/far", &far)
            .executable("usr/local/bin/decoy", &decoy)
            .file("usr/local/share/not-executable", &binary)
            .gzip(),
    );
    let image = ImageInventory::compose(&[layer]);
    let modules = |path: &str| -> Vec<(&str, &str)> {
        image
            .packages
            .iter()
            .filter(|package| package.path == path)
            .map(|package| (package.name.as_str(), package.version.as_str()))
            .collect()
    };
    // Sorted by name within a path; the replaced module and the local replacement are gone, and so is `(devel)`.
    let listed = |release| vec![("github.com/new/name", "1.2.0"), ("golang.org/x/net", "0.17.0"), ("stdlib", release)];
    assert_eq!(modules("usr/local/bin/tool"), listed("1.23.5"));
    assert_eq!(modules("usr/local/bin/tool-link"), listed("1.23.5"));
    assert_eq!(modules("usr/local/bin/far"), listed("1.22.1"));
    assert_eq!(modules("usr/local/bin/decoy"), listed("1.21.0"));
    assert_eq!(image.packages.len(), 12);
    assert!(image.packages.iter().all(|package| package.ecosystem == "Go"));
}

#[test]
fn go_binaries_of_toolchains_before_1_18_are_noted_as_unread() {
    let mut old = go_binary(4096, "go1.17", GO_MODULES);
    old[4096 + 15] = 0;
    let layer = read(TAR, &Layer::new().executable("bin/old", &old).tar());
    assert_eq!(layer.skipped.len(), 1);
    assert_eq!(layer.skipped[0].path, "bin/old");
    assert_eq!(layer.files["bin/old"], FileContents::Packages { packages: vec![] });
}

#[test]
fn a_layer_inventory_survives_json() {
    let layers = [
        read(TAR, &debian_base().tar()),
        read(
            GZIP,
            &Layer::new()
                .file("var/lib/dpkg/status", &inventory_file("debian12-selected.status"))
                .file("app/package-lock.json", &inventory_file("package-lock.json"))
                .executable("app/bin/server", &go_binary(4096, "go1.23.5", GO_MODULES))
                .whiteout("usr/bin/env")
                .opaque("opt")
                .gzip(),
        ),
    ];
    let stored: Vec<LayerInventory> =
        layers.iter().map(|layer| serde_json::from_str(&serde_json::to_string(layer).unwrap()).unwrap()).collect();
    assert_eq!(stored, layers);
    let image = ImageInventory::compose(&stored);
    assert_eq!(image, ImageInventory::compose(&layers));
    assert_eq!(image.packages.len(), 12 + 16 + 3);
}
