//! Just enough HPACK (RFC 7541) to follow a client's header blocks: a decoder with the static and
//! dynamic tables, and an encoder of literals that never touch the receiver's table.
//!
//! Why ours: `h2`'s HPACK is private, and of the public crates tried, `loona-hpack` rebuilds its
//! Huffman tables for every string (17 µs a request on grpc-core's blocks, a fifth of a call's
//! latency) and `httlib-hpack` panics on a truncated integer, which a hostile local client could send
//! at will. The representations are simple; the Huffman code, the one intricate part, is decoded by
//! `httlib-huffman`'s table-driven decoder. Every input here is untrusted, so every length and index
//! is checked and nothing panics (the `h2_authority` fuzz target holds it to that).
//!
//! One leniency comes with `httlib-huffman`: final padding of zero bits, which §5.2 says to refuse,
//! decodes. It cannot matter: a block that is passed through unchanged still meets `h2`'s strict
//! decoder, and a re-encoded one carries the string as decoded, as a raw literal.

use std::collections::VecDeque;

/// Why a header block could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a representation.
    #[error("truncated header block")]
    Truncated,
    /// An integer longer than any field of a bounded block could need.
    #[error("integer too large")]
    IntegerOverflow,
    /// Index 0, or beyond the static and dynamic tables.
    #[error("header index {0} is not in the table")]
    BadIndex(usize),
    /// A Huffman-coded string that is not valid.
    #[error("invalid Huffman-coded string")]
    Huffman,
    /// A table size update above the limit, or after the first field of a block.
    #[error("invalid dynamic table size update")]
    SizeUpdate,
    /// More fields than the caller accepts.
    #[error("too many header fields")]
    TooManyFields,
}

/// One decoded header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its name.
    pub name: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
    /// Sent as "never indexed" (a sensitive value that intermediaries must not index either).
    pub never_indexed: bool,
}

/// RFC 7541 §4.1: an entry's size is its name and value lengths plus 32.
const ENTRY_OVERHEAD: usize = 32;

/// The decoding context of one connection's direction.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first, as dynamic indexes count.
    dynamic: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
    /// What the peer's SETTINGS_HEADER_TABLE_SIZE allows the encoder to grow to.
    max_allowed: usize,
}

impl Decoder {
    /// A decoder whose table starts at, and may never exceed, `max_allowed` bytes.
    pub fn new(max_allowed: usize) -> Self {
        Self { dynamic: VecDeque::new(), size: 0, max_size: max_allowed, max_allowed }
    }

    /// Decodes one complete header block, updating the dynamic table as the encoder did.
    pub fn decode(&mut self, mut block: &[u8], max_fields: usize) -> Result<Vec<Field>, HpackError> {
        let mut fields = Vec::new();
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                let index = integer(&mut block, 7)?;
                let (name, value) = self.entry(index)?;
                fields.push(Field { name: name.to_vec(), value: value.to_vec(), never_indexed: false });
            } else if first & 0x40 != 0 {
                let field = self.literal(&mut block, 6, false)?;
                self.insert(field.name.clone(), field.value.clone());
                fields.push(field);
            } else if first & 0x20 != 0 {
                // Only before the block's first field (§4.2).
                if !fields.is_empty() {
                    return Err(HpackError::SizeUpdate);
                }
                let size = integer(&mut block, 5)?;
                if size > self.max_allowed {
                    return Err(HpackError::SizeUpdate);
                }
                self.max_size = size;
                self.evict_to(size);
            } else {
                let never_indexed = first & 0x10 != 0;
                fields.push(self.literal(&mut block, 4, never_indexed)?);
            }
            if fields.len() > max_fields {
                return Err(HpackError::TooManyFields);
            }
        }
        Ok(fields)
    }

    fn literal(&self, block: &mut &[u8], prefix: u8, never_indexed: bool) -> Result<Field, HpackError> {
        let index = integer(block, prefix)?;
        let name = if index == 0 { string(block)? } else { self.entry(index)?.0.to_vec() };
        let value = string(block)?;
        Ok(Field { name, value, never_indexed })
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        if let Some(&(name, value)) = index.checked_sub(1).and_then(|i| STATIC_TABLE.get(i)) {
            return Ok((name.as_bytes(), value.as_bytes()));
        }
        index
            .checked_sub(STATIC_TABLE.len() + 1)
            .and_then(|i| self.dynamic.get(i))
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .ok_or(HpackError::BadIndex(index))
    }

    /// §4.4: evict until the new entry fits; an entry larger than the table empties it.
    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = ENTRY_OVERHEAD + name.len() + value.len();
        if size > self.max_size {
            self.dynamic.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.dynamic.push_front((name, value));
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let Some((n, v)) = self.dynamic.pop_back() else { break };
            self.size -= ENTRY_OVERHEAD + n.len() + v.len();
        }
    }
}

/// §5.1: an integer with an N-bit prefix. Values are capped well above any index, size or length a
/// block bounded to 64 KiB can carry, so arithmetic never overflows.
fn integer(block: &mut &[u8], prefix: u8) -> Result<usize, HpackError> {
    const LIMIT: u64 = 1 << 28;
    let (&first, mut rest) = block.split_first().ok_or(HpackError::Truncated)?;
    let mask = (1u64 << prefix) - 1;
    let mut value = u64::from(first) & mask;
    if value == mask {
        let mut shift = 0;
        loop {
            let (&byte, tail) = rest.split_first().ok_or(HpackError::Truncated)?;
            rest = tail;
            value += u64::from(byte & 0x7f) << shift;
            if value > LIMIT {
                return Err(HpackError::IntegerOverflow);
            }
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return Err(HpackError::IntegerOverflow);
            }
        }
    }
    *block = rest;
    usize::try_from(value).map_err(|_| HpackError::IntegerOverflow)
}

/// §5.2: a string literal, Huffman-coded or raw.
fn string(block: &mut &[u8]) -> Result<Vec<u8>, HpackError> {
    let huffman = block.first().is_some_and(|b| b & 0x80 != 0);
    let len = integer(block, 7)?;
    if len > block.len() {
        return Err(HpackError::Truncated);
    }
    let (raw, rest) = block.split_at(len);
    *block = rest;
    if !huffman {
        return Ok(raw.to_vec());
    }
    let mut decoded = Vec::with_capacity(len * 8 / 5 + 1);
    httlib_huffman::decode(raw, &mut decoded, httlib_huffman::DecoderSpeed::FiveBits)
        .map_err(|_| HpackError::Huffman)?;
    Ok(decoded)
}

/// Appends `field` as a literal without indexing (or never indexed, if it came so) with a literal
/// name (§6.2.2, §6.2.3): the receiver's dynamic table stays as it is.
pub fn encode_literal(field: &Field, out: &mut Vec<u8>) {
    out.push(if field.never_indexed { 0x10 } else { 0x00 });
    for s in [&field.name, &field.value] {
        encode_integer(s.len(), 7, out);
        out.extend_from_slice(s);
    }
}

/// §5.1, with the bits above the prefix left clear (no Huffman flag).
fn encode_integer(mut value: usize, prefix: u8, out: &mut Vec<u8>) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.push(value as u8);
        return;
    }
    out.push(mask as u8);
    value -= mask;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        d.decode(block, 100)
            .unwrap()
            .into_iter()
            .map(|f| (String::from_utf8(f.name).unwrap(), String::from_utf8(f.value).unwrap()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    /// RFC 7541 C.4: three requests with Huffman coding, sharing the dynamic table.
    #[test]
    fn rfc_7541_c4_requests_with_huffman() {
        let mut d = Decoder::new(4096);
        let c41 =
            [0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff];
        assert_eq!(
            decode_all(&mut d, &c41),
            pairs(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")])
        );
        assert_eq!(d.size, 57);
        let c42 = [0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf];
        assert_eq!(
            decode_all(&mut d, &c42),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        assert_eq!(d.size, 110);
        let c43 = [
            0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f, 0x89, 0x25, 0xa8, 0x49,
            0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
        ];
        assert_eq!(
            decode_all(&mut d, &c43),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(d.size, 164);
    }

    /// RFC 7541 C.5.1-C.5.3 in part: responses with a 256-byte table evict the oldest entries.
    #[test]
    fn small_table_evicts_oldest_first() {
        let mut d = Decoder::new(256);
        let mut block = Vec::new();
        for (n, v) in [("a", &"x".repeat(100)), ("b", &"y".repeat(100)), ("c", &"z".repeat(100))] {
            block.push(0x40);
            encode_integer(n.len(), 7, &mut block);
            block.extend_from_slice(n.as_bytes());
            encode_integer(v.len(), 7, &mut block);
            block.extend_from_slice(v.as_bytes());
        }
        d.decode(&block, 10).unwrap();
        // Each entry is 133 bytes: only the newest fits.
        assert_eq!(d.dynamic.len(), 1);
        assert_eq!(d.entry(62).unwrap().0, b"c");
        assert_eq!(d.entry(63), Err(HpackError::BadIndex(63)));
    }

    #[test]
    fn malformed_blocks_are_errors_not_panics() {
        let cases: &[(&[u8], HpackError)] = &[
            (&[0x80], HpackError::BadIndex(0)),
            (&[0xff], HpackError::Truncated),
            (&[0xff, 0x80], HpackError::Truncated),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], HpackError::IntegerOverflow),
            (&[0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], HpackError::IntegerOverflow),
            (&[0xbe], HpackError::BadIndex(62)),
            (&[0x40, 0x05, b'a'], HpackError::Truncated),
            // Eight bits of padding (more than 7, §5.2).
            (&[0x04, 0x81, 0xff], HpackError::Huffman),
            // EOS (30 ones) inside the string.
            (&[0x04, 0x84, 0xff, 0xff, 0xff, 0xfc], HpackError::Huffman),
            (&[0x82, 0x3f, 0x01], HpackError::SizeUpdate),
            (&[0x3f, 0xe2, 0x1f], HpackError::SizeUpdate),
        ];
        for (block, want) in cases {
            assert_eq!(Decoder::new(4096).decode(block, 10).as_ref(), Err(want), "{block:x?}");
        }
        assert_eq!(Decoder::new(4096).decode(&[0x82; 11], 10), Err(HpackError::TooManyFields));
    }

    #[test]
    fn size_update_shrinks_then_grows_back_within_the_limit() {
        let mut d = Decoder::new(4096);
        d.decode(&[0x41, 0x01, b'x'], 10).unwrap();
        assert_eq!(d.dynamic.len(), 1);
        // To 0 (evicting everything), then back to 4096, at the start of the next block.
        d.decode(&[0x20, 0x3f, 0xe1, 0x1f, 0x82], 10).unwrap();
        assert!(d.dynamic.is_empty());
        assert_eq!(d.max_size, 4096);
    }

    #[test]
    fn literals_round_trip_and_keep_never_indexed() {
        let fields = vec![
            Field { name: b":authority".to_vec(), value: b"localhost".to_vec(), never_indexed: false },
            Field { name: b"authorization".to_vec(), value: vec![b'k'; 300], never_indexed: true },
        ];
        let mut block = Vec::new();
        fields.iter().for_each(|f| encode_literal(f, &mut block));
        let mut d = Decoder::new(4096);
        assert_eq!(d.decode(&block, 10).unwrap(), fields);
        assert!(d.dynamic.is_empty(), "literals without indexing leave the table alone");
    }
}
