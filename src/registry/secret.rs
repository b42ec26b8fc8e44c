//! Secrets (passwords, tokens) that never reach a message, a log or the
//! progress output: [`Secret`] shows as `<redacted>` whatever formats it,
//! and its value is read only where a request header is made.

use std::fmt;

/// A password or a token.  `Debug` and `Display` print `<redacted>`; the
/// value is reached through [`Secret::expose`] alone, so that a search for
/// that name finds every place a secret leaves this type.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for a request header.
    pub fn expose(&self) -> &str {
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
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &self.password).finish()
    }
}

impl Credentials {
    /// The `Authorization: Basic` header's value.
    pub fn basic_header(&self) -> String {
        use base64::Engine;
        let pair = format!("{}:{}", self.user, self.password.expose());
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let c = Credentials { user: "me".into(), password: Secret::new("hunter2:with:colons") };
        assert_eq!(c.password.expose(), "hunter2:with:colons");
        for shown in [format!("{c:?}"), format!("{:?}", c.password), format!("{}", c.password), format!("{:#?}", c)] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(format!("{c:?}").contains("<redacted>") && format!("{c:?}").contains("me"));
        assert_eq!(c.basic_header(), "Basic bWU6aHVudGVyMjp3aXRoOmNvbG9ucw==");
    }
}
