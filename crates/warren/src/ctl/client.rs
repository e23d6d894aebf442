//! A minimal blocking HTTP/1.1 client for `warren ctl --http-url`: one
//! request per connection (`Connection: close`), HTTP Basic auth, JSON
//! bodies, and responses delimited by `Content-Length`, chunked encoding or
//! the end of the connection. `https://` (a broker run with `--http-tls`)
//! goes through rustls with the configuration `warren ctl` built from its
//! `--tls-*` options.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Largest response accepted (a definitions export of a big broker fits).
const MAX_RESPONSE: u64 = 512 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// `http(s)://USER:PASSWORD@HOST:PORT/PREFIX`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https://`: the API speaks TLS.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// Path the API is mounted under (`""` normally; no trailing slash).
    pub prefix: String,
}

impl HttpUrl {
    /// The user and password default to guest/guest, the port to 15672
    /// (15671 for https, RabbitMQ's management TLS port; not HTTP's 80/443).
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let (tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, _)) => {
                return Err(format!(
                    "unsupported scheme '{}' (use http:// or https://)",
                    scheme
                ))
            }
            None => return Err("expected http://USER:PASSWORD@HOST:PORT".into()),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => {
                let (name, pass) = u.split_once(':').unwrap_or((u, ""));
                (percent_decode(name)?, percent_decode(pass)?)
            }
            None => ("guest".to_string(), "guest".to_string()),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unterminated [IPv6] host")?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("missing host".into());
        }
        let port = match port {
            None | Some("") if tls => 15671,
            None | Some("") => 15672,
            Some(p) => p.parse().map_err(|_| format!("bad port '{}'", p))?,
        };
        Ok(HttpUrl {
            tls,
            host: host.to_string(),
            port,
            user,
            password,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

/// A response: its status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Send `method path` (path with its query, starting with `/`) with an
/// optional JSON body and read the whole response. `tls` is the client
/// configuration for an https:// URL.
pub fn request(
    url: &HttpUrl,
    tls: Option<&Arc<ClientConfig>>,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {}", url.host, e))?
        .collect();
    let mut last = format!("cannot resolve {}", url.host);
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {}: {}", a, e),
        }
    }
    let stream = stream.ok_or(last)?;
    let io = |e: std::io::Error| format!("HTTP request to {}:{}: {}", url.host, url.port, e);
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let mut stream = if url.tls {
        let config = tls.ok_or("https:// needs --tls-ca FILE (or --tls-insecure)")?;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|e| format!("TLS server name {:?}: {}", url.host, e))?;
        let conn = ClientConnection::new(config.clone(), name)
            .map_err(|e| format!("TLS to {}:{}: {}", url.host, url.port, e))?;
        Stream::Tls(Box::new(StreamOwned::new(conn, stream)))
    } else {
        Stream::Tcp(stream)
    };
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let credentials = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", url.user, url.password).as_bytes());
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{} {}{} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\n\
         User-Agent: warren-ctl\r\nAccept: application/json\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        method,
        url.prefix,
        path,
        host,
        credentials,
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).map_err(io)?;
    stream.flush().map_err(io)?;
    let mut raw = Vec::new();
    match (&mut stream).take(MAX_RESPONSE).read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS server that closes without close_notify: what arrived is
        // still checked against its Content-Length (or chunk ends) below,
        // so a cut-short answer is an error there.
        Err(e) if url.tls && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(io(e)),
    }
    parse_response(&raw)
}

/// The connection: plain TCP, or TLS over it (the handshake runs on the
/// first write).
enum Stream {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Split a complete response (the connection closed after it) into status
/// and decoded body.
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("incomplete HTTP response")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "bad HTTP response head")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = match status_line.split(' ').collect::<Vec<_>>()[..] {
        [version, code, ..] if version.starts_with("HTTP/1.") => {
            code.parse().map_err(|_| "bad HTTP status line")?
        }
        _ => return Err(format!("bad HTTP status line '{}'", status_line)),
    };
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or("HTTP response body cut short")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or("bad chunked body")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(body); // trailers, if any, are ignored
        }
        let chunk = data.get(..size).ok_or("chunked body cut short")?;
        body.extend_from_slice(chunk);
        data = data
            .get(size..)
            .and_then(|d| d.strip_prefix(b"\r\n"))
            .ok_or("bad chunk end")?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encode one path segment or query value (everything but RFC 3986's
/// unreserved characters), as RabbitMQ's API wants vhost and object names.
pub fn encode(s: &str) -> String {
    // RFC 3986's unreserved characters are the only ones left as they are.
    const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, RESERVED).to_string()
}

fn percent_decode(s: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "URL credentials are not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_urls() {
        let u = HttpUrl::parse("http://ad%40min:p%3Ass@broker.local:15673/mgmt/").unwrap();
        assert_eq!(
            u,
            HttpUrl {
                tls: false,
                host: "broker.local".into(),
                port: 15673,
                user: "ad@min".into(),
                password: "p:ss".into(),
                prefix: "/mgmt".into(),
            }
        );
        let u = HttpUrl::parse("HTTP://[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 15672));
        assert_eq!((u.user.as_str(), u.password.as_str()), ("guest", "guest"));
        assert_eq!(HttpUrl::parse("http://u:p@h:99/").unwrap().prefix, "");
        let u = HttpUrl::parse("https://h").unwrap();
        assert_eq!((u.tls, u.port), (true, 15671));
        assert!(HttpUrl::parse("amqp://h").is_err());
        assert!(HttpUrl::parse("localhost:15672").is_err());
        assert!(HttpUrl::parse("http://h:notaport").is_err());
        assert!(HttpUrl::parse("http://u:p@").is_err());
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(encode("/"), "%2F");
        assert_eq!(encode("a b/é~"), "a%20b%2F%C3%A9~");
    }

    #[test]
    fn parses_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n3;x=y\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"[1,2]");
        let r = parse_response(b"HTTP/1.0 204 No Content\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\nuntil close").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"until close"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Len").is_err());
        assert!(parse_response(b"SMTP 200\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab")
                .is_err()
        );
    }

    /// A one-shot server: returns what it received, answers `reply`.
    fn serve_once(reply: &'static [u8]) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then Content-Length bytes of body.
            loop {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                if let Some(end) = find(&got, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            s.write_all(reply).unwrap();
            got
        });
        (port, t)
    }

    #[test]
    fn sends_requests_and_reads_answers() {
        let (port, t) = serve_once(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
        );
        let url = HttpUrl::parse(&format!("http://ad%3Amin:s3cret@127.0.0.1:{}/x/", port)).unwrap();
        let r = request(
            &url,
            None,
            "PUT",
            "/api/vhosts/%2F",
            Some(b"{\"tracing\":true}"),
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"{\"a\":1}"[..]));
        let got = String::from_utf8(t.join().unwrap()).unwrap();
        assert!(
            got.starts_with("PUT /x/api/vhosts/%2F HTTP/1.1\r\n"),
            "{}",
            got
        );
        assert!(got.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", port)));
        // "ad:min:s3cret"
        assert!(got.contains("\r\nAuthorization: Basic YWQ6bWluOnMzY3JldA==\r\n"));
        assert!(got.contains("\r\nContent-Type: application/json\r\n"));
        assert!(got.ends_with("\r\n\r\n{\"tracing\":true}"));

        let (port, t) = serve_once(b"HTTP/1.1 204 No Content\r\n\r\n");
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{}", port)).unwrap();
        let r = request(&url, None, "DELETE", "/api/users/u", None).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let got = String::from_utf8(t.join().unwrap()).unwrap();
        assert!(got.contains("\r\nContent-Length: 0\r\n"));
        assert!(!got.contains("Content-Type"));
    }

    #[test]
    fn refused_connections_are_errors() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{}", port)).unwrap();
        let e = request(&url, None, "GET", "/api/overview", None).unwrap_err();
        assert!(e.contains("cannot connect"), "{}", e);
    }
}
