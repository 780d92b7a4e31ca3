//! Destination ACLs: ordered allow/deny rules per role on `SEND` and `SUBSCRIBE`.
//!
//! Evaluation: the rules that apply to an identity are those whose `role` it holds (or `*`)
//! and whose `commands` include the frame's command; the first whose destination pattern
//! matches decides. When the policy has no rules at all, everything is allowed; once it has
//! any rule, whatever no rule allows is denied — also for identities whose roles have no rules,
//! so forgetting a role fails closed. A rule whose placeholder cannot be filled for the
//! identity (a missing claim) denies: it fails closed too.
//!
//! Patterns: `*` is any run of characters except `/`, `**` is any run of characters, all else
//! is literal; `{user}` and `{claims.x}` are replaced by their values *as literals*.

use std::borrow::Cow;
use std::path::Path;

use super::error::{Denied, DeniedKind, PolicyError};
use super::identity::Identity;
use super::schema::{AclAction, AclSpec};
use super::template::{self, Piece};
use crate::stomp::{Command, Frame};

/// Longest destination echoed back in an `ERROR` message.
const MAX_ECHOED_DESTINATION_CHARS: usize = 128;

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    role: String,
    allow: bool,
    commands: Vec<Command>,
    pattern: Vec<Piece>,
}

/// The compiled ACL.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    rules: Vec<Rule>,
}

impl Acl {
    /// Compiles `[[acl]]` rules; `path` is the policy file, for error messages.
    pub fn compile(specs: Vec<AclSpec>, path: &Path) -> Result<Acl, PolicyError> {
        let mut rules = Vec::with_capacity(specs.len());
        for (i, s) in specs.into_iter().enumerate() {
            let field = |f: &str| format!("acl[{i}].{f}");
            let commands = s
                .commands
                .iter()
                .map(|c| match c.as_str() {
                    "SEND" => Ok(Command::Send),
                    "SUBSCRIBE" => Ok(Command::Subscribe),
                    other => Err(PolicyError::invalid(
                        path,
                        field("commands"),
                        format!("`{other}`: only SEND and SUBSCRIBE are checked"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if commands.is_empty() || s.role.is_empty() {
                return Err(PolicyError::invalid(
                    path,
                    field("commands"),
                    "a rule needs a role and at least one command",
                ));
            }
            let pattern = template::parse(&s.destination, true)
                .map_err(|m| PolicyError::invalid(path, field("destination"), m))?;
            rules.push(Rule {
                role: s.role,
                allow: s.action == AclAction::Allow,
                commands,
                pattern,
            });
        }
        Ok(Acl { rules })
    }

    /// Checks one command and destination for `id`. Commands other than `SEND` and
    /// `SUBSCRIBE` always pass.
    pub fn check(
        &self,
        id: &Identity,
        command: Command,
        destination: Option<&str>,
    ) -> Result<(), Denied> {
        if !matches!(command, Command::Send | Command::Subscribe) || self.rules.is_empty() {
            return Ok(());
        }
        let Some(dest) = destination else {
            return Err(denied(command, None, DeniedKind::MissingDestination));
        };
        let refuse = || denied(command, Some(dest), DeniedKind::NotAllowed);
        let applicable = self
            .rules
            .iter()
            .filter(|r| r.commands.contains(&command) && (r.role == "*" || id.has_role(&r.role)));
        for rule in applicable {
            // Placeholders are filled per identity; a pattern without any is used as it is.
            let pieces = if rule.pattern.iter().any(|p| matches!(p, Piece::Var(_))) {
                Cow::Owned(template::resolve(&rule.pattern, id).map_err(|_| refuse())?)
            } else {
                Cow::Borrowed(&rule.pattern[..])
            };
            if glob_match(&pieces, dest) {
                return if rule.allow { Ok(()) } else { Err(refuse()) };
            }
        }
        Err(refuse())
    }

    /// Checks a whole frame: refuses a repeated `destination` (invariant 3), then
    /// [`Acl::check`]s the one given.
    pub fn check_frame(&self, id: &Identity, frame: &Frame) -> Result<(), Denied> {
        if !matches!(frame.command, Command::Send | Command::Subscribe) {
            return Ok(());
        }
        let (destination, repeated) = frame.first_header("destination");
        if repeated {
            return Err(denied(
                frame.command,
                None,
                DeniedKind::AmbiguousDestination,
            ));
        }
        self.check_raw(id, frame.command, destination)
    }

    /// [`Acl::check`] for a destination as the frame carries it (bytes; not UTF-8 is denied),
    /// for a caller that has already refused a repeated `destination`.
    pub fn check_raw(
        &self,
        id: &Identity,
        command: Command,
        destination: Option<&[u8]>,
    ) -> Result<(), Denied> {
        if !matches!(command, Command::Send | Command::Subscribe) {
            return Ok(());
        }
        match destination {
            Some(raw) => match std::str::from_utf8(raw) {
                Ok(d) => self.check(id, command, Some(d)),
                Err(_) => Err(denied(command, None, DeniedKind::NotAllowed)),
            },
            None => self.check(id, command, None),
        }
    }
}

fn denied(command: Command, destination: Option<&str>, kind: DeniedKind) -> Denied {
    Denied {
        command,
        // Shortened, and control characters replaced: the ERROR goes back to the client and
        // into logs, and STOMP 1.0 frames have no header escaping.
        destination: destination.map(|d| {
            d.chars()
                .take(MAX_ECHOED_DESTINATION_CHARS)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect()
        }),
        kind,
    }
}

/// Matches resolved pieces (literals and wildcards; any leftover placeholder never matches)
/// against `text`. A literal at either end is matched first, as a prefix or suffix: most rules
/// a destination meets fail there, and a rule like `/queue/user.*` then leaves a lone wildcard,
/// decided without the general matcher. That matcher runs in O(pieces × len): a set of
/// reachable text positions is advanced piece by piece, so no pattern can make it backtrack
/// exponentially.
pub fn glob_match(pieces: &[Piece], text: &str) -> bool {
    let mut bytes = text.as_bytes();
    let mut pieces = pieces;
    if let Some((Piece::Lit(lit), rest)) = pieces.split_first() {
        let Some(after) = bytes.strip_prefix(lit.as_bytes()) else {
            return false;
        };
        (bytes, pieces) = (after, rest);
    }
    if let Some((Piece::Lit(lit), rest)) = pieces.split_last() {
        let Some(before) = bytes.strip_suffix(lit.as_bytes()) else {
            return false;
        };
        (bytes, pieces) = (before, rest);
    }
    match pieces {
        [] => bytes.is_empty(),
        [Piece::DoubleStar] => true,
        [Piece::Star] => memchr::memchr(b'/', bytes).is_none(),
        _ => reachable(pieces, bytes),
    }
}

/// The general matcher behind [`glob_match`].
fn reachable(pieces: &[Piece], bytes: &[u8]) -> bool {
    let n = bytes.len();
    let mut reach = vec![false; n + 1];
    let mut next = vec![false; n + 1];
    reach[0] = true;
    for piece in pieces {
        next.fill(false);
        match piece {
            Piece::Lit(lit) => {
                let lit = lit.as_bytes();
                for i in (0..=n).filter(|&i| reach[i]) {
                    if bytes[i..].starts_with(lit) {
                        next[i + lit.len()] = true;
                    }
                }
            }
            Piece::Star | Piece::DoubleStar => {
                let cross_slash = matches!(piece, Piece::DoubleStar);
                let mut open = false;
                for j in 0..=n {
                    open |= reach[j];
                    next[j] = open;
                    if !cross_slash && j < n && bytes[j] == b'/' {
                        open = false;
                    }
                }
            }
            Piece::Var(_) => return false,
        }
        if !next.iter().any(|&b| b) {
            return false;
        }
        std::mem::swap(&mut reach, &mut next);
    }
    reach[n]
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::policy::template::Var;

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            4 => "[ab/.]{0,3}".prop_map(Piece::Lit),
            2 => Just(Piece::Star),
            2 => Just(Piece::DoubleStar),
            1 => Just(Piece::Var(Var::User)),
        ]
    }

    proptest! {
        #[test]
        fn literal_ends_first_agree_with_the_general_matcher(
            pieces in vec(piece(), 0..7),
            text in "[ab/.]{0,12}",
        ) {
            // The literal ends and lone wildcards decided up front, against the general
            // matcher on the whole pattern.
            prop_assert_eq!(
                glob_match(&pieces, &text),
                reachable(&pieces, text.as_bytes()),
                "{:?} vs {:?}", pieces, text
            );
        }
    }

    fn m(pattern: &str, text: &str) -> bool {
        glob_match(&template::parse(pattern, true).unwrap(), text)
    }

    #[test]
    fn glob_table() {
        let cases = [
            ("/queue/a", "/queue/a", true),
            ("/queue/a", "/queue/ab", false),
            ("/queue/*", "/queue/abc", true),
            ("/queue/*", "/queue/", true),
            ("/queue/*", "/queue/a/b", false),
            ("/queue/**", "/queue/a/b", true),
            ("/queue/user.*.in", "/queue/user.x.in", true),
            ("/queue/user.*.in", "/queue/user.x/y.in", false),
            ("**", "", true),
            ("*", "", true),
            (
                "*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for (p, t, want) in cases {
            assert_eq!(m(p, t), want, "{p} vs {t}");
        }
    }
}
