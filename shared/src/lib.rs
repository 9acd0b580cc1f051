//! Berth: a private OCI container registry. This library holds everything its binaries share: the OCI domain
//! ([`oci`]), the registry's operations ([`registry`]) over storage ports and adapters ([`store`]), the HTTP handlers
//! grouped by the function serving them ([`http`]), the plain-HTTP server ([`server`]), and vulnerability scanning
//! ([`scan`]).

pub mod error;
pub mod function;
pub mod http;
pub mod identity;
pub mod oci;
pub mod registry;
pub mod scan;
pub mod server;
pub mod services;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod tier;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
