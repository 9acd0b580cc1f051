//! Access control over HTTP, on both stores: docker's challenge, the token endpoint's GET and POST flows, what each
//! kind of identity is granted, and every token or credential that must not work.

use axum::{
    body::Body,
    http::{Method, StatusCode},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use berth::identity::{TokenService, directory::Directory, keys::SigningKey};
use serde_json::{Value, json};

use super::{Api, DEFAULT_LIMITS, Limits, REGISTRY, Reply, Store, sha256};

fn basic(username: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{username}:{password}")))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

impl Api {
    /// Calls the management API as the owner, asserting `expected`.
    async fn manage(&self, method: Method, path: &str, body: Value, expected: StatusCode) -> Value {
        let reply = self.send(method, &format!("/berth/v1/access/{path}"), &[("content-type", "application/json")], body.to_string()).await;
        assert_eq!(reply.status, expected, "{path}: {}", String::from_utf8_lossy(&reply.body));
        if reply.body.is_empty() { Value::Null } else { reply.json() }
    }

    /// A new service principal with `roles` over `scope`: its id and password.
    pub(super) async fn principal(&self, name: &str, roles: &[&str], scope: Option<&str>) -> (String, String) {
        let created = self
            .manage(Method::POST, "service-principals", json!({"name": name, "roles": roles, "scope": scope}), StatusCode::CREATED)
            .await;
        (created["id"].as_str().unwrap().to_owned(), created["password"].as_str().unwrap().to_owned())
    }

    /// `GET /token` with Basic credentials for `scopes`.
    async fn login(&self, username: &str, password: &str, scopes: &[&str]) -> Reply {
        let query: String = scopes.iter().map(|scope| format!("&scope={scope}")).collect();
        let authorization = basic(username, password);
        self.send(Method::GET, &format!("/token?service={REGISTRY}{query}"), &[("authorization", &authorization)], Body::empty()).await
    }

    /// The access token of a login that must succeed.
    pub(super) async fn token_for(&self, username: &str, password: &str, scopes: &[&str]) -> String {
        let reply = self.login(username, password, scopes).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()["token"].as_str().unwrap().to_owned()
    }

    pub(super) async fn send_with(&self, token: &str, method: Method, path: &str, body: impl Into<Body>) -> Reply {
        self.send(method, path, &[("authorization", &bearer(token))], body).await
    }

    /// `POST /token` with a form.
    async fn token_form(&self, form: &[(&str, &str)]) -> Reply {
        let body = serde_urlencoded::to_string(form).unwrap();
        self.send(Method::POST, "/token", &[("content-type", "application/x-www-form-urlencoded")], body).await
    }
}

fn assert_challenge(reply: &Reply, scope: Option<&str>, error: Option<&str>) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", String::from_utf8_lossy(&reply.body));
    let challenge = reply.header("www-authenticate");
    assert!(challenge.starts_with(r#"Bearer realm="http://"#) && challenge.contains(r#"/token",service="berth-test""#), "{challenge}");
    match scope {
        Some(scope) => assert!(challenge.contains(&format!(r#"scope="{scope}""#)), "{challenge} should ask for {scope}"),
        None => assert!(!challenge.contains("scope="), "{challenge}"),
    }
    match error {
        Some(error) => assert!(challenge.contains(&format!(r#"error="{error}""#)), "{challenge} should say {error}"),
        None => assert!(!challenge.contains("error="), "{challenge}"),
    }
    let code = if error == Some("insufficient_scope") { "DENIED" } else { "UNAUTHORIZED" };
    // A HEAD answer has no body to carry the code.
    if !reply.body.is_empty() {
        assert_eq!(reply.json()["errors"][0]["code"], code);
    }
}

pub async fn requests_without_a_token_are_challenged(store: Store) {
    let api = Api::new(store).await;
    let host = [("host", "registry.example:5000")];
    let reply = api.send_raw(Method::GET, "/v2/", &host, Body::empty()).await;
    assert_challenge(&reply, None, None);
    assert!(reply.header("www-authenticate").starts_with(r#"Bearer realm="http://registry.example:5000/token""#));
    let cases = [
        (Method::GET, "/v2/team/app/manifests/v1", "repository:team/app:pull"),
        (
            Method::HEAD,
            "/v2/team/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "repository:team/app:pull",
        ),
        (Method::POST, "/v2/team/app/blobs/uploads/", "repository:team/app:pull,push"),
        (Method::PUT, "/v2/team/app/manifests/v1", "repository:team/app:pull,push"),
        (
            Method::DELETE,
            "/v2/team/app/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "repository:team/app:delete",
        ),
        (Method::GET, "/v2/_catalog", "registry:catalog:*"),
        (Method::GET, "/berth/v1/access/service-principals", "registry:manage:*"),
        (Method::DELETE, "/berth/v1/repositories/team/app", "repository:team/app:delete"),
    ];
    for (method, path, scope) in cases {
        assert_challenge(&api.send_raw(method.clone(), path, &host, Body::empty()).await, Some(scope), None);
    }
    // Nothing was stored by the refused push.
    let reply = api.send(Method::GET, "/v2/_catalog", &[], Body::empty()).await;
    assert_eq!(reply.json()["repositories"], json!([]));
    // The proxy's headers name the host and scheme clients use.
    let proxied = [("host", "function.internal"), ("x-forwarded-host", "registry.example"), ("x-forwarded-proto", "https")];
    let reply = api.send_raw(Method::GET, "/v2/", &proxied, Body::empty()).await;
    assert!(reply.header("www-authenticate").starts_with(r#"Bearer realm="https://registry.example/token""#));
}

pub async fn the_token_endpoint_takes_basic_get_and_oauth_post(store: Store) {
    let api = Api::new(store).await;
    let (id, password) = api.principal("ci", &["acrpush"], None).await;
    let reply =
        api.login(&id, &password, &["repository:app:pull,push", "registry:catalog:*", "&offline_token=true&client_id=docker"]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let body = reply.json();
    assert_eq!(body["token"], body["access_token"]);
    assert!(body["expires_in"].as_u64().unwrap() >= 60);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["scope"], "repository:app:pull,push registry:catalog:*");
    let refresh = body["refresh_token"].as_str().expect("offline_token=true gives a refresh token").to_owned();
    let token = body["token"].as_str().unwrap();
    let digest = sha256(b"layer");
    let pushed = api.send_with(token, Method::POST, &format!("/v2/app/blobs/uploads/?digest={digest}"), b"layer".to_vec()).await;
    assert_eq!(pushed.status, StatusCode::CREATED);
    assert_eq!(api.send_with(token, Method::GET, "/v2/", Body::empty()).await.status, StatusCode::OK);

    // docker's POST with the refresh token: one space-joined scope; no new refresh token (a login lasts 3 hours).
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", REGISTRY),
        ("client_id", "docker"),
        ("scope", "repository:app:pull repository:other:push"),
    ];
    let reply = api.token_form(&form).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["scope"], "repository:app:pull repository:other:push");
    assert!(reply.json().get("refresh_token").is_none());
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(api.send_with(&token, Method::GET, &format!("/v2/app/blobs/{digest}"), Body::empty()).await.body, b"layer");

    // The OAuth2 password grant, and ACR's null user name with a refresh token as the password.
    let reply =
        api.token_form(&[("grant_type", "password"), ("username", &id), ("password", &password), ("scope", "repository:app:pull")]).await;
    assert_eq!(reply.json()["scope"], "repository:app:pull");
    let reply = api.login("00000000-0000-0000-0000-000000000000", &refresh, &["repository:app:pull"]).await;
    assert_eq!(reply.json()["scope"], "repository:app:pull");

    for bad in [vec![("grant_type", "client_credentials")], vec![("grant_type", "password"), ("username", &id)], vec![]] {
        assert_eq!(api.token_form(&bad).await.status, StatusCode::BAD_REQUEST);
    }
    let reply = api.send(Method::GET, "/token?service=other-registry", &[("authorization", &basic(&id, &password))], Body::empty()).await;
    reply.assert_error(StatusCode::BAD_REQUEST, "UNSUPPORTED");
    api.send(Method::DELETE, "/token", &[], Body::empty()).await.assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
}

pub async fn granted_access_is_the_intersection_of_asked_and_allowed(store: Store) {
    let api = Api::new(store).await;
    api.push_image("team/app", "v1", b"layer").await;
    let (puller, pull_password) = api.principal("puller", &["acrpull"], None).await;
    let reply =
        api.login(&puller, &pull_password, &["repository:team/app:pull,push,delete", "registry:catalog:*", "registry:manage:*"]).await;
    assert_eq!(reply.json()["scope"], "repository:team/app:pull registry:catalog:*");
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(api.send_with(&token, Method::GET, "/v2/team/app/manifests/v1", Body::empty()).await.status, StatusCode::OK);
    assert_eq!(api.send_with(&token, Method::GET, "/v2/_catalog", Body::empty()).await.json()["repositories"], json!(["team/app"]));
    let push = api.send_with(&token, Method::POST, "/v2/team/app/blobs/uploads/", Body::empty()).await;
    assert_challenge(&push, Some("repository:team/app:pull,push"), Some("insufficient_scope"));
    let delete = api.send_with(&token, Method::DELETE, "/v2/team/app/manifests/v1", Body::empty()).await;
    assert_challenge(&delete, Some("repository:team/app:delete"), Some("insufficient_scope"));
    assert_eq!(api.send_with(&token, Method::GET, "/berth/v1/access/admin", Body::empty()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.get("/v2/team/app/tags/list").await.json()["tags"], json!(["v1"]), "nothing was untagged");

    // A principal scoped to other repositories gets nothing here, and no catalog.
    let (scoped, scoped_password) = api.principal("scoped", &["acrpush", "acrdelete"], Some("other/*")).await;
    let reply =
        api.login(&scoped, &scoped_password, &["repository:team/app:pull", "repository:other/x:push,delete", "registry:catalog:*"]).await;
    assert_eq!(reply.json()["scope"], "repository:other/x:delete,push");

    // acrdelete deletes, and nothing else.
    let (deleter, delete_password) = api.principal("deleter", &["acrdelete"], None).await;
    let token = api.token_for(&deleter, &delete_password, &["repository:team/app:pull,delete"]).await;
    assert_eq!(api.send_with(&token, Method::GET, "/v2/team/app/manifests/v1", Body::empty()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.send_with(&token, Method::DELETE, "/v2/team/app/manifests/v1", Body::empty()).await.status, StatusCode::ACCEPTED);
}

pub async fn tokens_that_must_not_work_are_refused(store: Store) {
    let api = Api::new(store).await;
    let (id, password) = api.principal("ci", &["owner"], None).await;
    let path = "/v2/app/tags/list";
    let good = api.token_for(&id, &password, &["repository:app:pull"]).await;
    assert_eq!(api.send_with(&good, Method::GET, path, Body::empty()).await.status, StatusCode::NOT_FOUND);

    // Another registry's token service, with its own key; and this registry's key under another name.
    let records = Directory::new(
        std::sync::Arc::new(berth::store::embedded::EmbeddedMetadata::open(&tempfile::tempdir().unwrap().path().join("m")).unwrap()),
        "other".into(),
        None,
    );
    let other = TokenService::new(records, SigningKey::from_seed(&[9u8; 32]).unwrap(), &Default::default());
    let owner = berth::identity::directory::Login {
        subject: berth::identity::directory::Subject::Admin,
        permissions: berth::identity::access::Permissions::everything(),
        credential: None,
    };
    let foreign = other.grant(&owner, &berth::identity::access::Scope::parse_all(["repository:app:pull"]), true);
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged_claims = {
        let mut claims: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(rest.split_once('.').unwrap().0).unwrap())
                .unwrap();
        claims["access"][0]["actions"] = json!(["pull", "push", "delete"]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
    };
    let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let refused = [
        ("another registry's token", foreign.access.token.clone()),
        ("a refresh token", foreign.refresh.unwrap().token),
        ("tampered claims", format!("{head}.{forged_claims}.{signature}")),
        ("alg none", format!("{none_header}.{}.", rest.split_once('.').unwrap().0)),
        ("garbage", "not-a-token".to_owned()),
    ];
    for (what, token) in refused {
        let reply = api.send_with(&token, Method::GET, path, Body::empty()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(reply.header("www-authenticate").contains(r#"error="invalid_token""#), "{what}");
    }
    // Our own refresh token is not an access token either.
    let reply = api.login(&id, &password, &["repository:app:pull", "&offline_token=true"]).await;
    let refresh = reply.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(api.send_with(&refresh, Method::GET, path, Body::empty()).await.status, StatusCode::UNAUTHORIZED);
    // Wrong passwords, unknown users, a bad refresh token.
    for (username, password) in [(id.as_str(), "wrong"), ("00000000-0000-4000-8000-000000000000", password.as_str()), ("nobody", "x")] {
        api.login(username, password, &[]).await.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    api.token_form(&[("grant_type", "refresh_token"), ("refresh_token", &good)])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

pub async fn revoked_credentials_stop_new_tokens_at_once(store: Store) {
    let api = Api::new(store).await;
    let (id, password) = api.principal("ci", &["acrpull"], None).await;
    let reply = api.login(&id, &password, &["&offline_token=true"]).await;
    let refresh = reply.json()["refresh_token"].as_str().unwrap().to_owned();
    let reset = api.manage(Method::POST, "service-principals/ci/credential", Value::Null, StatusCode::OK).await;
    assert_eq!(reset["id"], id);
    let new_password = reset["password"].as_str().unwrap().to_owned();
    assert_ne!(new_password, password);
    api.login(&id, &password, &[]).await.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let ended = api.token_form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    ended.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(ended.json()["errors"][0]["message"].as_str().unwrap().contains("log in again"));
    assert_eq!(api.login(&id, &new_password, &[]).await.status, StatusCode::OK);

    let listed = api.manage(Method::GET, "service-principals", Value::Null, StatusCode::OK).await;
    assert_eq!(listed["servicePrincipals"][0]["name"], "ci");
    assert!(!listed.to_string().contains(&new_password), "listings never show a password");
    api.manage(Method::DELETE, "service-principals/ci", Value::Null, StatusCode::NO_CONTENT).await;
    api.login(&id, &new_password, &[]).await.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    api.manage(Method::GET, "service-principals/ci", Value::Null, StatusCode::NOT_FOUND).await;

    // An expired principal is told so.
    let created = api
        .manage(Method::POST, "service-principals", json!({"name": "old", "roles": ["acrpull"], "expiresAt": 1}), StatusCode::CREATED)
        .await;
    let reply = api.login(created["id"].as_str().unwrap(), created["password"].as_str().unwrap(), &[]).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(reply.json()["errors"][0]["message"].as_str().unwrap().contains("expired"));
    // Names are unique; roles must exist.
    api.manage(Method::POST, "service-principals", json!({"name": "old", "roles": ["acrpull"]}), StatusCode::CONFLICT).await;
    api.manage(Method::POST, "service-principals", json!({"name": "x", "roles": ["reader"]}), StatusCode::BAD_REQUEST).await;
}

pub async fn the_admin_user_is_off_by_default(store: Store) {
    let api = Api::new(store).await;
    let shown = api.manage(Method::GET, "admin", Value::Null, StatusCode::OK).await;
    assert_eq!((shown["username"].as_str(), shown["enabled"].as_bool()), (Some(REGISTRY), Some(false)));
    let first = api.manage(Method::POST, "admin/passwords/1", Value::Null, StatusCode::OK).await["password"].as_str().unwrap().to_owned();
    let reply = api.login(REGISTRY, &first, &[]).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(reply.json()["errors"][0]["message"].as_str().unwrap().contains("disabled"));
    api.manage(Method::PATCH, "admin", json!({"enabled": true}), StatusCode::OK).await;
    let reply = api.login(REGISTRY, &first, &["repository:any/repo:pull,push,delete", "registry:manage:*"]).await;
    assert_eq!(reply.json()["scope"], "repository:any/repo:delete,pull,push registry:manage:*");
    let second = api.manage(Method::POST, "admin/passwords/2", Value::Null, StatusCode::OK).await["password"].as_str().unwrap().to_owned();
    assert_eq!(api.login(REGISTRY, &first, &[]).await.status, StatusCode::OK);
    assert_eq!(api.login(REGISTRY, &second, &[]).await.status, StatusCode::OK);
    let renewed = api.manage(Method::POST, "admin/passwords/1", Value::Null, StatusCode::OK).await["password"].as_str().unwrap().to_owned();
    assert_eq!(api.login(REGISTRY, &first, &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.login(REGISTRY, &renewed, &[]).await.status, StatusCode::OK);
    let shown = api.manage(Method::GET, "admin", Value::Null, StatusCode::OK).await;
    assert!(shown["passwords"][0]["createdAt"].is_u64() && shown["passwords"][1]["createdAt"].is_u64());
    assert!(!shown.to_string().contains(&renewed) && !shown.to_string().contains(&second));
    api.manage(Method::POST, "admin/passwords/3", Value::Null, StatusCode::NOT_FOUND).await;
    api.manage(Method::PATCH, "admin", json!({"enabled": false}), StatusCode::OK).await;
    assert_eq!(api.login(REGISTRY, &second, &[]).await.status, StatusCode::UNAUTHORIZED);
}

pub async fn scoped_tokens_reach_only_their_repositories(store: Store) {
    let api = Api::new(store).await;
    api.push_image("team/app", "v1", b"layer").await;
    api.push_image("other", "v1", b"layer").await;
    let map = json!({"name": "team-rw", "repository": "team/*", "actions": ["content/read", "content/write"]});
    api.manage(Method::POST, "scope-maps", map, StatusCode::CREATED).await;
    api.manage(Method::POST, "scope-maps", json!({"name": "bad", "repository": "x", "actions": ["content/all"]}), StatusCode::BAD_REQUEST)
        .await;
    let created = api.manage(Method::POST, "tokens", json!({"name": "ci-token", "scopeMap": "team-rw"}), StatusCode::CREATED).await;
    assert_eq!(created["username"], "ci-token");
    let passwords: Vec<String> = created["passwords"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
    assert_eq!(passwords.len(), 2);
    for password in &passwords {
        let reply =
            api.login("ci-token", password, &["repository:team/app:pull,push,delete", "repository:other:pull", "registry:catalog:*"]).await;
        assert_eq!(reply.json()["scope"], "repository:team/app:pull,push");
    }
    let token = api.token_for("ci-token", &passwords[0], &["repository:team/app:pull", "repository:other:pull"]).await;
    assert_eq!(api.send_with(&token, Method::GET, "/v2/team/app/manifests/v1", Body::empty()).await.status, StatusCode::OK);
    assert_eq!(api.send_with(&token, Method::GET, "/v2/other/manifests/v1", Body::empty()).await.status, StatusCode::UNAUTHORIZED);
    api.manage(Method::DELETE, "scope-maps/team-rw", Value::Null, StatusCode::BAD_REQUEST).await;
    let renewed = api.manage(Method::POST, "tokens/ci-token/passwords/2", Value::Null, StatusCode::OK).await;
    assert_eq!(api.login("ci-token", &passwords[1], &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.login("ci-token", renewed["password"].as_str().unwrap(), &[]).await.status, StatusCode::OK);
    api.manage(Method::DELETE, "tokens/ci-token", Value::Null, StatusCode::NO_CONTENT).await;
    assert_eq!(api.login("ci-token", &passwords[0], &[]).await.status, StatusCode::UNAUTHORIZED);
    api.manage(Method::DELETE, "scope-maps/team-rw", Value::Null, StatusCode::NO_CONTENT).await;
}

pub async fn a_mount_needs_pull_on_its_source(store: Store) {
    let api = Api::new(store).await;
    let digest = api.push_blob("source", b"shared layer").await;
    let mount = format!("/v2/target/blobs/uploads/?mount={digest}&from=source");
    let (scoped, scoped_password) = api.principal("scoped", &["acrpush"], Some("target")).await;
    let token = api.token_for(&scoped, &scoped_password, &["repository:target:pull,push", "repository:source:pull"]).await;
    let reply = api.send_with(&token, Method::POST, &mount, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "without pull on the source the mount falls back to an upload");
    let check = api.send_with(&token, Method::HEAD, &format!("/v2/target/blobs/{digest}"), Body::empty()).await;
    assert_eq!(check.status, StatusCode::NOT_FOUND);
    let (pusher, push_password) = api.principal("pusher", &["acrpush"], None).await;
    let token = api.token_for(&pusher, &push_password, &["repository:target:pull,push", "repository:source:pull"]).await;
    assert_eq!(api.send_with(&token, Method::POST, &mount, Body::empty()).await.status, StatusCode::CREATED);
}

async fn anonymous_token(api: &Api) -> Value {
    api.send(Method::GET, &format!("/token?service={REGISTRY}&scope=repository:public/app:pull,push"), &[], Body::empty()).await.json()
}

pub async fn anonymous_pull_is_off_by_default(store: Store) {
    let api = Api::new(store).await;
    api.push_image("public/app", "v1", b"layer").await;
    let token = anonymous_token(&api).await;
    assert_eq!(token["scope"], "");
    assert!(token.get("refresh_token").is_none());
    let pull = api.send_with(token["token"].as_str().unwrap(), Method::GET, "/v2/public/app/manifests/v1", Body::empty()).await;
    assert_eq!(pull.status, StatusCode::UNAUTHORIZED);
    let shown = api.manage(Method::PATCH, "registry", json!({"anonymousPull": true}), StatusCode::OK).await;
    assert_eq!(
        shown,
        json!({"name": REGISTRY, "anonymousPull": true, "blockSeverity": null, "allowedAdvisories": [], "sku": null, "limits": null})
    );
    let token = anonymous_token(&api).await;
    assert_eq!(token["scope"], "repository:public/app:pull");
    let token = token["token"].as_str().unwrap();
    assert_eq!(api.send_with(token, Method::GET, "/v2/public/app/manifests/v1", Body::empty()).await.status, StatusCode::OK);
    assert_eq!(api.send_with(token, Method::POST, "/v2/public/app/blobs/uploads/", Body::empty()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.send_with(token, Method::GET, "/v2/_catalog", Body::empty()).await.status, StatusCode::UNAUTHORIZED);
}

/// Tiers: chosen in any case and shown lowercase with their limits; a feature above the tier is refused naming the
/// tier it needs, a move to a lower tier while such a feature is on is refused naming the feature, and a refused
/// change changes nothing. The deployment's tier counts where the settings choose none.
pub async fn tiers_gate_features_and_refuse_downgrades(store: Store) {
    let api = Api::new(store).await;
    let patch = |change: Value, expected: StatusCode| api.manage(Method::PATCH, "registry", change, expected);
    let shown = patch(json!({"sku": "PREMIUM"}), StatusCode::OK).await;
    assert_eq!(
        (&shown["sku"], &shown["limits"]["tokens"], &shown["limits"]["readOpsPerMinute"]),
        (&json!("premium"), &json!(50_000), &json!(10_000))
    );
    assert_eq!(shown["limits"]["storageBytes"], json!(500u64 << 30));
    let refused = patch(json!({"sku": "gold"}), StatusCode::BAD_REQUEST).await;
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("unknown tier \"gold\": basic, standard or premium"), "{refused}");

    assert_eq!(patch(json!({"sku": "basic"}), StatusCode::OK).await["sku"], "basic");
    let refused = patch(json!({"anonymousPull": true}), StatusCode::BAD_REQUEST).await;
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("anonymous pull needs the standard tier; this registry is basic"), "{message}");
    assert_eq!(api.manage(Method::GET, "registry", Value::Null, StatusCode::OK).await["anonymousPull"], false);

    let shown = patch(json!({"sku": "Standard", "anonymousPull": true}), StatusCode::OK).await;
    assert_eq!((&shown["sku"], &shown["anonymousPull"]), (&json!("standard"), &json!(true)));
    let refused = patch(json!({"sku": "basic"}), StatusCode::BAD_REQUEST).await;
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("cannot move to the basic tier while anonymous pull is on: it needs the standard tier"), "{message}");
    assert_eq!(api.manage(Method::GET, "registry", Value::Null, StatusCode::OK).await["sku"], "standard", "nothing changed");
    assert_eq!(anonymous_token(&api).await["scope"], "repository:public/app:pull");

    let basic = Api::with_limits(store, Limits { sku: Some(berth::tier::Sku::Basic), ..DEFAULT_LIMITS }).await;
    let shown = basic.manage(Method::GET, "registry", Value::Null, StatusCode::OK).await;
    assert_eq!((&shown["sku"], &shown["limits"]["tokens"]), (&json!("basic"), &json!(100)));
    basic.manage(Method::PATCH, "registry", json!({"anonymousPull": true}), StatusCode::BAD_REQUEST).await;
    assert_eq!(basic.manage(Method::PATCH, "registry", json!({"sku": "premium"}), StatusCode::OK).await["sku"], "premium");
}

pub async fn failed_logins_are_rate_limited(store: Store) {
    let api = Api::new(store).await;
    let (id, password) = api.principal("ci", &["acrpull"], None).await;
    // Ten guesses at once on one identity: every one counts. On the emulator one after another: moto's UpdateItem
    // reads and writes the item without a lock, so racing ADDs lose counts there, which DynamoDB's atomic ADD does not.
    let guesses = match store {
        Store::Embedded => futures_util::future::join_all((0..10).map(|_| api.login(&id, "wrong", &[]))).await,
        Store::Aws => {
            let mut guesses = Vec::new();
            for _ in 0..10 {
                guesses.push(api.login(&id, "wrong", &[]).await);
            }
            guesses
        }
    };
    assert!(guesses.iter().all(|reply| reply.status == StatusCode::UNAUTHORIZED));
    let reply = api.login(&id, &password, &[]).await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS");
    assert!(reply.header("retry-after").parse::<u64>().unwrap() >= 1);
    // The source is limited as well: another identity from the same address is refused too.
    let (other, other_password) = api.principal("other", &["acrpull"], None).await;
    assert_eq!(api.login(&other, &other_password, &[]).await.status, StatusCode::TOO_MANY_REQUESTS);
}

pub async fn basic_credentials_work_on_the_registry_itself(store: Store) {
    let api = Api::new(store).await;
    api.push_image("team/app", "v1", b"layer").await;
    let (puller, password) = api.principal("puller", &["acrpull"], None).await;
    let authorization = basic(&puller, &password);
    let headers = [("authorization", authorization.as_str())];
    assert_eq!(api.send(Method::GET, "/v2/team/app/manifests/v1", &headers, Body::empty()).await.status, StatusCode::OK);
    let push = api.send(Method::POST, "/v2/team/app/blobs/uploads/", &headers, Body::empty()).await;
    assert_challenge(&push, Some("repository:team/app:pull,push"), Some("insufficient_scope"));
    let wrong = basic(&puller, "wrong");
    let reply = api.send(Method::GET, "/v2/team/app/manifests/v1", &[("authorization", &wrong)], Body::empty()).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

/// An OIDC issuer of the test's own: discovery and JWKS over HTTP, with keys it can add (a rotation) and counting the
/// fetches of its key set.
struct Issuer {
    url: String,
    keys: std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>, Value)>>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Issuer {
    async fn start() -> Issuer {
        use std::sync::{Arc, Mutex, atomic::AtomicUsize};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let keys: Arc<Mutex<Vec<(String, Vec<u8>, Value)>>> = Arc::default();
        let fetches = Arc::new(AtomicUsize::new(0));
        let (discovery, jwks, counter) = (json!({"issuer": url, "jwks_uri": format!("{url}/jwks")}), keys.clone(), fetches.clone());
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", axum::routing::get(move || async move { axum::Json(discovery) }))
            .route(
                "/jwks",
                axum::routing::get(move || async move {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let keys: Vec<Value> = jwks.lock().unwrap().iter().map(|(_, _, jwk)| jwk.clone()).collect();
                    axum::Json(json!({"keys": keys}))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let issuer = Issuer { url, keys, fetches };
        issuer.add_key();
        issuer
    }

    /// A new P-256 key in the published set; returns its key id.
    fn add_key(&self) -> String {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let kid = uuid::Uuid::new_v4().to_string();
        let jwk =
            json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid, "x": b64(&point[1..33]), "y": b64(&point[33..])});
        self.keys.lock().unwrap().push((kid.clone(), pkcs8.as_ref().to_vec(), jwk));
        kid
    }

    /// An ID token for `sub`, with `changes` applied to the standard claims, signed with the key `kid` (the first
    /// key when `None`).
    fn id_token(&self, sub: &str, kid: Option<&str>, changes: Value) -> String {
        let now = berth::identity::tokens::now_seconds();
        let mut claims = json!({"iss": self.url, "aud": "berth-test-audience", "sub": sub, "iat": now, "nbf": now, "exp": now + 300});
        for (key, value) in changes.as_object().unwrap() {
            claims[key] = value.clone();
        }
        let keys = self.keys.lock().unwrap();
        let (kid, pkcs8, _) = kid.map_or(&keys[0], |kid| keys.iter().find(|(id, _, _)| id == kid).unwrap());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(pkcs8)).unwrap()
    }
}

impl Api {
    async fn exchange(&self, id_token: &str) -> Reply {
        let body = serde_urlencoded::to_string([("grant_type", "id_token"), ("id_token", id_token)]).unwrap();
        self.send(Method::POST, "/oauth2/exchange", &[("content-type", "application/x-www-form-urlencoded")], body).await
    }
}

pub async fn oidc_id_tokens_are_logins_for_assigned_subjects(store: Store) {
    let issuer = Issuer::start().await;
    let oidc = berth::identity::oidc::OidcConfig { issuer: issuer.url.clone(), audience: "berth-test-audience".to_owned() };
    let api = Api::with_limits(
        store,
        super::Limits { external: berth::identity::ExternalLogins { oidc: Some(oidc), sts_endpoint: None }, ..super::DEFAULT_LIMITS },
    )
    .await;
    api.push_image("team/app", "v1", b"layer").await;
    let subject = "repo:org/app:ref:refs/heads/main";

    let unassigned = api.exchange(&issuer.id_token(subject, None, json!({}))).await;
    unassigned.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(unassigned.json()["errors"][0]["message"].as_str().unwrap().contains("has no role"));
    api.manage(Method::POST, "role-assignments", json!({"assignee": subject, "role": "acrpull", "scope": "team/*"}), StatusCode::CREATED)
        .await;

    let reply = api.exchange(&issuer.id_token(subject, None, json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let refresh = reply.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(reply.json()["expires_in"], 3 * 3600, "a login lasts 3 hours");
    let token =
        api.token_form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("scope", "repository:team/app:pull,push")]).await;
    assert_eq!(token.json()["scope"], "repository:team/app:pull");
    let token = token.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(api.send_with(&token, Method::GET, "/v2/team/app/manifests/v1", Body::empty()).await.status, StatusCode::OK);

    // Everything that must not be a login.
    let now = berth::identity::tokens::now_seconds();
    let refused = [
        ("another audience", issuer.id_token(subject, None, json!({"aud": "someone-else"}))),
        ("another issuer", issuer.id_token(subject, None, json!({"iss": "https://evil.example"}))),
        ("expired", issuer.id_token(subject, None, json!({"exp": now - 600}))),
        ("not valid yet", issuer.id_token(subject, None, json!({"nbf": now + 600}))),
        ("issued in the future", issuer.id_token(subject, None, json!({"iat": now + 600}))),
        ("tampered", {
            let token = issuer.id_token(subject, None, json!({}));
            let parts: Vec<&str> = token.split('.').collect();
            let other = issuer.id_token("repo:org/other:ref:refs/heads/main", None, json!({}));
            format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2])
        }),
        ("alg none", {
            let payload = issuer.id_token(subject, None, json!({})).split('.').nth(1).unwrap().to_owned();
            format!("{}.{payload}.", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"x"}"#))
        }),
        ("HS256", {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some(issuer.keys.lock().unwrap()[0].0.clone());
            let claims = json!({"iss": issuer.url, "aud": "berth-test-audience", "sub": subject, "iat": now, "exp": now + 300});
            jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(b"guessable").unwrap()).unwrap()
        }),
    ];
    for (what, id_token) in refused {
        let reply = api.exchange(&id_token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}: {}", String::from_utf8_lossy(&reply.body));
    }

    // A key added by the issuer (a rotation) is fetched when a token names it, once the last fetch is 10 s old;
    // unknown key ids do not make the registry fetch again and again.
    let fetched = issuer.fetches.load(std::sync::atomic::Ordering::SeqCst);
    let rotated = issuer.add_key();
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    assert_eq!(api.exchange(&issuer.id_token(subject, Some(&rotated), json!({}))).await.status, StatusCode::OK);
    let after_rotation = issuer.fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after_rotation, fetched + 1);
    let forged_kid = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("no-such-key".to_owned());
        let keys = issuer.keys.lock().unwrap();
        jsonwebtoken::encode(
            &header,
            &json!({"iss": issuer.url, "aud": "berth-test-audience", "sub": subject, "iat": now, "exp": now + 300}),
            &jsonwebtoken::EncodingKey::from_ec_der(&keys[0].1),
        )
        .unwrap()
    };
    for _ in 0..5 {
        assert_eq!(api.exchange(&forged_kid).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        issuer.fetches.load(std::sync::atomic::Ordering::SeqCst),
        after_rotation,
        "no fetch for a burst of unknown key ids right after one"
    );
}

// --- AWS IAM logins ---------------------------------------------------------------------------------------------

use berth::identity::sts::{self, CallerIdentityProof};

impl Api {
    async fn aws_exchange(&self, proof: &CallerIdentityProof) -> Reply {
        let mut form =
            vec![("grant_type", "aws_iam"), ("authorization", proof.authorization.as_str()), ("x_amz_date", proof.amz_date.as_str())];
        if let Some(token) = &proof.security_token {
            form.push(("x_amz_security_token", token));
        }
        let body = serde_urlencoded::to_string(form).unwrap();
        self.send(Method::POST, "/oauth2/exchange", &[("content-type", "application/x-www-form-urlencoded")], body).await
    }

    async fn with_sts(store: Store, endpoint: &str) -> Api {
        let external = berth::identity::ExternalLogins { oidc: None, sts_endpoint: Some(endpoint.parse().unwrap()) };
        Api::with_limits(store, super::Limits { external, ..super::DEFAULT_LIMITS }).await
    }
}

/// Temporary credentials of a session of `role` from the emulator's STS (which checks no signatures).
async fn assume_role(endpoint: &str, role: &str, session: &str) -> aws_credential_types::Credentials {
    let form = [("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", role), ("RoleSessionName", session)];
    // The emulator routes by the credential scope of the Authorization header.
    let routing = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261201/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00";
    let answer =
        reqwest::Client::new().post(endpoint).header("authorization", routing).form(&form).send().await.unwrap().text().await.unwrap();
    let element = |name: &str| {
        answer
            .split_once(&format!("<{name}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map(|(value, _)| value.to_owned())
    };
    let (key, secret, token) = (element("AccessKeyId"), element("SecretAccessKey"), element("SessionToken"));
    aws_credential_types::Credentials::new(key.expect(&answer), secret.unwrap(), token, None, "test")
}

pub async fn aws_identities_log_in_through_the_emulators_sts(store: Store) {
    let endpoint = std::env::var(berth::testing::ENDPOINT_VARIABLE).unwrap();
    let api = Api::with_sts(store, &endpoint).await;
    api.push_image("team/app", "v1", b"layer").await;
    let options = api.send(Method::GET, "/oauth2/exchange", &[], Body::empty()).await.json();
    assert_eq!(options["grant_types"], json!(["aws_iam"]));
    assert_eq!(options["aws_iam"]["registry"], REGISTRY);
    let (sts_endpoint, region) =
        (options["aws_iam"]["sts_endpoint"].as_str().unwrap().parse().unwrap(), options["aws_iam"]["region"].as_str().unwrap().to_owned());
    let role = format!("arn:aws:iam::123456789012:role/deployer-{}", uuid::Uuid::new_v4().simple());
    let credentials = assume_role(&endpoint, &role, "build-7").await;
    let proof = |credentials: aws_credential_types::Credentials, registry: &str, at: std::time::SystemTime| {
        sts::sign_caller_identity(&sts_endpoint, &region, credentials, registry, at).unwrap()
    };
    let now = std::time::SystemTime::now();

    // The assumed role's session is its role: without an assignment it has no role here.
    let unassigned = api.aws_exchange(&proof(credentials.clone(), REGISTRY, now)).await;
    unassigned.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let message = unassigned.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(&role) && message.contains("has no role"), "{message}");
    api.manage(Method::POST, "role-assignments", json!({"assignee": role, "role": "acrpush", "scope": "team/*"}), StatusCode::CREATED)
        .await;

    let reply = api.aws_exchange(&proof(credentials.clone(), REGISTRY, now)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["expires_in"], 3 * 3600, "a login lasts 3 hours");
    let refresh = reply.json()["refresh_token"].as_str().unwrap().to_owned();
    let scoped = |scope: &'static str| {
        let refresh = refresh.clone();
        let api = &api;
        async move {
            api.token_form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("scope", scope)]).await.json()["scope"].clone()
        }
    };
    assert_eq!(
        scoped("repository:team/app:pull,push,delete").await,
        "repository:team/app:metadata_write,pull,push",
        "acrpush untags but deletes nothing"
    );
    assert_eq!(scoped("repository:other/app:pull").await, "", "the assignment's scope bounds the login");

    // Proofs that must not be logins: stale, from the future, for STS in another region, without a security token.
    let refused = [
        ("signed 20 minutes ago", proof(credentials.clone(), REGISTRY, now - std::time::Duration::from_secs(20 * 60)), "too old"),
        ("signed 10 minutes ahead", proof(credentials.clone(), REGISTRY, now + std::time::Duration::from_secs(10 * 60)), "from the future"),
        (
            "for another region",
            sts::sign_caller_identity(&sts_endpoint, "eu-west-1", credentials.clone(), REGISTRY, now).unwrap(),
            "signed for STS in eu-west-1",
        ),
        ("token dropped", CallerIdentityProof { security_token: None, ..proof(credentials.clone(), REGISTRY, now) }, "exactly when"),
    ];
    for (what, proof, why) in refused {
        let reply = api.aws_exchange(&proof).await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        let message = reply.json()["errors"][0]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(why), "{what}: {message}");
    }

    // Removing the assignment ends what the login may do at once.
    let removed = api.manage(Method::DELETE, &format!("role-assignments?assignee={role}&role=acrpush"), Value::Null, StatusCode::OK).await;
    assert_eq!(removed["removed"], 1);
    assert_eq!(scoped("repository:team/app:pull").await, "");
    assert_eq!(api.aws_exchange(&proof(credentials, REGISTRY, now)).await.status, StatusCode::UNAUTHORIZED);
}

/// What the fake STS below saw of one request.
#[derive(Clone, Debug)]
struct SeenBySts {
    host: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// An STS that checks SigV4 signatures as the real one does, for a fixed secret key (the emulator checks none): the
/// test proves that the request the token service rebuilds is exactly the one the client signed.
pub async fn aws_proofs_reach_sts_exactly_as_signed(store: Store) {
    use std::sync::{Arc, Mutex};
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let credentials = || aws_credential_types::Credentials::new("AKIDEXAMPLE", SECRET, Some("session-token".into()), None, "test");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint: reqwest::Url = format!("http://{}/", listener.local_addr().unwrap()).parse().unwrap();
    let seen: Arc<Mutex<Vec<SeenBySts>>> = Arc::default();
    let (recorder, signed_for) = (seen.clone(), endpoint.clone());
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (recorder, endpoint) = (recorder.clone(), signed_for.clone());
            async move {
                let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
                let request = SeenBySts {
                    host: header("host").unwrap_or_default(),
                    headers: headers.iter().map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_owned())).collect(),
                    body,
                };
                recorder.lock().unwrap().push(request.clone());
                let date = header("x-amz-date").unwrap_or_default();
                let at = humantime::parse_rfc3339(&format!("{}-{}-{}T{}:{}:{}Z", &date[..4], &date[4..6], &date[6..8], &date[9..11], &date[11..13], &date[13..15])).unwrap();
                let expected = sts::sign_caller_identity(&endpoint, "us-east-1", credentials(), &header("x-berth-registry").unwrap_or_default(), at).unwrap();
                let genuine = header("authorization") == Some(expected.authorization)
                    && header("x-amz-security-token") == expected.security_token
                    && request.body == "Action=GetCallerIdentity&Version=2011-06-15"
                    && header("content-type").as_deref() == Some("application/x-www-form-urlencoded; charset=utf-8");
                if !genuine {
                    return (StatusCode::FORBIDDEN, "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>".to_owned());
                }
                let arn = "arn:aws:sts::123456789012:assumed-role/ci/build-1";
                (StatusCode::OK, format!("<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>{arn}</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>"))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let api = Api::with_sts(store, endpoint.as_str()).await;
    api.manage(
        Method::POST,
        "role-assignments",
        json!({"assignee": "arn:aws:iam::123456789012:role/ci", "role": "acrpull"}),
        StatusCode::CREATED,
    )
    .await;
    let now = std::time::SystemTime::now();

    let good = sts::sign_caller_identity(&endpoint, "us-east-1", credentials(), REGISTRY, now).unwrap();
    let reply = api.aws_exchange(&good).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let request = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(request.host, format!("{}:{}", endpoint.host_str().unwrap(), endpoint.port().unwrap()), "sent to the configured STS only");
    assert!(request.headers.iter().any(|(name, value)| name == "x-berth-registry" && value == REGISTRY), "{request:?}");

    // A proof this registry's clients made for another registry is a valid signature, but not of the request this
    // registry sends: STS refuses it.
    let for_another = sts::sign_caller_identity(&endpoint, "us-east-1", credentials(), "another-registry", now).unwrap();
    let reply = api.aws_exchange(&for_another).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(reply.json()["errors"][0]["message"].as_str().unwrap().contains("STS refused"), "{}", String::from_utf8_lossy(&reply.body));
    // So is one signed for another host (a caller-chosen STS).
    let elsewhere =
        sts::sign_caller_identity(&"http://sts.attacker.example/".parse().unwrap(), "us-east-1", credentials(), REGISTRY, now).unwrap();
    assert_eq!(api.aws_exchange(&elsewhere).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(seen.lock().unwrap().len(), 3, "every request went to the configured STS, none elsewhere");

    // STS down is the registry's problem, not the caller's: 503, retry later (sent past the harness, which takes
    // every 5xx for a bug).
    drop(api);
    let unreachable = Api::with_sts(store, "http://127.0.0.1:9/").await;
    let form = [
        ("grant_type", "aws_iam"),
        ("authorization", &good.authorization),
        ("x_amz_date", &good.amz_date),
        ("x_amz_security_token", "session-token"),
    ];
    let request = axum::http::Request::post("/oauth2/exchange")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(form).unwrap()))
        .unwrap();
    let response = tower::ServiceExt::oneshot(unreachable.router.clone(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["errors"][0]["code"], "UNAVAILABLE");
}

/// Every Lambda sandbox of the token function is its own process: failed logins count across all of them, exactly,
/// because the counters are in the table.
pub async fn failed_logins_count_across_processes() {
    let settings = berth::testing::fresh_aws_resources().await;
    let (_, dynamodb) = berth::store::aws::clients_from(&berth::testing::emulator_config());
    let sandbox = |seed: u8| {
        let records = std::sync::Arc::new(berth::store::dynamodb::DynamoMetadata::new(dynamodb.clone(), &settings.table));
        TokenService::new(Directory::new(records, REGISTRY.into(), None), SigningKey::from_seed(&[seed; 32]).unwrap(), &Default::default())
    };
    let (first, second) = (sandbox(1), sandbox(2));
    // One after another: the emulator's UpdateItem is no atomic ADD under racing requests (DynamoDB's is), and what
    // this test holds to is that the sandboxes share one count.
    for attempt in 0..10 {
        let sandbox = if attempt % 2 == 0 { &first } else { &second };
        let result = sandbox.password_login("sp-guessed", "wrong", &format!("198.51.100.{attempt}")).await;
        assert!(matches!(result, Err(berth::identity::LoginError::Directory(_))), "a wrong password is refused as such");
    }
    for sandbox in [&first, &second] {
        let refused = sandbox.password_login("sp-guessed", "wrong", "203.0.113.9").await;
        assert!(matches!(refused, Err(berth::identity::LoginError::TooManyFailures(_))), "{:?}", refused.err());
    }
    // Another identity from a fresh address is not affected.
    assert!(matches!(first.password_login("sp-other", "wrong", "203.0.113.10").await, Err(berth::identity::LoginError::Directory(_))));
}
