//! go-plugin's handshake line: the first line a plugin prints on stdout,
//! `CORE-PROTOCOL|APP-PROTOCOL|NETWORK|ADDRESS|PROTOCOL[|SERVER-CERT[|MUX]]`, e.g.
//! `1|1|unix|/tmp/plugin123|grpc|`.

/// go-plugin's core protocol version, the only one there is.
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The application protocol version SPIRE's host and spire-plugin-sdk agree on.
pub const APP_PROTOCOL_VERSION: u32 = 1;

/// Where the plugin serves gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket path (what plugins use on Linux).
    Unix(String),
    /// `host:port` on loopback (plugins on Windows).
    Tcp(String),
}

/// Why a handshake line is refused; the messages are go-plugin's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not a handshake line at all (a plugin built without go-plugin, or one printing first).
    #[error("Unrecognized remote plugin message: {0}")]
    Unrecognized(String),
    /// The core protocol number is not a number.
    #[error("error parsing core protocol version: {0}")]
    CoreVersion(String),
    /// Another core protocol.
    #[error(
        "incompatible core API version with plugin. Plugin version: {0}, Core version: {CORE_PROTOCOL_VERSION}; the plugin needs to be rebuilt"
    )]
    IncompatibleCore(String),
    /// Another application protocol.
    #[error("Incompatible API version with plugin. Plugin version: {0}, Client versions: [{APP_PROTOCOL_VERSION}]")]
    IncompatibleApp(String),
    /// Neither `unix` nor `tcp`.
    #[error("unknown address type: {0}")]
    Network(String),
    /// net/rpc or anything but gRPC (SPIRE allows gRPC only).
    #[error("unsupported plugin protocol {0:?}. Supported: [grpc]")]
    Protocol(String),
    /// The plugin wants mutual TLS (AutoMTLS), which SPIRE does not use.
    #[error("the plugin announced a TLS certificate, but SPIRE plugins are served without TLS")]
    Tls,
}

/// Parses the handshake line.
pub fn parse(line: &str) -> Result<Address, HandshakeError> {
    let line = line.trim();
    let parts: Vec<&str> = line.split('|').collect();
    if parts.len() < 4 {
        return Err(HandshakeError::Unrecognized(line.to_owned()));
    }
    let core: u32 = parts[0].parse().map_err(|_| HandshakeError::CoreVersion(parts[0].to_owned()))?;
    if core != CORE_PROTOCOL_VERSION {
        return Err(HandshakeError::IncompatibleCore(parts[0].to_owned()));
    }
    if parts[1].parse::<u32>().ok() != Some(APP_PROTOCOL_VERSION) {
        return Err(HandshakeError::IncompatibleApp(parts[1].to_owned()));
    }
    let protocol = parts.get(4).copied().unwrap_or("netrpc");
    if protocol != "grpc" {
        return Err(HandshakeError::Protocol(protocol.to_owned()));
    }
    // go-plugin ignores short "extra" data there; a certificate is base64 DER, far longer.
    if parts.get(5).is_some_and(|cert| cert.len() > 50) {
        return Err(HandshakeError::Tls);
    }
    match parts[2] {
        "unix" => Ok(Address::Unix(parts[3].to_owned())),
        "tcp" => Ok(Address::Tcp(parts[3].to_owned())),
        other => Err(HandshakeError::Network(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_plugin_lines_parse() {
        assert_eq!(parse("1|1|unix|/tmp/plugin42|grpc|\n"), Ok(Address::Unix("/tmp/plugin42".into())));
        assert_eq!(parse("1|1|tcp|127.0.0.1:10000|grpc"), Ok(Address::Tcp("127.0.0.1:10000".into())));
        // go-plugin 1.7 appends whether it can multiplex the broker.
        assert_eq!(parse("1|1|unix|/tmp/p|grpc||true"), Ok(Address::Unix("/tmp/p".into())));
    }

    #[test]
    fn anything_else_is_refused_with_go_plugins_words() {
        assert_eq!(parse("hello world").unwrap_err().to_string(), "Unrecognized remote plugin message: hello world");
        assert!(matches!(parse("2|1|unix|/p|grpc|"), Err(HandshakeError::IncompatibleCore(_))));
        assert!(matches!(parse("x|1|unix|/p|grpc|"), Err(HandshakeError::CoreVersion(_))));
        assert!(matches!(parse("1|2|unix|/p|grpc|"), Err(HandshakeError::IncompatibleApp(_))));
        assert_eq!(
            parse("1|1|unix|/p|netrpc|").unwrap_err().to_string(),
            "unsupported plugin protocol \"netrpc\". Supported: [grpc]"
        );
        assert!(matches!(parse("1|1|unix|/p").unwrap_err(), HandshakeError::Protocol(_)));
        assert!(matches!(parse("1|1|pipe|/p|grpc|"), Err(HandshakeError::Network(_))));
        assert_eq!(parse(&format!("1|1|unix|/p|grpc|{}", "A".repeat(60))), Err(HandshakeError::Tls));
    }
}
