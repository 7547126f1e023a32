//! The policy proxy over real sockets. Every byte goes to 127.0.0.0/8 or ::1 only:
//! refusals of other ranges are the pure policy tests' to show.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentd_browser::policy::NetworkPolicy;
use agentd_browser::proxy::PolicyProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

async fn within<T>(what: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), what)
        .await
        .expect("timed out")
}

/// What the origin received: the request head and the body.
type Seen = (String, String);

/// A tiny origin server answering `hello` to each request, reporting what it saw.
async fn origin(bind: &str) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let end = loop {
                    if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    let mut chunk = [0u8; 1024];
                    match stream.read(&mut chunk).await.unwrap() {
                        0 => return,
                        n => buffer.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8(buffer[..end].to_vec()).unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.parse().unwrap());
                while buffer.len() < end + length {
                    let mut chunk = [0u8; 1024];
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the body was cut short");
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8(buffer[end..].to_vec()).unwrap();
                let _ = tx.send((head, body));
                let response =
                    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";
                stream.write_all(response.as_bytes()).await.unwrap();
            });
        }
    });
    (addr, rx)
}

async fn proxy(allow: &str) -> PolicyProxy {
    let policy = NetworkPolicy::from_allow_list(allow).unwrap();
    PolicyProxy::start(Arc::new(policy)).await.unwrap()
}

/// Sends `request` to the proxy and reads until it closes.
async fn exchange(proxy: &PolicyProxy, request: &[u8]) -> String {
    let mut stream = within(TcpStream::connect(proxy.addr())).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    within(stream.read_to_end(&mut response)).await.unwrap();
    String::from_utf8(response).unwrap()
}

/// Reads from a tunnel until `want` bytes came.
async fn read_exactly(stream: &mut TcpStream, want: usize) -> String {
    let mut buffer = vec![0u8; want];
    within(stream.read_exact(&mut buffer)).await.unwrap();
    String::from_utf8(buffer).unwrap()
}

/// Opens a CONNECT tunnel to `target` and returns it with the proxy's answer head.
async fn connect(proxy: &PolicyProxy, target: &str) -> (TcpStream, String) {
    let mut stream = within(TcpStream::connect(proxy.addr())).await.unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if within(stream.read(&mut byte)).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}

/// Asserts that nothing connected to `listener` (called after the refusal arrived,
/// so a connection the proxy had made would be waiting already).
async fn assert_never_reached(listener: &TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(
        accepted.is_err(),
        "the proxy connected to a refused address"
    );
}

#[tokio::test]
async fn plain_http_is_forwarded_in_origin_form_without_proxy_headers() {
    let (origin, mut seen) = origin("127.0.0.1:0").await;
    let proxy = proxy("127.0.0.1").await;
    assert_eq!(proxy.url(), format!("http://{}", proxy.addr()));
    let request = format!(
        "POST http://127.0.0.1:{}/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Connection: keep-alive\r\n\
         Proxy-Authorization: Basic c2VjcmV0\r\nConnection: keep-alive\r\ncontent-length: 4\r\n\r\nbody",
        origin.port()
    );
    let response = exchange(&proxy, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("hello"), "{response}");
    let (head, body) = within(seen.recv()).await.unwrap();
    assert!(head.starts_with("POST /x?y=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("Host: 127.0.0.1\r\n"), "{head}");
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("proxy-"), "{head}");
    assert!(!head.contains("keep-alive"), "{head}");
    assert_eq!(body, "body");
    assert!(proxy.take_refusals().is_empty());
}

#[tokio::test]
async fn a_connect_tunnel_carries_bytes_both_ways() {
    let (origin, mut seen) = origin("127.0.0.1:0").await;
    let proxy = proxy("127.0.0.1").await;
    let (mut tunnel, head) = connect(&proxy, &origin.to_string()).await;
    assert_eq!(head, "HTTP/1.1 200 Connection Established\r\n\r\n");
    tunnel
        .write_all(b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = within(seen.recv()).await.unwrap();
    assert!(head.starts_with("GET /t HTTP/1.1\r\n"), "{head}");
    let response = read_exactly(&mut tunnel, "HTTP/1.1 200 OK\r\n".len()).await;
    assert_eq!(response, "HTTP/1.1 200 OK\r\n");
}

#[tokio::test]
async fn ipv6_loopback_is_reached_when_allowed() {
    let Ok(probe) = TcpListener::bind("[::1]:0").await else {
        return; // no IPv6 on this machine
    };
    drop(probe);
    let (origin, mut seen) = origin("[::1]:0").await;
    let proxy = proxy("::1").await;
    let request = format!(
        "GET http://[::1]:{}/six HTTP/1.1\r\nHost: x\r\n\r\n",
        origin.port()
    );
    let response = exchange(&proxy, request.as_bytes()).await;
    assert!(response.ends_with("hello"), "{response}");
    assert!(
        within(seen.recv())
            .await
            .unwrap()
            .0
            .starts_with("GET /six ")
    );
}

#[tokio::test]
async fn an_address_outside_the_allowlist_is_refused_without_connecting() {
    // Linux routes all of 127/8 to lo: the listener proves no connection was tried.
    let bait = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let target = bait.local_addr().unwrap();
    let proxy = proxy("127.0.0.1").await;

    let request = format!("GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\n\r\n");
    let response = exchange(&proxy, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 403 Forbidden"), "{response}");
    assert!(response.contains("not allowed"), "{response}");

    let (mut tunnel, head) = connect(&proxy, &target.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 403 Forbidden"), "{head}");
    let mut body = String::new();
    within(tunnel.read_to_string(&mut body)).await.unwrap();
    assert!(body.contains("not allowed"), "{body}");

    assert_never_reached(&bait).await;
    let refusals = proxy.take_refusals();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|r| r.host == "127.0.0.2" && r.addr == Some(target.ip()))
    );
    assert!(proxy.take_refusals().is_empty(), "refusals are drained");
}

#[tokio::test]
async fn localhost_is_refused_by_default() {
    let bait = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = bait.local_addr().unwrap().port();
    let proxy = proxy("").await;
    let request = format!("GET http://LocalHost:{port}/ HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let response = exchange(&proxy, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 403 Forbidden"), "{response}");
    assert!(
        response.contains("(of localhost) is not allowed"),
        "{response}"
    );
    assert_never_reached(&bait).await;
    let refusals = proxy.take_refusals();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].host, "localhost");
}

#[tokio::test]
async fn the_server_itself_is_refused_even_when_its_address_is_allowed() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let mut policy = NetworkPolicy::from_allow_list("127.0.0.1").unwrap();
    policy.deny_socket(addr);
    let proxy = PolicyProxy::start(Arc::new(policy)).await.unwrap();
    let request = format!("GET http://{addr}/api HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let response = exchange(&proxy, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 403 Forbidden"), "{response}");
    let (_, head) = connect(&proxy, &addr.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 403 Forbidden"), "{head}");
    assert_never_reached(&server).await;
    assert_eq!(proxy.take_refusals().len(), 2);
}

#[tokio::test]
async fn bad_requests_get_400_and_the_proxy_keeps_serving() {
    let (origin, _seen) = origin("127.0.0.1:0").await;
    let proxy = proxy("127.0.0.1").await;
    for bad in [
        "GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        "GET ftp://127.0.0.1/ HTTP/1.1\r\n\r\n".to_string(),
        "GET http://127.0.0.1:notaport/ HTTP/1.1\r\n\r\n".to_string(),
        "garbage\r\n\r\n".to_string(),
        format!("GET http://{origin}/ HTTP/1.1\r\nno colon here\r\n\r\n"),
        format!("GET http://{origin}/ HTTP/1.1\r\nA: b\n\nC: d\r\n\r\n"),
        // Exactly one byte over the limit and no end of head: read whole, then refused.
        format!(
            "GET http://{origin}/ HTTP/1.1\r\nX: {}",
            "a".repeat(64 * 1024)
        ),
    ] {
        let bad = &bad.as_bytes()[..bad.len().min(64 * 1024 + 1)];
        let response = exchange(&proxy, bad).await;
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request"),
            "{response}"
        );
    }
    let request = format!("GET http://{origin}/ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        exchange(&proxy, request.as_bytes())
            .await
            .ends_with("hello")
    );
    assert!(
        proxy.take_refusals().is_empty(),
        "bad requests are not policy refusals"
    );
}

#[tokio::test]
async fn dropping_the_proxy_ends_its_tunnels_and_stops_listening() {
    let (origin, _seen) = origin("127.0.0.1:0").await;
    let proxy = proxy("127.0.0.1").await;
    let addr = proxy.addr();
    let (mut tunnel, head) = connect(&proxy, &origin.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(proxy);
    let mut rest = Vec::new();
    let ended = within(tunnel.read_to_end(&mut rest)).await;
    assert!(ended.is_err() || rest.is_empty(), "{ended:?}");
    let refused = within(async {
        loop {
            match TcpStream::connect(addr).await {
                Err(e) => break e,
                Ok(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}
