//! The management API of identities and access settings (`/berth/v1/access/...`), served by the token function:
//! service principals, role assignments, the admin user, scope maps and tokens, anonymous pull. Every endpoint
//! needs `registry:manage:*` (an unscoped owner or the admin user). Passwords appear only in the response that
//! creates or renews them.

use axum::{
    Json,
    body::Body,
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use scanner::Severity;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::json;

use super::{Call, routes::AccessResource};
use crate::{
    error::Error,
    identity::{
        TokenService,
        access::{RepositoryPattern, Role},
        directory::{
            AdminUser, Directory, DirectoryError, RegistrySettings, RepositoryToken, RoleAssignment, ServicePrincipal, SettingsUpdate,
        },
    },
    tier::Sku,
};

const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewPrincipal {
    name: String,
    roles: Vec<String>,
    #[serde(default)]
    scope: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    expires_at: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewAssignment {
    assignee: String,
    role: String,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AdminChange {
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewScopeMap {
    name: String,
    repository: String,
    actions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewToken {
    name: String,
    scope_map: String,
    #[serde(default)]
    expires_at: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsChange {
    #[serde(default)]
    anonymous_pull: Option<bool>,
    /// A severity (any case), or `none` to stop blocking.
    #[serde(default)]
    block_severity: Option<String>,
    #[serde(default)]
    allowed_advisories: Option<Vec<String>>,
    /// basic, standard or premium, any case.
    #[serde(default)]
    sku: Option<String>,
}

impl SettingsChange {
    fn update(self) -> Result<SettingsUpdate, Error> {
        let block_severity = match self.block_severity.as_deref() {
            None => None,
            Some(none) if none.eq_ignore_ascii_case("none") => Some(None),
            Some(level) => {
                Some(Some(level.parse::<Severity>().map_err(|error| Error::InvalidRequest(format!("blockSeverity: {error}, or none")))?))
            }
        };
        let sku = self.sku.map(|text| text.parse::<Sku>().map_err(|error| Error::InvalidRequest(format!("sku: {error}")))).transpose()?;
        Ok(SettingsUpdate { anonymous_pull: self.anonymous_pull, block_severity, allowed_advisories: self.allowed_advisories, sku })
    }
}

/// The registry's settings as the API shows them.
fn settings_view(directory: &Directory, settings: &RegistrySettings) -> serde_json::Value {
    let sku = directory.sku(settings);
    json!({
        "name": directory.registry(),
        "anonymousPull": settings.anonymous_pull,
        "blockSeverity": settings.block_severity,
        "allowedAdvisories": settings.allowed_advisories,
        "sku": sku,
        "limits": sku.map(Sku::limits),
    })
}

/// A service principal as listed: never its password.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PrincipalView<'a> {
    id: &'a str,
    name: &'a str,
    roles: Vec<&'static str>,
    scope: &'a str,
    created_at: u64,
    expires_at: Option<u64>,
    password_created_at: u64,
}

impl<'a> From<&'a ServicePrincipal> for PrincipalView<'a> {
    fn from(principal: &'a ServicePrincipal) -> Self {
        Self {
            id: &principal.id,
            name: &principal.name,
            roles: principal.roles.iter().map(|role| role.as_str()).collect(),
            scope: principal.scope.as_str(),
            created_at: principal.created_at,
            expires_at: principal.expires_at,
            password_created_at: principal.password.created_at,
        }
    }
}

fn admin_view(registry: &str, admin: &AdminUser) -> serde_json::Value {
    let passwords: Vec<serde_json::Value> = admin
        .passwords
        .iter()
        .enumerate()
        .map(|(index, slot)| json!({"name": format!("password{}", index + 1), "createdAt": slot.as_ref().map(|stored| stored.created_at)}))
        .collect();
    json!({"username": registry, "enabled": admin.enabled, "passwords": passwords})
}

fn token_view(token: &RepositoryToken) -> serde_json::Value {
    let passwords: Vec<serde_json::Value> = token
        .passwords
        .iter()
        .enumerate()
        .map(|(index, slot)| json!({"name": format!("password{}", index + 1), "createdAt": slot.as_ref().map(|stored| stored.created_at)}))
        .collect();
    json!({"username": token.name, "scopeMap": token.scope_map, "createdAt": token.created_at, "expiresAt": token.expires_at, "passwords": passwords})
}

pub(super) async fn handle(
    tokens: &TokenService,
    method: Method,
    resource: AccessResource,
    call: &Call<'_>,
    body: Body,
) -> Result<Response, Error> {
    match serve(tokens, &method, resource, call, body).await {
        Ok(response) => Ok(response),
        Err(Failure::Directory(DirectoryError::Store(error))) => Err(Error::Store(error)),
        Err(Failure::Directory(error)) => Ok(directory_refusal(error)),
        Err(Failure::Request(error)) => Err(error),
    }
}

enum Failure {
    Directory(DirectoryError),
    Request(Error),
}

impl From<DirectoryError> for Failure {
    fn from(error: DirectoryError) -> Self {
        Failure::Directory(error)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Request(error)
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::Directory(DirectoryError::Invalid(message.into()))
}

fn directory_refusal(error: DirectoryError) -> Response {
    let (status, code) = match &error {
        DirectoryError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        DirectoryError::Exists(_) => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
        DirectoryError::Invalid(_) => (StatusCode::BAD_REQUEST, "INVALID_REQUEST"),
        _ => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
    };
    (status, Json(json!({"errors": [{"code": code, "message": error.to_string(), "detail": null}]}))).into_response()
}

async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, Failure> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| invalid(format!("the request body is larger than {MAX_BODY_BYTES} bytes")))?;
    serde_json::from_slice(&bytes).map_err(|error| invalid(format!("invalid request body: {error}")))
}

fn roles(names: &[String]) -> Result<Vec<Role>, Failure> {
    let mut roles: Vec<Role> = names.iter().map(|name| Role::parse(name).map_err(invalid)).collect::<Result<_, _>>()?;
    roles.sort();
    roles.dedup();
    Ok(roles)
}

fn pattern(text: Option<&str>) -> Result<RepositoryPattern, Failure> {
    text.map_or(Ok(RepositoryPattern::everything()), |text| RepositoryPattern::parse(text).map_err(invalid))
}

fn created(body: serde_json::Value) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

fn ok(body: serde_json::Value) -> Response {
    Json(body).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn serve(tokens: &TokenService, method: &Method, resource: AccessResource, call: &Call<'_>, body: Body) -> Result<Response, Failure> {
    let directory = tokens.directory();
    let unsupported = || Failure::Request(Error::Unsupported(format!("method {method} is not allowed here")));
    Ok(match (resource, method.clone()) {
        (AccessResource::Principals, Method::GET) => {
            let principals = directory.principals().await?;
            ok(json!({"servicePrincipals": principals.iter().map(PrincipalView::from).collect::<Vec<_>>()}))
        }
        (AccessResource::Principals, Method::POST) => {
            let new: NewPrincipal = read_json(body).await?;
            let (principal, password) =
                directory.create_principal(&new.name, roles(&new.roles)?, pattern(new.scope.as_deref())?, new.expires_at).await?;
            let mut view = serde_json::to_value(PrincipalView::from(&principal)).expect("views serialize");
            view["password"] = json!(password);
            created(view)
        }
        (AccessResource::Principal(name), Method::GET) => {
            ok(serde_json::to_value(PrincipalView::from(&directory.principal_named(&name).await?)).expect("views serialize"))
        }
        (AccessResource::Principal(name), Method::DELETE) => {
            directory.delete_principal(&name).await?;
            no_content()
        }
        (AccessResource::PrincipalCredential(name), Method::POST) => {
            let (principal, password) = directory.reset_principal(&name).await?;
            ok(json!({"id": principal.id, "name": principal.name, "password": password}))
        }
        (AccessResource::RoleAssignments, Method::GET) => ok(json!({"roleAssignments": directory.role_assignments().await?})),
        (AccessResource::RoleAssignments, Method::POST) => {
            let new: NewAssignment = read_json(body).await?;
            let role = Role::parse(&new.role).map_err(invalid)?;
            let assignment = RoleAssignment { assignee: new.assignee.trim().to_owned(), role, scope: pattern(new.scope.as_deref())? };
            directory.create_assignment(assignment.clone()).await?;
            created(serde_json::to_value(assignment).expect("assignments serialize"))
        }
        (AccessResource::RoleAssignments, Method::DELETE) => {
            let assignee = call.query("assignee").ok_or_else(|| invalid("?assignee= is required"))?;
            let role = Role::parse(&call.query("role").ok_or_else(|| invalid("?role= is required"))?).map_err(invalid)?;
            let scope = call.query("scope").map(|scope| RepositoryPattern::parse(&scope).map_err(invalid)).transpose()?;
            let removed = directory.delete_assignments(&assignee, role, scope.as_ref()).await?;
            ok(json!({"removed": removed}))
        }
        (AccessResource::Admin, Method::GET) => ok(admin_view(directory.registry(), &directory.admin().await?)),
        (AccessResource::Admin, Method::PATCH) => {
            let change: AdminChange = read_json(body).await?;
            ok(admin_view(directory.registry(), &directory.set_admin_enabled(change.enabled).await?))
        }
        (AccessResource::AdminPassword(slot), Method::POST) => {
            let password = directory.renew_admin_password(slot).await?;
            ok(json!({"username": directory.registry(), "password": password}))
        }
        (AccessResource::ScopeMaps, Method::GET) => ok(json!({"scopeMaps": directory.scope_maps().await?})),
        (AccessResource::ScopeMaps, Method::POST) => {
            let new: NewScopeMap = read_json(body).await?;
            let map = directory.create_scope_map(&new.name, pattern(Some(&new.repository))?, new.actions).await?;
            created(serde_json::to_value(map).expect("scope maps serialize"))
        }
        (AccessResource::ScopeMap(name), Method::GET) => {
            ok(serde_json::to_value(directory.scope_map(&name).await?).expect("scope maps serialize"))
        }
        (AccessResource::ScopeMap(name), Method::DELETE) => {
            directory.delete_scope_map(&name).await?;
            no_content()
        }
        (AccessResource::Tokens, Method::GET) => {
            ok(json!({"tokens": directory.tokens().await?.iter().map(token_view).collect::<Vec<_>>()}))
        }
        (AccessResource::Tokens, Method::POST) => {
            let new: NewToken = read_json(body).await?;
            let (token, passwords) = directory.create_token(&new.name, &new.scope_map, new.expires_at).await?;
            let mut view = token_view(&token);
            view["passwords"] = json!(passwords);
            created(view)
        }
        (AccessResource::Token(name), Method::GET) => ok(token_view(&directory.token(&name).await?)),
        (AccessResource::Token(name), Method::DELETE) => {
            directory.delete_token(&name).await?;
            no_content()
        }
        (AccessResource::TokenPassword(name, slot), Method::POST) => {
            let password = directory.renew_token_password(&name, slot).await?;
            ok(json!({"username": name, "password": password}))
        }
        (AccessResource::Registry, Method::GET) => ok(settings_view(directory, &directory.settings().await?)),
        (AccessResource::Registry, Method::PATCH) => {
            let change: SettingsChange = read_json(body).await?;
            ok(settings_view(directory, &directory.update_settings(change.update()?).await?))
        }
        _ => return Err(unsupported()),
    })
}
