//! Identity and access: who may do what, and the tokens that carry it.
//!
//! - [`access`]: roles, scope-map actions and docker's scopes; a token's access is what was asked for intersected
//!   with what the identity's rules allow.
//! - [`directory`]: the identities (service principals, role assignments, admin user, repository-scoped tokens) and
//!   settings, over the store's identity records.
//! - [`secrets`]: generated passwords, stored as hashes. [`keys`] and [`tokens`]: the ES256 tokens.
//! - [`TokenService`] (the token function) proves identities and signs tokens; [`Gate`] (every function) verifies
//!   them with the public keys alone, fetching published keys only when it meets one it does not know.

pub mod access;
pub mod bootstrap;
pub mod directory;
pub mod keys;
pub mod oidc;
pub mod secrets;
pub mod sts;
pub mod tokens;

use std::{
    sync::{Mutex, RwLock},
    time::{Duration, Instant},
};

use access::{Access, Granted, Scope};
use directory::{Directory, DirectoryError, Login, Subject};
use keys::{PublicKey, SigningKey, VerifyingKeys};
use oidc::{OidcConfig, OidcError, OidcVerifier};
use sts::{CallerIdentityProof, StsError, StsLogin};
use tokens::{ACCESS_TOKEN_SECONDS, Claims, Grant, Issued, REFRESH_TOKEN_SECONDS, TokenError, TokenIssuer, TokenVerifier};

/// The least time between two fetches of the published keys for a token with an unknown key id: a flood of forged
/// key ids must not become a flood of reads.
const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Verifies access tokens for one registry, and Basic credentials sent to the registry itself (ACR takes them, and
/// clients such as oras-py send them).
pub struct Gate {
    registry: String,
    verifier: RwLock<TokenVerifier>,
    directory: Directory,
    /// Whether keys are read from the directory when a token names a key not yet known; not when they are fixed
    /// (the token service lives in this process).
    published: bool,
    last_fetch: Mutex<Option<Instant>>,
}

impl Gate {
    /// The directory the gate checks requests against (the registry's settings among its records).
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// A gate trusting exactly `keys`.
    pub fn fixed(directory: Directory, keys: &[PublicKey]) -> Result<Self, keys::KeyError> {
        let registry = directory.registry().to_owned();
        let verifier = TokenVerifier::new(registry.clone(), VerifyingKeys::new(keys)?);
        Ok(Self {
            registry,
            verifier: RwLock::new(verifier),
            directory,
            published: false,
            last_fetch: Mutex::new(None),
        })
    }

    /// A gate trusting the keys the token function publishes in `directory`, read now and again on an unknown key.
    pub async fn published(directory: Directory) -> Self {
        let gate = Self {
            registry: directory.registry().to_owned(),
            verifier: RwLock::new(TokenVerifier::new(directory.registry().to_owned(), VerifyingKeys::default())),
            directory,
            published: true,
            last_fetch: Mutex::new(None),
        };
        gate.refresh_keys().await;
        gate
    }

    /// What Basic credentials sent to the registry grant of `scopes`: the same checks and rate limits as a login at
    /// the token endpoint.
    pub async fn basic(&self, username: &str, password: &str, source: &str, scopes: &[Scope]) -> Result<(String, Granted), LoginError> {
        let login = password_login(&self.directory, username, password, source).await?;
        Ok((login.subject.to_string(), Granted(login.permissions.grant(scopes))))
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    async fn refresh_keys(&self) -> bool {
        if !self.published {
            return false;
        }
        let directory = &self.directory;
        {
            let mut last = self.last_fetch.lock().expect("lock is not poisoned");
            if last.is_some_and(|at| at.elapsed() < KEY_REFETCH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match directory.published_keys().await.map(|keys| VerifyingKeys::new(&keys)) {
            Ok(Ok(keys)) => {
                *self.verifier.write().expect("lock is not poisoned") = TokenVerifier::new(self.registry.clone(), keys);
                true
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "a published signing key is invalid");
                false
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the published signing keys");
                false
            }
        }
    }

    /// The access a bearer token grants, once its signature, issuer, audience and lifetime check out.
    pub async fn verify(&self, token: &str) -> Result<(Claims, Granted), TokenError> {
        let verified = self.verifier.read().expect("lock is not poisoned").verify(token, Grant::AccessToken);
        let claims = match verified {
            Err(TokenError::UnknownKey(kid)) if self.refresh_keys().await => self
                .verifier
                .read()
                .expect("lock is not poisoned")
                .verify(token, Grant::AccessToken)
                .map_err(|_| TokenError::UnknownKey(kid))?,
            other => other?,
        };
        let granted = TokenVerifier::granted(&claims);
        Ok((claims, granted))
    }
}

/// Failed logins allowed per identity and per source within two [`FAILURE_WINDOW`]s, before further attempts are
/// refused without checking.
const MAX_FAILURES: u64 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The shared counter of `key`'s failed logins in window number `window`. The key is hashed: counters name no user
/// and stay short whatever a caller sends as a user name.
fn failure_counter(key: &str, window: u64) -> String {
    format!("failed-login/{}/{window}", secrets::hash(key))
}

/// A password login, refused without checking once the identity or the source failed [`MAX_FAILURES`] times in the
/// current and the previous window (so a window's end never resets a run of guesses). The counts are shared by every
/// process of the registry (every Lambda sandbox): spreading guesses over many of them gains nothing.
async fn password_login(directory: &Directory, username: &str, password: &str, source: &str) -> Result<Login, LoginError> {
    let now = tokens::now_seconds();
    let (window, length) = (now / FAILURE_WINDOW.as_secs(), FAILURE_WINDOW.as_secs());
    let keys = [format!("user:{username}"), format!("source:{source}")];
    let counts = futures_util::future::try_join_all(
        keys.iter().flat_map(|key| [window - 1, window].map(|number| failure_counter(key, number))).map(|counter| async move {
            directory.records().counter(&counter).await
        }),
    )
    .await
    .map_err(DirectoryError::Store)?;
    if counts.chunks(2).any(|pair| pair.iter().sum::<u64>() >= MAX_FAILURES) {
        return Err(LoginError::TooManyFailures(Duration::from_secs(length - now % length)));
    }
    match directory.password_login(username, password).await {
        Err(error @ DirectoryError::BadCredentials) => {
            // Kept for this window and the next, which still looks back at it.
            let expires_at = (window + 2) * length;
            for key in &keys {
                directory.records().increment_counter(&failure_counter(key, window), expires_at).await.map_err(DirectoryError::Store)?;
            }
            Err(error.into())
        }
        other => Ok(other?),
    }
}

/// Why the token service refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("the refresh token is invalid: {0}")]
    BadRefreshToken(TokenError),
    #[error("the login has expired (a login lasts 3 hours): log in again with `berth login`")]
    LoginExpired,
    #[error("too many failed logins; retry in {} s", .0.as_secs().max(1))]
    TooManyFailures(Duration),
    #[error("{0}")]
    Oidc(#[from] OidcError),
    #[error("this registry accepts no OIDC ID tokens (no issuer is configured)")]
    NoOidcIssuer,
    #[error("{0}")]
    Sts(#[from] StsError),
    #[error("this registry accepts no AWS IAM logins (no STS endpoint is configured)")]
    NoStsEndpoint,
    #[error("{0} has no role on this registry; an owner can assign one with `berth role assignment create`")]
    NoRole(String),
}

/// What the token endpoint answers: an access token, and a refresh token when one was asked for.
pub struct TokenGrant {
    pub access: Issued,
    pub refresh: Option<Issued>,
}

/// The outside identities a registry accepts as logins besides its own credentials.
#[derive(Debug, Clone, Default)]
pub struct ExternalLogins {
    /// An OIDC issuer whose ID tokens are logins.
    pub oidc: Option<OidcConfig>,
    /// The STS endpoint AWS IAM login proofs are checked with.
    pub sts_endpoint: Option<reqwest::Url>,
}

/// The token function's service: proves identities and signs tokens.
pub struct TokenService {
    directory: Directory,
    issuer: TokenIssuer,
    refresh_verifier: TokenVerifier,
    oidc: Option<OidcVerifier>,
    sts: Option<StsLogin>,
}

impl TokenService {
    pub fn new(directory: Directory, key: SigningKey, external: &ExternalLogins) -> Self {
        let public = key.public_key().clone();
        let registry = directory.registry().to_owned();
        let refresh_verifier =
            TokenVerifier::new(registry.clone(), VerifyingKeys::new(&[public]).expect("the key's own public key is valid"));
        Self {
            directory,
            issuer: TokenIssuer::new(registry, key),
            refresh_verifier,
            oidc: external.oidc.clone().map(OidcVerifier::new),
            sts: external.sts_endpoint.clone().map(StsLogin::new),
        }
    }

    /// A login with an OIDC ID token: its subject, with the roles assigned to it (one at least).
    pub async fn oidc_login(&self, id_token: &str) -> Result<Login, LoginError> {
        let verifier = self.oidc.as_ref().ok_or(LoginError::NoOidcIssuer)?;
        self.external_login(verifier.verify(id_token).await?).await
    }

    /// A login with an AWS identity: the IAM principal (an assumed role's role) STS confirms the proof was signed by,
    /// with the roles assigned to it (one at least).
    pub async fn aws_login(&self, proof: &CallerIdentityProof) -> Result<Login, LoginError> {
        let sts = self.sts.as_ref().ok_or(LoginError::NoStsEndpoint)?;
        self.external_login(sts.verify(proof, self.directory.registry()).await?).await
    }

    /// Where this registry checks AWS login proofs, for clients to sign theirs for.
    pub fn sts(&self) -> Option<&StsLogin> {
        self.sts.as_ref()
    }

    /// Whether ID tokens are accepted.
    pub fn accepts_oidc(&self) -> bool {
        self.oidc.is_some()
    }

    async fn external_login(&self, subject: String) -> Result<Login, LoginError> {
        let permissions = self.directory.assigned_permissions(&subject).await?;
        if permissions.0.is_empty() {
            return Err(LoginError::NoRole(subject));
        }
        Ok(Login { subject: Subject::External(subject), permissions, credential: None })
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn public_key(&self) -> &PublicKey {
        self.issuer.key().public_key()
    }

    /// A login with a user name and password from `source`: rate-limited per identity and per source; a
    /// refresh token given as the password under ACR's null user name counts as a refresh.
    pub async fn password_login(&self, username: &str, password: &str, source: &str) -> Result<Login, LoginError> {
        if username == directory::REFRESH_TOKEN_USERNAME {
            return self.refresh_login(password).await;
        }
        password_login(&self.directory, username, password, source).await
    }

    /// What a refresh token's identity may do now.
    pub async fn refresh_login(&self, refresh_token: &str) -> Result<Login, LoginError> {
        let claims = self.refresh_verifier.verify(refresh_token, Grant::RefreshToken).map_err(|error| match error {
            TokenError::Expired => LoginError::LoginExpired,
            other => LoginError::BadRefreshToken(other),
        })?;
        let subject = Subject::parse(&claims.sub).ok_or(LoginError::BadRefreshToken(TokenError::Invalid))?;
        Ok(self.directory.current_login(&subject, claims.credential.as_deref()).await?)
    }

    /// A caller without credentials.
    pub async fn anonymous_login(&self) -> Result<Login, LoginError> {
        let permissions = self.directory.anonymous_permissions().await?;
        Ok(Login { subject: Subject::Anonymous, permissions, credential: None })
    }

    /// Signs what `login` may do of `scopes`, with a refresh token when `offline` (never for anonymous callers).
    pub fn grant(&self, login: &Login, scopes: &[Scope], offline: bool) -> TokenGrant {
        let access: Vec<Access> = login.permissions.grant(scopes);
        let subject = login.subject.to_string();
        let access = self.issuer.issue(&subject, Grant::AccessToken, access, None, ACCESS_TOKEN_SECONDS);
        let refresh = (offline && login.subject != Subject::Anonymous)
            .then(|| self.issuer.issue(&subject, Grant::RefreshToken, Vec::new(), login.credential.clone(), REFRESH_TOKEN_SECONDS));
        TokenGrant { access, refresh }
    }

    /// A refresh token for an identity proven some other way (IAM, OIDC).
    pub fn refresh_token_for(&self, login: &Login) -> Issued {
        self.issuer.issue(&login.subject.to_string(), Grant::RefreshToken, Vec::new(), login.credential.clone(), REFRESH_TOKEN_SECONDS)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::embedded::EmbeddedMetadata;

    #[tokio::test]
    async fn an_expired_login_says_to_log_in_again() {
        let dir = tempfile::tempdir().unwrap();
        let records = Arc::new(EmbeddedMetadata::open(&dir.path().join("m")).unwrap());
        let tokens = TokenService::new(Directory::new(records, "reg".into(), None), SigningKey::from_seed(&[7u8; 32]).unwrap(), &ExternalLogins::default());
        let login = Login { subject: Subject::External("arn:aws:iam::123456789012:role/ci".into()), permissions: access::Permissions::default(), credential: None };
        let fresh = tokens.refresh_token_for(&login);
        assert!(tokens.refresh_login(&fresh.token).await.is_ok());
        // The same login issued 3 hours and 2 minutes ago (past the verifier's leeway).
        let ago = REFRESH_TOKEN_SECONDS + 120;
        let mut claims = fresh.claims.clone();
        (claims.iat, claims.exp) = (claims.iat - ago, claims.exp - ago);
        let expired = tokens.issuer.sign(&claims);
        let error = tokens.refresh_login(&expired).await.unwrap_err();
        assert!(matches!(error, LoginError::LoginExpired), "{error}");
        assert!(error.to_string().contains("log in again with `berth login`"));
    }
}
