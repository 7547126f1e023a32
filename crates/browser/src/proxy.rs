//! The forward proxy that enforces the network policy for one browser context.
//!
//! Chromium sends every request of a context to its proxy (`proxyBypassList:
//! <-loopback>` removes even the implicit loopback bypass), so the proxy sees
//! navigations, redirects, subresources and WebSockets alike. It resolves the host
//! itself, checks each address, and connects only to an address it checked: a name
//! that changes its answer between check and use (DNS rebinding) cannot get past it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::policy::{NetworkPolicy, Refusal};

const MAX_HEAD: usize = 64 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REFUSALS: usize = 64;

/// One context's proxy on 127.0.0.1. Dropping it stops it: the listener closes and
/// every open connection (tunnels included) ends.
pub struct PolicyProxy {
    addr: SocketAddr,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    stop: CancellationToken,
}

impl Drop for PolicyProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl PolicyProxy {
    /// Binds a fresh loopback port, so each context gets a proxy of its own and its
    /// refusals are told to its session only.
    pub async fn start(policy: Arc<NetworkPolicy>) -> std::io::Result<PolicyProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (seen, token) = (refusals.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Out of descriptors, most likely: pause rather than spin.
                            tracing::debug!(error = %e, "the browser's proxy could not accept");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                                _ = token.cancelled() => return,
                            }
                        }
                    },
                    _ = token.cancelled() => return,
                };
                let (policy, seen, token) = (policy.clone(), seen.clone(), token.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(client, &policy, &seen) => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        Ok(PolicyProxy {
            addr,
            refusals,
            stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `proxyServer` value for Chromium.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The refusals since the last call, oldest first (the latest 64 at most), so a
    /// failed navigation can tell the model why.
    pub fn take_refusals(&self) -> Vec<Refusal> {
        std::mem::take(&mut *self.refusals.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The target of a proxied request: host (no brackets), port, and for plain HTTP the
/// origin-form path.
#[derive(Debug, PartialEq)]
struct Target {
    host: String,
    port: u16,
    path: Option<String>,
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().ok()?),
            None => (authority.to_string(), default_port),
        }
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// Reads the request line: `CONNECT host:port` or an absolute `http://` URL.
fn parse_target(method: &str, uri: &str) -> Option<Target> {
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_host_port(uri, 443)?;
        return Some(Target {
            host,
            port,
            path: None,
        });
    }
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("HTTP://"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = split_host_port(authority, 80)?;
    Some(Target {
        host,
        port,
        path: Some(path),
    })
}

async fn respond(client: &mut TcpStream, status: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
}

/// Reads up to the end of the request head; `Err` is the 400 to answer, `Ok(None)` a
/// client that left. The buffer may hold bytes past the head (a body's start).
async fn read_head(
    client: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Result<Option<usize>, &'static str> {
    loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        if buffer.len() > MAX_HEAD {
            return Err("the request head is too large");
        }
        let mut chunk = [0u8; 4096];
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The head forwarded to the origin: origin-form request line, the client's headers
/// as they came (bytes, not re-encoded) minus the hop-by-hop ones, and `Connection:
/// close` since the proxy serves one request per client connection.
fn origin_head(request_line: &str, headers: &[&[u8]]) -> Vec<u8> {
    let mut head = format!("{request_line}\r\n").into_bytes();
    for line in headers {
        let name = line
            .split(|&b| b == b':')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let hop_by_hop = [
            &b"proxy-connection"[..],
            b"proxy-authorization",
            b"connection",
            b"keep-alive",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h));
        if !hop_by_hop {
            head.extend_from_slice(line);
            head.extend_from_slice(b"\r\n");
        }
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    head
}

async fn serve(mut client: TcpStream, policy: &NetworkPolicy, refusals: &Mutex<Vec<Refusal>>) {
    let mut buffer = Vec::with_capacity(4096);
    let head_end = match read_head(&mut client, &mut buffer).await {
        Ok(Some(end)) => end,
        Ok(None) => return,
        Err(why) => return respond(&mut client, "400 Bad Request", why).await,
    };
    let mut lines = buffer[..head_end - 4]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = std::str::from_utf8(lines.next().unwrap_or_default()).unwrap_or_default();
    let headers: Vec<&[u8]> = lines.collect();
    let parts: Vec<&str> = request_line.split(' ').collect();
    let well_formed = headers
        .iter()
        .all(|h| h.contains(&b':') && h.first().is_some_and(|b| !b.is_ascii_whitespace()));
    let target = match parts[..] {
        [method, uri, version] if well_formed && version.starts_with("HTTP/1.") => {
            parse_target(method, uri).map(|t| (t, method, version))
        }
        _ => None,
    };
    let Some((target, method, version)) = target else {
        return respond(
            &mut client,
            "400 Bad Request",
            "this proxy serves CONNECT and absolute http:// requests",
        )
        .await;
    };
    let resolved: Vec<SocketAddr> =
        match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => {
                return respond(
                    &mut client,
                    "502 Bad Gateway",
                    &format!("cannot resolve {}: {e}", target.host),
                )
                .await;
            }
        };
    let mut refusal = None;
    let allowed = resolved
        .iter()
        .copied()
        .find(|addr| match policy.check(&target.host, *addr) {
            Ok(()) => true,
            Err(r) => {
                refusal.get_or_insert(r);
                false
            }
        });
    let addr = match (allowed, refusal) {
        (Some(addr), _) => addr,
        (None, Some(refusal)) => {
            // Never the headers: they may carry cookies and credentials.
            let (host, addr) = (&refusal.host, refusal.addr.map(tracing::field::display));
            tracing::warn!(%host, addr, "browser request refused by the network policy");
            let text = format!("Request refused: {refusal}.");
            {
                let mut seen = refusals.lock().unwrap_or_else(|e| e.into_inner());
                if seen.len() >= MAX_REFUSALS {
                    seen.remove(0);
                }
                seen.push(refusal);
            }
            return respond(&mut client, "403 Forbidden", &text).await;
        }
        (None, None) => {
            let text = format!("cannot resolve {}: no address", target.host);
            return respond(&mut client, "502 Bad Gateway", &text).await;
        }
    };
    let mut upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        _ => {
            return respond(
                &mut client,
                "502 Bad Gateway",
                &format!("cannot connect to {}", target.host),
            )
            .await;
        }
    };
    let sent = match &target.path {
        None => {
            client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
        }
        Some(path) => {
            let head = origin_head(&format!("{method} {path} {version}"), &headers);
            upstream.write_all(&head).await
        }
    };
    // Bytes the client sent past the head (a body, or a TLS hello) go on to the origin.
    if sent.is_err() || upstream.write_all(&buffer[head_end..]).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_targets_are_read_from_connect_and_absolute_urls() {
        let t = parse_target("CONNECT", "example.com:443").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path),
            ("example.com", 443, None)
        );
        let t = parse_target("GET", "http://127.0.0.1:8080/a/b?c=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_deref()),
            ("127.0.0.1", 8080, Some("/a/b?c=1"))
        );
        let t = parse_target("GET", "http://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        let t = parse_target("GET", "http://Host.Test?q").unwrap();
        assert_eq!(
            (t.host.as_str(), t.path.as_deref()),
            ("host.test", Some("/?q"))
        );
        let t = parse_target("GET", "http://user:pw@h.test:81/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("h.test", 81));
        assert!(parse_target("GET", "/relative").is_none());
        assert!(parse_target("GET", "ftp://h/").is_none());
        assert!(parse_target("CONNECT", "h:notaport").is_none());
    }
}
