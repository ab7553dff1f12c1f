//! The client certificate of a request as an RFC 8705 §3.1 thumbprint
//! (base64url of the SHA-256 of its DER): from the TLS connection Envoy
//! terminated (Envoy gives the digest as hex: decoded to bytes, never
//! compared as text), or from a header a declared trusted hop in front sets
//! (`X-Forwarded-Client-Cert` `Hash=`, RFC 9440 `Client-Cert`).

use super::settings::{CertificateSource, SenderConstraintConfig};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};

/// What the proxy knows of the connection a request came on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionFacts<'a> {
    /// Envoy's `connection.sha256_peer_certificate_digest` (hex).
    pub peer_certificate_sha256_hex: Option<&'a str>,
    /// Envoy's `source.address` (`ip:port`): the hop the request came from.
    pub peer_address: Option<&'a str>,
}

/// base64url of 32 digest bytes.
fn b64(digest: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest)
}

/// The thumbprint of a certificate's DER bytes.
pub fn der_thumbprint(der: &[u8]) -> String {
    b64(&Sha256::digest(der))
}

/// A SHA-256 digest written in hex (either case, optional `:` separators)
/// as a thumbprint. `None` unless exactly 32 bytes.
pub fn hex_thumbprint(hex: &str) -> Option<String> {
    let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let bytes = digits
        .chunks_exact(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(text, 16).ok()
        })
        .collect::<Option<Vec<u8>>>()?;
    Some(b64(&bytes))
}

/// The DER bytes of the first certificate of a PEM text.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = pem.find(begin)? + begin.len();
    let rest = pem.get(start..)?;
    let body = rest.get(..rest.find("-----END CERTIFICATE-----")?)?;
    let b64_text: String = body.split_whitespace().collect();
    STANDARD.decode(b64_text).ok()
}

/// The thumbprint of the first certificate of a PEM text.
pub fn pem_thumbprint(pem: &str) -> Option<String> {
    pem_der(pem).map(|der| der_thumbprint(&der))
}

/// The SHA-256 of the first certificate of a PEM text in hex, as Envoy gives
/// the connection's (the CLI reads a PEM certificate into that form).
pub fn pem_sha256_hex(pem: &str) -> Option<String> {
    let digest = Sha256::digest(pem_der(pem)?);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// `X-Forwarded-Client-Cert`: the `Hash` of its one element (a chain of
/// several hops is refused: which certificate is the client's is then
/// ambiguous).
pub fn xfcc_thumbprint(value: &str) -> Option<String> {
    if value.contains(',') {
        return None;
    }
    let mut hash = None;
    for pair in value.split(';') {
        let (k, v) = pair.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("hash") {
            if hash.is_some() {
                return None;
            }
            hash = Some(hex_thumbprint(v.trim().trim_matches('"'))?);
        }
    }
    hash
}

/// RFC 9440 `Client-Cert`: a structured-field byte sequence (`:base64:`) of
/// the DER certificate.
pub fn client_cert_header_thumbprint(value: &str) -> Option<String> {
    let inner = value.trim().strip_prefix(':')?.strip_suffix(':')?;
    STANDARD.decode(inner).ok().map(|der| der_thumbprint(&der))
}

/// An IP address or CIDR range (`trusted_hops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl AddressRange {
    pub fn parse(text: &str) -> Option<AddressRange> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(AddressRange { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> u128 {
            match ip {
                IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
                IpAddr::V6(v6) => u128::from(v6),
            }
        };
        if self.network.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        // Both families sit in the top bits: the prefix masks from the top.
        let mask = match self.prefix {
            0 => 0,
            p => u128::MAX << (128 - u32::from(p)),
        };
        bits(self.network) & mask == bits(ip) & mask
    }
}

/// The peer's IP from Envoy's `source.address` (`ip:port`, `[v6]:port`, or a bare IP).
fn peer_ip(address: &str) -> Option<IpAddr> {
    address
        .parse::<SocketAddr>()
        .map(|s| s.ip())
        .ok()
        .or_else(|| address.parse().ok())
}

/// Whether the request came from a declared trusted hop.
pub fn from_trusted_hop(settings: &SenderConstraintConfig, peer: Option<&str>) -> bool {
    let Some(ip) = peer.and_then(peer_ip) else {
        return false;
    };
    settings
        .trusted_hops
        .iter()
        .filter_map(|h| AddressRange::parse(h))
        .any(|r| r.contains(ip))
}

/// The certificate header to remove before the request goes upstream: the
/// configured one, when it did not come from a trusted hop.
pub fn untrusted_header(
    settings: &SenderConstraintConfig,
    peer: Option<&str>,
) -> Option<&'static str> {
    let header = settings.certificate_source.header()?;
    (!from_trusted_hop(settings, peer)).then_some(header)
}

/// The client certificate's thumbprint, where the configuration says it
/// comes from; `None` when there is none (or it is not believed). `values`
/// are the request's values of the certificate header.
pub fn client_thumbprint<'v>(
    settings: &SenderConstraintConfig,
    connection: &ConnectionFacts<'_>,
    mut values: impl Iterator<Item = &'v str>,
) -> Option<String> {
    match settings.certificate_source {
        CertificateSource::Connection => connection
            .peer_certificate_sha256_hex
            .and_then(hex_thumbprint),
        source => {
            if !from_trusted_hop(settings, connection.peer_address) {
                return None;
            }
            let value = values.next()?;
            if values.next().is_some() {
                return None;
            }
            match source {
                CertificateSource::ClientCert => client_cert_header_thumbprint(value),
                _ => xfcc_thumbprint(value),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "6e8d8a59a01b5ba5c0e2af3b7d1c8d1f57b8e19e0bd9e50c3b27b1a4c5f8e0a1";

    #[test]
    fn hex_digest_becomes_base64url_of_its_bytes() {
        let want = b64(&(0..32)
            .map(|i| u8::from_str_radix(&HEX[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<u8>>());
        assert_eq!(hex_thumbprint(HEX).as_deref(), Some(want.as_str()));
        assert_eq!(
            hex_thumbprint(&HEX.to_ascii_uppercase()).as_deref(),
            Some(want.as_str())
        );
        let colons: Vec<String> = (0..32).map(|i| HEX[2 * i..2 * i + 2].to_string()).collect();
        assert_eq!(
            hex_thumbprint(&colons.join(":")).as_deref(),
            Some(want.as_str())
        );
        // Never the hex text itself, never a short or odd digest.
        assert_ne!(hex_thumbprint(HEX).as_deref(), Some(HEX));
        assert_eq!(hex_thumbprint(&HEX[..62]), None);
        assert_eq!(hex_thumbprint(&format!("{}zz", &HEX[..62])), None);
    }

    #[test]
    fn der_pem_and_headers_agree() {
        let der = b"not really DER, but bytes all the same";
        let t = der_thumbprint(der);
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(der)
        );
        assert_eq!(pem_thumbprint(&pem).as_deref(), Some(t.as_str()));
        let pem_hex = pem_sha256_hex(&pem).unwrap();
        assert_eq!(hex_thumbprint(&pem_hex).as_deref(), Some(t.as_str()));
        let pem_hex = pem_sha256_hex(&pem).unwrap();
        assert_eq!(hex_thumbprint(&pem_hex).as_deref(), Some(t.as_str()));
        let hex: String = Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex_thumbprint(&hex).as_deref(), Some(t.as_str()));
        assert_eq!(
            xfcc_thumbprint(&format!("By=spiffe://a;Hash={hex};Subject=\"CN=x\"")).as_deref(),
            Some(t.as_str())
        );
        assert_eq!(
            xfcc_thumbprint(&format!("Hash={hex},By=x;Hash={hex}")),
            None
        );
        assert_eq!(xfcc_thumbprint("By=x"), None);
        assert_eq!(
            client_cert_header_thumbprint(&format!(":{}:", STANDARD.encode(der))).as_deref(),
            Some(t.as_str())
        );
        assert_eq!(client_cert_header_thumbprint(&STANDARD.encode(der)), None);
    }

    #[test]
    fn address_ranges() {
        for (range, ip, inside) in [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("::1", "::1", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("10.0.0.0/8", "::ffff:10.0.0.1", false),
        ] {
            let r = AddressRange::parse(range).unwrap();
            assert_eq!(r.contains(ip.parse().unwrap()), inside, "{range} {ip}");
        }
        assert_eq!(AddressRange::parse("10.0.0.0/33"), None);
        assert_eq!(AddressRange::parse("host.example"), None);
        assert_eq!(peer_ip("[::1]:5000"), Some("::1".parse().unwrap()));
        assert_eq!(peer_ip("10.0.0.1:5000"), Some("10.0.0.1".parse().unwrap()));
    }
}
