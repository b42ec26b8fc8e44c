//! Where the credentials for a registry come from, looked up as podman,
//! skopeo and docker look them up.
//!
//! In order, the first that has credentials for the registry wins:
//!
//! 1. `--creds USER:PASSWORD`, when given;
//! 2. `$REGISTRY_AUTH_FILE`, when set;
//! 3. `$XDG_RUNTIME_DIR/containers/auth.json`, when that variable is set;
//! 4. `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/containers/auth.json`),
//!    the other file podman's `containers-auth.json(5)` reads;
//! 5. `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json`.
//!
//! Every file has docker's format: `auths` maps a registry to `auth` (base64
//! of `USER:PASSWORD`) or `username` and `password`; `credHelpers` maps a
//! registry to a helper `NAME`, and `credsStore` names the helper for every
//! other registry; a helper is the program `docker-credential-NAME`, run
//! with `get`, the registry on its standard input, and answering
//! `{"Username": …, "Secret": …}` on its standard output.  Within one file a
//! registry's `credHelpers` entry comes first, then `credsStore` (when the
//! helper does not know the registry, the file's `auths` entry is used, as
//! docker does), then `auths`.
//!
//! A file that does not exist is passed over; one that cannot be read or
//! parsed is an error naming it and what is wrong.  No message ever holds a
//! secret: passwords are [`Secret`]s, whose `Debug` and `Display` print
//! `<redacted>`, and errors name files, keys and helpers, never values.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// A password, token or `Authorization` value: never printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A user name and its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: Secret,
}

impl Credentials {
    /// The `Authorization` header's value for HTTP Basic authentication:
    /// `Basic ` and the base64 of `USER:PASSWORD`.
    pub(crate) fn basic_authorization(&self) -> Secret {
        let pair = format!("{}:{}", self.username, self.password.expose());
        Secret(format!("Basic {}", base64_encode(pair.as_bytes())))
    }
}

/// What a lookup found, and where it looked.
#[derive(Debug)]
pub(crate) struct Lookup {
    /// The registry's credentials, if any place had them.
    pub(crate) credentials: Option<Credentials>,
    /// Where they came from (`$REGISTRY_AUTH_FILE (/x)`), if found.
    pub(crate) found_in: Option<String>,
    /// Every place consulted, in order, for a person:
    /// `$REGISTRY_AUTH_FILE (/x)`, `docker-credential-pass (credsStore of /y)`.
    pub(crate) searched: Vec<String>,
}

impl Lookup {
    /// The places searched, as one line: `--creds (not given), $REGISTRY_AUTH_FILE (/x), …`.
    pub(crate) fn searched_places(&self) -> String {
        self.searched.join(", ")
    }

    /// The sentence for a registry that answers 401 to an anonymous
    /// request: `no credentials for HOST in PLACES`.
    pub(crate) fn no_credentials_message(&self, registry: &str) -> String {
        format!("no credentials for {registry} in {}", self.searched_places())
    }
}

/// What the lookup reads from the process: the variables and the `PATH`
/// the helpers are found on.  Tests give their own.
#[derive(Clone, Debug, Default)]
pub(crate) struct Environment {
    pub(crate) registry_auth_file: Option<PathBuf>,
    pub(crate) xdg_runtime_dir: Option<PathBuf>,
    pub(crate) xdg_config_home: Option<PathBuf>,
    pub(crate) docker_config: Option<PathBuf>,
    pub(crate) home: Option<PathBuf>,
    pub(crate) path: Option<OsString>,
}

impl Environment {
    /// The process's own environment (empty variables count as unset).
    pub(crate) fn from_process() -> Environment {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        Environment {
            registry_auth_file: var("REGISTRY_AUTH_FILE").map(PathBuf::from),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            docker_config: var("DOCKER_CONFIG").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            path: var("PATH"),
        }
    }
}

/// The credentials for `registry` (`HOST` or `HOST:PORT`, as in
/// `docker://HOST:PORT/REPO`), from `explicit` (`--creds USER:PASSWORD`)
/// or the process's environment.
pub(crate) fn lookup(registry: &str, explicit: Option<&str>) -> Result<Lookup> {
    lookup_in(registry, explicit, &Environment::from_process())
}

/// [`lookup`] with a given environment.
pub(crate) fn lookup_in(registry: &str, explicit: Option<&str>, env: &Environment) -> Result<Lookup> {
    let registry = normalize_registry(registry);
    let mut lookup = Lookup { credentials: None, found_in: None, searched: Vec::new() };

    match explicit {
        Some(creds) => {
            lookup.credentials = Some(parse_creds_option(creds)?);
            lookup.found_in = Some("--creds".to_string());
            lookup.searched.push("--creds".to_string());
            return Ok(lookup);
        }
        None => lookup.searched.push("--creds (not given)".to_string()),
    }

    let mut files: Vec<(String, Option<PathBuf>)> = vec![
        ("$REGISTRY_AUTH_FILE".to_string(), env.registry_auth_file.clone()),
        (
            "$XDG_RUNTIME_DIR/containers/auth.json".to_string(),
            env.xdg_runtime_dir.as_ref().map(|dir| dir.join("containers/auth.json")),
        ),
    ];
    let config_home = env.xdg_config_home.clone().or_else(|| env.home.as_ref().map(|home| home.join(".config")));
    files.push((
        if env.xdg_config_home.is_some() { "$XDG_CONFIG_HOME/containers/auth.json" } else { "~/.config/containers/auth.json" }
            .to_string(),
        config_home.map(|dir| dir.join("containers/auth.json")),
    ));
    match &env.docker_config {
        Some(dir) => files.push(("$DOCKER_CONFIG/config.json".to_string(), Some(dir.join("config.json")))),
        None => files.push((
            "~/.docker/config.json".to_string(),
            env.home.as_ref().map(|home| home.join(".docker/config.json")),
        )),
    }

    for (name, path) in files {
        let Some(path) = path else {
            lookup.searched.push(format!("{name} (not set)"));
            continue;
        };
        let place = format!("{name} ({})", path.display());
        let Some(file) = AuthFile::read(&path)? else {
            lookup.searched.push(format!("{name} ({}: no such file)", path.display()));
            continue;
        };
        lookup.searched.push(place.clone());
        if let Some((credentials, from)) = file.credentials_for(&registry, &place, env, &mut lookup.searched)? {
            lookup.credentials = Some(credentials);
            lookup.found_in = Some(from);
            return Ok(lookup);
        }
    }
    Ok(lookup)
}

/// `USER:PASSWORD`, split at the first colon (a password may hold colons).
fn parse_creds_option(creds: &str) -> Result<Credentials> {
    // The value is never quoted back: it holds the password.
    let Some((username, password)) = creds.split_once(':') else {
        return Err(Error::invalid_argument("--creds: expected USER:PASSWORD (no ':' in the value given)"));
    };
    if username.is_empty() {
        return Err(Error::invalid_argument("--creds: expected USER:PASSWORD (the user name is empty)"));
    }
    Ok(Credentials { username: username.to_string(), password: Secret::new(password) })
}

/// The registry as the files' keys are compared with it: docker's
/// `ConvertToHostname` (no `http://` or `https://`, nothing from the first
/// `/`), lower-case, and Docker Hub's names taken as one.
fn normalize_registry(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or("").to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".to_string(),
        _ => host,
    }
}

/// The name a credential helper is asked about: what docker stores Docker
/// Hub's credentials under, else the registry itself.
fn helper_server_name(registry: &str) -> String {
    if registry == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// One auth file (`auth.json` or docker's `config.json`), parsed.
struct AuthFile {
    path: PathBuf,
    /// `auths`: normalized registry → (the key as written, its entry).
    auths: Vec<(String, String, serde_json::Map<String, serde_json::Value>)>,
    /// `credHelpers`: normalized registry → helper name.
    cred_helpers: BTreeMap<String, String>,
    /// `credsStore`.
    creds_store: Option<String>,
}

impl AuthFile {
    /// The file at `path`, or `None` when there is none.
    fn read(path: &Path) -> Result<Option<AuthFile>> {
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::invalid_argument(format!("{}: cannot read the auth file: {err}", path.display()))),
        };
        Self::parse(path, &text).map(Some)
    }

    fn parse(path: &Path, text: &[u8]) -> Result<AuthFile> {
        let bad = |what: String| Error::invalid_argument(format!("{}: malformed auth file: {what}", path.display()));
        if text.iter().all(u8::is_ascii_whitespace) {
            // An empty file is what `touch` or a fresh login tool leaves.
            return Ok(AuthFile { path: path.to_path_buf(), auths: Vec::new(), cred_helpers: BTreeMap::new(), creds_store: None });
        }
        // Parsed as an untyped value and walked by hand: serde_json's syntax
        // errors give a line and column only, never the text around them.
        let value: serde_json::Value = serde_json::from_slice(text).map_err(|err| bad(format!("not JSON ({err})")))?;
        let serde_json::Value::Object(top) = value else {
            return Err(bad("not a JSON object".to_string()));
        };
        let mut auths = Vec::new();
        match top.get("auths") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(map)) => {
                for (key, entry) in map {
                    let serde_json::Value::Object(entry) = entry else {
                        return Err(bad(format!("\"auths\" entry \"{key}\" is not an object")));
                    };
                    auths.push((normalize_registry(key), key.clone(), entry.clone()));
                }
            }
            Some(_) => return Err(bad("\"auths\" is not an object".to_string())),
        }
        let mut cred_helpers = BTreeMap::new();
        match top.get("credHelpers") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(map)) => {
                for (key, helper) in map {
                    let serde_json::Value::String(helper) = helper else {
                        return Err(bad(format!("\"credHelpers\" entry \"{key}\" is not a string")));
                    };
                    check_helper_name(helper).map_err(|what| bad(format!("\"credHelpers\" entry \"{key}\": {what}")))?;
                    cred_helpers.insert(normalize_registry(key), helper.clone());
                }
            }
            Some(_) => return Err(bad("\"credHelpers\" is not an object".to_string())),
        }
        let creds_store = match top.get("credsStore") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(name)) if name.is_empty() => None,
            Some(serde_json::Value::String(name)) => {
                check_helper_name(name).map_err(|what| bad(format!("\"credsStore\": {what}")))?;
                Some(name.clone())
            }
            Some(_) => return Err(bad("\"credsStore\" is not a string".to_string())),
        };
        Ok(AuthFile { path: path.to_path_buf(), auths, cred_helpers, creds_store })
    }

    /// The credentials this file gives `registry`, and where exactly they
    /// came from; the helpers it runs are added to `searched`.
    fn credentials_for(
        &self,
        registry: &str,
        place: &str,
        env: &Environment,
        searched: &mut Vec<String>,
    ) -> Result<Option<(Credentials, String)>> {
        if let Some(helper) = self.cred_helpers.get(registry) {
            let what = format!("credHelpers of {}", self.path.display());
            searched.push(format!("docker-credential-{helper} ({what})"));
            if let Some(credentials) = run_helper(helper, &what, registry, env)? {
                return Ok(Some((credentials, format!("docker-credential-{helper} ({what})"))));
            }
            return Ok(None);
        }
        if let Some(helper) = &self.creds_store {
            let what = format!("credsStore of {}", self.path.display());
            searched.push(format!("docker-credential-{helper} ({what})"));
            if let Some(credentials) = run_helper(helper, &what, registry, env)? {
                return Ok(Some((credentials, format!("docker-credential-{helper} ({what})"))));
            }
        }
        for (normalized, key, entry) in &self.auths {
            if normalized != registry {
                continue;
            }
            if let Some(credentials) = self.entry_credentials(key, entry)? {
                return Ok(Some((credentials, place.to_string())));
            }
        }
        Ok(None)
    }

    /// An `auths` entry's credentials: `auth`, else `username` and
    /// `password`; `None` for an entry with neither (docker writes `{}` for
    /// a registry whose secret is in `credsStore`).
    fn entry_credentials(&self, key: &str, entry: &serde_json::Map<String, serde_json::Value>) -> Result<Option<Credentials>> {
        let bad = |what: &str| {
            Error::invalid_argument(format!("{}: malformed auth file: \"auths\" entry \"{key}\": {what}", self.path.display()))
        };
        let string_field = |name: &str| -> Result<Option<&str>> {
            match entry.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(value)) if value.is_empty() => Ok(None),
                Some(serde_json::Value::String(value)) => Ok(Some(value)),
                Some(_) => Err(bad(&format!("\"{name}\" is not a string"))),
            }
        };
        if let Some(auth) = string_field("auth")? {
            let decoded = base64_decode(auth.trim()).ok_or_else(|| bad("\"auth\" is not valid base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad("\"auth\" does not decode to UTF-8 text"))?;
            let Some((username, password)) = decoded.split_once(':') else {
                return Err(bad("\"auth\" does not decode to USER:PASSWORD (no ':')"));
            };
            if username.is_empty() {
                return Err(bad("\"auth\" decodes to an empty user name"));
            }
            return Ok(Some(Credentials { username: username.to_string(), password: Secret::new(password) }));
        }
        match (string_field("username")?, string_field("password")?) {
            (Some(username), Some(password)) => {
                Ok(Some(Credentials { username: username.to_string(), password: Secret::new(password) }))
            }
            (Some(_), None) => Err(bad("\"username\" without \"password\"")),
            (None, Some(_)) => Err(bad("\"password\" without \"username\"")),
            (None, None) => {
                if string_field("identitytoken")?.is_some() {
                    return Err(bad("only an \"identitytoken\", which this tool does not use (give --creds, or log in with a password)"));
                }
                Ok(None)
            }
        }
    }
}

/// A helper name becomes part of a program name: no `/`, nothing empty.
fn check_helper_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the helper name is empty".to_string());
    }
    if name.contains('/') || name.contains('\0') {
        return Err(format!("helper name \"{name}\" holds a '/'"));
    }
    Ok(())
}

/// What docker-credential-helpers print when they hold nothing for a registry.
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// `docker-credential-NAME get` for `registry`: its credentials, `None`
/// when it has none, an error (naming the helper, never its output's
/// secret) when it is missing, fails or answers nonsense.
fn run_helper(name: &str, what: &str, registry: &str, env: &Environment) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{name}");
    let fail = |why: String| Error::invalid_argument(format!("credential helper {program} ({what}) for {registry}: {why}"));
    let Some(path) = find_on_path(&program, env.path.as_deref()) else {
        return Err(fail("not found on PATH".to_string()));
    };
    let mut child = Command::new(&path)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| fail(format!("cannot run {}: {err}", path.display())))?;
    // The helper may exit without reading: a broken pipe here is its
    // answer's business, not an error of ours.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(helper_server_name(registry).as_bytes());
    }
    let mut stdout = Vec::new();
    // stderr is read on a thread of its own so that neither pipe can fill
    // while the other is waited on.
    let stderr_pipe = child.stderr.take();
    let stderr_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        if let Some(pipe) = stderr_pipe {
            let _ = pipe.take(64 * 1024).read_to_end(&mut buffer);
        }
        buffer
    });
    if let Some(pipe) = child.stdout.take() {
        let _ = pipe.take(1024 * 1024).read_to_end(&mut stdout);
    }
    let stderr = stderr_reader.join().unwrap_or_default();
    let status = child.wait().map_err(|err| fail(format!("waiting for it failed: {err}")))?;
    if !status.success() {
        let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
        if said(&stdout) == HELPER_NOT_FOUND || said(&stderr) == HELPER_NOT_FOUND {
            return Ok(None);
        }
        // Only its standard error is quoted (a line of it): standard output
        // is where a helper writes secrets.
        let first_line: String = said(&stderr).lines().next().unwrap_or("").chars().take(200).collect();
        let status = match status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        return Err(fail(if first_line.is_empty() { format!("failed ({status})") } else { format!("failed ({status}): {first_line}") }));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&stdout).map_err(|_| fail("its answer is not JSON with \"Username\" and \"Secret\"".to_string()))?;
    let field = |name: &str| answer.get(name).and_then(serde_json::Value::as_str);
    let (Some(username), Some(secret)) = (field("Username"), field("Secret")) else {
        return Err(fail("its answer is not JSON with \"Username\" and \"Secret\"".to_string()));
    };
    if username == "<token>" {
        return Err(fail("it gave an identity token, which this tool does not use (give --creds)".to_string()));
    }
    if username.is_empty() && secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials { username: username.to_string(), password: Secret::new(secret) }))
}

/// The first executable `program` in the directories of `path`.
fn find_on_path(program: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate).map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0).unwrap_or(false)
        })
}

/// Standard base64 with padding (RFC 4648 §4), by the `base64` crate.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard base64, padded (canonically) or not; `None` for anything else.
/// Bits left over in the last character are ignored, as Go's
/// `base64.StdEncoding` (docker's and podman's reader of `auth`) does.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    let config = GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true);
    let padded = GeneralPurpose::new(&base64::alphabet::STANDARD, config.with_decode_padding_mode(DecodePaddingMode::RequireCanonical));
    let unpadded = GeneralPurpose::new(&base64::alphabet::STANDARD, config.with_decode_padding_mode(DecodePaddingMode::RequireNone));
    let engine = if text.ends_with('=') { padded } else { unpadded };
    engine.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SECRET: &str = "s3cret-Pa55:with:colons";

    /// A home, runtime and config directory of a test's own, nothing set.
    struct Sandbox {
        dir: tempfile::TempDir,
    }

    impl Sandbox {
        fn new() -> Sandbox {
            Sandbox { dir: tempfile::tempdir().unwrap() }
        }

        fn path(&self, relative: &str) -> PathBuf {
            self.dir.path().join(relative)
        }

        fn write(&self, relative: &str, text: &str) -> PathBuf {
            let path = self.path(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }

        /// `bin/docker-credential-NAME`, a shell script.
        fn helper(&self, name: &str, script: &str) {
            let path = self.write(&format!("bin/docker-credential-{name}"), &format!("#!/bin/sh\n{script}\n"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }

        /// Every variable set, to the sandbox's directories.
        fn env(&self) -> Environment {
            Environment {
                registry_auth_file: Some(self.path("registry-auth.json")),
                xdg_runtime_dir: Some(self.path("run")),
                xdg_config_home: Some(self.path("config")),
                docker_config: None,
                home: Some(self.path("home")),
                path: Some(self.path("bin").into_os_string()),
            }
        }
    }

    fn auth_file(key: &str, user: &str, password: &str) -> String {
        let auth = base64_encode(format!("{user}:{password}").as_bytes());
        format!(r#"{{"auths": {{"{key}": {{"auth": "{auth}"}}}}}}"#)
    }

    fn found(lookup: &Lookup) -> (&str, &str, &str) {
        let credentials = lookup.credentials.as_ref().expect("credentials found");
        (&credentials.username, credentials.password.expose(), lookup.found_in.as_deref().unwrap())
    }

    /// What a failure shows a person: the message, and the error's Debug.
    fn error_text(err: &Error) -> String {
        format!("{err} {err:?}")
    }

    #[test]
    fn a_secret_prints_redacted_everywhere() {
        let secret = Secret::new(SECRET);
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        let credentials = Credentials { username: "alice".into(), password: Secret::new(SECRET) };
        let debug = format!("{credentials:?} {:?} {}", credentials.basic_authorization(), credentials.basic_authorization());
        assert!(!debug.contains(SECRET) && !debug.contains("czNjcmV0"), "{debug}");
        assert!(debug.contains("alice"), "{debug}");
    }

    #[test]
    fn the_basic_header_is_base64_of_user_colon_password() {
        // RFC 7617's example.
        let credentials = Credentials { username: "Aladdin".into(), password: Secret::new("open sesame") };
        assert_eq!(credentials.basic_authorization().expose(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn base64_round_trips_and_refuses_what_is_not_base64() {
        // RFC 4648 §10's vectors.
        for (plain, encoded) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
            assert_eq!(base64_decode(encoded.trim_end_matches('=')).unwrap(), plain.as_bytes(), "unpadded {encoded}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
        for bad in ["Zm9v!", "Z", "Zm9vY", "Zg=", "Z===", "Zm 9v"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn creds_option_comes_first_and_splits_at_the_first_colon() {
        let sandbox = Sandbox::new();
        sandbox.write("registry-auth.json", &auth_file("127.0.0.1:5000", "fromfile", "filepass"));
        let lookup = lookup_in("127.0.0.1:5000", Some(&format!("alice:{SECRET}")), &sandbox.env()).unwrap();
        assert_eq!(found(&lookup), ("alice", SECRET, "--creds"));
        assert_eq!(lookup.searched, ["--creds"]);
    }

    #[test]
    fn a_bad_creds_option_is_refused_without_quoting_it() {
        let env = Sandbox::new().env();
        for bad in ["alice-and-no-colon-s3cret", ":s3cret-Pa55"] {
            let err = lookup_in("127.0.0.1:5000", Some(bad), &env).unwrap_err();
            assert!(err.message.starts_with("--creds: expected USER:PASSWORD"), "{err}");
            assert!(!error_text(&err).contains("s3cret"), "{err:?}");
        }
    }

    #[test]
    fn each_file_is_read_in_order_and_the_first_with_the_registry_wins() {
        let sandbox = Sandbox::new();
        let env = sandbox.env();
        let registry = "127.0.0.1:5000";
        sandbox.write("home/.docker/config.json", &auth_file(registry, "docker", "p4"));
        assert_eq!(found(&lookup_in(registry, None, &env).unwrap()).0, "docker");
        sandbox.write("config/containers/auth.json", &auth_file(registry, "xdgconfig", "p3"));
        assert_eq!(found(&lookup_in(registry, None, &env).unwrap()).0, "xdgconfig");
        sandbox.write("run/containers/auth.json", &auth_file(registry, "runtime", "p2"));
        let lookup = lookup_in(registry, None, &env).unwrap();
        assert_eq!(found(&lookup), ("runtime", "p2", &*format!("$XDG_RUNTIME_DIR/containers/auth.json ({})", sandbox.path("run/containers/auth.json").display())));
        // A file that has other registries only is passed over.
        sandbox.write("registry-auth.json", &auth_file("other.example:5000", "other", "p0"));
        assert_eq!(found(&lookup_in(registry, None, &env).unwrap()).0, "runtime");
        sandbox.write("registry-auth.json", &auth_file(registry, "authfile", "p1"));
        let lookup = lookup_in(registry, None, &env).unwrap();
        assert_eq!(found(&lookup), ("authfile", "p1", &*format!("$REGISTRY_AUTH_FILE ({})", sandbox.path("registry-auth.json").display())));
        assert_eq!(lookup.searched, ["--creds (not given)".to_string(), format!("$REGISTRY_AUTH_FILE ({})", sandbox.path("registry-auth.json").display())]);
    }

    #[test]
    fn docker_config_names_the_directory_of_config_json() {
        let sandbox = Sandbox::new();
        sandbox.write("home/.docker/config.json", &auth_file("reg.example", "home", "p"));
        sandbox.write("elsewhere/config.json", &auth_file("reg.example", "dockerconfig", "p"));
        let mut env = sandbox.env();
        assert_eq!(found(&lookup_in("reg.example", None, &env).unwrap()).0, "home");
        env.docker_config = Some(sandbox.path("elsewhere"));
        let lookup = lookup_in("reg.example", None, &env).unwrap();
        assert_eq!(found(&lookup).0, "dockerconfig");
        assert!(lookup.found_in.unwrap().starts_with("$DOCKER_CONFIG/config.json ("));
    }

    #[test]
    fn auths_entries_may_give_username_and_password() {
        let sandbox = Sandbox::new();
        sandbox.write(
            "registry-auth.json",
            &format!(r#"{{"auths": {{"reg.example": {{"username": "bob", "password": "{SECRET}"}}}}}}"#),
        );
        assert_eq!(found(&lookup_in("reg.example", None, &sandbox.env()).unwrap()).0, "bob");
    }

    #[test]
    fn keys_are_normalized_as_docker_does() {
        let sandbox = Sandbox::new();
        let env = sandbox.env();
        for (key, registry) in [
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("https://127.0.0.1:5000/v1/", "127.0.0.1:5000"),
            ("http://127.0.0.1:5000", "127.0.0.1:5000"),
            ("https://Reg.Example/v2/", "reg.example"),
            ("reg.example/some/namespace", "reg.example"),
            ("https://index.docker.io/v1/", "docker.io"),
            ("https://index.docker.io/v1/", "registry-1.docker.io"),
            ("docker.io", "index.docker.io"),
        ] {
            sandbox.write("registry-auth.json", &auth_file(key, "user", "p"));
            let lookup = lookup_in(registry, None, &env).unwrap();
            assert!(lookup.credentials.is_some(), "key {key} for registry {registry}: {:?}", lookup.searched);
        }
        // Another port is another registry.
        for (key, registry) in [("127.0.0.1:5000", "127.0.0.1:5001"), ("127.0.0.1:5000", "127.0.0.1"), ("reg.example", "reg.example:443")] {
            sandbox.write("registry-auth.json", &auth_file(key, "user", "p"));
            assert!(lookup_in(registry, None, &env).unwrap().credentials.is_none(), "key {key} for registry {registry}");
        }
    }

    #[test]
    fn nothing_found_lists_every_place_searched() {
        let sandbox = Sandbox::new();
        sandbox.write("config/containers/auth.json", r#"{"auths": {}}"#);
        let lookup = lookup_in("127.0.0.1:5000", None, &sandbox.env()).unwrap();
        assert!(lookup.credentials.is_none());
        let p = |relative: &str| sandbox.path(relative).display().to_string();
        assert_eq!(
            lookup.no_credentials_message("127.0.0.1:5000"),
            format!(
                "no credentials for 127.0.0.1:5000 in --creds (not given), $REGISTRY_AUTH_FILE ({}: no such file), \
                 $XDG_RUNTIME_DIR/containers/auth.json ({}: no such file), $XDG_CONFIG_HOME/containers/auth.json ({}), \
                 ~/.docker/config.json ({}: no such file)",
                p("registry-auth.json"),
                p("run/containers/auth.json"),
                p("config/containers/auth.json"),
                p("home/.docker/config.json")
            )
        );
        let unset = Environment::default();
        assert_eq!(
            lookup_in("127.0.0.1:5000", None, &unset).unwrap().searched_places(),
            "--creds (not given), $REGISTRY_AUTH_FILE (not set), $XDG_RUNTIME_DIR/containers/auth.json (not set), \
             ~/.config/containers/auth.json (not set), ~/.docker/config.json (not set)"
        );
    }

    /// The fake helper: knows 127.0.0.1:5000 and docker.io (under docker's
    /// key for it), nothing else, and checks it was asked with `get`.
    const TEST_HELPER: &str = r#"[ "$1" = get ] || { echo "unexpected arguments: $*" >&2; exit 3; }
read -r server
case "$server" in
  127.0.0.1:5000) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"s3cret-Pa55:with:colons"}\n' "$server" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hub-user","Secret":"hub"}\n' "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac"#;

    #[test]
    fn cred_helpers_name_a_helper_per_registry() {
        let sandbox = Sandbox::new();
        sandbox.helper("test", TEST_HELPER);
        let config = sandbox.write(
            "home/.docker/config.json",
            r#"{"auths": {"127.0.0.1:5000": {"auth": "ZmlsZTpmaWxl"}}, "credHelpers": {"https://127.0.0.1:5000": "test", "docker.io": "test"}}"#,
        );
        let env = sandbox.env();
        let lookup = lookup_in("127.0.0.1:5000", None, &env).unwrap();
        let from = format!("docker-credential-test (credHelpers of {})", config.display());
        assert_eq!(found(&lookup), ("helper-user", SECRET, &*from));
        assert_eq!(lookup.searched.last().unwrap(), &from);
        assert_eq!(found(&lookup_in("index.docker.io", None, &env).unwrap()).0, "hub-user");
        // A registry without a credHelpers entry gets the file's auths.
        sandbox.write("home/.docker/config.json", r#"{"auths": {"reg.example": {"auth": "ZmlsZTpmaWxl"}}, "credHelpers": {"127.0.0.1:5000": "test"}}"#);
        assert_eq!(found(&lookup_in("reg.example", None, &env).unwrap()).0, "file");
        // A credHelpers helper that knows nothing: no credentials from this file.
        sandbox.write("home/.docker/config.json", r#"{"credHelpers": {"reg.example": "test"}}"#);
        let lookup = lookup_in("reg.example", None, &env).unwrap();
        assert!(lookup.credentials.is_none());
        assert!(lookup.searched_places().contains("docker-credential-test (credHelpers of"), "{}", lookup.searched_places());
    }

    #[test]
    fn creds_store_is_every_other_registrys_helper() {
        let sandbox = Sandbox::new();
        sandbox.helper("test", TEST_HELPER);
        let config = sandbox.write(
            "home/.docker/config.json",
            r#"{"auths": {"127.0.0.1:5000": {}, "reg.example": {"auth": "ZmlsZTpmaWxl"}}, "credsStore": "test"}"#,
        );
        let env = sandbox.env();
        let lookup = lookup_in("127.0.0.1:5000", None, &env).unwrap();
        assert_eq!(found(&lookup), ("helper-user", SECRET, &*format!("docker-credential-test (credsStore of {})", config.display())));
        // The store knows nothing of reg.example: the auths entry is used.
        let lookup = lookup_in("reg.example", None, &env).unwrap();
        assert_eq!(found(&lookup).0, "file");
        assert!(lookup.searched_places().contains("docker-credential-test (credsStore of"));
    }

    #[test]
    fn a_missing_or_failing_helper_is_an_error_naming_it_and_not_the_secret() {
        let sandbox = Sandbox::new();
        let env = sandbox.env();
        sandbox.write("registry-auth.json", r#"{"credHelpers": {"127.0.0.1:5000": "absent"}}"#);
        let err = lookup_in("127.0.0.1:5000", None, &env).unwrap_err();
        assert_eq!(
            err.message,
            format!("credential helper docker-credential-absent (credHelpers of {}) for 127.0.0.1:5000: not found on PATH", sandbox.path("registry-auth.json").display())
        );

        sandbox.helper("broken", &format!("echo '{{\"Username\":\"u\",\"Secret\":\"{SECRET}\"}}'; echo 'the vault is locked' >&2; exit 2"));
        sandbox.write("registry-auth.json", r#"{"credsStore": "broken"}"#);
        let err = lookup_in("127.0.0.1:5000", None, &env).unwrap_err();
        assert!(err.message.starts_with("credential helper docker-credential-broken (credsStore of "), "{err}");
        assert!(err.message.ends_with("for 127.0.0.1:5000: failed (exit status 2): the vault is locked"), "{err}");
        assert!(!error_text(&err).contains("s3cret"), "{err:?}");

        sandbox.helper("garbled", &format!("echo 'Secret={SECRET}'"));
        sandbox.write("registry-auth.json", r#"{"credsStore": "garbled"}"#);
        let err = lookup_in("127.0.0.1:5000", None, &env).unwrap_err();
        assert!(err.message.ends_with("its answer is not JSON with \"Username\" and \"Secret\""), "{err}");
        assert!(!error_text(&err).contains("s3cret"), "{err:?}");
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file_and_the_fault_not_the_secret() {
        let sandbox = Sandbox::new();
        let env = sandbox.env();
        let path = sandbox.path("registry-auth.json").display().to_string();
        let not_base64 = format!(r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{SECRET}!"}}}}}}"#);
        let no_colon = format!(r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{}"}}}}}}"#, base64_encode(b"s3cret-without-colon"));
        let cut = format!(r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{SECRET}"#);
        let password_only = format!(r#"{{"auths": {{"127.0.0.1:5000": {{"password": "{SECRET}"}}}}}}"#);
        for (text, fault) in [
            (cut.as_str(), "not JSON (EOF while parsing a string at line 1 column 62)"),
            ("[1, 2]", "not a JSON object"),
            (r#"{"auths": []}"#, "\"auths\" is not an object"),
            (r#"{"auths": {"127.0.0.1:5000": "x"}}"#, "\"auths\" entry \"127.0.0.1:5000\" is not an object"),
            (&not_base64, "\"auths\" entry \"127.0.0.1:5000\": \"auth\" is not valid base64"),
            (&no_colon, "\"auths\" entry \"127.0.0.1:5000\": \"auth\" does not decode to USER:PASSWORD (no ':')"),
            (&password_only, "\"auths\" entry \"127.0.0.1:5000\": \"password\" without \"username\""),
            (r#"{"auths": {"127.0.0.1:5000": {"auth": 12}}}"#, "\"auths\" entry \"127.0.0.1:5000\": \"auth\" is not a string"),
            (r#"{"credHelpers": {"127.0.0.1:5000": 1}}"#, "\"credHelpers\" entry \"127.0.0.1:5000\" is not a string"),
            (r#"{"credHelpers": {"127.0.0.1:5000": "../x"}}"#, "\"credHelpers\" entry \"127.0.0.1:5000\": helper name \"../x\" holds a '/'"),
            (r#"{"credsStore": 3}"#, "\"credsStore\" is not a string"),
        ] {
            sandbox.write("registry-auth.json", text);
            let err = lookup_in("127.0.0.1:5000", None, &env).unwrap_err();
            assert_eq!(err.message, format!("{path}: malformed auth file: {fault}"), "for {text}");
            assert!(!error_text(&err).contains("s3cret"), "{err:?}");
        }
        // An empty file, an empty auths entry: nothing, no error.
        for text in ["", "\n", "{}", r#"{"auths": {"127.0.0.1:5000": {}}}"#] {
            sandbox.write("registry-auth.json", text);
            assert!(lookup_in("127.0.0.1:5000", None, &env).unwrap().credentials.is_none(), "{text:?}");
        }
        // A file that cannot be read.
        std::fs::remove_file(sandbox.path("registry-auth.json")).unwrap();
        std::fs::create_dir(sandbox.path("registry-auth.json")).unwrap();
        let err = lookup_in("127.0.0.1:5000", None, &env).unwrap_err();
        assert!(err.message.starts_with(&format!("{path}: cannot read the auth file: ")), "{err}");
    }

    #[test]
    fn no_lookup_or_its_debug_shows_the_secret() {
        let sandbox = Sandbox::new();
        sandbox.helper("test", TEST_HELPER);
        let env = sandbox.env();
        sandbox.write("registry-auth.json", &auth_file("a.example", "alice", SECRET));
        sandbox.write("home/.docker/config.json", r#"{"credHelpers": {"127.0.0.1:5000": "test"}}"#);
        for (registry, explicit) in [("a.example", None), ("127.0.0.1:5000", None), ("b.example", Some(format!("bob:{SECRET}")))] {
            let lookup = lookup_in(registry, explicit.as_deref(), &env).unwrap();
            assert_eq!(lookup.credentials.as_ref().unwrap().password.expose(), SECRET);
            let shown = format!("{lookup:?} {} {}", lookup.searched_places(), lookup.no_credentials_message(registry));
            assert!(!shown.contains("s3cret"), "{shown}");
        }
    }
}
