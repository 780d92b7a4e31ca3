//! Placeholders in upstream templates (`tenant-{claims.tenant}`) and ACL destinations
//! (`/queue/user.{user}.*`).
//!
//! Syntax: `{user}` is the identity's user name, `{claims.a.b}` a claim at a dotted path;
//! `{{` and `}}` are a literal brace. In ACL patterns (glob mode) `*` and `**` are wildcards;
//! in upstream templates they are plain characters. A placeholder's value is always matched
//! literally, so a user named `*` cannot widen a glob.

use super::identity::Identity;

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `{user}`.
    User,
    /// `{claims.<path>}`.
    Claim(Vec<String>),
}

impl Var {
    /// The placeholder's value for `id`, if it has one.
    pub fn resolve(&self, id: &Identity) -> Option<String> {
        match self {
            Var::User => Some(id.user.clone()),
            Var::Claim(path) => id.claim_text(path),
        }
    }

    fn parse(name: &str) -> Result<Var, String> {
        if name == "user" {
            return Ok(Var::User);
        }
        let path = name.strip_prefix("claims.").ok_or_else(|| {
            format!("unknown placeholder `{{{name}}}`: use {{user}} or {{claims.NAME}}")
        })?;
        let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("bad claim path in `{{{name}}}`"));
        }
        Ok(Var::Claim(parts))
    }
}

/// One piece of a parsed template or pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Lit(String),
    /// A placeholder.
    Var(Var),
    /// `*` (glob mode only): any run of characters except `/`.
    Star,
    /// `**` (glob mode only): any run of characters.
    DoubleStar,
}

/// Parses `text` into pieces; `glob` turns on `*`/`**`.
pub fn parse(text: &str, glob: bool) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err("unclosed `{` placeholder (write `{{` for a literal brace)".into());
                }
                flush(&mut lit, &mut pieces);
                pieces.push(Piece::Var(Var::parse(name.trim())?));
            }
            '}' => return Err("unmatched `}` (write `}}` for a literal brace)".into()),
            '*' if glob => {
                flush(&mut lit, &mut pieces);
                if chars.peek() == Some(&'*') {
                    chars.next();
                    pieces.push(Piece::DoubleStar);
                } else {
                    pieces.push(Piece::Star);
                }
            }
            c => lit.push(c),
        }
    }
    flush(&mut lit, &mut pieces);
    Ok(pieces)
}

fn flush(lit: &mut String, pieces: &mut Vec<Piece>) {
    if !lit.is_empty() {
        pieces.push(Piece::Lit(std::mem::take(lit)));
    }
}

/// Replaces every placeholder by its literal value; `Err` names the first one that `id` cannot
/// fill.
pub fn resolve(pieces: &[Piece], id: &Identity) -> Result<Vec<Piece>, String> {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Var(v) => v.resolve(id).map(Piece::Lit).ok_or_else(|| describe(v)),
            other => Ok(other.clone()),
        })
        .collect()
}

/// Renders a template (no wildcards) to a string for `id`.
///
/// The result becomes a CONNECT header (`login`, `host`), which RabbitMQ and ActiveMQ
/// unescape though STOMP says CONNECT headers are not escaped: a placeholder value holding a
/// backslash would name something else at the broker than here, so it is refused (literal
/// parts are the operator's own).
pub fn render(pieces: &[Piece], id: &Identity) -> Result<String, String> {
    let mut out = String::new();
    for (p, original) in resolve(pieces, id)?.into_iter().zip(pieces) {
        match p {
            Piece::Lit(s) => {
                if let Piece::Var(v) = original {
                    check_connect_value(v, &s)?;
                }
                out.push_str(&s)
            }
            Piece::Star => out.push('*'),
            Piece::DoubleStar => out.push_str("**"),
            Piece::Var(v) => return Err(describe(&v)),
        }
    }
    Ok(out)
}

/// A placeholder value that will reach the broker in a CONNECT header holds no backslash (the
/// brokers unescape it). Control characters are refused in the whole rendered value by
/// `mapping`.
fn check_connect_value(v: &Var, value: &str) -> Result<(), String> {
    if value.contains('\\') {
        let what = match v {
            Var::User => "the user name".to_owned(),
            Var::Claim(path) => format!("claim `{}`", path.join(".")),
        };
        return Err(format!(
            "{what} holds a backslash, which the broker would read differently"
        ));
    }
    Ok(())
}

fn describe(v: &Var) -> String {
    match v {
        Var::User => "the identity has no user name".into(),
        Var::Claim(path) => format!("claim `{}` is missing or not text", path.join(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AuthSource;

    fn alice() -> Identity {
        let mut id = Identity::new("alice", vec![], AuthSource::Jwt);
        id.claims.insert("tenant".into(), "acme".into());
        id.claims
            .insert("org".into(), serde_json::json!({"id": 7, "list": [1]}));
        id
    }

    #[test]
    fn refuses_values_the_broker_would_unescape() {
        let t = parse("tenant-{claims.tenant}", false).unwrap();
        for bad in ["a\\cb", "a\\nb", "x\\"] {
            let mut id = alice();
            id.claims.insert("tenant".into(), bad.into());
            let err = render(&t, &id).unwrap_err();
            assert!(err.contains("claim `tenant`"), "{bad:?}: {err}");
        }
        let mut id = Identity::new("bob\\c", vec![], AuthSource::Jwt);
        id.claims.insert("tenant".into(), "ok".into());
        assert!(render(&parse("{user}", false).unwrap(), &id).is_err());
        assert_eq!(render(&t, &alice()).unwrap(), "tenant-acme");
    }

    #[test]
    fn renders_user_and_claims() {
        let t = parse("tenant-{claims.tenant}/{user}/{claims.org.id}", false).unwrap();
        assert_eq!(render(&t, &alice()).unwrap(), "tenant-acme/alice/7");
        let t = parse("{claims.org.list}", false).unwrap();
        assert!(render(&t, &alice()).is_err());
        let t = parse("{claims.nope}", false).unwrap();
        assert!(render(&t, &alice()).is_err());
    }

    #[test]
    fn braces_and_stars() {
        assert_eq!(
            parse("a{{b}}*", false).unwrap(),
            vec![Piece::Lit("a{b}*".into())]
        );
        assert_eq!(
            parse("/q/*.**", true).unwrap(),
            vec![
                Piece::Lit("/q/".into()),
                Piece::Star,
                Piece::Lit(".".into()),
                Piece::DoubleStar
            ]
        );
        assert!(parse("{nope}", false).is_err());
        assert!(parse("{user", false).is_err());
        assert!(parse("a}b", false).is_err());
        assert!(parse("{claims.}", false).is_err());
    }
}
