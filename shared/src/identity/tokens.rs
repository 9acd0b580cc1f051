//! Access and refresh tokens: ES256 JWTs in docker's token format (`access` claim), issued by the token function and
//! verified by every function with the public keys alone.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};

use super::{
    access::{Access, Granted},
    keys::{SigningKey, VerifyingKeys},
};

/// How long an access token lives. Revoking an identity stops new tokens at once; tokens already issued run out
/// within this.
pub const ACCESS_TOKEN_SECONDS: u64 = 15 * 60;
/// How long a login lasts (ACR's individual login: 3 hours).
pub const REFRESH_TOKEN_SECONDS: u64 = 3 * 3600;
/// Clock skew tolerated between the token function and the verifiers.
const LEEWAY_SECONDS: u64 = 60;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// Sent as `Authorization: Bearer` to the registry; carries `access`.
    AccessToken,
    /// Exchanged at the token endpoint for access tokens; never accepted by the registry itself.
    RefreshToken,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The identity, as [`super::Subject`] writes it.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub grant_type: Grant,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<Access>,
    /// Refresh tokens of password logins: which credential was proven, so that renewing or removing it ends the
    /// login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed or its signature is invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token was signed by a key this registry does not know")]
    UnknownKey(String),
    #[error("the token is not an {0}")]
    WrongGrant(&'static str),
}

pub fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

/// Signs tokens for one registry (its name is the issuer and the audience).
pub struct TokenIssuer {
    registry: String,
    key: SigningKey,
}

/// A freshly signed token and what it says.
pub struct Issued {
    pub token: String,
    pub claims: Claims,
}

impl TokenIssuer {
    pub fn new(registry: String, key: SigningKey) -> Self {
        Self { registry, key }
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    pub fn issue(&self, subject: &str, grant: Grant, access: Vec<Access>, credential: Option<String>, lifetime: u64) -> Issued {
        let now = now_seconds();
        let claims = Claims {
            iss: self.registry.clone(),
            sub: subject.to_owned(),
            aud: self.registry.clone(),
            exp: now + lifetime,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            grant_type: grant,
            access,
            credential,
        };
        Issued { token: self.sign(&claims), claims }
    }

    /// `claims` as a token signed with this registry's key.
    pub(crate) fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key.public_key().kid.clone());
        encode(&header, claims, &self.key.encoding).expect("ES256 signing with a valid key succeeds")
    }
}

/// Checks tokens of one registry: signature by a known key, `ES256` only, issuer and audience the registry's name,
/// within their lifetime.
#[derive(Clone)]
pub struct TokenVerifier {
    registry: String,
    keys: VerifyingKeys,
}

impl TokenVerifier {
    pub fn new(registry: String, keys: VerifyingKeys) -> Self {
        Self { registry, keys }
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn verify(&self, token: &str, grant: Grant) -> Result<Claims, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::ES256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey(kid))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.registry]);
        validation.set_audience(&[&self.registry]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        let claims = decode::<Claims>(token, key, &validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        if claims.iat > now_seconds() + LEEWAY_SECONDS {
            return Err(TokenError::Invalid);
        }
        if claims.grant_type != grant {
            return Err(TokenError::WrongGrant(match grant {
                Grant::AccessToken => "access token",
                Grant::RefreshToken => "refresh token",
            }));
        }
        Ok(claims)
    }

    /// What a verified access token grants.
    pub fn granted(claims: &Claims) -> Granted {
        Granted(claims.access.clone())
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use jsonwebtoken::EncodingKey;

    use super::*;
    use crate::identity::keys::PublicKey;

    fn pair(registry: &str, seed: u8) -> (TokenIssuer, TokenVerifier) {
        let key = SigningKey::from_seed(&[seed; 32]).unwrap();
        let public = key.public_key().clone();
        (TokenIssuer::new(registry.into(), key), TokenVerifier::new(registry.into(), VerifyingKeys::new(&[public]).unwrap()))
    }

    fn access() -> Vec<Access> {
        vec![Access { kind: "repository".into(), name: "app".into(), actions: vec!["pull".into()] }]
    }

    #[test]
    fn issued_tokens_verify_with_the_public_key() {
        let (issuer, verifier) = pair("reg", 1);
        let issued = issuer.issue("sp:x", Grant::AccessToken, access(), None, 60);
        let claims = verifier.verify(&issued.token, Grant::AccessToken).unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!(verifier.verify(&issued.token, Grant::RefreshToken), Err(TokenError::WrongGrant("refresh token")));
    }

    #[test]
    fn tokens_of_another_registry_or_key_are_refused() {
        let (issuer, _) = pair("one", 1);
        let (_, other_registry) = pair("two", 1);
        let (_, other_key) = pair("one", 2);
        let token = issuer.issue("sp:x", Grant::AccessToken, access(), None, 60).token;
        assert_eq!(other_registry.verify(&token, Grant::AccessToken), Err(TokenError::Invalid));
        assert!(matches!(other_key.verify(&token, Grant::AccessToken), Err(TokenError::UnknownKey(_))));
    }

    #[test]
    fn expired_and_tampered_tokens_are_refused() {
        let (issuer, verifier) = pair("reg", 1);
        let mut expired = issuer.issue("sp:x", Grant::AccessToken, access(), None, 60).claims;
        expired.exp = now_seconds() - 2 * LEEWAY_SECONDS;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(issuer.key().public_key().kid.clone());
        let token = encode(&header, &expired, &issuer.key().encoding).unwrap();
        assert_eq!(verifier.verify(&token, Grant::AccessToken), Err(TokenError::Expired));

        let token = issuer.issue("sp:x", Grant::AccessToken, access(), None, 60).token;
        let (head, rest) = token.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["access"][0]["actions"] = serde_json::json!(["pull", "push"]);
        let forged = format!("{head}.{}.{signature}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        assert_eq!(verifier.verify(&forged, Grant::AccessToken), Err(TokenError::Invalid));
    }

    #[test]
    fn alg_none_and_hs256_keyed_with_the_public_key_are_refused() {
        let (issuer, verifier) = pair("reg", 1);
        let claims = issuer.issue("sp:x", Grant::AccessToken, access(), None, 60).claims;
        let kid = issuer.key().public_key().kid.clone();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let none_header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
        assert_eq!(verifier.verify(&format!("{none_header}.{payload}."), Grant::AccessToken), Err(TokenError::Invalid));

        // The classic confusion attack: an HMAC keyed with the (public) verification key's bytes.
        let PublicKey { x, y, .. } = issuer.key().public_key().clone();
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(x).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(y).unwrap());
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid);
        let forged = encode(&header, &claims, &EncodingKey::from_secret(&point).unwrap()).unwrap();
        assert_eq!(verifier.verify(&forged, Grant::AccessToken), Err(TokenError::Invalid));
    }
}
