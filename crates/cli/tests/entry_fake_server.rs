//! `entry` commands end to end against an in-process Entry API on a Unix socket: requests built from
//! flags, paging, sorting, and SPIRE's output on both streams.

use std::sync::{Arc, Mutex};

use spire_cli::server::{Settings, run_with};
use spire_proto::spire::api::server::entry::v1::entry_server::{Entry as EntryApi, EntryServer};
use spire_proto::spire::api::server::entry::v1::*;
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid, Status as ApiStatus};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Fake {
    entries: Vec<Entry>,
    created: Mutex<Vec<Entry>>,
    list_requests: Mutex<Vec<ListEntriesRequest>>,
}

fn entry(id: &str, path: &str) -> Entry {
    Entry {
        id: id.into(),
        spiffe_id: Some(Spiffeid { trust_domain: "example.org".into(), path: path.into() }),
        parent_id: Some(Spiffeid { trust_domain: "example.org".into(), path: "/father".into() }),
        selectors: vec![Selector { r#type: "unix".into(), value: "uid:1".into() }],
        ..Default::default()
    }
}

/// The service handed to tonic; the test keeps the other reference to inspect requests.
struct Service(Arc<Fake>);

#[tonic::async_trait]
impl EntryApi for Service {
    async fn count_entries(&self, _: Request<CountEntriesRequest>) -> Result<Response<CountEntriesResponse>, Status> {
        Ok(Response::new(CountEntriesResponse { count: self.0.entries.len() as i32 }))
    }

    /// One entry per page, to exercise paging.
    async fn list_entries(&self, req: Request<ListEntriesRequest>) -> Result<Response<ListEntriesResponse>, Status> {
        let req = req.into_inner();
        let index: usize = req.page_token.parse().unwrap_or(0);
        self.0.list_requests.lock().unwrap().push(req);
        let next = if index + 1 < self.0.entries.len() { (index + 1).to_string() } else { String::new() };
        Ok(Response::new(ListEntriesResponse {
            entries: self.0.entries.get(index).cloned().into_iter().collect(),
            next_page_token: next,
        }))
    }

    async fn get_entry(&self, _: Request<GetEntryRequest>) -> Result<Response<Entry>, Status> {
        Err(Status::not_found("entry not found"))
    }

    async fn batch_create_entry(
        &self,
        req: Request<BatchCreateEntryRequest>,
    ) -> Result<Response<BatchCreateEntryResponse>, Status> {
        let mut results = Vec::new();
        for e in req.into_inner().entries {
            self.0.created.lock().unwrap().push(e.clone());
            let exists = e.spiffe_id.as_ref().is_some_and(|id| id.path == "/already-exist");
            results.push(if exists {
                batch_create_entry_response::Result {
                    status: Some(ApiStatus { code: 6, message: "similar entry already exists".into() }),
                    entry: None,
                }
            } else {
                batch_create_entry_response::Result {
                    status: Some(ApiStatus { code: 0, message: "OK".into() }),
                    entry: Some(Entry { id: "entry-1".into(), ..e }),
                }
            });
        }
        Ok(Response::new(BatchCreateEntryResponse { results }))
    }

    async fn batch_update_entry(
        &self,
        _: Request<BatchUpdateEntryRequest>,
    ) -> Result<Response<BatchUpdateEntryResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn batch_delete_entry(
        &self,
        req: Request<BatchDeleteEntryRequest>,
    ) -> Result<Response<BatchDeleteEntryResponse>, Status> {
        let results = req
            .into_inner()
            .ids
            .into_iter()
            .map(|id| batch_delete_entry_response::Result {
                status: Some(if id == "missing" {
                    ApiStatus { code: 5, message: "entry not found".into() }
                } else {
                    ApiStatus { code: 0, message: "OK".into() }
                }),
                id,
            })
            .collect();
        Ok(Response::new(BatchDeleteEntryResponse { results }))
    }

    async fn get_authorized_entries(
        &self,
        _: Request<GetAuthorizedEntriesRequest>,
    ) -> Result<Response<GetAuthorizedEntriesResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }

    type SyncAuthorizedEntriesStream = tokio_stream::Empty<Result<SyncAuthorizedEntriesResponse, Status>>;

    async fn sync_authorized_entries(
        &self,
        _: Request<tonic::Streaming<SyncAuthorizedEntriesRequest>>,
    ) -> Result<Response<Self::SyncAuthorizedEntriesStream>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    socket: String,
    fake: Arc<Fake>,
}

async fn start(fake: Fake) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let fake = Arc::new(fake);
    let service = EntryServer::new(Service(Arc::clone(&fake)));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await
            .unwrap();
    });
    Harness { socket: socket.to_str().unwrap().to_owned(), _dir: dir, fake }
}

async fn cli(h: &Harness, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.extend(["-socketPath".to_owned(), h.socket.clone()]);
    let mut input = stdin.as_bytes();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(all, &mut input, &mut out, &mut err, &Settings::isolated()).await;
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

#[tokio::test]
async fn show_pages_and_sorts() {
    let h =
        start(Fake { entries: vec![entry("e2", "/b"), entry("e3", "/c"), entry("e1", "/a")], ..Default::default() })
            .await;
    let (code, out, err) =
        cli(&h, &["entry", "show", "-selector", "unix:uid:1", "-matchSelectorsOn", "exact"], "").await;
    assert_eq!((code, err.as_str()), (0, ""));
    let block = |id: &str, path: &str| {
        format!(
            "Entry ID                : {id}\nSPIFFE ID               : spiffe://example.org{path}\nParent ID               : spiffe://example.org/father\nRevision                : 0\nX509-SVID TTL           : default\nJWT-SVID TTL            : default\nSelector                : unix:uid:1\n\n"
        )
    };
    assert_eq!(out, format!("Found 3 entries\n{}{}{}", block("e1", "/a"), block("e2", "/b"), block("e3", "/c")));
    let requests = h.fake.list_requests.lock().unwrap();
    assert_eq!(requests.len(), 3, "one request per page");
    assert!(requests.iter().all(|r| r.page_size == 500));
    let filter = requests[0].filter.clone().unwrap();
    assert_eq!(filter.by_selectors.unwrap().r#match, 0, "exact");
}

#[tokio::test]
async fn create_failure_goes_to_stderr() {
    let h = start(Fake::default()).await;
    let (code, out, err) = cli(
        &h,
        &["entry", "create", "-spiffeID", "spiffe://example.org/already-exist", "-node", "-selector", "unix:uid:1"],
        "",
    )
    .await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "Failed to create the following entry (code: AlreadyExists, msg: \"similar entry already exists\"):
Entry ID                : (none)
SPIFFE ID               : spiffe://example.org/already-exist
Parent ID               : spiffe://example.org/spire/server
Revision                : 0
X509-SVID TTL           : default
JWT-SVID TTL            : default
Selector                : unix:uid:1

Error: failed to create one or more entries
"
    );
}

#[tokio::test]
async fn create_from_stdin_data() {
    let h = start(Fake::default()).await;
    let data = r#"{"entries":[{"selectors":[{"type":"unix","value":"uid:1111"}],"spiffe_id":"spiffe://example.org/Blog",
        "parent_id":"spiffe://example.org/spire/agent/join_token/TokenBlog","x509_svid_ttl":200,"jwt_svid_ttl":30,
        "admin":true,"hint":"internal","entryExpiry":0}]}"#;
    let (code, out, err) = cli(&h, &["entry", "create", "-data", "-", "-jwtSVIDIncludeJTI"], data).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(
        out.starts_with("Entry ID                : entry-1\nSPIFFE ID               : spiffe://example.org/Blog\n"),
        "{out}"
    );
    assert!(out.contains("X509-SVID TTL           : 200\nJWT-SVID TTL            : 30\n"));
    assert!(out.contains("Admin                   : true\nHint                    : internal\n"));
    let created = h.fake.created.lock().unwrap();
    assert_eq!(created[0].x509_svid_ttl, 200);
}

#[tokio::test]
async fn create_sends_flags() {
    let h = start(Fake::default()).await;
    let args = [
        "entry",
        "create",
        "-parentID",
        "spiffe://example.org/parent",
        "-spiffeID",
        "spiffe://example.org/w",
        "-selector",
        "unix:uid:1",
        "-selector=k8s:ns:default",
        "-dns",
        "a.example.org",
        "-dns",
        "b.example.org",
        "-federatesWith",
        "spiffe://other.org",
        "-x509SVIDTTL",
        "60",
        "-jwtSVIDTTL=30",
        "-admin",
        "-downstream=false",
        "-storeSVID",
        "-hint",
        "h",
        "-entryExpiry",
        "1700000000",
        "-entryID",
        "custom",
        "-disableX509SVIDPrefetch",
        "-output",
        "json",
    ];
    let (code, out, err) = cli(&h, &args, "").await;
    assert_eq!((code, err.as_str()), (0, ""));
    // SPIRE's printer passes the message through a Go map: keys sorted, null members dropped.
    assert!(out.starts_with(r#"{"results":[{"entry":{"additional_attributes":{"#), "{out}");
    assert!(
        out.contains(r#""id":"entry-1""#) && out.ends_with("\"status\":{\"code\":0,\"message\":\"OK\"}}]}\n"),
        "{out}"
    );
    let e = h.fake.created.lock().unwrap()[0].clone();
    assert_eq!(e.id, "custom");
    assert_eq!(e.selectors.len(), 2);
    assert_eq!(e.selectors[1], Selector { r#type: "k8s".into(), value: "ns:default".into() });
    assert_eq!(e.dns_names, ["a.example.org", "b.example.org"]);
    assert_eq!(e.federates_with, ["spiffe://other.org"]);
    assert_eq!((e.x509_svid_ttl, e.jwt_svid_ttl, e.admin, e.downstream, e.store_svid), (60, 30, true, false, true));
    assert_eq!((e.hint.as_str(), e.expires_at), ("h", 1_700_000_000));
    let attrs = e.additional_attributes.unwrap();
    assert!(attrs.disable_x509_svid_prefetch && !attrs.jwt_svid_include_jti);
}

#[tokio::test]
async fn delete_reports_each_result() {
    let h = start(Fake::default()).await;
    let (code, out, err) = cli(&h, &["entry", "delete", "-file", "-"], r#"{"ids":["entry-0","missing"]}"#).await;
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "Deleted entry with ID: entry-0\n\n\n\n\nDeleted 1 entries successfully, but failed to delete 1 entries"
    );
    assert_eq!(
        err,
        "Failed to delete entry with ID missing (code: NotFound, msg: \"entry not found\")\nError: failed to delete one or more entries\n"
    );
    let (code, out, _) = cli(&h, &["entry", "delete", "-entryID", "missing", "-output", "json"], "").await;
    assert_eq!(code, 0, "json output reports instead of failing");
    assert_eq!(out, "{\"results\":[{\"id\":\"missing\",\"status\":{\"code\":5,\"message\":\"entry not found\"}}]}\n");
}

#[tokio::test]
async fn count_and_errors() {
    let h = start(Fake { entries: vec![entry("e1", "/a")], ..Default::default() }).await;
    assert_eq!(cli(&h, &["entry", "count"], "").await, (0, "1 registration entry\n".into(), String::new()));
    assert_eq!(cli(&h, &["entry", "count", "-output", "json"], "").await, (0, "{\"count\":1}\n".into(), String::new()));
    let (code, _, err) = cli(&h, &["entry", "show", "-entryID", "nope"], "").await;
    assert_eq!(code, 1);
    assert_eq!(err, "Error: error fetching entry ID nope: rpc error: code = NotFound desc = entry not found\n");
}
