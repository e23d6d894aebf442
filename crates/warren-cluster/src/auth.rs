//! Who may use the cluster port: the shared cookie and the link handshake.
//!
//! As RabbitMQ's nodes (the Erlang cookie), every node of a cluster holds
//! the same secret, the **cookie**. A link is only used once both ends have
//! proved they know it, without sending it: each side sends a random nonce,
//! and each answers with HMAC-SHA256(cookie, direction, both nonces, both
//! names). The direction label keeps a proof made by one side from being
//! replayed as the other's; the fresh nonces keep a recorded proof from
//! being replayed on a later link. Proofs are checked in constant time
//! (`ring::hmac::verify`). Nothing on a link reaches a group's handler
//! before the handshake succeeded (see [`crate::transport`]).
//!
//! The handshake, dialer D and acceptor A (all lengths in bytes):
//!
//! ```text
//! D → A  "WRNC" version:1  nonce_d:32  name_len:1 name_d
//! A → D  "WRNC" version:1  status:1 (0 ok)  nonce_a:32  proof_a:32  name_len:1 name_a
//!        status 2 (version refused): the acceptor's version follows in the
//!        version byte; the link closes
//! D → A  status:1 (0 ok, then proof_d:32; 1 "your proof is wrong", close)
//! A → D  status:1 (0 accepted; 1 refused, close)
//! ```
//!
//! `proof_x = HMAC(cookie, "warren-cluster/1 " label_x || nonce_d || nonce_a
//! || len name_d || name_d || len name_a || name_a)`, label "acceptor" or
//! "dialer". A link that does not start with the magic (an old build's
//! frame, garbage, a port scanner) is closed at its first 4 bytes.
//!
//! The cookie comes from a file (default `$HOME/.warren.cookie`, created
//! with a random value and mode 0600 if missing, as Erlang creates
//! `$HOME/.erlang.cookie`) or from the environment; a file readable by group
//! or others is refused, as RabbitMQ refuses with "Cookie file ... must be
//! accessible by owner only".

use parking_lot::Mutex;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const MAGIC: &[u8; 4] = b"WRNC";
/// The handshake's version: a node refuses another version explicitly, so a
/// future change fails with a clear message instead of garbled frames.
pub const VERSION: u8 = 1;
/// How long the whole handshake may take before the link is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const NONCE: usize = 32;
const PROOF: usize = 32;
/// Longest cookie accepted (RabbitMQ's Erlang cookie: 255 characters).
pub const MAX_COOKIE: usize = 255;
/// The cookie file's name in `$HOME`.
pub const DEFAULT_FILE: &str = ".warren.cookie";

const OK: u8 = 0;
const BAD_PROOF: u8 = 1;
const BAD_VERSION: u8 = 2;

/// The shared secret. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(Vec<u8>);

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cookie({} bytes)", self.0.len())
    }
}

impl Cookie {
    /// A cookie given as a value (`WARREN_CLUSTER_COOKIE`): surrounding
    /// whitespace is ignored, as in a file.
    pub fn from_value(v: &str) -> Result<Cookie, String> {
        let v = v.trim();
        if v.is_empty() {
            return Err("the cluster cookie is empty".into());
        }
        if v.len() > MAX_COOKIE {
            return Err(format!(
                "the cluster cookie is longer than {MAX_COOKIE} bytes"
            ));
        }
        Ok(Cookie(v.as_bytes().to_vec()))
    }

    /// `$HOME/.warren.cookie`.
    pub fn default_path() -> Option<PathBuf> {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(DEFAULT_FILE))
    }

    /// Read the cookie file; with `create`, make it first if it is missing
    /// (a random value, mode 0600). Refuses a file group or others may
    /// access.
    pub fn load(path: &Path, create: bool) -> Result<Cookie, String> {
        if create && !path.exists() {
            create_file(path)?;
        }
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read cookie file {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!(
                "cookie file {} is not a regular file",
                path.display()
            ));
        }
        check_mode(path, &meta)?;
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read cookie file {}: {e}", path.display()))?;
        let text = String::from_utf8(text)
            .map_err(|_| format!("cookie file {} is not UTF-8 text", path.display()))?;
        Cookie::from_value(&text).map_err(|e| format!("{e} (cookie file {})", path.display()))
    }
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "cookie file {} must be accessible by owner only (its mode is {mode:04o}; chmod 600 it)",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path, _: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// Write a new random cookie to `path`, atomically: written to a private
/// temporary file, then hard-linked into place, which fails if another node
/// starting at the same moment was first (then its cookie is the one read).
fn create_file(path: &Path) -> Result<(), String> {
    let mut raw = [0u8; 24];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| "no system randomness for a new cookie".to_string())?;
    let value: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let err = |e: std::io::Error| format!("cannot create cookie file {}: {e}", path.display());
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let _ = std::fs::remove_file(&tmp);
        let mut f = o.open(&tmp).map_err(err)?;
        use std::io::Write;
        f.write_all(value.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(err)?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!("created cluster cookie file {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    Io(std::io::Error),
    /// The first bytes were not a Warren cluster handshake.
    NotWarren,
    /// The other side speaks another handshake version.
    Version(u8),
    /// The peer's proof did not match: it holds another cookie.
    BadProof(String),
    /// The peer refused our proof: it holds another cookie.
    Refused(String),
    Protocol(&'static str),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "handshake: {e}"),
            HandshakeError::NotWarren => write!(f, "not a Warren cluster handshake"),
            HandshakeError::Version(v) => write!(
                f,
                "handshake version {v} refused (this node speaks version {VERSION})"
            ),
            HandshakeError::BadProof(n) => write!(
                f,
                "node '{n}' failed authentication: it has a different cluster cookie"
            ),
            HandshakeError::Refused(n) => write!(
                f,
                "node '{n}' refused this node's authentication: it has a different cluster cookie"
            ),
            HandshakeError::Protocol(s) => write!(f, "handshake: {s}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

/// This node's side of every link handshake: its name and the cookie's key.
pub struct LinkAuth {
    name: String,
    key: hmac::Key,
    rng: SystemRandom,
}

impl fmt::Debug for LinkAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkAuth({})", self.name)
    }
}

fn proof_input(label: &str, nd: &[u8], na: &[u8], name_d: &[u8], name_a: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + 2 * NONCE + name_d.len() + name_a.len());
    m.extend_from_slice(b"warren-cluster/1 ");
    m.extend_from_slice(label.as_bytes());
    m.extend_from_slice(nd);
    m.extend_from_slice(na);
    m.push(name_d.len() as u8);
    m.extend_from_slice(name_d);
    m.push(name_a.len() as u8);
    m.extend_from_slice(name_a);
    m
}

async fn read_name<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, HandshakeError> {
    let n = s.read_u8().await? as usize;
    let mut name = vec![0u8; n];
    s.read_exact(&mut name).await?;
    Ok(name)
}

fn lossy(n: &[u8]) -> String {
    String::from_utf8_lossy(n).into_owned()
}

impl LinkAuth {
    /// `name` is cut to 255 bytes on the wire (node names are checked at
    /// startup to fit).
    pub fn new(name: &str, cookie: &Cookie) -> Arc<LinkAuth> {
        Arc::new(LinkAuth {
            name: name.to_string(),
            key: hmac::Key::new(hmac::HMAC_SHA256, &cookie.0),
            rng: SystemRandom::new(),
        })
    }

    fn name_bytes(&self) -> &[u8] {
        let b = self.name.as_bytes();
        &b[..b.len().min(255)]
    }

    fn nonce(&self) -> Result<[u8; NONCE], HandshakeError> {
        let mut n = [0u8; NONCE];
        self.rng
            .fill(&mut n)
            .map_err(|_| HandshakeError::Protocol("no system randomness"))?;
        Ok(n)
    }

    /// The dialer's side. Returns the peer's node name.
    pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
    ) -> Result<String, HandshakeError> {
        let nd = self.nonce()?;
        let me = self.name_bytes();
        let mut hello = Vec::with_capacity(4 + 1 + NONCE + 1 + me.len());
        hello.extend_from_slice(MAGIC);
        hello.push(VERSION);
        hello.extend_from_slice(&nd);
        hello.push(me.len() as u8);
        hello.extend_from_slice(me);
        s.write_all(&hello).await?;
        s.flush().await?;

        let mut head = [0u8; 6];
        s.read_exact(&mut head).await?;
        if &head[..4] != MAGIC {
            return Err(HandshakeError::NotWarren);
        }
        match head[5] {
            OK if head[4] == VERSION => {}
            BAD_VERSION => return Err(HandshakeError::Version(head[4])),
            _ => return Err(HandshakeError::Protocol("unexpected status")),
        }
        let mut na = [0u8; NONCE];
        s.read_exact(&mut na).await?;
        let mut proof_a = [0u8; PROOF];
        s.read_exact(&mut proof_a).await?;
        let peer = read_name(s).await?;
        let msg = proof_input("acceptor", &nd, &na, me, &peer);
        if hmac::verify(&self.key, &msg, &proof_a).is_err() {
            // Say so, so the acceptor's log tells why too.
            let _ = s.write_all(&[BAD_PROOF]).await;
            let _ = s.flush().await;
            return Err(HandshakeError::BadProof(lossy(&peer)));
        }
        let mine = hmac::sign(&self.key, &proof_input("dialer", &nd, &na, me, &peer));
        let mut out = Vec::with_capacity(1 + PROOF);
        out.push(OK);
        out.extend_from_slice(mine.as_ref());
        s.write_all(&out).await?;
        s.flush().await?;
        match s.read_u8().await? {
            OK => Ok(lossy(&peer)),
            _ => Err(HandshakeError::Refused(lossy(&peer))),
        }
    }

    /// The acceptor's side. Returns the peer's node name.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
    ) -> Result<String, HandshakeError> {
        let mut head = [0u8; 5];
        s.read_exact(&mut head[..4]).await?;
        if &head[..4] != MAGIC {
            return Err(HandshakeError::NotWarren);
        }
        s.read_exact(&mut head[4..]).await?;
        if head[4] != VERSION {
            let mut no = Vec::from(&MAGIC[..]);
            no.extend_from_slice(&[VERSION, BAD_VERSION]);
            let _ = s.write_all(&no).await;
            let _ = s.flush().await;
            return Err(HandshakeError::Version(head[4]));
        }
        let mut nd = [0u8; NONCE];
        s.read_exact(&mut nd).await?;
        let peer = read_name(s).await?;
        let na = self.nonce()?;
        let me = self.name_bytes();
        let proof = hmac::sign(&self.key, &proof_input("acceptor", &nd, &na, &peer, me));
        let mut out = Vec::with_capacity(6 + NONCE + PROOF + 1 + me.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, OK]);
        out.extend_from_slice(&na);
        out.extend_from_slice(proof.as_ref());
        out.push(me.len() as u8);
        out.extend_from_slice(me);
        s.write_all(&out).await?;
        s.flush().await?;

        match s.read_u8().await? {
            OK => {}
            BAD_PROOF => return Err(HandshakeError::Refused(lossy(&peer))),
            _ => return Err(HandshakeError::Protocol("unexpected status")),
        }
        let mut proof_d = [0u8; PROOF];
        s.read_exact(&mut proof_d).await?;
        let msg = proof_input("dialer", &nd, &na, &peer, me);
        if hmac::verify(&self.key, &msg, &proof_d).is_err() {
            let _ = s.write_all(&[BAD_PROOF]).await;
            let _ = s.flush().await;
            return Err(HandshakeError::BadProof(lossy(&peer)));
        }
        s.write_all(&[OK]).await?;
        s.flush().await?;
        Ok(lossy(&peer))
    }
}

/// Warnings about refused links, at most one per key (a peer address) per
/// [`LogLimit::EVERY`]: a node with the wrong cookie redials every few
/// hundred milliseconds, a scanner may connect in a loop.
pub struct LogLimit {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit {
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl LogLimit {
    pub const EVERY: Duration = Duration::from_secs(10);

    /// `Some(n)`: log now, `n` warnings for this key were suppressed since
    /// the last one.
    pub fn allow(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock();
        if seen.len() > 4096 {
            seen.retain(|_, (t, _)| now.duration_since(*t) < Self::EVERY);
        }
        match seen.get_mut(key) {
            Some((t, n)) if now.duration_since(*t) < Self::EVERY => {
                *n += 1;
                None
            }
            Some((t, n)) => {
                let suppressed = *n;
                *t = now;
                *n = 0;
                Some(suppressed)
            }
            None => {
                seen.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(a: &Cookie, b: &Cookie) -> (Result<String, String>, Result<String, String>) {
        let (mut x, mut y) = tokio::io::duplex(4096);
        let d = LinkAuth::new("n1", a);
        let acc = LinkAuth::new("n2", b);
        let (l, r) = tokio::join!(d.dial(&mut x), acc.accept(&mut y));
        (l.map_err(|e| e.to_string()), r.map_err(|e| e.to_string()))
    }

    #[tokio::test]
    async fn same_cookie_passes_other_cookie_fails_both_ways() {
        let c = Cookie::from_value("secret").unwrap();
        let (d, a) = pair(&c, &c).await;
        assert_eq!(d.unwrap(), "n2");
        assert_eq!(a.unwrap(), "n1");
        let other = Cookie::from_value("other").unwrap();
        let (d, a) = pair(&c, &other).await;
        assert!(d.unwrap_err().contains("different cluster cookie"));
        assert!(a.unwrap_err().contains("different cluster cookie"));
    }

    #[tokio::test]
    async fn garbage_and_old_frames_are_not_a_handshake() {
        let c = Cookie::from_value("secret").unwrap();
        let acc = LinkAuth::new("n2", &c);
        // An old build's first frame: its length first.
        let (mut x, mut y) = tokio::io::duplex(4096);
        x.write_all(&[0, 0, 0, 18, 0, 0, 0, 0]).await.unwrap();
        assert!(matches!(
            acc.accept(&mut y).await,
            Err(HandshakeError::NotWarren)
        ));
        // Another version: refused, and the dialer is told which.
        let (mut x, mut y) = tokio::io::duplex(4096);
        let mut hello = MAGIC.to_vec();
        hello.push(9);
        x.write_all(&hello).await.unwrap();
        assert!(matches!(
            acc.accept(&mut y).await,
            Err(HandshakeError::Version(9))
        ));
        let mut answer = [0u8; 6];
        x.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[4..], [VERSION, BAD_VERSION]);
    }

    #[test]
    fn cookie_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        let c = Cookie::load(&p, true).unwrap();
        assert_eq!(Cookie::load(&p, false).unwrap(), c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = Cookie::load(&p, true).unwrap_err();
            assert!(e.contains("must be accessible by owner only"), "{e}");
        }
        assert!(Cookie::load(&dir.path().join("missing"), false).is_err());
        assert!(Cookie::from_value("  \n").is_err());
        assert_eq!(format!("{c:?}"), "Cookie(48 bytes)");
    }

    #[test]
    fn log_limit() {
        let l = LogLimit::default();
        assert_eq!(l.allow("a"), Some(0));
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("b"), Some(0));
    }
}
