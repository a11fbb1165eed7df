//! Enhanced authentication in a single step (MQTT 5 §4.12 without AUTH exchanges): the hook a
//! listener hands the broker for CONNECTs naming an Authentication Method, and its refusals.
//!
//! The broker itself knows no method: a CONNECT with an Authentication Method is refused with
//! 0x8C (Bad authentication method) unless its listener gave a [`ConnectAuthenticator`], which
//! then decides from the method, the data and what the transport proved. MQTT 3.1.1 has no
//! properties, so its clients cannot use it.

use super::identity::{AttestedClaims, TransportIdentity};
use crate::ReasonCode;

/// Checks the Authentication Method and Data of a CONNECT against what the connection's
/// transport proved. Called once per CONNECT that names a method, before the session is
/// created, off the reactor threads and without the broker's lock (it may check signatures).
pub trait ConnectAuthenticator: Send + Sync {
    /// The claims the client is admitted with (normally `transport.attested`, extended by what
    /// the data proved), or why it is refused.
    fn authenticate(
        &self,
        transport: &TransportIdentity,
        method: &str,
        data: Option<&[u8]>,
    ) -> Result<AttestedClaims, AuthRefusal>;
}

/// Why a CONNECT's authentication was refused: the CONNACK's reason code and its Reason String
/// (sent to the client and logged, so it must carry no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRefusal {
    /// The CONNACK reason code (0x8C for a method not offered, 0x87 for data that does not
    /// prove what it claims).
    pub reason: ReasonCode,
    /// Why, in one line.
    pub message: String,
}

impl AuthRefusal {
    /// 0x8C: the method is not offered here.
    pub fn bad_method(message: impl Into<String>) -> Self {
        Self {
            reason: ReasonCode::BadAuthenticationMethod,
            message: message.into(),
        }
    }

    /// 0x87: the data does not authorise the client.
    pub fn not_authorized(message: impl Into<String>) -> Self {
        Self {
            reason: ReasonCode::NotAuthorized,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for AuthRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}
