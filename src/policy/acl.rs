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
//!
//! The broker's reading (see [`super::destination`]): once rules exist, a destination the
//! broker dialect cannot classify is refused, a wildcard never stands for a character the
//! broker reads as syntax (a composite's `,`, ActiveMQ's `*`/`>`, RabbitMQ's `*`/`#` in a
//! binding key, `%` escapes), and a placeholder whose value holds such a character denies.
//! Headers that reach other resources ([`super::guarded`]) pass only when the deciding allow
//! rule names them in `headers`, with a value its glob matches; a repeated or odd-case copy of
//! one is refused. An `UNSUBSCRIBE` carrying one (deleting a durable subscription) is checked
//! as the `SUBSCRIBE` it undoes.

use std::borrow::Cow;
use std::path::Path;

use super::destination::{classify, Dialect, Reserved};
use super::error::{Denied, DeniedKind, PolicyError};
use super::guarded::{guard_for, guard_in_any_dialect, has_guards, may_be_guarded};
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
    /// Guarded headers this rule lets through, with a glob for their values.
    headers: Vec<HeaderRule>,
}

/// One `headers` entry of a rule.
#[derive(Debug, Clone)]
struct HeaderRule {
    name: String,
    pattern: Vec<Piece>,
}

/// Headers whose value names a queue, exchange or subscription: a rule must give their
/// values a literal start, so `*` alone cannot hand a client every queue on the broker.
const NAMES_A_RESOURCE: [&str; 7] = [
    "x-queue-name",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "reply-to",
    "activemq.subscriptionName",
    "durable-subscription-name",
    "durable-subscriber-name",
];

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
            let allow = s.action == AclAction::Allow;
            let headers = compile_headers(&s, allow, &commands, |f| field(f), path)?;
            rules.push(Rule {
                role: s.role,
                allow,
                commands,
                pattern,
                headers,
            });
        }
        Ok(Acl { rules })
    }

    /// Checks one command and destination for `id`, read with the generic dialect's grammar
    /// (the strictest). Commands other than `SEND` and `SUBSCRIBE` always pass; headers are
    /// not looked at (see [`Acl::check_client_frame`]).
    pub fn check(
        &self,
        id: &Identity,
        command: Command,
        destination: Option<&str>,
    ) -> Result<(), Denied> {
        if !matches!(command, Command::Send | Command::Subscribe) || self.rules.is_empty() {
            return Ok(());
        }
        let destination = destination.map(str::as_bytes);
        self.decide(id, command, destination, Dialect::Generic)
            .map(drop)
    }

    /// Checks a whole frame with the generic dialect: refuses a repeated `destination`
    /// (invariant 3), then [`Acl::check_client_frame`]s the one given.
    pub fn check_frame(&self, id: &Identity, frame: &Frame) -> Result<(), Denied> {
        let (destination, repeated) = frame.first_header("destination");
        if repeated && has_guards(frame.command) {
            return Err(denied(
                frame.command,
                None,
                DeniedKind::AmbiguousDestination,
            ));
        }
        self.check_client_frame(id, frame, destination, Dialect::Generic, true)
    }

    /// [`Acl::check`] for a destination as the frame carries it (bytes; not UTF-8 is denied),
    /// for a caller that has already refused a repeated `destination`.
    pub fn check_raw(
        &self,
        id: &Identity,
        command: Command,
        destination: Option<&[u8]>,
    ) -> Result<(), Denied> {
        if !matches!(command, Command::Send | Command::Subscribe) || self.rules.is_empty() {
            return Ok(());
        }
        self.decide(id, command, destination, Dialect::Generic)
            .map(drop)
    }

    /// The whole per-frame check of the Connected state under `dialect`: the destination
    /// (found, and refused when repeated, by the caller) and the guarded headers.
    /// `may_carry_guarded` is false only when the caller saw that no header of the frame
    /// passes [`may_be_guarded`] (the relay learns it in its pass for the destination); `true`
    /// is always safe.
    pub fn check_client_frame(
        &self,
        id: &Identity,
        frame: &Frame,
        destination: Option<&[u8]>,
        dialect: Dialect,
        may_carry_guarded: bool,
    ) -> Result<(), Denied> {
        if self.rules.is_empty() {
            return Ok(());
        }
        match frame.command {
            command @ (Command::Send | Command::Subscribe) => {
                let rule = self.decide(id, command, destination, dialect)?;
                if may_carry_guarded {
                    check_headers(frame, dialect, rule, id)
                } else {
                    Ok(())
                }
            }
            Command::Unsubscribe if may_carry_guarded && carries_guarded(frame, dialect) => {
                // Deleting a durable subscription (or queue) is checked as the SUBSCRIBE that
                // made it, with the same headers allowed.
                let as_subscribe = self.decide(id, Command::Subscribe, destination, dialect);
                let rule = as_subscribe.map_err(|d| Denied {
                    command: Command::Unsubscribe,
                    ..d
                })?;
                check_headers(frame, dialect, rule, id)
            }
            _ => Ok(()),
        }
    }

    /// The rule that allows `command` to `destination`, or why none does.
    fn decide(
        &self,
        id: &Identity,
        command: Command,
        destination: Option<&[u8]>,
        dialect: Dialect,
    ) -> Result<&Rule, Denied> {
        let Some(raw) = destination else {
            return Err(denied(command, None, DeniedKind::MissingDestination));
        };
        let Ok(dest) = std::str::from_utf8(raw) else {
            return Err(denied(command, None, DeniedKind::NotAllowed));
        };
        let Some(class) = classify(dialect, command, dest) else {
            return Err(denied(command, Some(dest), DeniedKind::UnknownDestination));
        };
        let refuse = || denied(command, Some(dest), DeniedKind::NotAllowed);
        let applicable = self
            .rules
            .iter()
            .filter(|r| r.commands.contains(&command) && (r.role == "*" || id.has_role(&r.role)));
        for rule in applicable {
            let pieces = resolve(&rule.pattern, id, class.reserved).ok_or_else(refuse)?;
            if glob_match_reserved(&pieces, dest, class.reserved) {
                return if rule.allow { Ok(rule) } else { Err(refuse()) };
            }
        }
        Err(refuse())
    }
}

/// Reads a rule's `headers` table: only on allow rules, only guarded names spelt as the
/// broker spells them, and a literal start for values that name a resource.
fn compile_headers(
    s: &AclSpec,
    allow: bool,
    commands: &[Command],
    field: impl Fn(&str) -> String,
    path: &Path,
) -> Result<Vec<HeaderRule>, PolicyError> {
    if !s.headers.is_empty() && !allow {
        return Err(PolicyError::invalid(
            path,
            field("headers"),
            "only an allow rule can let guarded headers through; remove `headers` here",
        ));
    }
    let mut out = Vec::with_capacity(s.headers.len());
    for (name, value) in &s.headers {
        let key = field(&format!("headers.{name}"));
        let Some(guard) = guard_in_any_dialect(commands, name) else {
            return Err(PolicyError::invalid(
                path,
                key,
                "not a header the gateway guards on this rule's commands (it passes without a rule); remove it",
            ));
        };
        let exact = guard.name.ends_with('*') || guard.name == name;
        if !exact || !guard.spelt_canonically(name.as_bytes()) {
            return Err(PolicyError::invalid(
                path,
                key,
                format!(
                    "write the header as the broker spells it (`{}`)",
                    guard.name
                ),
            ));
        }
        let pattern =
            template::parse(value, true).map_err(|m| PolicyError::invalid(path, &key, m))?;
        if NAMES_A_RESOURCE.contains(&name.as_str())
            && !matches!(pattern.first(), Some(Piece::Lit(_) | Piece::Var(_)))
        {
            return Err(PolicyError::invalid(
                path,
                key,
                format!("`{value}` would let a client pick any {name}; start it with literal text (e.g. `dash-{{user}}-*`)"),
            ));
        }
        out.push(HeaderRule {
            name: name.clone(),
            pattern,
        });
    }
    Ok(out)
}

/// Whether `frame` carries any header guarded on its command.
fn carries_guarded(frame: &Frame, dialect: Dialect) -> bool {
    frame
        .try_for_each_header_where(may_be_guarded, |name, _| {
            match guard_for(dialect, frame.command, name) {
                Some(_) => Err(()),
                None => Ok(()),
            }
        })
        .is_err()
}

/// Refuses a guarded header that `rule` does not allow with this value, and any repeated or
/// odd-case copy of one.
fn check_headers(
    frame: &Frame,
    dialect: Dialect,
    rule: &Rule,
    id: &Identity,
) -> Result<(), Denied> {
    let command = frame.command;
    // Allocated only when a frame carries a guarded header at all.
    let mut seen: Vec<&[u8]> = Vec::new();
    frame.try_for_each_header_where(may_be_guarded, |name, value| {
        let Some(guard) = guard_for(dialect, command, name) else {
            return Ok(());
        };
        let ambiguous =
            !guard.spelt_canonically(name) || seen.iter().any(|s| s.eq_ignore_ascii_case(name));
        if ambiguous {
            return Err(header_denied(command, name, DeniedKind::AmbiguousHeader));
        }
        seen.push(name);
        if !header_allowed(rule, name, value, id) {
            return Err(header_denied(command, name, DeniedKind::HeaderNotAllowed));
        }
        Ok(())
    })
}

fn header_allowed(rule: &Rule, name: &[u8], value: &[u8], id: &Identity) -> bool {
    let Some(allowed) = rule.headers.iter().find(|h| h.name.as_bytes() == name) else {
        return false;
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    resolve(&allowed.pattern, id, Reserved::ALL)
        .is_some_and(|p| glob_match_reserved(&p, value, Reserved::ALL))
}

fn header_denied(command: Command, name: &[u8], kind: DeniedKind) -> Denied {
    let mut d = denied(command, None, kind);
    d.header = Some(printable(&String::from_utf8_lossy(name)));
    d
}

/// Fills a pattern's placeholders with their values as literals; `None` when one has no value
/// or its value holds a character the broker reads as syntax here (it would widen the rule).
fn resolve<'p>(
    pattern: &'p [Piece],
    id: &Identity,
    reserved: Reserved,
) -> Option<Cow<'p, [Piece]>> {
    if !pattern.iter().any(|p| matches!(p, Piece::Var(_))) {
        return Some(Cow::Borrowed(pattern));
    }
    pattern
        .iter()
        .map(|p| match p {
            Piece::Var(v) => v
                .resolve(id)
                .filter(|value| !reserved.any_in(value.as_bytes()))
                .map(Piece::Lit),
            other => Some(other.clone()),
        })
        .collect::<Option<Vec<_>>>()
        .map(Cow::Owned)
}

fn denied(command: Command, destination: Option<&str>, kind: DeniedKind) -> Denied {
    Denied {
        command,
        // Shortened, and control characters replaced: the ERROR goes back to the client and
        // into logs, and STOMP 1.0 frames have no header escaping.
        destination: destination.map(printable),
        header: None,
        kind,
    }
}

/// Shortened, with control characters replaced.
fn printable(text: &str) -> String {
    text.chars()
        .take(MAX_ECHOED_DESTINATION_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Matches resolved pieces (literals and wildcards; any leftover placeholder never matches)
/// against `text`. A literal at either end is matched first, as a prefix or suffix: most rules
/// a destination meets fail there, and a rule like `/queue/user.*` then leaves a lone wildcard,
/// decided without the general matcher. That matcher runs in O(pieces × len): a set of
/// reachable text positions is advanced piece by piece, so no pattern can make it backtrack
/// exponentially.
pub fn glob_match(pieces: &[Piece], text: &str) -> bool {
    glob_match_reserved(pieces, text, Reserved::NONE)
}

/// [`glob_match`] where no wildcard may stand for a `reserved` byte: those must be matched by
/// the pattern's literal text. Only the bytes a wildcard would stand for are looked at (after
/// the literal ends, usually a short run, or none when a rule's literal start already fails).
pub fn glob_match_reserved(pieces: &[Piece], text: &str, reserved: Reserved) -> bool {
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
        [Piece::DoubleStar] => !reserved.any_in(bytes),
        [Piece::Star] => memchr::memchr(b'/', bytes).is_none() && !reserved.any_in(bytes),
        _ => reachable(pieces, bytes, reserved),
    }
}

/// The general matcher behind [`glob_match`]; wildcards stop at `reserved` bytes.
fn reachable(pieces: &[Piece], bytes: &[u8], reserved: Reserved) -> bool {
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
                    let stop = j < n
                        && ((!cross_slash && bytes[j] == b'/') || reserved.contains(bytes[j]));
                    if stop {
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
                reachable(&pieces, text.as_bytes(), Reserved::NONE),
                "{:?} vs {:?}", pieces, text
            );
            // ... and with a reserved byte, which only literal text may match.
            let dot = crate::policy::destination::Reserved::DOT_FOR_TESTS;
            prop_assert_eq!(
                glob_match_reserved(&pieces, &text, dot),
                reachable(&pieces, text.as_bytes(), dot),
                "{:?} vs {:?} (`.` reserved)", pieces, text
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

#[cfg(test)]
#[path = "acl_dialect_tests.rs"]
mod dialect_tests;
