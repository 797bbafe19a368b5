//! A small HTTP/1.0 GET for `pgimg verify --url`: plain `http://` only,
//! bounded by timeouts and a size limit, one connection per request.
//!
//! Hand-written rather than a client crate: an artifact server is plain
//! HTTP (what installers fetch `inst.ks=` from), and a GET that reads a
//! close-delimited or `Content-Length` body is a few dozen lines.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The largest body read: far above any artifact (user-data is at most 16 KiB, overlays a few hundred).
const MAX_BODY: u64 = 256 << 20;
const TIMEOUT: Duration = Duration::from_secs(20);

/// A parsed `http://host[:port]/path` base.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    host: String,
    port: u16,
    /// Always ends with `/`.
    path: String,
}

impl Base {
    pub(crate) fn parse(url: &str) -> Result<Base, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("`{url}`: only plain http:// URLs are supported (as installers fetch them)")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse()
                    .map_err(|_| format!("`{url}`: the port `{p}` is not a number"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("`{url}`: no host"));
        }
        let mut path = path.to_string();
        if !path.ends_with('/') {
            path.push('/');
        }
        Ok(Base {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            path,
        })
    }

    /// The URL of a relative path under the base.
    pub(crate) fn url(&self, rel: &str) -> String {
        format!(
            "http://{}:{}{}{}",
            self.host,
            self.port,
            self.path,
            encode(rel)
        )
    }

    /// `GET` a relative path: the status and the body.
    pub(crate) fn get(&self, rel: &str) -> Result<(u16, Vec<u8>), String> {
        let target = format!("{}{}", self.path, encode(rel));
        let url = self.url(rel);
        let addrs: Vec<_> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .collect();
        let addr = addrs.first().ok_or_else(|| format!("{url}: no address"))?;
        let mut s = TcpStream::connect_timeout(addr, TIMEOUT).map_err(|e| format!("{url}: {e}"))?;
        let _ = s.set_read_timeout(Some(TIMEOUT));
        let _ = s.set_write_timeout(Some(TIMEOUT));
        write!(
            s,
            "GET {target} HTTP/1.0\r\nHost: {}:{}\r\nUser-Agent: pgimg-verify\r\nConnection: close\r\n\r\n",
            self.host, self.port
        )
        .map_err(|e| format!("{url}: {e}"))?;
        let mut buf = Vec::new();
        s.take(MAX_BODY + 65536)
            .read_to_end(&mut buf)
            .map_err(|e| format!("{url}: {e}"))?;
        let head_end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| format!("{url}: not an HTTP response"))?;
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut body = buf[head_end + 4..].to_vec();
        let mut lines = head.lines();
        let code = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("{url}: not an HTTP response"))?;
        let mut chunked = false;
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length"
                    && let Ok(n) = v.parse::<usize>()
                {
                    if body.len() < n {
                        return Err(format!(
                            "{url}: the body ended after {} of {n} bytes",
                            body.len()
                        ));
                    }
                    body.truncate(n);
                } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        if chunked {
            body = dechunk(&body).ok_or_else(|| format!("{url}: malformed chunked body"))?;
        }
        Ok((code, body))
    }
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Percent-encodes a relative path, keeping `/` and the unreserved characters.
fn encode(rel: &str) -> String {
    let mut out = String::new();
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The names a directory listing page links to (nginx `autoindex`, Apache,
/// Python's `http.server`): relative `href`s of one path segment, `/` for
/// a directory kept off.
pub(crate) fn listing_names(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("href=\"") {
        rest = &rest[i + 6..];
        let Some(end) = rest.find('"') else { break };
        let href = &rest[..end];
        rest = &rest[end..];
        if href.is_empty()
            || href.starts_with(['?', '#', '/'])
            || href.starts_with("..")
            || href.contains("://")
        {
            continue;
        }
        let name = decode(href.trim_end_matches('/'));
        if !name.is_empty() && !name.contains('/') {
            out.push(name);
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_parse_and_join() {
        let b = Base::parse("http://127.0.0.1:8080/pgimg").unwrap();
        assert_eq!(
            b.url("hosts/pg1/kickstart.ks"),
            "http://127.0.0.1:8080/pgimg/hosts/pg1/kickstart.ks"
        );
        assert_eq!(
            Base::parse("http://boot.example.com").unwrap().url("a b"),
            "http://boot.example.com:80/a%20b"
        );
        assert!(Base::parse("https://x/").is_err());
    }

    #[test]
    fn listings_give_names() {
        let html = r#"<a href="../">../</a><a href="?C=N">x</a><a href="pg1/">pg1/</a><a href="kick%20start.ks">k</a><a href="http://x/">x</a>"#;
        assert_eq!(
            listing_names(html),
            vec!["kick start.ks".to_string(), "pg1".to_string()]
        );
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
    }
}
