//! The identities a registry knows and what they may do: service principals, role assignments, the admin user,
//! scope maps with their repository-scoped tokens, and the registry's access settings, kept as records in the
//! store's [`IdentityRecords`] port.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scanner::Severity;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{
    access::{Action, Permissions, RepositoryPattern, Role, Rule, scope_map_action},
    keys::PublicKey,
    secrets::{self, StoredSecret},
    tokens::now_seconds,
};
use crate::{
    store::{IdentityRecords, RecordCondition, StoreError},
    tier::{Feature, Sku},
};

/// ACR's docker user name for a refresh token given as the password (`az acr login`).
pub const REFRESH_TOKEN_USERNAME: &str = "00000000-0000-0000-0000-000000000000";

const PRINCIPAL: &str = "principal";
const PRINCIPAL_NAME: &str = "principal-name";
const ASSIGNMENT: &str = "assignment";
const ADMIN: &str = "admin";
const SCOPE_MAP: &str = "scope-map";
const TOKEN: &str = "token";
const SETTINGS: &str = "settings";
const SIGNING_KEY: &str = "signing-key";

/// A service principal: automation's identity, logging in with its id and password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePrincipal {
    pub id: String,
    pub name: String,
    pub roles: Vec<Role>,
    pub scope: RepositoryPattern,
    pub password: StoredSecret,
    pub created_at: u64,
    pub expires_at: Option<u64>,
}

/// A role given to an IAM principal ARN, an OIDC subject or a service principal id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub assignee: String,
    pub role: Role,
    pub scope: RepositoryPattern,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdminUser {
    pub enabled: bool,
    /// Two passwords, so one can be renewed while clients still use the other.
    pub passwords: [Option<StoredSecret>; 2],
}

/// ACR's scope map: actions on the repositories matching a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeMap {
    pub name: String,
    pub repository: RepositoryPattern,
    pub actions: Vec<String>,
}

/// A repository-scoped token: a user name with two passwords, reaching what its scope map allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryToken {
    pub name: String,
    pub scope_map: String,
    pub passwords: [Option<StoredSecret>; 2],
    pub created_at: u64,
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrySettings {
    pub anonymous_pull: bool,
    /// Pulls of images with findings at least this severe are refused (off when `None`, the default).
    #[serde(default)]
    pub block_severity: Option<Severity>,
    /// Advisories (by id or alias, a CVE say) that never block a pull.
    #[serde(default)]
    pub allowed_advisories: Vec<String>,
    /// The tier chosen for the registry; `None` leaves the deployment's ([`Directory::with_default_sku`]).
    #[serde(default)]
    pub sku: Option<Sku>,
}

/// A change of the registry's settings: `None` keeps a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsUpdate {
    pub anonymous_pull: Option<bool>,
    /// `Some(None)` turns blocking off.
    pub block_severity: Option<Option<Severity>>,
    pub allowed_advisories: Option<Vec<String>>,
    pub sku: Option<Sku>,
}

/// Who a token speaks for, as its `sub` claim spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    ServicePrincipal(String),
    Admin,
    Token(String),
    /// An IAM principal ARN (a role, for assumed-role sessions) or an OIDC subject: known by role assignments alone.
    External(String),
    Anonymous,
}

impl Subject {
    pub fn parse(text: &str) -> Option<Subject> {
        match text.split_once(':') {
            Some(("sp", id)) => Some(Subject::ServicePrincipal(id.to_owned())),
            Some(("token", name)) => Some(Subject::Token(name.to_owned())),
            Some(("ext", assignee)) => Some(Subject::External(assignee.to_owned())),
            _ if text == "admin" => Some(Subject::Admin),
            _ if text == "anonymous" => Some(Subject::Anonymous),
            _ => None,
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::ServicePrincipal(id) => write!(f, "sp:{id}"),
            Subject::Token(name) => write!(f, "token:{name}"),
            Subject::External(assignee) => write!(f, "ext:{assignee}"),
            Subject::Admin => f.write_str("admin"),
            Subject::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// A proven identity: who, what they may do, and which credential proved it (for refresh tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub subject: Subject,
    pub permissions: Permissions,
    pub credential: Option<String>,
}

/// Why a login or a management change failed; each says enough for the user to act, never which part of a
/// credential was wrong.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("invalid username or password")]
    BadCredentials,
    #[error("the admin user is disabled; an owner can enable it with `berth admin enable`")]
    AdminDisabled,
    #[error("the credentials of {0} have expired")]
    Expired(String),
    #[error("the login has ended (its identity was removed or its credential renewed); log in again")]
    LoginEnded,
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The registry's identities over its store. `registry` is the registry's name, which is also the admin user name.
#[derive(Clone)]
pub struct Directory {
    records: Arc<dyn IdentityRecords>,
    registry: String,
    /// The IAM principal the deployment names as its first owner (on AWS), an owner whatever the records say.
    bootstrap_owner: Option<String>,
    /// The settings as this process last read or wrote them: what [`Directory::recent_settings`] serves.
    settings_seen: Arc<Mutex<SettingsSeen>>,
    /// The deployment's tier (template parameter `Sku`, `berth serve --sku`), where the settings choose none.
    default_sku: Option<Sku>,
}

/// The settings a process last saw, and when; `generation` counts the process's own updates, so a read that
/// started before one never replaces what it wrote.
#[derive(Default)]
struct SettingsSeen {
    generation: u64,
    copy: Option<(Instant, RegistrySettings)>,
}

/// How long [`Directory::recent_settings`] trusts settings it read: a change made through another process (another
/// Lambda sandbox) applies within this time; one made through this process applies at once.
pub const SETTINGS_MAX_AGE: Duration = Duration::from_secs(10);

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records serialize")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn assignment_key(assignment: &RoleAssignment) -> String {
    format!("{}\n{}\n{}", assignment.assignee, assignment.role.as_str(), assignment.scope)
}

/// A new password for slot `slot` (1 or 2) of `passwords`, returning the password.
fn renew_slot(passwords: &mut [Option<StoredSecret>; 2], slot: u8) -> Result<String, DirectoryError> {
    let index = match slot {
        1 | 2 => usize::from(slot - 1),
        other => return Err(DirectoryError::Invalid(format!("password {other}: there are passwords 1 and 2"))),
    };
    let (password, stored) = secrets::generate(now_seconds());
    passwords[index] = Some(stored);
    Ok(password)
}

/// Which of two passwords `password` is, naming it for refresh tokens (`<slot>:<created_at>`).
fn matching_slot(passwords: &[Option<StoredSecret>; 2], password: &str) -> Option<String> {
    passwords.iter().enumerate().find_map(|(index, slot)| {
        slot.as_ref().filter(|stored| stored.matches(password)).map(|stored| format!("{}:{}", index + 1, stored.created_at))
    })
}

fn slot_still_matches(passwords: &[Option<StoredSecret>; 2], credential: &str) -> bool {
    passwords
        .iter()
        .enumerate()
        .any(|(index, slot)| slot.as_ref().is_some_and(|stored| format!("{}:{}", index + 1, stored.created_at) == credential))
}

impl Directory {
    pub fn new(records: Arc<dyn IdentityRecords>, registry: String, bootstrap_owner: Option<String>) -> Self {
        Self { records, registry, bootstrap_owner, settings_seen: Arc::default(), default_sku: None }
    }

    /// The directory of a deployment of tier `sku` (none: no tier, nothing limited), unless its settings choose one.
    pub fn with_default_sku(mut self, sku: Option<Sku>) -> Self {
        self.default_sku = sku;
        self
    }

    /// The registry's tier: its settings' choice, else the deployment's.
    pub fn sku(&self, settings: &RegistrySettings) -> Option<Sku> {
        settings.sku.or(self.default_sku)
    }

    /// The records underneath, for what keeps no identity (the shared failed-login counters).
    pub fn records(&self) -> &dyn IdentityRecords {
        self.records.as_ref()
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    async fn get<T: DeserializeOwned>(&self, kind: &'static str, key: &str) -> Result<Option<T>, StoreError> {
        self.records.record(kind, key).await?.map(|bytes| decode(&bytes)).transpose()
    }

    async fn all<T: DeserializeOwned>(&self, kind: &'static str) -> Result<Vec<T>, StoreError> {
        self.records.records(kind).await?.iter().map(|(_, bytes)| decode(bytes)).collect()
    }

    async fn create<T: Serialize>(&self, kind: &'static str, key: &str, record: &T, what: String) -> Result<(), DirectoryError> {
        match self.records.put_record(kind, key, encode(record), RecordCondition::Absent).await {
            Err(StoreError::Conflict) => Err(DirectoryError::Exists(what)),
            other => Ok(other?),
        }
    }

    /// Reads, changes and writes back one record, starting over when a concurrent change got there first.
    async fn update<T: Serialize + DeserializeOwned, R>(
        &self,
        kind: &'static str,
        key: &str,
        what: &str,
        mut change: impl FnMut(&mut T) -> Result<R, DirectoryError>,
        default: Option<T>,
    ) -> Result<R, DirectoryError>
    where
        T: Clone,
    {
        for _ in 0..8 {
            let stored = self.records.record(kind, key).await?;
            let (mut record, condition) = match &stored {
                Some(bytes) => (decode::<T>(bytes)?, RecordCondition::Equals(bytes.clone())),
                None => (default.clone().ok_or_else(|| DirectoryError::NotFound(what.to_owned()))?, RecordCondition::Absent),
            };
            let result = change(&mut record)?;
            match self.records.put_record(kind, key, encode(&record), condition).await {
                Ok(()) => return Ok(result),
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StoreError::Busy("identity records").into())
    }

    // --- Logins ---------------------------------------------------------------------------------------------

    /// Checks a user name and password: a service principal (its id), the admin user (the registry's name) or a
    /// repository-scoped token (its name).
    pub async fn password_login(&self, username: &str, password: &str) -> Result<Login, DirectoryError> {
        let now = now_seconds();
        if username == self.registry {
            let admin: AdminUser = self.get(ADMIN, ADMIN).await?.unwrap_or_default();
            let credential = matching_slot(&admin.passwords, password).ok_or(DirectoryError::BadCredentials)?;
            if !admin.enabled {
                return Err(DirectoryError::AdminDisabled);
            }
            return Ok(Login { subject: Subject::Admin, permissions: Permissions::everything(), credential: Some(credential) });
        }
        if uuid::Uuid::parse_str(username).is_ok() {
            let principal: ServicePrincipal = self.get(PRINCIPAL, username).await?.ok_or(DirectoryError::BadCredentials)?;
            if !principal.password.matches(password) {
                return Err(DirectoryError::BadCredentials);
            }
            if principal.expires_at.is_some_and(|expires_at| expires_at <= now) {
                return Err(DirectoryError::Expired(format!("service principal {}", principal.name)));
            }
            let credential = principal.password.created_at.to_string();
            let permissions = self.principal_permissions(&principal).await?;
            return Ok(Login { subject: Subject::ServicePrincipal(principal.id), permissions, credential: Some(credential) });
        }
        let token: RepositoryToken = self.get(TOKEN, username).await?.ok_or(DirectoryError::BadCredentials)?;
        let credential = matching_slot(&token.passwords, password).ok_or(DirectoryError::BadCredentials)?;
        if token.expires_at.is_some_and(|expires_at| expires_at <= now) {
            return Err(DirectoryError::Expired(format!("token {}", token.name)));
        }
        let permissions = self.token_permissions(&token).await?;
        Ok(Login { subject: Subject::Token(token.name), permissions, credential: Some(credential) })
    }

    /// What `subject` may do now, for a refresh token naming `credential`: fails when the identity is gone,
    /// disabled or expired, or the credential was renewed since.
    pub async fn current_login(&self, subject: &Subject, credential: Option<&str>) -> Result<Login, DirectoryError> {
        let now = now_seconds();
        let permissions = match subject {
            Subject::Admin => {
                let admin: AdminUser = self.get(ADMIN, ADMIN).await?.unwrap_or_default();
                if !credential.is_some_and(|credential| slot_still_matches(&admin.passwords, credential)) {
                    return Err(DirectoryError::LoginEnded);
                }
                if !admin.enabled {
                    return Err(DirectoryError::AdminDisabled);
                }
                Permissions::everything()
            }
            Subject::ServicePrincipal(id) => {
                let principal: ServicePrincipal = self.get(PRINCIPAL, id).await?.ok_or(DirectoryError::LoginEnded)?;
                if credential != Some(principal.password.created_at.to_string().as_str()) {
                    return Err(DirectoryError::LoginEnded);
                }
                if principal.expires_at.is_some_and(|expires_at| expires_at <= now) {
                    return Err(DirectoryError::Expired(format!("service principal {}", principal.name)));
                }
                self.principal_permissions(&principal).await?
            }
            Subject::Token(name) => {
                let token: RepositoryToken = self.get(TOKEN, name).await?.ok_or(DirectoryError::LoginEnded)?;
                if !credential.is_some_and(|credential| slot_still_matches(&token.passwords, credential)) {
                    return Err(DirectoryError::LoginEnded);
                }
                if token.expires_at.is_some_and(|expires_at| expires_at <= now) {
                    return Err(DirectoryError::Expired(format!("token {}", token.name)));
                }
                self.token_permissions(&token).await?
            }
            Subject::External(assignee) => self.assigned_permissions(assignee).await?,
            Subject::Anonymous => self.anonymous_permissions().await?,
        };
        Ok(Login { subject: subject.clone(), permissions, credential: credential.map(str::to_owned) })
    }

    /// What a caller without credentials may do: pull everything when anonymous pull is on, else nothing.
    pub async fn anonymous_permissions(&self) -> Result<Permissions, DirectoryError> {
        let settings = self.settings().await?;
        let allowed = settings.anonymous_pull && Feature::AnonymousPull.allowed_on(self.sku(&settings));
        Ok(if allowed { Permissions::pull_everywhere() } else { Permissions::default() })
    }

    async fn principal_permissions(&self, principal: &ServicePrincipal) -> Result<Permissions, DirectoryError> {
        let mut permissions = self.assigned_permissions(&principal.id).await?;
        permissions.0.extend(principal.roles.iter().map(|role| role.rule(principal.scope.clone())));
        Ok(permissions)
    }

    /// The role assignments of an IAM principal, OIDC subject or service principal (and the deployment's first owner).
    pub async fn assigned_permissions(&self, assignee: &str) -> Result<Permissions, DirectoryError> {
        let mut rules: Vec<Rule> = self
            .role_assignments()
            .await?
            .into_iter()
            .filter(|assignment| assignment.assignee == assignee)
            .map(|assignment| assignment.role.rule(assignment.scope))
            .collect();
        if self.bootstrap_owner.as_deref() == Some(assignee) {
            rules.push(Role::Owner.rule(RepositoryPattern::everything()));
        }
        Ok(Permissions(rules))
    }

    async fn token_permissions(&self, token: &RepositoryToken) -> Result<Permissions, DirectoryError> {
        let Some(map) = self.get::<ScopeMap>(SCOPE_MAP, &token.scope_map).await? else {
            return Ok(Permissions::default());
        };
        let actions: std::collections::BTreeSet<Action> = map.actions.iter().filter_map(|action| scope_map_action(action).ok()).collect();
        Ok(Permissions(vec![Rule { repositories: map.repository, actions, catalog: false, manage: false }]))
    }

    // --- Service principals ---------------------------------------------------------------------------------

    /// Creates a service principal, returning it with its password (shown once).
    pub async fn create_principal(
        &self,
        name: &str,
        roles: Vec<Role>,
        scope: RepositoryPattern,
        expires_at: Option<u64>,
    ) -> Result<(ServicePrincipal, String), DirectoryError> {
        check_name(name)?;
        if roles.is_empty() {
            return Err(DirectoryError::Invalid("a service principal needs at least one --role".to_owned()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        // The name is claimed first, so two creations with one name cannot both succeed.
        self.create(PRINCIPAL_NAME, name, &id, format!("service principal {name}")).await?;
        let (password, stored) = secrets::generate(now_seconds());
        let principal = ServicePrincipal {
            id: id.clone(),
            name: name.to_owned(),
            roles,
            scope,
            password: stored,
            created_at: now_seconds(),
            expires_at,
        };
        self.create(PRINCIPAL, &id, &principal, format!("service principal {id}")).await?;
        Ok((principal, password))
    }

    pub async fn principals(&self) -> Result<Vec<ServicePrincipal>, DirectoryError> {
        let mut principals: Vec<ServicePrincipal> = self.all(PRINCIPAL).await?;
        principals.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(principals)
    }

    pub async fn principal_named(&self, name: &str) -> Result<ServicePrincipal, DirectoryError> {
        let missing = || DirectoryError::NotFound(format!("service principal {name}"));
        let id: String = self.get(PRINCIPAL_NAME, name).await?.ok_or_else(missing)?;
        self.get(PRINCIPAL, &id).await?.ok_or_else(missing)
    }

    pub async fn delete_principal(&self, name: &str) -> Result<(), DirectoryError> {
        let principal = self.principal_named(name).await?;
        self.records.delete_record(PRINCIPAL, &principal.id).await?;
        self.records.delete_record(PRINCIPAL_NAME, name).await?;
        for assignment in self.role_assignments().await?.into_iter().filter(|assignment| assignment.assignee == principal.id) {
            self.records.delete_record(ASSIGNMENT, &assignment_key(&assignment)).await?;
        }
        Ok(())
    }

    /// A new password for the service principal; the old one, and every login made with it, stop working.
    pub async fn reset_principal(&self, name: &str) -> Result<(ServicePrincipal, String), DirectoryError> {
        let id = self.principal_named(name).await?.id;
        self.update(
            PRINCIPAL,
            &id,
            &format!("service principal {name}"),
            |principal: &mut ServicePrincipal| {
                let (password, stored) = secrets::generate(now_seconds().max(principal.password.created_at + 1));
                principal.password = stored;
                Ok((principal.clone(), password))
            },
            None,
        )
        .await
    }

    // --- Role assignments -----------------------------------------------------------------------------------

    pub async fn create_assignment(&self, assignment: RoleAssignment) -> Result<(), DirectoryError> {
        if assignment.assignee.trim().is_empty() || assignment.assignee.contains('\n') {
            return Err(DirectoryError::Invalid(
                "--assignee must name an IAM principal ARN, an OIDC subject or a service principal id".to_owned(),
            ));
        }
        let key = assignment_key(&assignment);
        match self.create(ASSIGNMENT, &key, &assignment, "that role assignment".to_owned()).await {
            // Assigning what is already assigned changes nothing.
            Err(DirectoryError::Exists(_)) | Ok(()) => Ok(()),
            Err(error) => Err(error),
        }
    }

    pub async fn role_assignments(&self) -> Result<Vec<RoleAssignment>, DirectoryError> {
        Ok(self.all(ASSIGNMENT).await?)
    }

    /// Removes the assignments of `assignee` with `role` (and `scope`, when given); fails when none matched.
    pub async fn delete_assignments(&self, assignee: &str, role: Role, scope: Option<&RepositoryPattern>) -> Result<usize, DirectoryError> {
        let mut removed = 0;
        for assignment in self.role_assignments().await? {
            if assignment.assignee == assignee && assignment.role == role && scope.is_none_or(|scope| *scope == assignment.scope) {
                removed += usize::from(self.records.delete_record(ASSIGNMENT, &assignment_key(&assignment)).await?);
            }
        }
        if removed == 0 {
            return Err(DirectoryError::NotFound(format!("role assignment of {} to {assignee}", role.as_str())));
        }
        Ok(removed)
    }

    // --- The admin user -------------------------------------------------------------------------------------

    pub async fn admin(&self) -> Result<AdminUser, DirectoryError> {
        Ok(self.get(ADMIN, ADMIN).await?.unwrap_or_default())
    }

    pub async fn set_admin_enabled(&self, enabled: bool) -> Result<AdminUser, DirectoryError> {
        self.update(
            ADMIN,
            ADMIN,
            "admin user",
            |admin: &mut AdminUser| {
                admin.enabled = enabled;
                Ok(admin.clone())
            },
            Some(AdminUser::default()),
        )
        .await
    }

    /// A new admin password in slot 1 or 2, returned once.
    pub async fn renew_admin_password(&self, slot: u8) -> Result<String, DirectoryError> {
        self.update(ADMIN, ADMIN, "admin user", |admin: &mut AdminUser| renew_slot(&mut admin.passwords, slot), Some(AdminUser::default()))
            .await
    }

    // --- Scope maps and repository-scoped tokens ------------------------------------------------------------

    pub async fn create_scope_map(
        &self,
        name: &str,
        repository: RepositoryPattern,
        actions: Vec<String>,
    ) -> Result<ScopeMap, DirectoryError> {
        check_name(name)?;
        if actions.is_empty() {
            return Err(DirectoryError::Invalid("a scope map needs --actions".to_owned()));
        }
        for action in &actions {
            scope_map_action(action).map_err(DirectoryError::Invalid)?;
        }
        let map = ScopeMap { name: name.to_owned(), repository, actions };
        self.create(SCOPE_MAP, name, &map, format!("scope map {name}")).await?;
        Ok(map)
    }

    pub async fn scope_maps(&self) -> Result<Vec<ScopeMap>, DirectoryError> {
        Ok(self.all(SCOPE_MAP).await?)
    }

    pub async fn scope_map(&self, name: &str) -> Result<ScopeMap, DirectoryError> {
        self.get(SCOPE_MAP, name).await?.ok_or_else(|| DirectoryError::NotFound(format!("scope map {name}")))
    }

    pub async fn delete_scope_map(&self, name: &str) -> Result<(), DirectoryError> {
        if let Some(token) = self.tokens().await?.into_iter().find(|token| token.scope_map == name) {
            return Err(DirectoryError::Invalid(format!("scope map {name} is used by token {}; delete the token first", token.name)));
        }
        if !self.records.delete_record(SCOPE_MAP, name).await? {
            return Err(DirectoryError::NotFound(format!("scope map {name}")));
        }
        Ok(())
    }

    /// Creates a token with two passwords, returned once.
    pub async fn create_token(
        &self,
        name: &str,
        scope_map: &str,
        expires_at: Option<u64>,
    ) -> Result<(RepositoryToken, [String; 2]), DirectoryError> {
        check_name(name)?;
        if name == self.registry || uuid::Uuid::parse_str(name).is_ok() {
            return Err(DirectoryError::Invalid(format!("{name} is reserved (the admin user, or a service principal id)")));
        }
        self.scope_map(scope_map).await?;
        let now = now_seconds();
        let (first, first_stored) = secrets::generate(now);
        let (second, second_stored) = secrets::generate(now);
        let token = RepositoryToken {
            name: name.to_owned(),
            scope_map: scope_map.to_owned(),
            passwords: [Some(first_stored), Some(second_stored)],
            created_at: now,
            expires_at,
        };
        self.create(TOKEN, name, &token, format!("token {name}")).await?;
        Ok((token, [first, second]))
    }

    pub async fn tokens(&self) -> Result<Vec<RepositoryToken>, DirectoryError> {
        Ok(self.all(TOKEN).await?)
    }

    pub async fn token(&self, name: &str) -> Result<RepositoryToken, DirectoryError> {
        self.get(TOKEN, name).await?.ok_or_else(|| DirectoryError::NotFound(format!("token {name}")))
    }

    pub async fn delete_token(&self, name: &str) -> Result<(), DirectoryError> {
        if !self.records.delete_record(TOKEN, name).await? {
            return Err(DirectoryError::NotFound(format!("token {name}")));
        }
        Ok(())
    }

    pub async fn renew_token_password(&self, name: &str, slot: u8) -> Result<String, DirectoryError> {
        self.update(TOKEN, name, &format!("token {name}"), |token: &mut RepositoryToken| renew_slot(&mut token.passwords, slot), None).await
    }

    // --- Settings and keys ----------------------------------------------------------------------------------

    pub async fn settings(&self) -> Result<RegistrySettings, DirectoryError> {
        let generation = self.settings_seen.lock().expect("lock is not poisoned").generation;
        let settings: RegistrySettings = self.get(SETTINGS, SETTINGS).await?.unwrap_or_default();
        let mut seen = self.settings_seen.lock().expect("lock is not poisoned");
        if seen.generation == generation {
            seen.copy = Some((Instant::now(), settings.clone()));
        }
        Ok(settings)
    }

    /// The settings, read again only when this process's copy is older than [`SETTINGS_MAX_AGE`]: for what checks
    /// them on every request (the pull policy on every manifest pull), at one read per process and period.
    pub async fn recent_settings(&self) -> Result<RegistrySettings, DirectoryError> {
        if let Some((seen_at, settings)) = self.settings_seen.lock().expect("lock is not poisoned").copy.as_ref()
            && seen_at.elapsed() < SETTINGS_MAX_AGE
        {
            return Ok(settings.clone());
        }
        self.settings().await
    }

    pub async fn update_settings(&self, change: SettingsUpdate) -> Result<RegistrySettings, DirectoryError> {
        let updated = self
            .update(
                SETTINGS,
                SETTINGS,
                "settings",
                |settings: &mut RegistrySettings| {
                    if let Some(anonymous_pull) = change.anonymous_pull {
                        settings.anonymous_pull = anonymous_pull;
                    }
                    if let Some(block_severity) = change.block_severity {
                        settings.block_severity = block_severity;
                    }
                    if let Some(allowed) = &change.allowed_advisories {
                        settings.allowed_advisories = allowed.clone();
                    }
                    if let Some(sku) = change.sku {
                        settings.sku = Some(sku);
                    }
                    self.check_tier(settings, change.sku.is_some())?;
                    Ok(settings.clone())
                },
                Some(RegistrySettings::default()),
            )
            .await?;
        let mut seen = self.settings_seen.lock().expect("lock is not poisoned");
        seen.generation += 1;
        seen.copy = Some((Instant::now(), updated.clone()));
        Ok(updated)
    }

    /// Refuses `settings` when they use a feature their tier lacks: naming the tier the feature needs, or, when the
    /// change was a move to a lower tier, the feature that keeps it from moving.
    fn check_tier(&self, settings: &RegistrySettings, moved: bool) -> Result<(), DirectoryError> {
        let sku = self.sku(settings);
        let in_use = [(Feature::AnonymousPull, settings.anonymous_pull)];
        if let Some((feature, _)) = in_use.into_iter().find(|(feature, used)| *used && !feature.allowed_on(sku)) {
            let (needed, tier) = (feature.minimum_sku(), sku.map_or("none", Sku::as_str));
            return Err(DirectoryError::Invalid(if moved {
                format!("cannot move to the {tier} tier while {} is on: it needs the {needed} tier; turn it off first", feature.name())
            } else {
                format!("{} needs the {needed} tier; this registry is {tier}", feature.name())
            }));
        }
        Ok(())
    }

    /// Publishes the token function's public key for the verifying functions.
    pub async fn publish_key(&self, key: &PublicKey) -> Result<(), DirectoryError> {
        Ok(self.records.put_record(SIGNING_KEY, &key.kid, encode(key), RecordCondition::None).await?)
    }

    pub async fn published_keys(&self) -> Result<Vec<PublicKey>, DirectoryError> {
        Ok(self.all(SIGNING_KEY).await?)
    }

    /// Whether any identity that can log in with a password exists (before the first, `berth serve` makes an owner).
    pub async fn has_principals(&self) -> Result<bool, DirectoryError> {
        Ok(!self.records.records(PRINCIPAL).await?.is_empty())
    }
}

/// Checks a registry name: the token service and audience, and the admin user's name, so it must fit a Basic user
/// name (no `:`) and never look like a service principal id.
pub fn check_registry_name(name: &str) -> Result<(), String> {
    let valid = (1..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && uuid::Uuid::parse_str(name).is_err();
    if valid { Ok(()) } else { Err(format!("invalid registry name {name:?}: 1 to 63 letters, digits, '-' or '.'")) }
}

/// Names of principals, scope maps and tokens: what a user types, safe in record keys and URLs.
fn check_name(name: &str) -> Result<(), DirectoryError> {
    let valid = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if valid { Ok(()) } else { Err(DirectoryError::Invalid(format!("invalid name {name:?}: 1 to 64 letters, digits, '-', '_' or '.'"))) }
}
