//! The PKCS#7 SignedData of `instance-identity/rsa2048`, read from BER.
//!
//! AWS encodes it as OpenSSL streams it: indefinite lengths and the document inside as a
//! constructed OCTET STRING, so this is a small BER reader rather than a DER one. It reads what the
//! verification needs: the signed content, and per signer its issuer and serial number, digest and
//! signature algorithms, signed attributes (re-encoded in DER, which is what was signed) and
//! signature. Certificates carried in the message are skipped, as SPIRE replaces them with AWS's.
//! Like Go's `encoding/asn1` behind SPIRE, bytes after the outer object are ignored.

/// Object identifiers, as their DER content bytes.
pub mod oid {
    /// `1.2.840.113549.1.7.2` signedData.
    pub const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    /// `1.2.840.113549.1.9.4` messageDigest.
    pub const MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
    /// `1.2.840.113549.1.9.3` contentType.
    pub const CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
    /// `1.2.840.113549.1.7.1` data.
    pub const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
    /// `1.3.14.3.2.26` SHA-1.
    pub const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
    /// `2.16.840.1.101.3.4.2.1` SHA-256.
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    /// `1.2.840.113549.1.1.1` rsaEncryption.
    pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// `1.2.840.113549.1.1.5` sha1WithRSAEncryption.
    pub const SHA1_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
    /// `1.2.840.113549.1.1.11` sha256WithRSAEncryption.
    pub const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    /// `1.2.840.113549.1.1.12` sha384WithRSAEncryption.
    pub const SHA384_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    /// `1.2.840.113549.1.1.13` sha512WithRSAEncryption.
    pub const SHA512_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
}

/// Tags used here.
pub mod tag {
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// SEQUENCE.
    pub const SEQUENCE: u8 = 0x30;
    /// SET.
    pub const SET: u8 = 0x31;
    /// `[0]` constructed.
    pub const CONTEXT_0: u8 = 0xa0;
    /// `[1]` constructed.
    pub const CONTEXT_1: u8 = 0xa1;
}

/// Nesting deeper than this is refused (a SignedData needs about eight levels).
const MAX_DEPTH: usize = 32;

/// Why the bytes are not a SignedData this reader takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pkcs7: {0}")]
pub struct Pkcs7Error(String);

fn err<T>(message: impl Into<String>) -> Result<T, Pkcs7Error> {
    Err(Pkcs7Error(message.into()))
}

/// A parsed SignedData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedData {
    /// The encapsulated content (empty when detached).
    pub content: Vec<u8>,
    /// The signers.
    pub signers: Vec<SignerInfo>,
}

/// One SignerInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerInfo {
    /// The DER of the signer certificate's issuer Name.
    pub issuer: Vec<u8>,
    /// The signer certificate's serial number: the INTEGER's content octets.
    pub serial: Vec<u8>,
    /// The digest algorithm's OID.
    pub digest_algorithm: Vec<u8>,
    /// The signed (authenticated) attributes, if any.
    pub signed_attributes: Option<SignedAttributes>,
    /// The signature algorithm's OID (`digestEncryptionAlgorithm`).
    pub signature_algorithm: Vec<u8>,
    /// The signature (`encryptedDigest`).
    pub signature: Vec<u8>,
}

/// The signed attributes of a signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAttributes {
    /// Their DER as a SET OF: the bytes the signature covers.
    pub der: Vec<u8>,
    /// The messageDigest attribute's value, if present.
    pub message_digest: Option<Vec<u8>>,
}

/// A BER element: its identifier octet and content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    tag: u8,
    body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Primitive(Vec<u8>),
    Constructed(Vec<Node>),
}

impl SignedData {
    /// Reads a ContentInfo holding a SignedData.
    pub fn parse(ber: &[u8]) -> Result<Self, Pkcs7Error> {
        if ber.is_empty() {
            return err("input data is empty");
        }
        let (info, _) = read_node(ber, 0)?;
        let mut info = Seq::of(&info, tag::SEQUENCE, "ContentInfo")?;
        if info.oid("ContentInfo.contentType")? != oid::SIGNED_DATA {
            return err("cannot parse data: unimplemented content type");
        }
        let explicit = info.next(tag::CONTEXT_0, "ContentInfo.content")?;
        let mut outer = Seq::of(explicit, tag::CONTEXT_0, "ContentInfo.content")?;
        let mut sd = Seq::of(outer.next(tag::SEQUENCE, "SignedData")?, tag::SEQUENCE, "SignedData")?;
        sd.next(tag::INTEGER, "SignedData.version")?;
        sd.next(tag::SET, "SignedData.digestAlgorithms")?;
        let mut encap = Seq::of(sd.next(tag::SEQUENCE, "SignedData.contentInfo")?, tag::SEQUENCE, "contentInfo")?;
        encap.oid("contentInfo.contentType")?;
        let content = match encap.optional(tag::CONTEXT_0) {
            None => Vec::new(),
            Some(wrapper) => {
                let mut wrapper = Seq::of(wrapper, tag::CONTEXT_0, "contentInfo.content")?;
                let inner = wrapper.any("contentInfo.content")?;
                let mut out = Vec::new();
                join_octets(inner, &mut out);
                out
            }
        };
        sd.optional(tag::CONTEXT_0);
        sd.optional(tag::CONTEXT_1);
        let signer_set = sd.next(tag::SET, "SignedData.signerInfos")?;
        let signers = children(signer_set).iter().map(SignerInfo::read).collect::<Result<_, _>>()?;
        Ok(Self { content, signers })
    }
}

impl SignerInfo {
    fn read(node: &Node) -> Result<Self, Pkcs7Error> {
        let mut s = Seq::of(node, tag::SEQUENCE, "SignerInfo")?;
        s.next(tag::INTEGER, "SignerInfo.version")?;
        let mut ias = Seq::of(s.next(tag::SEQUENCE, "issuerAndSerialNumber")?, tag::SEQUENCE, "issuerAndSerialNumber")?;
        let issuer = encode_der(ias.next(tag::SEQUENCE, "issuerAndSerialNumber.issuer")?);
        let serial = ias.primitive(tag::INTEGER, "issuerAndSerialNumber.serialNumber")?.to_vec();
        let digest_algorithm = algorithm(s.next(tag::SEQUENCE, "SignerInfo.digestAlgorithm")?)?;
        let signed_attributes = s.optional(tag::CONTEXT_0).map(SignedAttributes::read).transpose()?;
        let signature_algorithm = algorithm(s.next(tag::SEQUENCE, "SignerInfo.digestEncryptionAlgorithm")?)?;
        let signature_node = s.any("SignerInfo.encryptedDigest")?;
        if signature_node.tag & !0x20 != tag::OCTET_STRING {
            return err("SignerInfo.encryptedDigest: not an OCTET STRING");
        }
        let mut signature = Vec::new();
        join_octets(signature_node, &mut signature);
        Ok(Self { issuer, serial, digest_algorithm, signed_attributes, signature_algorithm, signature })
    }
}

impl SignedAttributes {
    fn read(node: &Node) -> Result<Self, Pkcs7Error> {
        let attributes = children(node);
        let mut message_digest = None;
        for attribute in attributes {
            let mut a = Seq::of(attribute, tag::SEQUENCE, "Attribute")?;
            let kind = a.oid("Attribute.type")?.to_vec();
            let values = a.next(tag::SET, "Attribute.values")?;
            if kind == oid::MESSAGE_DIGEST && message_digest.is_none() {
                let Some(first) = children(values).first() else {
                    return err("messageDigest attribute has no value");
                };
                if first.tag != tag::OCTET_STRING {
                    return err("messageDigest attribute is not an OCTET STRING");
                }
                let mut digest = Vec::new();
                join_octets(first, &mut digest);
                message_digest = Some(digest);
            }
        }
        // What was signed is the attributes as a DER SET OF, not the [0] IMPLICIT form in the message.
        let der = encode_der(&Node { tag: tag::SET, body: Body::Constructed(attributes.to_vec()) });
        Ok(Self { der, message_digest })
    }
}

/// An AlgorithmIdentifier's OID (parameters are not looked at).
fn algorithm(node: &Node) -> Result<Vec<u8>, Pkcs7Error> {
    Ok(Seq::of(node, tag::SEQUENCE, "AlgorithmIdentifier")?.oid("AlgorithmIdentifier.algorithm")?.to_vec())
}

fn children(node: &Node) -> &[Node] {
    match &node.body {
        Body::Constructed(c) => c,
        Body::Primitive(_) => &[],
    }
}

/// The octets of a primitive element, or of a constructed string's pieces in order.
fn join_octets(node: &Node, out: &mut Vec<u8>) {
    match &node.body {
        Body::Primitive(bytes) => out.extend_from_slice(bytes),
        Body::Constructed(parts) => parts.iter().for_each(|p| join_octets(p, out)),
    }
}

/// Walks the elements of a constructed node in order.
struct Seq<'a> {
    items: &'a [Node],
    at: usize,
}

impl<'a> Seq<'a> {
    fn of(node: &'a Node, want: u8, what: &str) -> Result<Self, Pkcs7Error> {
        match &node.body {
            Body::Constructed(items) if node.tag == want => Ok(Self { items, at: 0 }),
            _ => err(format!("{what}: unexpected tag 0x{:02x}", node.tag)),
        }
    }

    fn any(&mut self, what: &str) -> Result<&'a Node, Pkcs7Error> {
        let Some(node) = self.items.get(self.at) else { return err(format!("{what}: missing")) };
        self.at += 1;
        Ok(node)
    }

    fn next(&mut self, want: u8, what: &str) -> Result<&'a Node, Pkcs7Error> {
        let node = self.any(what)?;
        if node.tag != want {
            return err(format!("{what}: unexpected tag 0x{:02x}", node.tag));
        }
        Ok(node)
    }

    fn optional(&mut self, want: u8) -> Option<&'a Node> {
        let node = self.items.get(self.at).filter(|n| n.tag == want)?;
        self.at += 1;
        Some(node)
    }

    fn primitive(&mut self, want: u8, what: &str) -> Result<&'a [u8], Pkcs7Error> {
        match &self.next(want, what)?.body {
            Body::Primitive(bytes) => Ok(bytes),
            Body::Constructed(_) => err(format!("{what}: constructed")),
        }
    }

    fn oid(&mut self, what: &str) -> Result<&'a [u8], Pkcs7Error> {
        self.primitive(tag::OID, what)
    }
}

/// Reads one element at the start of `input`; returns it and the bytes it took.
fn read_node(input: &[u8], depth: usize) -> Result<(Node, usize), Pkcs7Error> {
    if depth > MAX_DEPTH {
        return err("nesting too deep");
    }
    let Some(&tag) = input.first() else { return err("truncated element") };
    if tag & 0x1f == 0x1f {
        return err("high tag numbers are not supported");
    }
    let constructed = tag & 0x20 != 0;
    let Some(&first) = input.get(1) else { return err("truncated length") };
    let mut at = 2;
    if first == 0x80 {
        if !constructed {
            return err("indefinite length on a primitive element");
        }
        let mut items = Vec::new();
        loop {
            let rest = &input[at..];
            if rest.starts_with(&[0, 0]) {
                return Ok((Node { tag, body: Body::Constructed(items) }, at + 2));
            }
            if rest.is_empty() {
                return err("missing end-of-contents");
            }
            let (child, used) = read_node(rest, depth + 1)?;
            items.push(child);
            at += used;
        }
    }
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n > 4 {
            return err("length too long");
        }
        let Some(bytes) = input.get(2..2 + n) else { return err("truncated length") };
        at += n;
        bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let Some(content) = input.get(at..).and_then(|rest| rest.get(..len)) else {
        return err("element longer than its input");
    };
    let body = if constructed {
        let mut items = Vec::new();
        let mut offset = 0;
        while offset < content.len() {
            let (child, used) = read_node(&content[offset..], depth + 1)?;
            items.push(child);
            offset += used;
        }
        Body::Constructed(items)
    } else {
        Body::Primitive(content.to_vec())
    };
    Ok((Node { tag, body }, at + len))
}

/// The element in DER length form (definite lengths; contents as read).
fn encode_der(node: &Node) -> Vec<u8> {
    let content = match &node.body {
        Body::Primitive(bytes) => bytes.clone(),
        Body::Constructed(items) => items.iter().flat_map(encode_der).collect(),
    };
    let mut out = vec![node.tag];
    push_length(&mut out, content.len());
    out.extend_from_slice(&content);
    out
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        push_length(&mut out, content.len());
        out.extend_from_slice(content);
        out
    }

    fn indefinite(tag: u8, parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![tag, 0x80];
        parts.iter().for_each(|p| out.extend_from_slice(p));
        out.extend_from_slice(&[0, 0]);
        out
    }

    /// A SignedData as OpenSSL streams it, by hand.
    fn sample() -> Vec<u8> {
        let alg = |o: &[u8]| tlv(tag::SEQUENCE, &[tlv(tag::OID, o), tlv(tag::NULL, &[])].concat());
        let attr = tlv(
            tag::SEQUENCE,
            &[tlv(tag::OID, oid::MESSAGE_DIGEST), tlv(tag::SET, &tlv(tag::OCTET_STRING, b"digest"))].concat(),
        );
        let issuer = tlv(tag::SEQUENCE, &tlv(tag::SET, &tlv(0x13, b"x")));
        let signer = tlv(
            tag::SEQUENCE,
            &[
                tlv(tag::INTEGER, &[1]),
                tlv(tag::SEQUENCE, &[issuer, tlv(tag::INTEGER, &[0x00, 0x99])].concat()),
                alg(oid::SHA256),
                tlv(tag::CONTEXT_0, &attr),
                alg(oid::RSA_ENCRYPTION),
                tlv(tag::OCTET_STRING, b"sig"),
            ]
            .concat(),
        );
        let content = indefinite(0x24, &[tlv(tag::OCTET_STRING, b"{\"a\""), tlv(tag::OCTET_STRING, b":1}")]);
        let encap = indefinite(tag::SEQUENCE, &[tlv(tag::OID, oid::DATA), indefinite(tag::CONTEXT_0, &[content])]);
        let sd = indefinite(
            tag::SEQUENCE,
            &[
                tlv(tag::INTEGER, &[1]),
                tlv(tag::SET, &alg(oid::SHA256)),
                encap,
                tlv(tag::CONTEXT_0, b""),
                tlv(tag::SET, &signer),
            ],
        );
        indefinite(tag::SEQUENCE, &[tlv(tag::OID, oid::SIGNED_DATA), indefinite(tag::CONTEXT_0, &[sd])])
    }

    #[test]
    fn reads_streamed_ber() {
        let sd = SignedData::parse(&sample()).unwrap();
        assert_eq!(sd.content, b"{\"a\":1}");
        assert_eq!(sd.signers.len(), 1);
        let s = &sd.signers[0];
        assert_eq!(s.serial, [0x00, 0x99]);
        assert_eq!(s.issuer, [0x30, 0x05, 0x31, 0x03, 0x13, 0x01, b'x']);
        assert_eq!(s.digest_algorithm, oid::SHA256);
        assert_eq!(s.signature_algorithm, oid::RSA_ENCRYPTION);
        assert_eq!(s.signature, b"sig");
        let attrs = s.signed_attributes.as_ref().unwrap();
        assert_eq!(attrs.message_digest.as_deref(), Some(&b"digest"[..]));
        assert_eq!(attrs.der[0], tag::SET);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(SignedData::parse(b"").unwrap_err().to_string(), "pkcs7: input data is empty");
        let full = sample();
        for cut in [1, 2, 10, full.len() / 2, full.len() - 3] {
            assert!(SignedData::parse(&full[..cut]).is_err(), "cut at {cut}");
        }
        let mut data = tlv(tag::SEQUENCE, &tlv(tag::OID, oid::DATA));
        assert_eq!(
            SignedData::parse(&data).unwrap_err().to_string(),
            "pkcs7: cannot parse data: unimplemented content type"
        );
        data = vec![0x30; 200];
        assert!(SignedData::parse(&data).is_err());
        assert!(SignedData::parse(&[0x1f, 0x01, 0x00]).is_err());
    }
}
