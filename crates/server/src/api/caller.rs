//! Who is calling: a local process on the private Unix socket, or a peer on TCP with (optionally) a
//! verified X509-SVID.

use std::net::SocketAddr;

use spire_identity::{Selector, SpiffeId};
use tonic::{Request, Status};

/// What the TCP endpoint learned from the TLS handshake; attached to every request of a connection.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// Remote address.
    pub addr: Option<SocketAddr>,
    /// The SPIFFE ID of the verified client certificate, if one was presented.
    pub id: Option<SpiffeId>,
    /// Its serial number in decimal, as SPIRE records agent SVID serials.
    pub cert_serial: String,
    /// Its NotAfter, Unix seconds.
    pub cert_expires_at: i64,
}

/// The authenticated caller of a request, with the roles SPIRE's policy cares about.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Came over the private Unix socket (local callers are admin).
    pub local: bool,
    /// TLS peer details, for TCP callers.
    pub peer: PeerInfo,
    /// In `admin_ids`, or an entry for its ID has `admin = true`.
    pub admin: bool,
    /// An entry for its ID has `downstream = true`.
    pub downstream: bool,
    /// An attested, current, unbanned agent.
    pub agent: bool,
    /// The agent's node selectors (from attestation), for node alias matching.
    pub node_selectors: Vec<Selector>,
}

impl Caller {
    /// The caller's SPIFFE ID, if it presented one.
    pub fn id(&self) -> Option<&SpiffeId> {
        self.peer.id.as_ref()
    }

    /// The caller attached by the auth layer.
    pub fn of<T>(request: &Request<T>) -> Result<&Caller, Status> {
        request.extensions().get::<Caller>().ok_or_else(|| Status::internal("caller was not authenticated"))
    }

    /// The agent ID of an agent caller.
    pub fn agent_id(&self) -> Result<&SpiffeId, Status> {
        match (&self.peer.id, self.agent) {
            (Some(id), true) => Ok(id),
            _ => Err(Status::permission_denied("caller is not an agent")),
        }
    }

    /// A short description for logs.
    pub fn describe(&self) -> String {
        match (&self.peer.id, self.local) {
            (_, true) => "local".into(),
            (Some(id), _) => id.to_string(),
            (None, _) => self.peer.addr.map_or_else(|| "unknown".into(), |a| a.to_string()),
        }
    }
}
