//! Real registries for the push tests: Debian's `docker-registry`
//! (distribution 2.8) started on a free loopback port, plain or with TLS
//! (a CA and a server certificate made by `openssl`) and htpasswd Basic
//! authentication, killed when dropped; and a proxy that cuts
//! connections, for the retries.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether `tool` is on PATH; under `CI=true` a missing tool fails the test.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{tool} is needed by this test (apt-get install it)");
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A running registry.
pub struct Registry {
    child: Child,
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Its certificate directory (`ca.crt`), with TLS.
    pub cert_dir: Option<PathBuf>,
    /// The user and password it accepts, with htpasswd.
    pub user: Option<(String, String)>,
}

impl Registry {
    /// A plain-HTTP registry without authentication.
    pub fn plain() -> Registry {
        Self::start(false)
    }

    /// A TLS registry with Basic authentication (user `pusher`).
    pub fn tls_htpasswd() -> Registry {
        Self::start(true)
    }

    fn start(secure: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        let (mut cert_dir, mut user) = (None, None);
        if secure {
            let d = dir.path();
            let certs = d.join("certs");
            std::fs::create_dir(&certs).unwrap();
            run(Command::new("openssl").args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=gdn test CA"])
                .arg("-keyout").arg(d.join("ca.key")).arg("-out").arg(certs.join("ca.crt")).stderr(Stdio::piped()));
            run(Command::new("openssl").args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"])
                .arg("-keyout").arg(d.join("server.key")).arg("-out").arg(d.join("server.csr")).stderr(Stdio::piped()));
            std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
            run(Command::new("openssl").args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .arg("-in").arg(d.join("server.csr")).arg("-CA").arg(certs.join("ca.crt")).arg("-CAkey").arg(d.join("ca.key"))
                .arg("-extfile").arg(d.join("san.ext")).arg("-out").arg(d.join("server.crt")).stderr(Stdio::piped()));
            let password = "s3cret-Pa55word";
            let out = Command::new("htpasswd").args(["-Bbn", "pusher", password]).output().unwrap();
            assert!(out.status.success());
            std::fs::write(d.join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: gdn-test\n    path: {}\n",
                d.join("server.crt").display(),
                d.join("server.key").display(),
                d.join("htpasswd").display()
            ));
            cert_dir = Some(certs);
            user = Some(("pusher".to_string(), password.to_string()));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry { child, dir, host, cert_dir, user };
        registry.wait_up();
        registry
    }

    fn wait_up(&self) {
        let start = Instant::now();
        while TcpStream::connect(&self.host).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "the registry did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it logged (one line per request among the rest).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many requests of `method` on paths containing `path` it served.
    pub fn requests(&self, method: &str, path: &str) -> usize {
        let needle = format!("\"{method} /v2/");
        self.log().lines().filter(|l| l.contains(&needle) && l.contains(path)).count()
    }

    /// skopeo's options to reach it.
    pub fn skopeo_options(&self, prefix: &str) -> Vec<String> {
        let mut o = Vec::new();
        match &self.cert_dir {
            Some(dir) => o.push(format!("--{prefix}cert-dir={}", dir.display())),
            None => o.push(format!("--{prefix}tls-verify=false")),
        }
        if let Some((u, p)) = &self.user {
            o.push(format!("--{prefix}creds={u}:{p}"));
        }
        o
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy to `upstream` that cuts every `nth` connection after
/// reading a little of its first request, forwarding nothing of it; or,
/// once `budget` bytes of requests have gone through, cuts every
/// connection, open or new (a registry gone).
pub struct CuttingProxy {
    pub host: String,
    pub cut: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CuttingProxy {
    pub fn new(upstream: &str, nth: usize) -> CuttingProxy {
        Self::cutting(upstream, nth, usize::MAX)
    }

    /// Gone once `budget` bytes of requests went through.
    pub fn dying(upstream: &str, budget: usize) -> CuttingProxy {
        Self::cutting(upstream, usize::MAX, budget)
    }

    fn cutting(upstream: &str, nth: usize, budget: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let (cut, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let upstream = upstream.to_string();
        let (cut2, stop2) = (Arc::clone(&cut), Arc::clone(&stop));
        let sent = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for (i, conn) in listener.incoming().enumerate() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut client) = conn else { continue };
                if (i + 1) % nth == 0 || sent.load(Ordering::Relaxed) >= budget {
                    let mut buf = [0u8; 64];
                    let _ = client.read(&mut buf);
                    let _ = client.shutdown(Shutdown::Both);
                    cut2.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let mut server = server;
                let sent = Arc::clone(&sent);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match c2.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if sent.fetch_add(n, Ordering::Relaxed) + n > budget || s2.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    // Both ways closed: the registry is gone for this connection.
                    let _ = s2.shutdown(Shutdown::Both);
                    let _ = c2.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(Shutdown::Write);
                    let _ = client.flush();
                });
            }
        });
        CuttingProxy { host, cut, stop }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.host);
    }
}

/// A sample store (`gdn-sample-store`) in a temporary directory: the
/// directory, the store, the database and the profile.
pub struct SampleStore {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub database: PathBuf,
    pub profile: PathBuf,
}

impl SampleStore {
    pub fn new() -> SampleStore {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_gdn-sample-store")).arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let profile = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        SampleStore {
            store: dir.path().join("gnu/store"),
            database: dir.path().join("var/guix/db/db.sqlite"),
            dir,
            profile,
        }
    }
}

/// Every file, directory and symlink under `root`, relative, with its
/// kind, mode and contents or target.
pub fn tree(root: &Path) -> Vec<(PathBuf, String)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let what = if meta.file_type().is_symlink() {
                format!("symlink {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {:o}", meta.permissions().mode() & 0o7777)
            } else {
                let data = std::fs::read(&path).unwrap();
                format!("file {:o} {} {:x?}", meta.permissions().mode() & 0o7777, data.len(), &sha256(&data)[..8])
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

/// A registry started by tests/lib/registry.sh (`plain`, `basic` or
/// `token`), stopped when dropped.
pub struct ScriptRegistry {
    _parent: tempfile::TempDir,
    pub dir: PathBuf,
    pub addr: String,
    pub user: String,
    pub password: String,
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lib/registry.sh");

impl ScriptRegistry {
    pub fn start(mode: &str) -> ScriptRegistry {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("r");
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(". '{SCRIPT}' && gdn_registry_start {mode} '{}'", dir.display()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "gdn_registry_start {mode}: {}", String::from_utf8_lossy(&out.stderr));
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default().trim().to_string();
        ScriptRegistry { addr: read("addr"), user: read("user"), password: read("password"), dir, _parent: parent }
    }
}

impl Drop for ScriptRegistry {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!(". '{SCRIPT}' && gdn_registry_stop '{}'", self.dir.display()))
            .output();
    }
}

impl ScriptRegistry {
    /// [`ScriptRegistry::start`], with `prepare` run on the registry's
    /// directory (`storage/` made) before it starts.
    pub fn start_prepared(mode: &str, prepare: impl FnOnce(&Path)) -> ScriptRegistry {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("r");
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        prepare(&dir);
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(". '{SCRIPT}' && gdn_registry_start {mode} '{}'", dir.display()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "gdn_registry_start {mode}: {}", String::from_utf8_lossy(&out.stderr));
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default().trim().to_string();
        ScriptRegistry { addr: read("addr"), user: read("user"), password: read("password"), dir, _parent: parent }
    }

    fn script(&self, function: &str) {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(". '{SCRIPT}' && {function} '{}'", self.dir.display()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{function}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Kills the registry (SIGKILL, as a crash); its storage stays.
    pub fn kill(&self) {
        self.script("gdn_registry_kill");
    }

    /// Starts it again on the same port with the same storage.
    pub fn restart(&self) {
        self.script("gdn_registry_restart");
    }

    /// Kills the token issuer of a `token` registry.
    pub fn kill_issuer(&self) {
        let pid = std::fs::read_to_string(self.dir.join("issuer.pid")).unwrap();
        let _ = Command::new("kill").arg("-KILL").arg(pid.trim()).status();
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// How many requests of `method` on paths containing `path` it served.
    pub fn requests(&self, method: &str, path: &str) -> usize {
        let needle = format!("\"{method} /v2/");
        self.log().lines().filter(|l| l.contains(&needle) && l.contains(path)).count()
    }
}

/// A tmpfs of `size` (`mount -o size=…`) mounted on `dir`, unmounted when
/// dropped; `None` where mounting is not allowed (not root).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output().ok()?;
        if !out.status.success() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
            eprintln!("skipped: cannot mount a tmpfs: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An HTTP proxy to `upstream` that answers `status` (with a registry's
/// JSON error and `Retry-After: 0`) to every request `refuse(method, path)`
/// picks, and forwards the others, one request per connection (it asks
/// for `Connection: close`).  `refused` counts the refusals.
pub struct RefusingProxy {
    pub host: String,
    pub refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RefusingProxy {
    pub fn new(upstream: &str, status: u16, refuse: impl Fn(&str, &str) -> bool + Send + Sync + 'static) -> RefusingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let (refused, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (refused2, stop2) = (Arc::clone(&refused), Arc::clone(&stop));
        let upstream = upstream.to_string();
        let refuse = Arc::new(refuse);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let (upstream, refuse, refused) = (upstream.clone(), Arc::clone(&refuse), Arc::clone(&refused2));
                std::thread::spawn(move || {
                    let _ = Self::serve(client, &upstream, status, &*refuse, &refused);
                });
            }
        });
        RefusingProxy { host, refused, stop }
    }

    fn serve(
        mut client: TcpStream,
        upstream: &str,
        status: u16,
        refuse: &(dyn Fn(&str, &str) -> bool + Send + Sync),
        refused: &AtomicUsize,
    ) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte)? == 0 {
                return Ok(());
            }
            head.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut words = text.split(' ');
        let (method, path) = (words.next().unwrap_or("").to_string(), words.next().unwrap_or("").to_string());
        let lines: Vec<&str> = text.trim_end().split("\r\n").collect();
        if refuse(&method, &path) {
            refused.fetch_add(1, Ordering::Relaxed);
            // Read the body first, so the answer is read rather than reset.
            let length = lines
                .iter()
                .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            std::io::copy(&mut (&mut client).take(length), &mut std::io::sink())?;
            let body = r#"{"errors":[{"code":"UNAVAILABLE","message":"refused by the test proxy"}]}"#;
            write!(
                client,
                "HTTP/1.1 {status} Refused\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 0\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return client.flush();
        }
        let mut forwarded = String::new();
        for line in &lines {
            if !line.to_ascii_lowercase().starts_with("connection:") {
                forwarded.push_str(line);
                forwarded.push_str("\r\n");
            }
        }
        forwarded.push_str("Connection: close\r\n\r\n");
        let mut server = TcpStream::connect(upstream)?;
        server.write_all(forwarded.as_bytes())?;
        let (mut c2, mut s2) = (client.try_clone()?, server.try_clone()?);
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut s2);
            let _ = s2.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut server, &mut client);
        let _ = client.shutdown(Shutdown::Both);
        let _ = up.join();
        Ok(())
    }
}

impl Drop for RefusingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.host);
    }
}
