//! Username/password authentication: users with argon2id password hashes (PHC strings, salted),
//! never the passwords themselves.

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Deserialize;

use crate::ReasonCode;

/// One configured user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user name clients send in CONNECT.
    pub name: String,
    /// The password's argon2id hash as a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
    /// as [`hash_password`] (or `teemesh mqtt passwd`) makes it.
    pub password_hash: String,
}

/// The checked user list.
#[derive(Debug, Clone, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
}

/// A user entry whose hash is not a PHC string.
#[derive(Debug, thiserror::Error)]
#[error("user {user}: password_hash is not a PHC string ($argon2id$…): {reason}")]
pub struct BadPasswordHash {
    user: String,
    reason: String,
}

impl Users {
    /// The users of a configuration, each hash parsed once to refuse typos at start.
    pub fn new(users: &[UserConfig]) -> Result<Self, BadPasswordHash> {
        let mut hashes = HashMap::new();
        for user in users {
            PasswordHash::new(&user.password_hash).map_err(|e| BadPasswordHash {
                user: user.name.clone(),
                reason: e.to_string(),
            })?;
            hashes.insert(user.name.clone(), user.password_hash.clone());
        }
        Ok(Self { hashes })
    }

    /// Whether any user is configured.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Checks a CONNECT's credentials: `Ok(true)` for a known user with the right password.
    /// Unknown users and wrong passwords are both [`ReasonCode::BadUserNameOrPassword`], and an
    /// unknown user costs a hash like a known one, so timing does not tell them apart.
    pub fn check(&self, username: &str, password: Option<&[u8]>) -> Result<(), ReasonCode> {
        let password = password.unwrap_or_default();
        let Some(hash) = self.hashes.get(username) else {
            let _ = hash_password(password);
            return Err(ReasonCode::BadUserNameOrPassword);
        };
        let parsed = PasswordHash::new(hash).map_err(|_| ReasonCode::BadUserNameOrPassword)?;
        Argon2::default()
            .verify_password(password, &parsed)
            .map_err(|_| ReasonCode::BadUserNameOrPassword)
    }
}

/// The argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| argon2::password_hash::Error::Crypto)?;
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password, &salt)?
        .to_string())
}
