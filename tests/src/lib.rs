//! Harness for the end-to-end suite: starts `berth serve`, builds OCI images without any network pull, isolates the
//! real clients (skopeo, podman, buildah, docker, oras) from each other, and checks what the registry serves.
//!
//! Every test starts its own registry on its own port with its own data directory and gives each client its own
//! storage, so the tests of one binary run in parallel without sharing anything but the clients' blob-info cache
//! (see [`clients`]).

pub mod clients;
pub mod cmd;
pub mod digest;
pub mod dockerd;
pub mod fixture;
pub mod registry;

pub use cmd::{run, run_failing, run_with_stdin, stdout_of};
pub use digest::sha256_digest;
pub use fixture::{OciImage, OciLayout};
pub use registry::{Manifest, Registry};
