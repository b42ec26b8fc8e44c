//! Licences as the caller gives them: SPDX licence expressions
//! (`GPL-3.0-or-later`, `LGPL-2.1+ OR MIT`, `GPL-2.0-only WITH
//! Classpath-exception-2.0`, `LicenseRef-custom`), checked for their
//! syntax (SPDX 2.3, annex D) so that a Guix licence name such as `GPL 3+`
//! is refused at once rather than written into an invalid document.
//! Whether an identifier is on the SPDX licence list is not checked here.

/// Checks `expression`'s syntax; returns the `LicenseRef-` identifiers it
/// uses (an SPDX document declares them).
pub fn check_expression(expression: &str) -> Result<Vec<String>, String> {
    let tokens = tokenize(expression)?;
    let mut parser = Parser { tokens: &tokens, at: 0, refs: Vec::new() };
    parser.expression()?;
    if let Some(t) = tokens.get(parser.at) {
        return Err(format!("unexpected '{}'", t.text()));
    }
    parser.refs.sort();
    parser.refs.dedup();
    Ok(parser.refs)
}

#[derive(Debug, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    With,
    Id(String),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Open => "(",
            Token::Close => ")",
            Token::And => "AND",
            Token::Or => "OR",
            Token::With => "WITH",
            Token::Id(id) => id,
        }
    }
}

fn tokenize(expression: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = expression.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | ':') => {
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | ':') {
                        end = i + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &expression[start..end];
                tokens.push(match word {
                    "AND" | "and" => Token::And,
                    "OR" | "or" => Token::Or,
                    "WITH" | "with" => Token::With,
                    _ => Token::Id(word.to_string()),
                });
            }
            c => return Err(format!("'{c}' is not allowed in an SPDX licence expression")),
        }
    }
    if tokens.is_empty() {
        return Err("empty".into());
    }
    Ok(tokens)
}

struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
    refs: Vec<String>,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.at);
        self.at += 1;
        t
    }

    /// expression := term ((AND | OR) term)*
    fn expression(&mut self) -> Result<(), String> {
        self.term()?;
        while matches!(self.tokens.get(self.at), Some(Token::And | Token::Or)) {
            self.at += 1;
            self.term()?;
        }
        Ok(())
    }

    /// term := '(' expression ')' | licence [WITH exception]
    fn term(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::Open) => {
                self.expression()?;
                match self.next() {
                    Some(Token::Close) => Ok(()),
                    Some(t) => Err(format!("expected ')', found '{}'", t.text())),
                    None => Err("a '(' is not closed".into()),
                }
            }
            Some(Token::Id(id)) => {
                let id = id.clone();
                self.licence(&id)?;
                if matches!(self.tokens.get(self.at), Some(Token::With)) {
                    self.at += 1;
                    match self.next() {
                        Some(Token::Id(exception)) if is_idstring(exception) => {}
                        Some(t) => return Err(format!("'{}' is not a licence exception", t.text())),
                        None => return Err("WITH needs an exception after it".into()),
                    }
                }
                Ok(())
            }
            Some(t) => Err(format!("expected a licence, found '{}'", t.text())),
            None => Err("ends where a licence was expected".into()),
        }
    }

    /// A licence identifier with an optional `+`, or a (document-qualified)
    /// `LicenseRef-`.
    fn licence(&mut self, id: &str) -> Result<(), String> {
        let local = match id.split_once(':') {
            Some((document, local)) if document.starts_with("DocumentRef-") && is_idstring(&document[12..]) => {
                if !local.starts_with("LicenseRef-") {
                    return Err(format!("'{id}': after 'DocumentRef-…:' comes a LicenseRef-"));
                }
                local
            }
            Some(_) => return Err(format!("'{id}' is not a licence identifier")),
            None => id,
        };
        if let Some(name) = local.strip_prefix("LicenseRef-") {
            if !is_idstring(name) {
                return Err(format!("'{id}' is not a licence identifier"));
            }
            if local.len() == id.len() {
                self.refs.push(id.to_string());
            }
            return Ok(());
        }
        let plain = local.strip_suffix('+').unwrap_or(local);
        if !is_idstring(plain) {
            return Err(format!("'{id}' is not a licence identifier"));
        }
        Ok(())
    }
}

/// SPDX's idstring: letters, digits, `.` and `-`.
fn is_idstring(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::check_expression;

    #[test]
    fn valid_expressions() {
        for e in [
            "GPL-3.0-or-later",
            "LGPL-2.1+",
            "MIT OR Apache-2.0",
            "(MIT OR Apache-2.0) AND BSD-3-Clause",
            "GPL-2.0-only WITH Classpath-exception-2.0",
            "((GPL-3.0-or-later))",
            "DocumentRef-other:LicenseRef-x",
        ] {
            assert_eq!(check_expression(e), Ok(vec![]), "{e}");
        }
        assert_eq!(check_expression("LicenseRef-b AND LicenseRef-a OR LicenseRef-b"), Ok(vec!["LicenseRef-a".into(), "LicenseRef-b".into()]));
    }

    #[test]
    fn guix_names_and_broken_expressions_are_refused() {
        for (e, why) in [
            ("GPL 3+", "unexpected '3+'"),
            ("", "empty"),
            ("MIT AND", "ends where"),
            ("(MIT", "not closed"),
            ("MIT)", "unexpected ')'"),
            ("GPL-2.0 WITH", "WITH needs"),
            ("MIT/X11", "'/'"),
            ("AND MIT", "expected a licence"),
            ("LicenseRef-", "not a licence identifier"),
            ("a:b", "not a licence identifier"),
            ("GPL-3.0\"", "'\"'"),
        ] {
            let err = check_expression(e).unwrap_err();
            assert!(err.contains(why), "{e}: {err}");
        }
    }
}
