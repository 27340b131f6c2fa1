//! The PROXY protocol, version 2 (HAProxy's binary header), as a TCP load balancer sends it
//! ahead of the TLS handshake: the only way a listener behind `mode tcp` or nginx `stream`
//! learns its client's address. Read only when the operator says a balancer is in front
//! (`serve --proxy-protocol`): otherwise any client could claim any address.

use std::net::{IpAddr, SocketAddr};

use ppp::v2::{Addresses, Command, Header};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The fixed part of a v2 header: 12 signature bytes, version/command, family, length.
const FIXED: usize = 16;
/// The most address and TLV bytes accepted after the fixed part. Addresses take at most 216
/// (two Unix paths); balancers add a few TLVs (ALPN, authority, unique id).
const MAX_VARIABLE: usize = 1024;

/// Why a PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection ended or failed before a whole header arrived.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// What arrived is not a PROXY protocol v2 header.
    #[error("not a PROXY protocol v2 header: {0}")]
    Malformed(String),
    /// The header declares more bytes than any balancer sends.
    #[error("PROXY header of {0} bytes is too large")]
    TooLarge(usize),
}

/// Reads one v2 header from the start of `stream` and returns the client address it names:
/// the balancer's own connections (command LOCAL, such as health checks) and address
/// families other than TCP over IPv4/IPv6 keep `balancer`, the TCP peer.
pub async fn read_client_address(
    stream: &mut TcpStream,
    balancer: SocketAddr,
) -> Result<SocketAddr, ProxyHeaderError> {
    let mut header = vec![0u8; FIXED];
    stream.read_exact(&mut header).await?;
    // Signature, version, command and family are checked before the length is trusted: a
    // TLS ClientHello must not be read as a length.
    match Header::try_from(&header[..]) {
        Ok(_) | Err(ppp::v2::ParseError::Partial(..)) => {}
        Err(e) => return Err(ProxyHeaderError::Malformed(e.to_string())),
    }
    let variable = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if variable > MAX_VARIABLE {
        return Err(ProxyHeaderError::TooLarge(FIXED + variable));
    }
    header.resize(FIXED + variable, 0);
    stream.read_exact(&mut header[FIXED..]).await?;
    let parsed =
        Header::try_from(&header[..]).map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    if parsed.command == Command::Local {
        return Ok(balancer);
    }
    Ok(match parsed.addresses {
        Addresses::IPv4(a) => SocketAddr::new(IpAddr::V4(a.source_address), a.source_port),
        Addresses::IPv6(a) => SocketAddr::new(IpAddr::V6(a.source_address), a.source_port),
        Addresses::Unspecified | Addresses::Unix(_) => balancer,
    })
}
