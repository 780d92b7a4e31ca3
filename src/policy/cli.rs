//! `stompgate hash-password`: prints an argon2id PHC string for a users file.

use std::io::{Read, Write};
use std::path::PathBuf;

use super::error::PolicyError;
use super::users::{hash_password, MAX_PASSWORD_BYTES};
use crate::config::Secret;

/// Arguments of `stompgate hash-password`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HashPasswordArgs {
    /// Read the password from this file (one trailing newline ignored) instead of stdin.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

/// Runs `hash-password` on the process's stdin and stdout.
pub fn hash_password_cli(args: &HashPasswordArgs) -> Result<(), PolicyError> {
    hash_password_io(args, std::io::stdin().lock(), std::io::stdout().lock())
}

/// `hash-password` over any input and output: reads the password (from `--password-file` or
/// `input`, one trailing newline dropped), writes its argon2id PHC string (default
/// parameters) and a newline.
pub fn hash_password_io(
    args: &HashPasswordArgs,
    input: impl Read,
    mut out: impl Write,
) -> Result<(), PolicyError> {
    let password = match &args.password_file {
        Some(path) => Secret::from_file(path).map_err(|e| PolicyError::io(path, e))?,
        None => {
            let mut buf = String::new();
            input
                .take(MAX_PASSWORD_BYTES as u64 + 2)
                .read_to_string(&mut buf)
                .map_err(|e| {
                    PolicyError::Hash(format!("cannot read the password from stdin: {e}"))
                })?;
            Secret::new(
                buf.strip_suffix('\n')
                    .map(|s| s.strip_suffix('\r').unwrap_or(s))
                    .unwrap_or(&buf),
            )
        }
    };
    if password.expose().is_empty() {
        return Err(PolicyError::Hash("empty password".into()));
    }
    let phc = hash_password(password.expose().as_bytes())?;
    writeln!(out, "{phc}").map_err(|e| PolicyError::Hash(format!("cannot write the hash: {e}")))
}
