//! The paths of the OCI API reach the function infra/template.yaml routes them to, and everything works when a
//! repository has a path component named `blobs`: CloudFront's first pattern (`/v2/*/blobs/*`) then sends its
//! manifest, tag and referrer requests to the blobs function too. Over plain HTTP, so it is quick; on `embedded`
//! the same requests check that `berth serve` has no trouble with such a name either. Not meant for the reference
//! registry: it pushes in single POSTs (which distribution 2.8 does not finish) and asks for referrers.

use berth_tests::router::{RoutingTable, UploadService};
use berth_tests::{HARNESS_USER_AGENT, Registry, RegistryKind, push_tiny_image};
use reqwest::StatusCode;
use serde_json::Value;

fn json_of(registry: &Registry, path: &str) -> Value {
    let resp = registry.get(path);
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    resp.json().unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn repository_named_blobs_works_through_every_function(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let repo = "team/blobs/app";
    let digest = push_tiny_image(&registry, repo, "v1", "blobs-in-the-name");
    push_tiny_image(&registry, "team/app", "v1", "plain");

    let manifest = registry.manifest(repo, "v1");
    assert_eq!(manifest.digest, digest);
    let blobs: Vec<String> = std::iter::once(&manifest.json["config"])
        .chain(manifest.json["layers"].as_array().expect("layers"))
        .map(|d| d["digest"].as_str().expect("digest").to_owned())
        .collect();
    for blob in &blobs {
        registry.blob(repo, blob);
    }
    registry.assert_blob_downloads_redirected(HARNESS_USER_AGENT, repo, &blobs);
    assert_eq!(registry.tags(repo), ["v1"]);
    let referrers = json_of(&registry, &format!("/v2/{repo}/referrers/{digest}"));
    assert_eq!(referrers["manifests"], serde_json::json!([]));
    let catalog = json_of(&registry, "/v2/_catalog");
    assert_eq!(catalog["repositories"], serde_json::json!(["team/app", "team/blobs/app"]));

    let path = format!("/v2/{repo}/manifests/{digest}");
    let resp = registry.request(reqwest::Method::DELETE, &path).send().unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "DELETE {path}");
    assert_eq!(registry.manifest_status(repo, "v1"), StatusCode::NOT_FOUND);
    assert_eq!(registry.tags("team/app"), ["v1"]);

    if kind != RegistryKind::AwsFunctions {
        return;
    }
    // Each kind of path went where the template sends it, and the functions (not nginx) answered.
    let requests = registry.routed_requests();
    let table = RoutingTable::from_template(UploadService::Container);
    for (path, function) in [
        ("/v2/", "token"),
        (format!("/v2/{repo}/blobs/uploads/").as_str(), "uploads"),
        (format!("/v2/{repo}/manifests/v1").as_str(), "blobs"),
        (format!("/v2/{repo}/tags/list").as_str(), "blobs"),
        (format!("/v2/{repo}/referrers/{digest}").as_str(), "blobs"),
        ("/v2/team/app/manifests/v1", "manifests"),
        ("/v2/team/app/tags/list", "manifests"),
        ("/v2/_catalog", "manifests"),
    ] {
        assert_eq!(table.function_for(path), function, "{path}");
        let served: Vec<_> = requests.iter().filter(|r| r.path == path).collect();
        assert!(!served.is_empty(), "no request for {path}");
        for request in served {
            assert_eq!(request.function, function, "{request}");
            assert!(request.status < 500, "{request}");
        }
    }
}

berth_tests::registry_tests!(repository_named_blobs_works_through_every_function);

/// Nobody gets around the edge: each function refuses a request that did not come through the router (no origin
/// header, or a wrong one), even with a valid token, while the same request through the router succeeds. Only the
/// functions have an edge to get around.
fn functions_refuse_requests_that_bypass_the_edge(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let path = "/v2/team/app/tags/list";
    let token_of = |request: reqwest::blocking::RequestBuilder| request.build().unwrap().headers()["authorization"].to_str().unwrap().to_owned();
    let authorization = token_of(registry.request(reqwest::Method::GET, path));
    assert_eq!(registry.get(path).status(), StatusCode::NOT_FOUND, "through the router the token works (no such repository)");
    for (function, url) in registry.function_urls() {
        for origin in [None, Some("not-the-secret")] {
            let mut request = registry.http().get(format!("{url}{path}")).header("authorization", &authorization);
            if let Some(origin) = origin {
                request = request.header("x-berth-origin-secret", origin);
            }
            let resp = request.send().unwrap();
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{function} with origin header {origin:?}");
            let body: serde_json::Value = resp.json().unwrap();
            assert_eq!(body["errors"][0]["code"], "DENIED", "{function}: {body}");
        }
    }
}

#[test]
fn the_functions_refuse_requests_that_bypass_the_edge() {
    RegistryKind::AwsFunctions.run(functions_refuse_requests_that_bypass_the_edge);
}
