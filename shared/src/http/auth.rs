//! The access check in front of every endpoint: what each endpoint needs, the bearer token that must grant it, and
//! docker's challenge (`401` with `WWW-Authenticate: Bearer realm,service,scope`) when it does not.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{Call, header_value, routes::Endpoint};
use crate::{
    identity::{
        Gate,
        access::{Action, Granted, Scope},
    },
    oci::{Reference, RepositoryName},
};

/// What a request must be allowed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Need {
    /// Nothing: the token endpoints, where credentials are checked instead.
    Nothing,
    /// Any valid token (`GET /v2/`, which tells a client whether it is logged in).
    AnyToken,
    Catalog,
    Manage,
    /// One of `actions` on a repository (the first is what a challenge asks for).
    Repository(RepositoryName, &'static [Action]),
}

/// What `endpoint` needs.
pub(super) fn need(endpoint: &Endpoint) -> Need {
    use Action::*;
    let repository = |name: &RepositoryName, actions| Need::Repository(name.clone(), actions);
    match endpoint {
        Endpoint::Token | Endpoint::TokenExchange => Need::Nothing,
        Endpoint::ApiVersion => Need::AnyToken,
        Endpoint::Catalog => Need::Catalog,
        Endpoint::Access { .. } | Endpoint::ImportAdvisories => Need::Manage,
        Endpoint::ScanReport { name, .. } => repository(name, &[MetadataRead]),
        Endpoint::ListTags { name } | Endpoint::ListManifests { name } => repository(name, &[Pull, MetadataRead]),
        Endpoint::GetManifest { name, .. } | Endpoint::Referrers { name, .. } | Endpoint::GetBlob { name, .. } => repository(name, &[Pull]),
        Endpoint::PutManifest { name, .. }
        | Endpoint::StartUpload { name }
        | Endpoint::UploadStatus { name, .. }
        | Endpoint::PatchUpload { name, .. }
        | Endpoint::FinishUpload { name, .. }
        | Endpoint::CancelUpload { name, .. } => repository(name, &[Push]),
        // Deleting by tag only untags, which metadata/write allows.
        Endpoint::DeleteManifest { name, reference: Reference::Tag(_) } => repository(name, &[Delete, MetadataWrite]),
        Endpoint::DeleteManifest { name, .. } | Endpoint::DeleteBlob { name, .. } | Endpoint::DeleteRepository { name } => {
            repository(name, &[Delete])
        }
    }
}

impl Need {
    fn met_by(&self, granted: &Granted) -> bool {
        match self {
            Need::Nothing | Need::AnyToken => true,
            Need::Catalog => granted.allows_registry("catalog"),
            Need::Manage => granted.allows_registry("manage"),
            Need::Repository(name, actions) => actions.iter().any(|action| granted.allows_repository(name, *action)),
        }
    }

    /// The scope a challenge tells the client to ask for.
    fn scope(&self) -> Option<Scope> {
        match self {
            Need::Nothing | Need::AnyToken => None,
            Need::Catalog => Some(Scope::Catalog),
            Need::Manage => Some(Scope::Manage),
            Need::Repository(name, actions) => {
                // Pushing clients pull too (docker checks for layers first), so a push challenge asks for both.
                let asked = if actions[0] == Action::Push { vec![Action::Pull, Action::Push] } else { vec![actions[0]] };
                Some(Scope::Repository { name: name.clone(), actions: asked })
            }
        }
    }
}

/// Checks the request's bearer token against what the endpoint needs: what the token grants (handlers check extra
/// access with it, such as a mount's source), or the 401 to answer.
pub(super) async fn authorize(gate: &Gate, endpoint: &Endpoint, call: &Call<'_>) -> Result<Granted, Response> {
    let need = need(endpoint);
    if need == Need::Nothing {
        return Ok(Granted::default());
    }
    let authorization = call.header(header::AUTHORIZATION).and_then(|value| value.split_once(' '));
    if let Some((scheme, credentials)) = authorization.filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic")) {
        return basic(gate, &need, endpoint, call, scheme, credentials).await;
    }
    let bearer = authorization.and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()));
    let Some(token) = bearer else {
        audit(endpoint, "-", "denied: no token");
        return Err(challenge(gate, &need, call, None));
    };
    let (claims, granted) = match gate.verify(token).await {
        Ok(verified) => verified,
        Err(error) => {
            audit(endpoint, "-", &format!("denied: {error}"));
            return Err(challenge(gate, &need, call, Some(("invalid_token", error.to_string()))));
        }
    };
    if !need.met_by(&granted) {
        audit(endpoint, &claims.sub, "denied: insufficient scope");
        return Err(challenge(gate, &need, call, Some(("insufficient_scope", "the token does not grant this access".to_owned()))));
    }
    Ok(granted)
}

/// A request carrying Basic credentials: granted what the identity's rules allow of what the endpoint needs (and of
/// a mount's source), as a token for those scopes would be.
async fn basic(gate: &Gate, need: &Need, endpoint: &Endpoint, call: &Call<'_>, scheme: &str, credentials: &str) -> Result<Granted, Response> {
    let header = format!("{scheme} {credentials}");
    let Some((username, password)) = super::token::basic_pair(&header) else {
        return Err(challenge(gate, need, call, Some(("invalid_token", "malformed Basic credentials".to_owned()))));
    };
    let mut scopes: Vec<Scope> = need.scope().into_iter().collect();
    if let Endpoint::StartUpload { .. } = endpoint
        && let Some(from) = call.query("from").and_then(|from| RepositoryName::parse(&from).ok())
    {
        scopes.push(Scope::Repository { name: from, actions: vec![Action::Pull] });
    }
    match gate.basic(&username, &password, &call.source(), &scopes).await {
        Ok((_, granted)) if need.met_by(&granted) => Ok(granted),
        Ok((subject, _)) => {
            audit(endpoint, &subject, "denied: insufficient access");
            Err(challenge(gate, need, call, Some(("insufficient_scope", "the credentials do not grant this access".to_owned()))))
        }
        Err(error) => {
            audit(endpoint, &username, &format!("denied: {error}"));
            Err(super::token::login_refusal(error))
        }
    }
}

/// One audit line per refused request (granted tokens are audited where they are issued).
fn audit(endpoint: &Endpoint, subject: &str, outcome: &str) {
    tracing::info!(target: "berth::audit", identity = subject, endpoint = ?endpoint, outcome, "access");
}

/// The URL of the token endpoint, as the client reaches the registry: the public URL when configured, else what the
/// request says (the proxy's `X-Forwarded-*` headers, which CloudFront and nginx set, or its `Host`).
pub(super) fn realm(call: &Call<'_>) -> String {
    if let Some(base) = call.public_url {
        return super::PublicUrl::url(Some(base), "/token");
    }
    let host = call.header("x-forwarded-host").or_else(|| call.header(header::HOST)).unwrap_or("localhost");
    let scheme = call.header("x-forwarded-proto").or_else(|| call.header("cloudfront-forwarded-proto")).unwrap_or(if call.tls { "https" } else { "http" });
    format!("{scheme}://{host}/token")
}

/// docker's challenge: where to get a token, for which service and scope, and (with a token) why it was not enough.
fn challenge(gate: &Gate, need: &Need, call: &Call<'_>, error: Option<(&str, String)>) -> Response {
    let mut value = format!(r#"Bearer realm="{}",service="{}""#, realm(call), gate.registry());
    if let Some(scope) = need.scope() {
        value.push_str(&format!(r#",scope="{scope}""#));
    }
    let (code, message) = match &error {
        Some(("insufficient_scope", _)) => ("DENIED", "requested access to the resource is denied".to_owned()),
        Some((_, message)) => ("UNAUTHORIZED", format!("authentication required: {message}")),
        None => ("UNAUTHORIZED", "authentication required".to_owned()),
    };
    if let Some((kind, _)) = error {
        value.push_str(&format!(r#",error="{kind}""#));
    }
    let detail: Vec<serde_json::Value> = match need.scope() {
        Some(Scope::Repository { name, actions }) => {
            actions.iter().map(|action| json!({"Type": "repository", "Name": name.as_str(), "Action": action.as_str()})).collect()
        }
        Some(Scope::Catalog) => vec![json!({"Type": "registry", "Name": "catalog", "Action": "*"})],
        Some(Scope::Manage) => vec![json!({"Type": "registry", "Name": "manage", "Action": "*"})],
        None => Vec::new(),
    };
    let body = json!({"errors": [{"code": code, "message": message, "detail": detail}]});
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header_value(value));
    response
}
