//! Logins with an OIDC ID token (single sign-on, CI systems such as GitHub Actions that mint ID tokens): the token's
//! signature is checked against the configured issuer's JWKS, fetched from its discovery document and cached, and
//! fetched again on an unknown key id at most every few seconds; `alg` comes from an allowlist (never `none`, never
//! HMAC); `iss`, `aud`, `exp`, `nbf` and `iat` are checked.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, Validation, decode, decode_header,
    jwk::{AlgorithmParameters, JwkSet},
};
use serde::Deserialize;

use super::tokens::now_seconds;

/// The asymmetric algorithms accepted; the key's family must also match the algorithm.
const ALLOWED: [Algorithm; 7] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA];
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
const LEEWAY_SECONDS: u64 = 60;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The issuer a registry trusts, and the audience its tokens must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    #[error("the ID token is malformed or its signature is invalid")]
    Invalid,
    #[error("the ID token's algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error("the ID token was signed by a key the issuer does not publish")]
    UnknownKey,
    #[error("the ID token is not for this registry (issuer or audience)")]
    WrongParty,
    #[error("the ID token has expired or is not valid yet")]
    Expired,
    #[error("the issuer's keys cannot be fetched: {0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

/// Verifies ID tokens of one issuer, keeping its key set between logins.
pub struct OidcVerifier {
    config: OidcConfig,
    http: reqwest::Client,
    keys: Mutex<(JwkSet, Option<Instant>)>,
}

impl OidcVerifier {
    pub fn new(config: OidcConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client starts");
        Self { config, http, keys: Mutex::new((JwkSet { keys: Vec::new() }, None)) }
    }

    /// The subject of a valid ID token.
    pub async fn verify(&self, token: &str) -> Result<String, OidcError> {
        let header = decode_header(token).map_err(|_| OidcError::Invalid)?;
        if !ALLOWED.contains(&header.alg) {
            return Err(OidcError::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(OidcError::Invalid)?;
        let key = match self.key(&kid, header.alg) {
            Some(key) => key,
            None => {
                self.refetch().await?;
                self.key(&kid, header.alg).ok_or(OidcError::UnknownKey)?
            }
        }?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature | jsonwebtoken::errors::ErrorKind::ImmatureSignature => OidcError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer | jsonwebtoken::errors::ErrorKind::InvalidAudience => OidcError::WrongParty,
                _ => OidcError::Invalid,
            })?
            .claims;
        if claims.iat > now_seconds() + LEEWAY_SECONDS {
            return Err(OidcError::Expired);
        }
        Ok(claims.sub)
    }

    /// The published key `kid` for `alg`, if it is known: `Some(Err)` when it exists but is no key for `alg`.
    fn key(&self, kid: &str, alg: Algorithm) -> Option<Result<DecodingKey, OidcError>> {
        let keys = self.keys.lock().expect("lock is not poisoned");
        let jwk = keys.0.find(kid)?;
        let family_matches = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => alg.family() == AlgorithmFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => alg.family() == AlgorithmFamily::Ec,
            AlgorithmParameters::OctetKeyPair(_) => alg.family() == AlgorithmFamily::Ed,
            // Symmetric keys verify HMACs, which an issuer's public key set never should; unknown kinds neither.
            _ => false,
        };
        if !family_matches {
            return Some(Err(OidcError::Algorithm(alg)));
        }
        Some(DecodingKey::from_jwk(jwk).map_err(|_| OidcError::Invalid))
    }

    /// Fetches the issuer's key set again, unless that happened within [`REFETCH_INTERVAL`].
    async fn refetch(&self) -> Result<(), OidcError> {
        {
            let mut keys = self.keys.lock().expect("lock is not poisoned");
            if keys.1.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
                return Ok(());
            }
            keys.1 = Some(Instant::now());
        }
        let unavailable = |error: reqwest::Error| OidcError::Unavailable(error.to_string());
        let discovery = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let document: Discovery = self.http.get(&discovery).send().await.and_then(|r| r.error_for_status()).map_err(unavailable)?.json().await.map_err(unavailable)?;
        let set: JwkSet = self.http.get(&document.jwks_uri).send().await.and_then(|r| r.error_for_status()).map_err(unavailable)?.json().await.map_err(unavailable)?;
        self.keys.lock().expect("lock is not poisoned").0 = set;
        Ok(())
    }
}
