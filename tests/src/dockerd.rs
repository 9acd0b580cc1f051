//! A private docker engine for one test: dockerd (with the containerd it manages, reachable with `ctr`) on vfs, without networking, on
//! its own socket, stopped when the guard is dropped, also when the test panics.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::service::terminate;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// dockerd stops its containerd and unmounts on SIGTERM; that takes a few seconds on vfs.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Dockerd {
    child: Child,
    socket: PathBuf,
    data_root: TempDir,
    exec_root: TempDir,
}

impl Dockerd {
    /// Starts dockerd and waits until `docker version` reaches it. Needs root.
    pub fn start() -> Dockerd {
        let data_root = tempfile::Builder::new().prefix("berth-dockerd-").tempdir().expect("create data root");
        // Unix socket paths are limited to 108 bytes and containerd nests its socket below the exec root, so the
        // exec root is a short directory directly in /tmp.
        let exec_root = tempfile::Builder::new().prefix("bd").tempdir_in("/tmp").expect("create exec root");
        let socket = exec_root.path().join("d.sock");
        let log = std::fs::File::create(data_root.path().join("dockerd.log")).expect("create dockerd log");
        let child = Command::new("dockerd")
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs"])
            .arg("--data-root")
            .arg(data_root.path().join("data"))
            .arg("--exec-root")
            .arg(exec_root.path())
            .arg("--pidfile")
            .arg(exec_root.path().join("d.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start dockerd (package docker.io)");
        let mut dockerd = Dockerd { child, socket, data_root, exec_root };
        dockerd.wait_ready();
        dockerd
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dockerd exited with {status}\n{}", self.log_text());
            }
            let probe = self.docker().arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status();
            if probe.is_ok_and(|s| s.success()) {
                return;
            }
            if Instant::now() > deadline {
                panic!("dockerd did not answer within {READY_TIMEOUT:?}\n{}", self.log_text());
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Loads `image` into this engine as `name` (docker 20.10 loads docker-archive tarballs, not OCI ones; skopeo
    /// converts only the manifest, so the config and therefore the image ID stay the layout's).
    pub fn load(&self, image: &crate::OciImage, name: &str) {
        let work = tempfile::tempdir().expect("work dir");
        let archive = work.path().join("image.tar");
        crate::run(crate::clients::skopeo().arg("copy").arg(image.oci_ref()).arg(format!("docker-archive:{}:{name}", archive.display())));
        crate::run(self.docker().arg("load").arg("-i").arg(&archive));
    }

    /// Imports the root filesystem in `tar` as the one-layer image `name` and returns its image ID (its config's
    /// digest).
    pub fn import(&self, tar: &std::path::Path, name: &str) -> String {
        crate::run(self.docker().arg("import").arg(tar).arg(name));
        crate::stdout_of(self.docker().args(["image", "inspect", "--format", "{{.Id}}", name]))
    }

    /// The docker CLI bound to this engine. `BERTH_TEST_DOCKER` picks the client binary (default `docker`).
    pub fn docker(&self) -> Command {
        let mut c = Command::new(std::env::var_os("BERTH_TEST_DOCKER").unwrap_or_else(|| "docker".into()));
        c.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            // A private client config: no credential helpers or contexts of whoever runs the suite.
            .env("DOCKER_CONFIG", self.data_root.path().join("client"));
        c
    }

    /// `ctr` on the containerd this dockerd manages, in a namespace of its own (not docker's `moby`).
    pub fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(self.exec_root.path().join("containerd/containerd.sock")).args(["--namespace", "berth-test"]);
        c
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(self.data_root.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!("--- dockerd log ---\n{}", lines[lines.len().saturating_sub(100)..].join("\n"))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.log_text());
        }
        if !terminate(&mut self.child, STOP_TIMEOUT) {
            eprintln!("dockerd ignored SIGTERM for {STOP_TIMEOUT:?} and was killed");
        }
        // dockerd bind-mounts its data root onto itself (to make it a shared mount) and containerd mounts below the
        // exec root; where / is not a shared mount those can outlive dockerd and keep the directories from going.
        for dir in [self.data_root.path().join("data"), self.exec_root.path().to_owned()] {
            let _ = Command::new("umount").arg("-R").arg(dir).stderr(Stdio::null()).status();
        }
    }
}
