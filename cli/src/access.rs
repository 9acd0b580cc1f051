//! `berth login` and the identity commands, the counterparts of `az acr login`, `az ad sp` + `az role assignment`,
//! `az acr credential`, `az acr scope-map`, `az acr token` and `az acr update --anonymous-pull-enabled`: thin calls of
//! the management API under `/berth/v1/access/`.

use std::error::Error;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::ProvideCredentials;
use berth::identity::sts;
use clap::{Args, Subcommand};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use crate::auth::{self, Credentials, REFRESH_TOKEN_USERNAME};
use crate::client::{RegistryClient, parse_registry_url};
use crate::output::{OutputFormat, Table, emit};

/// How long a login lasts (the token service's refresh token).
const LOGIN_HOURS: u64 = 3;

/// `--registry` and `--output`, shared by every management command.
#[derive(Args)]
pub struct Target {
    /// Base URL of the registry.
    #[arg(long, global = true, env = "BERTH_REGISTRY", default_value = "http://127.0.0.1:5000", value_parser = parse_registry_url)]
    registry: Url,
    /// How to print results.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,
}

impl Target {
    pub(crate) fn client(&self) -> RegistryClient {
        RegistryClient::new(self.registry.clone())
    }

    fn emit(&self, value: &Value, human: impl FnOnce(&Value) -> String) -> Result<(), Box<dyn Error>> {
        Ok(emit(self.output, value, human)?)
    }
}

/// `REGISTRY` as `berth login` takes it: a URL, or a host name meaning HTTPS.
fn login_url(text: &str) -> Result<Url, String> {
    if text.contains("://") { parse_registry_url(text) } else { parse_registry_url(&format!("https://{text}")) }
}

#[derive(Args)]
pub struct LoginArgs {
    /// The registry: a URL (http://127.0.0.1:5000) or a host name, which means HTTPS.
    #[arg(value_parser = login_url)]
    registry: Url,
    /// Log in with a user name and password (a service principal's id, a token's name, or the admin user) ...
    #[arg(long, short = 'u', requires = "password_stdin")]
    username: Option<String>,
    /// ... whose password is read from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Log in with an OIDC ID token read from this file (single sign-on) ...
    #[arg(long, conflicts_with_all = ["username", "oidc_token_env"])]
    oidc_token_file: Option<std::path::PathBuf>,
    /// ... or from this environment variable (CI systems that mint ID tokens).
    #[arg(long, conflicts_with = "username")]
    oidc_token_env: Option<String>,
    /// Log in with your AWS identity (the SDK's default credential chain: environment, profile, SSO, instance role).
    #[arg(long, conflicts_with_all = ["username", "oidc_token_file", "oidc_token_env"])]
    aws: bool,
    /// Print the login's token as JSON instead of configuring docker (for CI).
    #[arg(long)]
    expose_token: bool,
}

pub async fn login(args: LoginArgs) -> Result<(), Box<dyn Error>> {
    let id_token = match (&args.oidc_token_file, &args.oidc_token_env) {
        (Some(file), _) => Some(std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?),
        (None, Some(variable)) => Some(std::env::var(variable).map_err(|_| format!("{variable} is not set"))?),
        (None, None) => None,
    };
    let anonymous = RegistryClient::with_credentials(args.registry.clone(), None);
    let refresh = match (id_token, args.username) {
        _ if args.aws => aws_login(&anonymous).await?,
        (Some(id_token), _) => anonymous.exchange(&[("grant_type", "id_token"), ("id_token", id_token.trim())]).await?,
        (None, Some(username)) => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let client = RegistryClient::with_credentials(args.registry.clone(), Some(Credentials { username, password }));
            let answer = client.request_token(&[], true).await?;
            answer.refresh_token.ok_or("the registry gave no refresh token for this login")?
        }
        (None, None) => return Err("give --aws, --oidc-token-file / --oidc-token-env, or --username with --password-stdin".into()),
    };
    let expires = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(LOGIN_HOURS * 3600)).to_string();
    let login_server = auth::config_key(&args.registry);
    if args.expose_token {
        let shown = json!({"accessToken": refresh, "refreshToken": refresh, "username": REFRESH_TOKEN_USERNAME, "loginServer": login_server, "expiresOn": expires});
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    let path = auth::store(&args.registry, &Credentials { username: REFRESH_TOKEN_USERNAME.to_owned(), password: refresh })?;
    println!("Login Succeeded: {login_server} until {expires} (credentials in {})", path.display());
    Ok(())
}

/// Proves the caller's AWS identity to the registry: signs sts:GetCallerIdentity for the STS endpoint, region and
/// registry name the registry names, with the SDK's default credentials, and exchanges the signature.
async fn aws_login(registry: &RegistryClient) -> Result<String, Box<dyn Error>> {
    let options = registry
        .exchange_options()
        .await?
        .aws_iam
        .ok_or("this registry does not accept AWS IAM logins (its token service has no STS endpoint)")?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let provider =
        sdk.credentials_provider().ok_or("no AWS credentials: configure them as for the AWS CLI (aws configure, AWS_PROFILE, SSO, ...)")?;
    let credentials = provider.provide_credentials().await.map_err(|error| format!("cannot load AWS credentials: {error}"))?;
    let endpoint =
        Url::parse(&options.sts_endpoint).map_err(|error| format!("the registry's STS endpoint {}: {error}", options.sts_endpoint))?;
    let proof = sts::sign_caller_identity(&endpoint, &options.region, credentials, &options.registry, SystemTime::now())?;
    let mut form =
        vec![("grant_type", "aws_iam"), ("authorization", proof.authorization.as_str()), ("x_amz_date", proof.amz_date.as_str())];
    if let Some(token) = &proof.security_token {
        form.push(("x_amz_security_token", token));
    }
    Ok(registry.exchange(&form).await?)
}

/// RFC 3339 to unix seconds, for `--expiration`.
fn unix_seconds(text: &str) -> Result<u64, String> {
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| format!("{text}: {e} (expected RFC 3339, e.g. 2027-01-31T00:00:00Z)"))?;
    Ok(time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs()))
}

fn time_of(value: &Value) -> String {
    value
        .as_u64()
        .map_or_else(|| "-".to_owned(), |seconds| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds)).to_string())
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

// --- Service principals ---------------------------------------------------------------------------------------

#[derive(Args)]
pub struct SpArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: SpCommand,
}

#[derive(Subcommand)]
enum SpCommand {
    /// Create a service principal; prints its id (the docker user name) and password, once.
    Create {
        #[arg(long)]
        name: String,
        /// acrpull, acrpush, acrdelete or owner; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The repositories the roles cover (team/*); all when absent.
        #[arg(long)]
        scope: Option<String>,
        /// When its password stops working (RFC 3339).
        #[arg(long, value_parser = unix_seconds)]
        expiration: Option<u64>,
    },
    List,
    Show {
        #[arg(long)]
        name: String,
    },
    Delete {
        #[arg(long)]
        name: String,
    },
    /// Its password.
    Credential {
        #[command(subcommand)]
        command: SpCredential,
    },
}

#[derive(Subcommand)]
enum SpCredential {
    /// A new password, printed once; the old one and every login made with it stop working.
    Reset {
        #[arg(long)]
        name: String,
    },
}

fn principal_table(principals: &[Value]) -> String {
    let mut table = Table::new(vec!["NAME", "ID", "ROLES", "SCOPE", "EXPIRES"]);
    for principal in principals {
        table.row(vec![
            text(&principal["name"]),
            text(&principal["id"]),
            text(&principal["roles"]),
            text(&principal["scope"]),
            time_of(&principal["expiresAt"]),
        ]);
    }
    table.render()
}

pub async fn sp(args: SpArgs) -> Result<(), Box<dyn Error>> {
    let (client, target) = (args.target.client(), &args.target);
    let path = |name: &str| format!("/berth/v1/access/service-principals/{name}");
    match args.command {
        SpCommand::Create { name, roles, scope, expiration } => {
            let body = json!({"name": name, "roles": roles, "scope": scope, "expiresAt": expiration});
            let created = client.manage(Method::POST, "/berth/v1/access/service-principals", &[], Some(&body)).await?;
            target.emit(&created, |created| {
                format!(
                    "{}\nid (docker user name): {}\npassword (shown only now): {}",
                    principal_table(std::slice::from_ref(created)),
                    text(&created["id"]),
                    text(&created["password"])
                )
            })
        }
        SpCommand::List => {
            let listed = client.manage(Method::GET, "/berth/v1/access/service-principals", &[], None).await?;
            target.emit(&listed["servicePrincipals"], |principals| principal_table(principals.as_array().map_or(&[][..], Vec::as_slice)))
        }
        SpCommand::Show { name } => {
            let shown = client.manage(Method::GET, &path(&name), &[], None).await?;
            target.emit(&shown, |shown| principal_table(std::slice::from_ref(shown)))
        }
        SpCommand::Delete { name } => {
            client.manage(Method::DELETE, &path(&name), &[], None).await?;
            target.emit(&json!({"deleted": name}), |_| format!("Deleted service principal {name}"))
        }
        SpCommand::Credential { command: SpCredential::Reset { name } } => {
            let reset = client.manage(Method::POST, &format!("{}/credential", path(&name)), &[], None).await?;
            let shown = json!({"id": reset["id"], "password": reset["password"]});
            target.emit(&shown, |shown| format!("id: {}\npassword (shown only now): {}", text(&shown["id"]), text(&shown["password"])))
        }
    }
}

// --- Role assignments -----------------------------------------------------------------------------------------

#[derive(Args)]
pub struct RoleArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: RoleCommand,
}

#[derive(Subcommand)]
enum RoleCommand {
    /// Role assignments: who (an IAM principal ARN, an OIDC subject, a service principal id) has which role.
    Assignment {
        #[command(subcommand)]
        command: AssignmentCommand,
    },
}

#[derive(Subcommand)]
enum AssignmentCommand {
    Create {
        #[arg(long)]
        assignee: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        scope: Option<String>,
    },
    List,
    Delete {
        #[arg(long)]
        assignee: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        scope: Option<String>,
    },
}

const ASSIGNMENTS: &str = "/berth/v1/access/role-assignments";

pub async fn role(args: RoleArgs) -> Result<(), Box<dyn Error>> {
    let (client, target) = (args.target.client(), &args.target);
    let RoleCommand::Assignment { command } = args.command;
    match command {
        AssignmentCommand::Create { assignee, role, scope } => {
            let created =
                client.manage(Method::POST, ASSIGNMENTS, &[], Some(&json!({"assignee": assignee, "role": role, "scope": scope}))).await?;
            target.emit(&created, |created| {
                format!("Assigned {} to {} over {}", text(&created["role"]), text(&created["assignee"]), text(&created["scope"]))
            })
        }
        AssignmentCommand::List => {
            let listed = client.manage(Method::GET, ASSIGNMENTS, &[], None).await?;
            target.emit(&listed["roleAssignments"], |assignments| {
                let mut table = Table::new(vec!["ASSIGNEE", "ROLE", "SCOPE"]);
                for assignment in assignments.as_array().into_iter().flatten() {
                    table.row(vec![text(&assignment["assignee"]), text(&assignment["role"]), text(&assignment["scope"])]);
                }
                table.render()
            })
        }
        AssignmentCommand::Delete { assignee, role, scope } => {
            let mut query = vec![("assignee", assignee.as_str()), ("role", role.as_str())];
            if let Some(scope) = &scope {
                query.push(("scope", scope));
            }
            let removed = client.manage(Method::DELETE, ASSIGNMENTS, &query, None).await?;
            target.emit(&removed, |removed| format!("Removed {} role assignment(s)", text(&removed["removed"])))
        }
    }
}

// --- The admin user -------------------------------------------------------------------------------------------

#[derive(Args)]
pub struct AdminArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Let the admin user (the registry's name) log in, with full access.
    Enable,
    Disable,
    /// Its two passwords.
    Credential {
        #[command(subcommand)]
        command: AdminCredential,
    },
}

#[derive(Subcommand)]
enum AdminCredential {
    /// A new password 1 or 2, printed once.
    Renew {
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
        password: u8,
    },
    /// The user name, whether it is enabled, and when each password was made (never the passwords).
    Show,
}

fn admin_text(admin: &Value) -> String {
    let mut table = Table::new(vec!["USERNAME", "ENABLED", "PASSWORD", "CREATED"]);
    for password in admin["passwords"].as_array().into_iter().flatten() {
        table.row(vec![text(&admin["username"]), text(&admin["enabled"]), text(&password["name"]), time_of(&password["createdAt"])]);
    }
    table.render()
}

pub async fn admin(args: AdminArgs) -> Result<(), Box<dyn Error>> {
    let (client, target) = (args.target.client(), &args.target);
    match args.command {
        AdminCommand::Enable | AdminCommand::Disable => {
            let enabled = matches!(args.command, AdminCommand::Enable);
            let admin = client.manage(Method::PATCH, "/berth/v1/access/admin", &[], Some(&json!({"enabled": enabled}))).await?;
            target.emit(&admin, admin_text)
        }
        AdminCommand::Credential { command: AdminCredential::Show } => {
            let admin = client.manage(Method::GET, "/berth/v1/access/admin", &[], None).await?;
            target.emit(&admin, admin_text)
        }
        AdminCommand::Credential { command: AdminCredential::Renew { password } } => {
            renew_password(target, &client, "/berth/v1/access/admin", password).await
        }
    }
}

/// Makes password `slot` (1 or 2) of the admin user or token at `path` anew and prints it, once.
async fn renew_password(target: &Target, client: &RegistryClient, path: &str, slot: u8) -> Result<(), Box<dyn Error>> {
    let renewed = client.manage(Method::POST, &format!("{path}/passwords/{slot}"), &[], None).await?;
    target.emit(&renewed, |renewed| {
        format!("username: {}\npassword{slot} (shown only now): {}", text(&renewed["username"]), text(&renewed["password"]))
    })
}

// --- Scope maps and tokens ------------------------------------------------------------------------------------

#[derive(Args)]
pub struct ScopeMapArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: ScopeMapCommand,
}

#[derive(Subcommand)]
enum ScopeMapCommand {
    Create {
        #[arg(long)]
        name: String,
        /// The repositories it covers (team/*).
        #[arg(long)]
        repository: String,
        /// content/read, content/write, content/delete, metadata/read, metadata/write (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        actions: Vec<String>,
    },
    List,
    Show {
        #[arg(long)]
        name: String,
    },
    Delete {
        #[arg(long)]
        name: String,
    },
}

fn scope_map_table(maps: &[Value]) -> String {
    let mut table = Table::new(vec!["NAME", "REPOSITORY", "ACTIONS"]);
    for map in maps {
        table.row(vec![text(&map["name"]), text(&map["repository"]), text(&map["actions"])]);
    }
    table.render()
}

pub async fn scope_map(args: ScopeMapArgs) -> Result<(), Box<dyn Error>> {
    let (client, target) = (args.target.client(), &args.target);
    let path = |name: &str| format!("/berth/v1/access/scope-maps/{name}");
    match args.command {
        ScopeMapCommand::Create { name, repository, actions } => {
            let body = json!({"name": name, "repository": repository, "actions": actions});
            let created = client.manage(Method::POST, "/berth/v1/access/scope-maps", &[], Some(&body)).await?;
            target.emit(&created, |created| scope_map_table(std::slice::from_ref(created)))
        }
        ScopeMapCommand::List => {
            let listed = client.manage(Method::GET, "/berth/v1/access/scope-maps", &[], None).await?;
            target.emit(&listed["scopeMaps"], |maps| scope_map_table(maps.as_array().map_or(&[][..], Vec::as_slice)))
        }
        ScopeMapCommand::Show { name } => {
            let shown = client.manage(Method::GET, &path(&name), &[], None).await?;
            target.emit(&shown, |shown| scope_map_table(std::slice::from_ref(shown)))
        }
        ScopeMapCommand::Delete { name } => {
            client.manage(Method::DELETE, &path(&name), &[], None).await?;
            target.emit(&json!({"deleted": name}), |_| format!("Deleted scope map {name}"))
        }
    }
}

#[derive(Args)]
pub struct TokenArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a repository-scoped token; prints its user name and two passwords, once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        scope_map: String,
        /// When its passwords stop working (RFC 3339).
        #[arg(long, value_parser = unix_seconds)]
        expiration: Option<u64>,
    },
    List,
    Delete {
        #[arg(long)]
        name: String,
    },
    /// Its passwords.
    Credential {
        #[command(subcommand)]
        command: TokenCredential,
    },
}

#[derive(Subcommand)]
enum TokenCredential {
    /// A new password 1 or 2, printed once.
    Renew {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
        password: u8,
    },
}

pub async fn token(args: TokenArgs) -> Result<(), Box<dyn Error>> {
    let (client, target) = (args.target.client(), &args.target);
    match args.command {
        TokenCommand::Create { name, scope_map, expiration } => {
            let body = json!({"name": name, "scopeMap": scope_map, "expiresAt": expiration});
            let created = client.manage(Method::POST, "/berth/v1/access/tokens", &[], Some(&body)).await?;
            let shown = json!({"username": created["username"], "passwords": created["passwords"], "scopeMap": created["scopeMap"], "expiresAt": created["expiresAt"]});
            target.emit(&shown, |shown| {
                let passwords = shown["passwords"].as_array().map(|all| all.iter().map(text).collect::<Vec<_>>()).unwrap_or_default();
                format!("username: {}\npasswords (shown only now):\n  {}", text(&shown["username"]), passwords.join("\n  "))
            })
        }
        TokenCommand::List => {
            let listed = client.manage(Method::GET, "/berth/v1/access/tokens", &[], None).await?;
            target.emit(&listed["tokens"], |tokens| {
                let mut table = Table::new(vec!["USERNAME", "SCOPE MAP", "CREATED", "EXPIRES"]);
                for token in tokens.as_array().into_iter().flatten() {
                    table.row(vec![
                        text(&token["username"]),
                        text(&token["scopeMap"]),
                        time_of(&token["createdAt"]),
                        time_of(&token["expiresAt"]),
                    ]);
                }
                table.render()
            })
        }
        TokenCommand::Delete { name } => {
            client.manage(Method::DELETE, &format!("/berth/v1/access/tokens/{name}"), &[], None).await?;
            target.emit(&json!({"deleted": name}), |_| format!("Deleted token {name}"))
        }
        TokenCommand::Credential { command: TokenCredential::Renew { name, password } } => {
            renew_password(target, &client, &format!("/berth/v1/access/tokens/{name}"), password).await
        }
    }
}

// --- Registry settings ----------------------------------------------------------------------------------------

#[derive(Args)]
pub struct RegistryArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// The registry's name and access settings.
    Show,
    Update {
        /// Let anyone pull without logging in.
        #[arg(long)]
        anonymous_pull: Option<bool>,
        /// Refuse pulls of images with vulnerabilities at least this severe: critical, high, medium, low or unknown
        /// (any finding); `none` turns blocking off (the default). Images not scanned yet are served.
        #[arg(long, value_name = "LEVEL")]
        block_severity: Option<String>,
        /// An advisory (by id, or a CVE among its aliases) that never blocks a pull; repeat for more. Replaces the
        /// list; `--allow-advisory ''` empties it.
        #[arg(long = "allow-advisory", value_name = "ID")]
        allow_advisories: Vec<String>,
        /// The registry's tier: basic, standard or premium (any case). A move to a lower tier is refused while a
        /// feature of the higher one is in use.
        #[arg(long, value_name = "TIER")]
        sku: Option<String>,
    },
}

pub async fn registry(args: RegistryArgs) -> Result<(), Box<dyn Error>> {
    let (client, target) = (args.target.client(), &args.target);
    let shown = match args.command {
        RegistryCommand::Show => client.manage(Method::GET, "/berth/v1/access/registry", &[], None).await?,
        RegistryCommand::Update { anonymous_pull, block_severity, allow_advisories, sku } => {
            let allowed: Option<Vec<&String>> =
                (!allow_advisories.is_empty()).then(|| allow_advisories.iter().filter(|id| !id.is_empty()).collect());
            let change =
                json!({"anonymousPull": anonymous_pull, "blockSeverity": block_severity, "allowedAdvisories": allowed, "sku": sku});
            client.manage(Method::PATCH, "/berth/v1/access/registry", &[], Some(&change)).await?
        }
    };
    target.emit(&shown, |shown| {
        let mut table = Table::new(vec!["NAME", "SKU", "ANONYMOUS PULL", "BLOCK SEVERITY", "ALLOWED ADVISORIES"]);
        let allowed: Vec<String> = shown["allowedAdvisories"].as_array().into_iter().flatten().map(text).collect();
        let or_none = |value: &Value| if value.is_null() { "none".to_owned() } else { text(value) };
        let row = [text(&shown["name"]), or_none(&shown["sku"]), text(&shown["anonymousPull"]), or_none(&shown["blockSeverity"])];
        table.row(row.into_iter().chain([allowed.join(", ")]).collect());
        table.render()
    })
}
