//! Rewrites the `:authority` of HTTP/2 requests that `h2` would refuse, on the bytes a client sends.
//!
//! gRPC clients on a Unix socket send what they like as `:authority`: grpc-core (Python, C++, Ruby,
//! C#) the percent-encoded socket path, grpc-java the raw path, grpc-go `localhost`. `h2` parses it as
//! a URI authority while decoding the HEADERS frame and resets the stream with PROTOCOL_ERROR before
//! tonic or any tower layer sees the request, with no option to relax it. So the fix sits below `h2`,
//! on the connection's inbound bytes: this is a sans-I/O state machine that passes frames through and
//! replaces an authority `h2` would refuse by `localhost`.
//!
//! Header blocks are HPACK-compressed against a dynamic table that the client's encoder and `h2`'s
//! decoder keep in step, so every block is decoded here, in order, to follow that table ([`hpack`]). While no
//! block needs a change, blocks go through byte for byte and `h2`'s table stays the client's. From
//! the first block that needs one, every block is re-encoded as literals without indexing: `h2`'s
//! table then never changes again and nothing we send refers to it, so the two can never disagree.

use bytes::{Buf, BufMut, BytesMut};

use crate::hpack::{self, Decoder, HpackError};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame header length.
const FRAME_HEADER: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may advertise, so frames of this size are always
/// accepted by `h2` whatever it advertised.
const MAX_OUT_FRAME: usize = 16_384;
/// The dynamic table size `h2` advertises (the protocol default; tonic does not change it). A client
/// may not grow its table beyond it.
const HEADER_TABLE_SIZE: usize = 4_096;
/// The largest compressed header block we buffer: four times the 16 KiB header list hyper's server
/// accepts (a block decodes to more than its own size, so nothing `h2` would take is refused).
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The most fields a block may have: a field counts at least 32 bytes against hyper's 16 KiB list,
/// so 512 is already more than `h2` takes. It also bounds the decoder's work on a hostile block.
pub const MAX_FIELDS: usize = 1_024;
/// What an unusable authority becomes.
const REPLACEMENT: &[u8] = b"localhost";

/// Why a connection's bytes could not be followed; the connection is then closed, as `h2` would
/// close it on the same input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RewriteError {
    /// A HEADERS or CONTINUATION frame broke the framing rules.
    #[error("malformed HTTP/2 header frame: {0}")]
    Framing(&'static str),
    /// A header block is larger than we buffer.
    #[error("HTTP/2 header block larger than {MAX_HEADER_BLOCK} bytes")]
    BlockTooLarge,
    /// HPACK decoding failed (a COMPRESSION_ERROR for `h2` too), or the block has more than
    /// [`MAX_FIELDS`] fields.
    #[error("HPACK decoding failed: {0}")]
    Hpack(#[from] HpackError),
}

/// Where the parser is in the inbound byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the 24-byte client preface.
    Preface,
    /// Waiting for a 9-byte frame header.
    FrameHeader,
    /// Passing through the rest of a frame that carries no header block.
    Payload { remaining: usize },
    /// Waiting for the whole payload of a HEADERS or CONTINUATION frame.
    HeaderPayload { header: [u8; FRAME_HEADER] },
    /// Not an HTTP/2 prior-knowledge connection: everything passes through untouched.
    Transparent,
}

/// A header block being collected across HEADERS and CONTINUATION frames.
struct PendingBlock {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as received, sent on unchanged when the block needs no rewrite.
    original: Vec<u8>,
}

/// The inbound half of one connection: feed it what the client sent, get what `h2` should read.
pub struct AuthorityRewriter {
    state: State,
    decoder: Decoder,
    /// Set from the first rewritten block on; see the module doc.
    rewriting: bool,
    pending: Option<PendingBlock>,
}

impl std::fmt::Debug for AuthorityRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityRewriter").field("state", &self.state).field("rewriting", &self.rewriting).finish()
    }
}

impl Default for AuthorityRewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthorityRewriter {
    /// A rewriter for a new connection.
    pub fn new() -> Self {
        Self { state: State::Preface, decoder: Decoder::new(HEADER_TABLE_SIZE), rewriting: false, pending: None }
    }

    /// Whether some block of this connection needed its authority replaced.
    pub fn is_rewriting(&self) -> bool {
        self.rewriting
    }

    /// How many bytes may go straight from the socket to `h2`, bypassing [`Self::process`]: the rest
    /// of a frame without a header block, or everything on a connection that is not HTTP/2. The
    /// caller must then report them with [`Self::passed_through`].
    pub fn passthrough_budget(&self) -> usize {
        match self.state {
            State::Payload { remaining } => remaining,
            State::Transparent => usize::MAX,
            _ => 0,
        }
    }

    /// Accounts for `n` bytes that went straight through (at most [`Self::passthrough_budget`]).
    pub fn passed_through(&mut self, n: usize) {
        if let State::Payload { remaining } = &mut self.state {
            *remaining -= n;
            if *remaining == 0 {
                self.state = State::FrameHeader;
            }
        }
    }

    /// Consumes what it can of `input` and appends the bytes for `h2` to `out`. What is left in
    /// `input` is an incomplete unit that needs more bytes.
    pub fn process(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<(), RewriteError> {
        loop {
            match self.state {
                State::Transparent => {
                    out.extend_from_slice(input);
                    input.clear();
                    return Ok(());
                }
                State::Preface => {
                    let n = input.len().min(PREFACE.len());
                    if input[..n] != PREFACE[..n] {
                        self.state = State::Transparent;
                        continue;
                    }
                    if n < PREFACE.len() {
                        return Ok(());
                    }
                    out.extend_from_slice(&input.split_to(PREFACE.len()));
                    self.state = State::FrameHeader;
                }
                State::FrameHeader => {
                    if input.len() < FRAME_HEADER {
                        return Ok(());
                    }
                    let mut header = [0u8; FRAME_HEADER];
                    header.copy_from_slice(&input[..FRAME_HEADER]);
                    let length = frame_length(&header);
                    let kind = header[3];
                    if kind == TYPE_HEADERS || kind == TYPE_CONTINUATION {
                        if length > MAX_HEADER_BLOCK {
                            return Err(RewriteError::BlockTooLarge);
                        }
                        input.advance(FRAME_HEADER);
                        self.state = State::HeaderPayload { header };
                    } else {
                        if self.pending.is_some() {
                            return Err(RewriteError::Framing("a frame other than CONTINUATION inside a header block"));
                        }
                        out.extend_from_slice(&input.split_to(FRAME_HEADER));
                        self.state =
                            if length == 0 { State::FrameHeader } else { State::Payload { remaining: length } };
                    }
                }
                State::Payload { remaining } => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    let n = remaining.min(input.len());
                    out.extend_from_slice(&input.split_to(n));
                    self.passed_through(n);
                }
                State::HeaderPayload { header } => {
                    let length = frame_length(&header);
                    if input.len() < length {
                        return Ok(());
                    }
                    let payload = input.split_to(length);
                    self.state = State::FrameHeader;
                    self.header_frame(&header, &payload, out)?;
                }
            }
        }
    }

    /// Takes one HEADERS or CONTINUATION frame; at END_HEADERS, emits the block.
    fn header_frame(
        &mut self,
        header: &[u8; FRAME_HEADER],
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), RewriteError> {
        let (kind, flags, stream_id) = (header[3], header[4], stream_id(header));
        if kind == TYPE_HEADERS {
            if self.pending.is_some() {
                return Err(RewriteError::Framing("HEADERS inside another header block"));
            }
            let (priority, fragment) = split_headers_payload(flags, payload)?;
            self.pending = Some(PendingBlock {
                stream_id,
                end_stream: flags & FLAG_END_STREAM != 0,
                priority,
                fragment: fragment.to_vec(),
                original: Vec::with_capacity(FRAME_HEADER + payload.len()),
            });
        } else {
            match &self.pending {
                Some(block) if block.stream_id == stream_id => {}
                _ => return Err(RewriteError::Framing("CONTINUATION without a header block on its stream")),
            }
        }
        let block = self.pending.as_mut().expect("a pending block");
        if kind == TYPE_CONTINUATION {
            block.fragment.extend_from_slice(payload);
        }
        block.original.extend_from_slice(header);
        block.original.extend_from_slice(payload);
        if block.fragment.len() > MAX_HEADER_BLOCK {
            return Err(RewriteError::BlockTooLarge);
        }
        if flags & FLAG_END_HEADERS != 0 {
            let block = self.pending.take().expect("a pending block");
            self.finish_block(block, out)?;
        }
        Ok(())
    }

    /// Decodes a complete block (always, to follow the client's dynamic table) and emits it as it
    /// came, or re-encoded with a usable authority.
    fn finish_block(&mut self, block: PendingBlock, out: &mut BytesMut) -> Result<(), RewriteError> {
        let mut fields = self.decoder.decode(&block.fragment, MAX_FIELDS)?;
        let mut unusable = false;
        for field in &mut fields {
            if field.name == b":authority" && http::uri::Authority::try_from(field.value.as_slice()).is_err() {
                tracing::trace!(authority = %String::from_utf8_lossy(&field.value), "replacing an authority h2 would refuse");
                field.value = REPLACEMENT.to_vec();
                unusable = true;
            }
        }
        self.rewriting |= unusable;
        if !self.rewriting {
            out.extend_from_slice(&block.original);
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(block.original.len() * 2);
        for field in &fields {
            hpack::encode_literal(field, &mut encoded);
        }
        emit_block(block.stream_id, block.end_stream, block.priority, &encoded, out);
        Ok(())
    }
}

fn frame_length(header: &[u8; FRAME_HEADER]) -> usize {
    (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2])
}

fn stream_id(header: &[u8; FRAME_HEADER]) -> u32 {
    u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff
}

/// Splits a HEADERS payload into its priority fields and its block fragment, dropping padding.
fn split_headers_payload(flags: u8, payload: &[u8]) -> Result<(Option<[u8; 5]>, &[u8]), RewriteError> {
    let mut body = payload;
    let mut pad = 0usize;
    if flags & FLAG_PADDED != 0 {
        let (&len, rest) = body.split_first().ok_or(RewriteError::Framing("PADDED HEADERS without a pad length"))?;
        pad = usize::from(len);
        body = rest;
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        if body.len() < 5 {
            return Err(RewriteError::Framing("PRIORITY HEADERS shorter than its priority fields"));
        }
        let mut fields = [0u8; 5];
        fields.copy_from_slice(&body[..5]);
        priority = Some(fields);
        body = &body[5..];
    }
    if pad > body.len() {
        return Err(RewriteError::Framing("HEADERS padding longer than its payload"));
    }
    Ok((priority, &body[..body.len() - pad]))
}

/// Writes `block` as one HEADERS frame plus as many CONTINUATION frames as it needs.
fn emit_block(stream_id: u32, end_stream: bool, priority: Option<[u8; 5]>, block: &[u8], out: &mut BytesMut) {
    let prefix = if priority.is_some() { 5 } else { 0 };
    let first_len = block.len().min(MAX_OUT_FRAME - prefix);
    let (first, mut rest) = block.split_at(first_len);
    let mut flags = 0;
    if end_stream {
        flags |= FLAG_END_STREAM;
    }
    if priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    put_frame_header(out, prefix + first.len(), TYPE_HEADERS, flags, stream_id);
    if let Some(p) = priority {
        out.put_slice(&p);
    }
    out.put_slice(first);
    while !rest.is_empty() {
        let n = rest.len().min(MAX_OUT_FRAME);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
        put_frame_header(out, chunk.len(), TYPE_CONTINUATION, flags, stream_id);
        out.put_slice(chunk);
    }
}

fn put_frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream_id: u32) {
    let len = u32::try_from(len).expect("frames are at most 16 KiB");
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A HEADERS frame (END_HEADERS, plus `flags`) carrying `block` on stream 1.
    fn headers_frame(block: &[u8], flags: u8) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_frame_header(&mut out, block.len(), TYPE_HEADERS, FLAG_END_HEADERS | flags, 1);
        out.extend_from_slice(block);
        out.to_vec()
    }

    /// Feeds `input` whole and returns what h2 would read, decoded back into header lists.
    fn run(input: &[u8]) -> (Vec<u8>, AuthorityRewriter) {
        let mut rw = AuthorityRewriter::new();
        let mut buf = BytesMut::from(input);
        let mut out = BytesMut::new();
        rw.process(&mut buf, &mut out).expect("process");
        assert!(buf.is_empty(), "left over: {buf:?}");
        (out.to_vec(), rw)
    }

    /// Decodes every header block of a frame stream that starts after the preface.
    fn blocks(mut frames: &[u8]) -> Vec<Vec<(String, String)>> {
        let mut decoder = Decoder::new(HEADER_TABLE_SIZE);
        let mut result = Vec::new();
        let mut block = Vec::new();
        while !frames.is_empty() {
            let mut header = [0u8; FRAME_HEADER];
            header.copy_from_slice(&frames[..FRAME_HEADER]);
            let len = frame_length(&header);
            let payload = &frames[FRAME_HEADER..FRAME_HEADER + len];
            frames = &frames[FRAME_HEADER + len..];
            match header[3] {
                TYPE_HEADERS => block.extend_from_slice(split_headers_payload(header[4], payload).unwrap().1),
                TYPE_CONTINUATION => block.extend_from_slice(payload),
                _ => continue,
            }
            if header[4] & FLAG_END_HEADERS != 0 {
                let fields = decoder.decode(&block, MAX_FIELDS).expect("decode");
                result.push(
                    fields
                        .into_iter()
                        .map(|f| (String::from_utf8(f.name).unwrap(), String::from_utf8(f.value).unwrap()))
                        .collect(),
                );
                block.clear();
            }
        }
        result
    }

    fn request(authority: &str) -> Vec<(&'static [u8], Vec<u8>)> {
        vec![
            (b":method", b"POST".to_vec()),
            (b":scheme", b"http".to_vec()),
            (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID".to_vec()),
            (b":authority", authority.as_bytes().to_vec()),
            (b"te", b"trailers".to_vec()),
            (b"workload.spiffe.io", b"true".to_vec()),
        ]
    }

    /// A client encoder that indexes everything and Huffman-codes values (as grpc-core does).
    fn encode_indexed(encoder: &mut httlib_hpack::Encoder<'static>, fields: &[(&'static [u8], Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in fields {
            use httlib_hpack::Encoder;
            let flags = Encoder::HUFFMAN_VALUE | Encoder::WITH_INDEXING | Encoder::BEST_FORMAT;
            encoder.encode((n.to_vec(), v.clone(), flags), &mut out).expect("encode");
        }
        out
    }

    fn authority_of(block: &[(String, String)]) -> Option<&str> {
        block.iter().find(|(n, _)| n == ":authority").map(|(_, v)| v.as_str())
    }

    #[test]
    fn usable_authority_goes_through_byte_for_byte() {
        let mut enc = httlib_hpack::Encoder::default();
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&encode_indexed(&mut enc, &request("localhost")), 0));
        input.extend(headers_frame(&encode_indexed(&mut enc, &request("localhost")), FLAG_END_STREAM));
        let (out, rw) = run(&input);
        assert_eq!(out, input);
        assert!(!rw.is_rewriting());
    }

    #[test]
    fn percent_encoded_and_raw_paths_become_localhost_on_every_later_request() {
        for authority in ["tmp%2Fspire-agent%2Fpublic%2Fapi.sock", "/tmp/spire-agent/public/api.sock", ""] {
            let mut enc = httlib_hpack::Encoder::default();
            let mut input = PREFACE.to_vec();
            // The second request refers to the first one's dynamic-table entries.
            for _ in 0..3 {
                input.extend(headers_frame(&encode_indexed(&mut enc, &request(authority)), 0));
            }
            let (out, rw) = run(&input);
            assert!(rw.is_rewriting());
            assert_eq!(&out[..24], PREFACE);
            let blocks = blocks(&out[24..]);
            assert_eq!(blocks.len(), 3);
            for block in &blocks {
                assert_eq!(authority_of(block), Some("localhost"), "{authority:?}");
                assert_eq!(block[2], (":path".into(), "/SpiffeWorkloadAPI/FetchX509SVID".into()));
                assert_eq!(block.last().unwrap(), &("workload.spiffe.io".into(), "true".into()));
            }
        }
    }

    #[test]
    fn missing_authority_is_left_missing() {
        let mut enc = httlib_hpack::Encoder::default();
        let mut fields = request("x");
        fields.retain(|(n, _)| *n != b":authority");
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&encode_indexed(&mut enc, &fields), 0));
        let (out, _) = run(&input);
        assert_eq!(out, input);
    }

    #[test]
    fn once_rewriting_a_later_usable_authority_is_kept_and_reencoded() {
        let mut enc = httlib_hpack::Encoder::default();
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&encode_indexed(&mut enc, &request("/raw/path")), 0));
        input.extend(headers_frame(&encode_indexed(&mut enc, &request("example.org:8081")), 0));
        let (out, _) = run(&input);
        let blocks = blocks(&out[24..]);
        assert_eq!(authority_of(&blocks[0]), Some("localhost"));
        assert_eq!(authority_of(&blocks[1]), Some("example.org:8081"));
    }

    #[test]
    fn huffman_coded_block_from_rfc_7541_is_decoded() {
        // RFC 7541 C.4.1: ":method GET, :scheme http, :path /, :authority www.example.com", Huffman.
        let rfc =
            [0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff];
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&rfc, 0));
        let (out, rw) = run(&input);
        assert_eq!(out, input, "www.example.com is a usable authority");
        assert!(!rw.is_rewriting());
    }

    #[test]
    fn padding_priority_and_continuations_are_handled() {
        let mut enc = httlib_hpack::Encoder::default();
        let mut fields = request("tmp%2Fapi.sock");
        // A big header spreads the re-encoded block over CONTINUATION frames.
        fields.push((b"x-big", vec![b'a'; 40_000]));
        let block = encode_indexed(&mut enc, &fields);
        let (a, b) = block.split_at(100);
        let mut input = PREFACE.to_vec();
        // HEADERS with PADDED (3 bytes of padding) and PRIORITY, then one CONTINUATION.
        let mut payload = vec![3u8];
        payload.extend([0, 0, 0, 0, 15]);
        payload.extend_from_slice(a);
        payload.extend([0, 0, 0]);
        let mut frames = BytesMut::new();
        put_frame_header(&mut frames, payload.len(), TYPE_HEADERS, FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM, 3);
        frames.extend_from_slice(&payload);
        put_frame_header(&mut frames, b.len(), TYPE_CONTINUATION, FLAG_END_HEADERS, 3);
        frames.extend_from_slice(b);
        input.extend_from_slice(&frames);
        let (out, _) = run(&input);
        let out = &out[24..];
        assert_eq!(out[3], TYPE_HEADERS);
        assert_eq!(out[4], FLAG_END_STREAM | FLAG_PRIORITY, "no END_HEADERS: continuations follow");
        assert_eq!(&out[9..14], &[0, 0, 0, 0, 15]);
        let blocks = blocks(out);
        assert_eq!(authority_of(&blocks[0]), Some("localhost"));
        assert_eq!(blocks[0].last().unwrap().1.len(), 40_000);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_output() {
        let mut enc = httlib_hpack::Encoder::default();
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&encode_indexed(&mut enc, &request("/a/b")), 0));
        // A DATA frame and a SETTINGS frame in between.
        input.extend([0, 0, 5, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
        input.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
        input.extend(headers_frame(&encode_indexed(&mut enc, &request("/a/b")), 0));
        let (whole, _) = run(&input);
        let mut rw = AuthorityRewriter::new();
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        for b in &input {
            buf.extend_from_slice(&[*b]);
            rw.process(&mut buf, &mut out).unwrap();
        }
        assert_eq!(out.to_vec(), whole);
    }

    #[test]
    fn not_http2_passes_through() {
        let input = b"GET / HTTP/1.1\r\nHost: /tmp/x\r\n\r\n";
        let (out, _) = run(input);
        assert_eq!(out, input);
    }

    #[test]
    fn framing_violations_are_errors() {
        let mut rw = AuthorityRewriter::new();
        let mut out = BytesMut::new();
        let mut input = BytesMut::from(&PREFACE[..]);
        // CONTINUATION with no HEADERS before it.
        input.extend_from_slice(&[0, 0, 1, TYPE_CONTINUATION, FLAG_END_HEADERS, 0, 0, 0, 1, 0x82]);
        assert!(matches!(rw.process(&mut input, &mut out), Err(RewriteError::Framing(_))));

        // A header frame bigger than we buffer.
        let mut rw = AuthorityRewriter::new();
        let mut input = BytesMut::from(&PREFACE[..]);
        input.extend_from_slice(&[0xff, 0xff, 0xff, TYPE_HEADERS, 0, 0, 0, 0, 1]);
        assert_eq!(rw.process(&mut input, &mut out), Err(RewriteError::BlockTooLarge));

        // More fields than any block h2 would take (each `0x82` is `:method: GET`).
        let mut rw = AuthorityRewriter::new();
        let mut input = BytesMut::from(&PREFACE[..]);
        input.extend(headers_frame(&[0x82; MAX_FIELDS + 1], 0));
        assert_eq!(rw.process(&mut input, &mut out), Err(RewriteError::Hpack(HpackError::TooManyFields)));
        let mut rw = AuthorityRewriter::new();
        let mut input = BytesMut::from(&PREFACE[..]);
        input.extend(headers_frame(&[0x82; MAX_FIELDS], 0));
        assert_eq!(rw.process(&mut input, &mut out), Ok(()));

        // A dynamic table larger than h2 allows.
        let mut rw = AuthorityRewriter::new();
        let mut input = BytesMut::from(&PREFACE[..]);
        input.extend(headers_frame(&[0x3f, 0xe1, 0xff, 0x03, 0x82], 0));
        assert!(matches!(rw.process(&mut input, &mut out), Err(RewriteError::Hpack(_))));
    }
}
