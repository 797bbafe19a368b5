//! A minimal HTTP/1.0 GET for the lab's health checks (etcd `/health`,
//! Patroni `/cluster`, HAProxy's stats CSV), loopback only, bounded.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// `GET path` on `addr:port`; the status code and the body.
pub fn get(addr: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    if !ip.is_loopback() {
        return Err(format!("refusing to contact non-loopback address {addr}"));
    }
    let sa = SocketAddr::new(ip, port);
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&sa, timeout).map_err(|e| format!("{sa}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{sa}: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("{sa}: {e}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{sa}{path}: not an HTTP response"))?;
    Ok((code, body.to_string()))
}
