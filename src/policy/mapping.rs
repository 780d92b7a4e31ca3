//! Identity → broker identity: which `login`/`passcode`/`host` an authenticated client becomes.
//!
//! Order: the first `[[upstream.user]]` naming the user, else the first `[[upstream.role]]`
//! whose role the identity holds (file order), else `[upstream.default]`, else the fallback the
//! caller gave (the static identity from `Config`). Each entry is complete on its own: fields
//! are not merged between entries. `login` and `vhost` are templates (`{user}`,
//! `{claims.x}`); a rendered value with a control character is refused, because CONNECT
//! headers are not escaped and a newline would smuggle in a header.

use std::path::Path;

use super::error::PolicyError;
use super::identity::{AuthSource, Identity};
use super::rewrite::UpstreamIdentity;
use super::schema::{UpstreamEntrySpec, UpstreamSpec};
use super::template::{self, Piece};
use crate::config::Secret;
use crate::stomp::Frame;

/// One compiled broker identity.
#[derive(Debug, Clone)]
struct Entry {
    login: Option<Vec<Piece>>,
    passcode: Option<Secret>,
    vhost: Option<Vec<Piece>>,
}

/// The compiled `[upstream]` section.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    by_user: Vec<(String, Entry)>,
    by_role: Vec<(String, Entry)>,
    default: Option<Entry>,
}

impl Mapping {
    /// Compiles the section; relative `passcode_file`s are resolved against `base`.
    pub fn compile(
        spec: Option<UpstreamSpec>,
        path: &Path,
        base: &Path,
    ) -> Result<Mapping, PolicyError> {
        let Some(spec) = spec else {
            return Ok(Mapping::default());
        };
        let default = match spec.default {
            Some(e) if e.user.is_some() || e.role.is_some() => {
                return Err(PolicyError::invalid(
                    path,
                    "upstream.default",
                    "the default entry takes no `user` or `role`",
                ))
            }
            Some(e) => Some(compile_entry(e, path, base, "upstream.default")?.1),
            None => None,
        };
        let mut by_user = Vec::new();
        for (i, e) in spec.user.into_iter().enumerate() {
            let field = format!("upstream.user[{i}]");
            let (key, entry) = compile_entry(e, path, base, &field)?;
            let user = key
                .0
                .ok_or_else(|| PolicyError::invalid(path, &field, "needs `user = \"...\"`"))?;
            by_user.push((user, entry));
        }
        let mut by_role = Vec::new();
        for (i, e) in spec.role.into_iter().enumerate() {
            let field = format!("upstream.role[{i}]");
            let (key, entry) = compile_entry(e, path, base, &field)?;
            let role = key
                .1
                .ok_or_else(|| PolicyError::invalid(path, &field, "needs `role = \"...\"`"))?;
            by_role.push((role, entry));
        }
        Ok(Mapping {
            by_user,
            by_role,
            default,
        })
    }

    /// The broker identity for `id`. Pass-through identities get the client's own
    /// `login`/`passcode`/`host` from `connect`.
    pub fn upstream_for(
        &self,
        id: &Identity,
        connect: &Frame,
        fallback: Option<&UpstreamIdentity>,
    ) -> Result<UpstreamIdentity, PolicyError> {
        if id.source == AuthSource::Passthrough {
            return Ok(client_identity(connect));
        }
        let entry = self
            .by_user
            .iter()
            .find(|(u, _)| *u == id.user)
            .or_else(|| self.by_role.iter().find(|(r, _)| id.has_role(r)))
            .map(|(_, e)| e)
            .or(self.default.as_ref());
        match (entry, fallback) {
            (Some(e), _) => render_entry(e, id),
            (None, Some(f)) => Ok(f.clone()),
            (None, None) => Err(PolicyError::NoUpstream(id.user.clone())),
        }
    }
}

type EntryKey = (Option<String>, Option<String>);

fn compile_entry(
    e: UpstreamEntrySpec,
    path: &Path,
    base: &Path,
    field: &str,
) -> Result<(EntryKey, Entry), PolicyError> {
    let tpl = |s: Option<String>, f: &str| {
        s.map(|s| template::parse(&s, false))
            .transpose()
            .map_err(|m| PolicyError::invalid(path, format!("{field}.{f}"), m))
    };
    let passcode = match (e.passcode, e.passcode_file) {
        (Some(_), Some(_)) => {
            return Err(PolicyError::invalid(
                path,
                format!("{field}.passcode"),
                "give `passcode` or `passcode_file`, not both",
            ))
        }
        (Some(p), None) => Some(p),
        (None, Some(file)) => {
            let file = base.join(file);
            Some(Secret::from_file(&file).map_err(|e| PolicyError::io(&file, e))?)
        }
        (None, None) => None,
    };
    let entry = Entry {
        login: tpl(e.login, "login")?,
        passcode,
        vhost: tpl(e.vhost, "vhost")?,
    };
    Ok(((e.user, e.role), entry))
}

fn render_entry(e: &Entry, id: &Identity) -> Result<UpstreamIdentity, PolicyError> {
    let render = |t: &Option<Vec<Piece>>| -> Result<Option<String>, PolicyError> {
        let Some(t) = t else { return Ok(None) };
        let s = template::render(t, id).map_err(PolicyError::Template)?;
        if s.chars().any(char::is_control) {
            return Err(PolicyError::Template(
                "a rendered value contains a control character".into(),
            ));
        }
        Ok(Some(s))
    };
    Ok(UpstreamIdentity {
        login: render(&e.login)?,
        passcode: e.passcode.clone(),
        host: render(&e.vhost)?,
    })
}

fn client_identity(connect: &Frame) -> UpstreamIdentity {
    UpstreamIdentity {
        login: connect.header("login").map(str::to_owned),
        passcode: connect.header("passcode").map(Secret::new),
        host: connect.header("host").map(str::to_owned),
    }
}
