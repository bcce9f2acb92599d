//! `spire-agent api watch`: prints every X509-SVID update until interrupted.
//!
//! SPIRE runs go-spiffe's `workloadapi.WatchX509Context`, and what the user sees is that library's
//! behaviour, reproduced here: every stream error goes to stderr (`OnX509ContextWatchError`), after
//! which the watch reconnects with a linear backoff (1s, 2s, ... 30s, reset by every message received);
//! `InvalidArgument` and `Canceled` end it, with the error printed a second time by the command. An
//! interrupt cancels the context, so it also ends with an error: `rpc error: code = Canceled desc =
//! context canceled` twice when it lands on an open stream, `context canceled` once during a backoff,
//! and exit code 1 either way. Each update shows the time since the previous one (or since start).
//! There is no `-timeout`: the watch waits as long as it takes.

use std::io::Write;
use std::time::{Duration, Instant};

use spire_proto::workload::X509svidRequest;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;

use super::{CallError, INSTANCE_USAGE, SOCKET_PATH_USAGE, printer, recv, svid, with_header};
use crate::agent::dial;
use crate::agent::settings::{DEFAULT_SOCKET_PATH, Settings, resolve_socket_path};
use crate::flags::{FlagError, FlagSet};
use crate::gotime::GoDuration;

pub(crate) const SYNOPSIS: &str = "Attaches to the Workload API and prints updates as they're received";

/// What go-spiffe's watcher gets when its context is cancelled on an open stream.
const CANCELED_ON_STREAM: &str = "rpc error: code = Canceled desc = context canceled";

fn flag_set() -> FlagSet {
    let mut fs = FlagSet::new("watch");
    fs.string("socketPath", DEFAULT_SOCKET_PATH, SOCKET_PATH_USAGE).string("instance", "", INSTANCE_USAGE);
    fs
}

/// The usage block Go's flag package prints.
pub(crate) fn usage() -> String {
    flag_set().usage()
}

pub(crate) async fn run(args: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write, settings: &Settings) -> i32 {
    let fs = flag_set();
    let flags = match fs.parse(args) {
        Ok(flags) => flags,
        // Go's flag package prints the message and usage, then the command prints the error again.
        Err(FlagError::Invalid(message)) => {
            let _ = write!(stderr, "{message}\n{}{message}\n", fs.usage());
            return 1;
        }
        Err(FlagError::Help) => {
            let _ = writeln!(stderr, "{}flag: help requested", fs.usage());
            return 1;
        }
    };
    let socket = match resolve_socket_path(&flags.string("socketPath"), &flags.string("instance"), settings) {
        Ok(path) => path,
        Err(message) => {
            let _ = writeln!(stderr, "{message}");
            return 1;
        }
    };

    let mut last_update = Instant::now();
    let mut backoff = LinearBackoff::default();
    loop {
        let ended = tokio::select! {
            err = watch_once(&socket, stdout, stderr, &mut last_update, &mut backoff) => err,
            () = settings.interrupted() => {
                let _ = write!(stderr, "{CANCELED_ON_STREAM}\n{CANCELED_ON_STREAM}\n");
                return 1;
            }
        };
        let _ = writeln!(stderr, "{ended}");
        if matches!(ended.code(), tonic::Code::InvalidArgument | tonic::Code::Cancelled) {
            let _ = writeln!(stderr, "{ended}");
            return 1;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next()) => {}
            () = settings.interrupted() => {
                let _ = writeln!(stderr, "context canceled");
                return 1;
            }
        }
    }
}

/// One stream, from connecting to its end; returns why it ended.
async fn watch_once(
    socket: &str,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    last_update: &mut Instant,
    backoff: &mut LinearBackoff,
) -> CallError {
    let channel = match dial::connect(socket).await {
        Ok(channel) => channel,
        Err(status) => return status.into(),
    };
    let mut api = SpiffeWorkloadApiClient::new(channel);
    let mut stream = match api.fetch_x509svid(with_header(X509svidRequest {})).await {
        Ok(resp) => resp.into_inner(),
        Err(status) => return status.into(),
    };
    loop {
        let resp = match recv(&mut stream).await {
            Ok(resp) => resp,
            Err(e) => return e,
        };
        backoff.reset();
        match svid::parse_x509_context(&resp) {
            Ok(svids) => {
                let elapsed = GoDuration(i64::try_from(last_update.elapsed().as_nanos()).unwrap_or(i64::MAX));
                let _ = stdout.write_all(printer::x509_svids(&svids, elapsed).as_bytes());
                let _ = stdout.flush();
                *last_update = Instant::now();
            }
            // A response that does not parse is reported and the stream kept.
            Err(why) => {
                let _ = writeln!(stderr, "{why}");
            }
        }
    }
}

/// go-spiffe's default backoff: one more second per retry, at most 30.
#[derive(Debug, Default)]
struct LinearBackoff {
    retries: u64,
}

impl LinearBackoff {
    fn next(&mut self) -> Duration {
        let delay = Duration::from_secs((self.retries + 1).min(30));
        self.retries += 1;
        delay
    }

    fn reset(&mut self) {
        self.retries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_linear_and_capped() {
        let mut b = LinearBackoff::default();
        let delays: Vec<u64> = (0..3).map(|_| b.next().as_secs()).collect();
        assert_eq!(delays, [1, 2, 3]);
        b.reset();
        assert_eq!(b.next().as_secs(), 1);
        let mut b = LinearBackoff { retries: 100 };
        assert_eq!(b.next().as_secs(), 30);
    }

    #[test]
    fn usage_like_spire() {
        assert_eq!(
            usage(),
            "Usage of watch:
  -instance string
    \tInstance name to substitute into socket templates (env SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE).
  -socketPath string
    \tPath to the SPIRE Agent API Unix domain socket (default \"/tmp/spire-agent/public/api.sock\")
"
        );
    }
}
