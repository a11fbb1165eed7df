//! Who a client is: what its transport proved (a TLS key, attested claims) and what its CONNECT
//! said (client identifier, user name once the password was checked). ACLs decide on this.

use std::net::SocketAddr;

/// The claims an attested transport proved about a client: the platform, its measurement and,
/// for a module hosted by a node, the node-signed module claims. Filled in by an attested
/// listener from the appraised evidence; plain TCP and TLS never produce one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestedClaims {
    /// `sgx`, `tdx`, `snp` or `sim`.
    pub platform: String,
    /// The platform's main measurement, lower-case hex (MRENCLAVE, MRTD, SNP launch
    /// measurement, or the simulated executable hash).
    pub measurement: String,
    /// Whether the evidence came from the simulated TEE (which protects nothing).
    pub simulated: bool,
    /// The node's self-chosen name (informative).
    pub node_name: Option<String>,
    /// The application a hosted module belongs to, from its node-signed module claims.
    pub app: Option<String>,
    /// The module's name, from its node-signed module claims.
    pub module: Option<String>,
    /// The module's measurement (SHA-256 of its Wasm bytes, lower-case hex), from its
    /// node-signed module claims; `measurement` stays the node's.
    pub module_measurement: Option<String>,
}

/// What the transport of one connection established, before CONNECT is read. Only listeners
/// build it: a broker trusts whatever they put here.
#[derive(Debug, Clone, Default)]
pub struct TransportIdentity {
    /// The peer's address, for logs.
    pub remote_addr: Option<SocketAddr>,
    /// The listener's name (`tcp`, `tls`, `atls` or the configured name), for logs and ACLs.
    pub listener: String,
    /// SHA-256 of the client certificate's SubjectPublicKeyInfo, when it presented one.
    pub certificate_key_sha256: Option<[u8; 32]>,
    /// Attested claims, when the client proved what it runs.
    pub attested: Option<AttestedClaims>,
}

/// A connected client as ACLs see it.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity {
    /// The client identifier (assigned by the broker if the client sent none).
    pub client_id: String,
    /// The user name, only once its password was checked (or when no users are configured and
    /// anonymous access is allowed, the name the client gave, unverified: see
    /// [`ClientIdentity::username_verified`]).
    pub username: Option<String>,
    /// Whether `username` was checked against a password.
    pub username_verified: bool,
    /// What the transport proved.
    pub transport: TransportIdentity,
}

/// Who a client proved to be, as far as a session's ownership goes: the verified user name,
/// the key of the certificate it presented, and the application and module its verified module
/// claims name (not their measurement, so an updated module keeps its session). A session is
/// taken over or resumed only by a client with the same principal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// The user name, if its password was checked.
    pub username: Option<String>,
    /// SHA-256 of the client certificate's public key, if the client is attested (its key is
    /// then bound to its evidence).
    pub certificate_key_sha256: Option<[u8; 32]>,
    /// The application its verified module claims name.
    pub app: Option<String>,
    /// The module its verified module claims name.
    pub module: Option<String>,
}

impl ClientIdentity {
    /// Who this client proved to be (see [`Principal`]).
    pub fn principal(&self) -> Principal {
        let attested = self.transport.attested.as_ref();
        Principal {
            username: self.username.clone().filter(|_| self.username_verified),
            // Only an attested client's key says who it is: a client outside any TEE presents
            // a certificate it may make afresh for every connection.
            certificate_key_sha256: self
                .transport
                .certificate_key_sha256
                .filter(|_| attested.is_some()),
            app: attested.and_then(|a| a.app.clone()),
            module: attested.and_then(|a| a.module.clone()),
        }
    }

    /// The client's address for logs (empty when the listener knows none).
    pub fn remote(&self) -> String {
        self.transport
            .remote_addr
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// The attested claims, if the client proved any.
    pub fn attested(&self) -> Option<&AttestedClaims> {
        self.transport.attested.as_ref()
    }
}
