//! The Unix-socket listeners of the server and the agent, in one place so that every socket (the
//! agent's Workload API, the server's private admin socket, and any later one) gets the same two
//! guarantees:
//!
//! - [`bind`]: the socket file has its final permissions from the moment it exists at its path;
//! - [`incoming`]: every accepted connection goes through [`AnyAuthority`], so that gRPC clients that
//!   send the socket path as `:authority` (grpc-core: Python, C++, Ruby, C#; grpc-java) are served
//!   like those that send `localhost` (grpc-go, grpc-node, tonic). See [`authority`] for why this
//!   has to happen on the connection's bytes.
//!
//! TCP listeners don't use this: they keep HTTP/2's normal rules.

pub mod authority;
mod bind;
mod conn;
pub mod hpack;

use futures_core::Stream;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;

pub use bind::{BindError, bind};
pub use conn::AnyAuthority;

/// File mode of a socket any local user may connect to (SPIRE's Workload API socket); callers are
/// told apart by attestation.
pub const PUBLIC_MODE: u32 = 0o777;
/// File mode of an administrative socket (SPIRE's server private socket and agent admin socket):
/// the owner and its group.
pub const ADMIN_MODE: u32 = 0o770;

/// The connections accepted on `listener`, each first given to `accept`, which wraps it (with its
/// caller's identity, say) or drops it by returning `None`.
pub fn incoming<S, F>(listener: UnixListener, mut accept: F) -> impl Stream<Item = std::io::Result<AnyAuthority<S>>>
where
    F: FnMut(UnixStream) -> Option<S>,
{
    UnixListenerStream::new(listener).filter_map(move |conn| match conn {
        Ok(stream) => accept(stream).map(|s| Ok(AnyAuthority::new(s))),
        Err(e) => Some(Err(e)),
    })
}
