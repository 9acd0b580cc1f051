//! Builds real OCI image layouts with umoci from `/bin/busybox` (busybox-static) and random files: real content,
//! no network pull, and blobs no other test has ever pushed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::cmd::run;
use crate::digest::{random_bytes, random_token, sha256_digest};

/// An OCI image layout directory holding any number of tagged images, removed when dropped.
pub struct OciLayout {
    // Not a `TempDir`: its random names have capitals, and podman derives an image name from an `oci:` path, which
    // must be lowercase.
    root: PathBuf,
}

/// One image of a layout, with everything a test compares against what a registry or client gives back.
pub struct OciImage {
    /// The layout's directory, for `oci:<layout>:<tag>` references.
    pub layout: PathBuf,
    pub tag: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    /// Compressed layer digests, in manifest order.
    pub layers: Vec<String>,
    /// Uncompressed layer digests from the config's `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
    /// Per layer, a file name (relative to the root) and its random contents.
    pub unique_files: Vec<(String, Vec<u8>)>,
    pub architecture: String,
}

impl OciLayout {
    pub fn new() -> OciLayout {
        let root = std::env::temp_dir().join(format!("berth-oci-{}", random_token()));
        fs::create_dir(&root).expect("create layout dir");
        let layout = OciLayout { root };
        run(Command::new("umoci").arg("init").arg("--layout").arg(layout.path()));
        layout
    }

    pub fn path(&self) -> PathBuf {
        self.root.join("layout")
    }

    /// Adds a two-layer linux image for `architecture`: layer 1 holds busybox (when `busybox`) and a random file,
    /// layer 2 another random file. Images without busybox stay a few hundred bytes, for platforms that only need
    /// to exist (an arm64 entry of an index).
    pub fn add_image(&self, tag: &str, architecture: &str, busybox: bool) -> OciImage {
        self.build_image(tag, architecture, busybox, 256)
    }

    /// Adds an amd64 image with busybox whose second layer is a random (incompressible) file of `bytes`: a
    /// real-sized layer.
    pub fn add_big_image(&self, tag: &str, bytes: usize) -> OciImage {
        self.build_image(tag, "amd64", true, bytes)
    }

    /// Adds a one-layer image holding exactly `files` (paths relative to the root, such as a package database) and
    /// returns its `oci:` reference.
    pub fn add_image_of_files(&self, tag: &str, files: &[(&str, &[u8])]) -> String {
        let image = format!("{}:{tag}", self.path().display());
        run(Command::new("umoci").args(["new", "--image"]).arg(&image));
        let bundle = self.root.join(format!("bundle-{tag}"));
        run(Command::new("umoci").args(["unpack", "--rootless", "--image"]).arg(&image).arg(&bundle));
        for (path, contents) in files {
            let file = bundle.join("rootfs").join(path);
            fs::create_dir_all(file.parent().expect("a file has a directory")).expect("create directories");
            fs::write(file, contents).expect("write file");
        }
        run(Command::new("umoci").args(["repack", "--image"]).arg(&image).arg(&bundle));
        fs::remove_dir_all(&bundle).expect("remove bundle");
        format!("oci:{image}")
    }

    fn build_image(&self, tag: &str, architecture: &str, busybox: bool, last_file_bytes: usize) -> OciImage {
        let image = format!("{}:{tag}", self.path().display());
        run(Command::new("umoci").args(["new", "--image"]).arg(&image));
        let mut unique_files = Vec::new();
        for layer in 0..2 {
            // A fresh bundle per layer: umoci diffs against the bundle's unpack-time tree, so each repack adds
            // exactly the files written since that unpack.
            let bundle = self.root.join(format!("bundle-{tag}-{layer}"));
            run(Command::new("umoci").args(["unpack", "--rootless", "--image"]).arg(&image).arg(&bundle));
            let rootfs = bundle.join("rootfs");
            if layer == 0 && busybox {
                install_busybox(&rootfs);
            }
            let name = format!("berth-test-{}", random_token());
            let contents = random_bytes(if layer == 1 { last_file_bytes } else { 256 });
            fs::write(rootfs.join(&name), &contents).expect("write unique file");
            unique_files.push((name, contents));
            run(Command::new("umoci").args(["repack", "--image"]).arg(&image).arg(&bundle));
            fs::remove_dir_all(&bundle).expect("remove bundle");
        }
        let mut config = Command::new("umoci");
        config.args(["config", "--image"]).arg(&image).args(["--os", "linux", "--architecture", architecture]);
        if busybox {
            config.args(["--config.cmd", "/bin/sh"]);
        }
        run(&mut config);

        let mut read = self.image(tag);
        read.unique_files = unique_files;
        read
    }

    /// Reads the image tagged `tag` from the layout's `index.json`.
    pub fn image(&self, tag: &str) -> OciImage {
        read_image(&self.path(), tag)
    }
}

impl Default for OciLayout {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OciLayout {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

impl OciImage {
    /// `oci:<layout>:<tag>`, the containers/image reference of this image.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }

    /// A blob of this image's layout, checked against its digest.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        read_blob(&self.layout, digest)
    }

    /// Every blob of the image (config, then layers) in manifest order.
    pub fn blob_digests(&self) -> Vec<String> {
        std::iter::once(self.config_digest.clone()).chain(self.layers.iter().cloned()).collect()
    }
}

/// Reads image `tag` from any OCI layout, e.g. one a client wrote when copying out of the registry.
pub fn read_image(layout: &Path, tag: &str) -> OciImage {
    let index: Value = parse(&fs::read(layout.join("index.json")).expect("read index.json"));
    let descriptor = index["manifests"]
        .as_array()
        .and_then(|m| m.iter().find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag))
        .unwrap_or_else(|| panic!("{} has no image tagged {tag}: {index}", layout.display()));
    let manifest_digest = descriptor["digest"].as_str().expect("descriptor digest").to_owned();
    let manifest = read_blob(layout, &manifest_digest);
    let parsed = parse(&manifest);
    let config_digest = parsed["config"]["digest"].as_str().expect("config digest").to_owned();
    let config = read_blob(layout, &config_digest);
    let parsed_config = parse(&config);
    OciImage {
        layout: layout.to_owned(),
        tag: tag.to_owned(),
        layers: digests(&parsed["layers"], "digest"),
        diff_ids: strings(&parsed_config["rootfs"]["diff_ids"]),
        architecture: parsed_config["architecture"].as_str().unwrap_or_default().to_owned(),
        manifest,
        manifest_digest,
        config,
        config_digest,
        unique_files: Vec::new(),
    }
}

/// A tar of a real Debian 12 root filesystem (`debootstrap --variant=minbase bookworm`, about 200 MB from the
/// reachable Debian mirror): what a real base image holds, without pulling one. Built once per machine and kept in the
/// temp directory; tests racing to build it each build their own and the first to finish wins.
pub fn debian_rootfs_tar() -> PathBuf {
    let cache = std::env::temp_dir().join("berth-fixtures");
    let tar = cache.join("debian-bookworm-minbase.tar");
    if tar.exists() {
        return tar;
    }
    fs::create_dir_all(&cache).expect("create the fixture cache");
    let work = tempfile::Builder::new().prefix("debootstrap-").tempdir_in(&cache).expect("debootstrap work dir");
    let rootfs = work.path().join("rootfs");
    run(Command::new("debootstrap").args(["--variant=minbase", "bookworm"]).arg(&rootfs));
    let built = work.path().join("rootfs.tar");
    run(Command::new("tar").args(["--numeric-owner", "--xattrs", "-C"]).arg(&rootfs).arg("-cf").arg(&built).arg("."));
    fs::rename(&built, &tar).expect("publish the rootfs tar");
    tar
}

/// A tar holding one file of `bytes` random (incompressible) bytes, written in `dir`: a one-layer image for
/// `docker import` of any size, made without holding it in memory.
pub fn random_file_tar(dir: &Path, bytes: u64) -> PathBuf {
    let content = dir.join("content");
    fs::create_dir(&content).expect("create the content dir");
    let file = fs::File::create(content.join(format!("berth-test-{}", random_token()))).expect("create the random file");
    let copied = std::io::copy(
        &mut std::io::Read::take(fs::File::open("/dev/urandom").expect("open /dev/urandom"), bytes),
        &mut std::io::BufWriter::new(file),
    );
    assert_eq!(copied.expect("write the random file"), bytes);
    let tar = dir.join("random.tar");
    run(Command::new("tar").arg("-C").arg(&content).arg("-cf").arg(&tar).arg("."));
    fs::remove_dir_all(&content).expect("remove the content dir");
    tar
}

fn install_busybox(rootfs: &Path) {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).expect("create bin");
    fs::copy("/bin/busybox", bin.join("busybox")).expect("copy /bin/busybox (package busybox-static)");
    std::os::unix::fs::symlink("busybox", bin.join("sh")).expect("link sh");
}

fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
    let bytes =
        fs::read(layout.join("blobs/sha256").join(hex)).unwrap_or_else(|e| panic!("read blob {digest} of {}: {e}", layout.display()));
    assert_eq!(sha256_digest(&bytes), digest, "blob {digest} of {} is corrupt", layout.display());
    bytes
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("layout JSON")
}

fn digests(descriptors: &Value, field: &str) -> Vec<String> {
    descriptors.as_array().map(|d| d.iter().filter_map(|d| d[field].as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn strings(values: &Value) -> Vec<String> {
    values.as_array().map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}
