//! `spire.api.server.debug.v1.Debug` on the private socket: what `spire-server debug getinfo` prints.

use std::sync::Arc;
use std::time::Instant;

use spire_datastore::{EntryFilter, NodeFilter};
use spire_proto::spire::api::server::debug::v1::debug_server::Debug;
use spire_proto::spire::api::server::debug::v1::{GetInfoRequest, GetInfoResponse, get_info_response};
use tonic::{Request, Response, Status};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{ServerContext, convert, ds_status};
use crate::endpoints::tls::ServerCert;

/// The debug service.
#[derive(Debug, Clone)]
pub struct DebugService {
    ctx: Arc<ServerContext>,
    cert: Arc<ServerCert>,
    started: Instant,
}

impl DebugService {
    /// A service reporting on `ctx` and the server SVID in `cert`.
    pub fn new(ctx: Arc<ServerContext>, cert: Arc<ServerCert>) -> Self {
        Self { ctx, cert, started: Instant::now() }
    }
}

fn cert_info(der: &[u8]) -> get_info_response::Cert {
    let Ok((_, cert)) = X509Certificate::from_der(der) else { return get_info_response::Cert::default() };
    let id = cert.subject_alternative_name().ok().flatten().and_then(|san| {
        san.value.general_names.iter().find_map(|n| match n {
            GeneralName::URI(u) => spire_identity::SpiffeId::parse(u).ok(),
            _ => None,
        })
    });
    get_info_response::Cert {
        id: id.as_ref().map(convert::spiffe_id_proto),
        expires_at: cert.validity().not_after.timestamp(),
        subject: cert.subject().to_string(),
    }
}

#[tonic::async_trait]
impl Debug for DebugService {
    async fn get_info(&self, _: Request<GetInfoRequest>) -> Result<Response<GetInfoResponse>, Status> {
        let ds = &self.ctx.ds;
        let agents = ds.count_attested_nodes(&NodeFilter::default()).await.map_err(ds_status)?;
        let entries = ds.count_entries(&EntryFilter::default()).await.map_err(ds_status)?;
        let bundles = ds.count_bundles().await.map_err(ds_status)?;
        let chain = self.cert.chain();
        Ok(Response::new(GetInfoResponse {
            svid_chain: chain.iter().map(|c| cert_info(c)).collect(),
            uptime: i32::try_from(self.started.elapsed().as_secs()).unwrap_or(i32::MAX),
            agents_count: i32::try_from(agents).unwrap_or(i32::MAX),
            federated_bundles_count: i32::try_from(bundles.saturating_sub(1)).unwrap_or(i32::MAX),
            entries_count: i32::try_from(entries).unwrap_or(i32::MAX),
        }))
    }
}
