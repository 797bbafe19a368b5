//! A minimal HTTP/1.0 GET for the lab's health checks (etcd `/health`,
//! Patroni `/cluster`, HAProxy's stats CSV), loopback only, bounded. HTTPS
//! (a cluster with TLS) goes through `curl`, which verifies the server's
//! certificate against the lab's CA and presents a client certificate.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// TLS files for an HTTPS request: the CA, and the client certificate and key.
pub(crate) struct Tls {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// `GET path`, over HTTPS with `tls`, with HTTP basic authentication `user:password`.
pub(super) fn get_with(
    addr: &str,
    port: u16,
    path: &str,
    tls: Option<&Tls>,
    basic: Option<&str>,
) -> Result<(u16, String), String> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    if !ip.is_loopback() {
        return Err(format!("refusing to contact non-loopback address {addr}"));
    }
    let sa = SocketAddr::new(ip, port);
    if let Some(t) = tls {
        return curl(&sa, path, t, basic);
    }
    let auth = basic.map_or(String::new(), |b| {
        use base64::Engine as _;
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(b)
        )
    });
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&sa, timeout).map_err(|e| format!("{sa}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}:{port}\r\n{auth}Connection: close\r\n\r\n"
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

/// HTTPS through curl, bounded (3 s); the credentials go on its standard
/// input as a config file, never on its command line.
fn curl(
    sa: &SocketAddr,
    path: &str,
    t: &Tls,
    basic: Option<&str>,
) -> Result<(u16, String), String> {
    use std::process::{Command, Stdio};
    let host = match sa.ip() {
        IpAddr::V6(a) => format!("[{a}]"),
        IpAddr::V4(a) => a.to_string(),
    };
    let url = format!("https://{host}:{}{path}", sa.port());
    let mut child = Command::new("curl")
        .args(["-sS", "-m", "3", "-K", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(&t.ca)
        .arg("--cert")
        .arg(&t.cert)
        .arg("--key")
        .arg(&t.key)
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running curl: {e}"))?;
    if let (Some(mut stdin), Some(b)) = (child.stdin.take(), basic) {
        let _ = writeln!(stdin, "user = \"{b}\"");
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running curl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    match code.trim().parse::<u16>() {
        Ok(c) if c != 0 => Ok((c, body.to_string())),
        _ => Err(format!(
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}
