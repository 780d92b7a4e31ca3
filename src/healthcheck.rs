//! `stompgate healthcheck`: one bounded HTTP/1.1 GET against the admin API, for container
//! HEALTHCHECKs in images that have no curl (the runtime image holds the binary and CA roots only).
//!
//! Plain blocking `std::net` on purpose: the check runs once and exits, so a runtime would only
//! add start-up time. Every step has a timeout and the response read is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Most bytes of the response read to find the status line.
const MAX_RESPONSE_BYTES: usize = 4096;

/// Arguments of `stompgate healthcheck`.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthcheckArgs {
    /// The URL to GET (plain `http://HOST:PORT/PATH`); healthy when it answers `200`. Default:
    /// `/healthz` on `--admin-listen` (a wildcard address becomes loopback).
    #[arg(long)]
    pub url: Option<String>,

    /// The gateway's admin listener, for the default `--url` (the image's HEALTHCHECK relies on
    /// the same `STOMPGATE_ADMIN_LISTEN` the gateway reads). Default `127.0.0.1:8081`.
    #[arg(long, env = "STOMPGATE_ADMIN_LISTEN", default_value = "127.0.0.1:8081")]
    pub admin_listen: String,

    /// Time allowed for the whole check (connect, request, response), e.g. `3s`.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// The URL is not one this check can fetch (configuration: fix the argument).
    #[error("unsupported --url {0:?}: expected http://HOST:PORT/PATH")]
    BadUrl(String),
    /// The server could not be reached or stopped answering in time.
    #[error("{addr}: {source}")]
    Io {
        /// The address tried last.
        addr: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The server answered with something other than `200`.
    #[error("unhealthy: {0}")]
    Status(String),
}

/// A parsed `http://` URL: where to connect and what to ask for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    authority: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, HealthcheckError> {
    let bad = || HealthcheckError::BadUrl(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let has_host_and_port = authority
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    let clean = |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '@');
    if !has_host_and_port || !clean(authority) || path.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(Target {
        authority: authority.to_string(),
        path: path.to_string(),
    })
}

/// The URL a check fetches: `--url`, else `/healthz` on the admin listener, where a wildcard
/// address (`0.0.0.0`, `[::]`) means "this host" and becomes the loopback address.
pub fn effective_url(args: &HealthcheckArgs) -> String {
    if let Some(url) = &args.url {
        return url.clone();
    }
    let addr = args
        .admin_listen
        .replacen("0.0.0.0:", "127.0.0.1:", 1)
        .replacen("[::]:", "[::1]:", 1);
    format!("http://{addr}/healthz")
}

/// Fetches the URL once; `Ok` only for a `200` answer within `args.timeout`.
pub fn run(args: &HealthcheckArgs) -> Result<(), HealthcheckError> {
    let target = parse_url(&effective_url(args))?;
    let deadline = Instant::now() + args.timeout;
    let io = |source| HealthcheckError::Io {
        addr: target.authority.clone(),
        source,
    };
    let addr = resolve(&target.authority).map_err(io)?;
    let mut stream = TcpStream::connect_timeout(&addr, remaining(deadline)).map_err(io)?;
    stream
        .set_write_timeout(Some(remaining(deadline)))
        .map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: stompgate-healthcheck\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let status = read_status_line(&mut stream, deadline).map_err(io)?;
    match status.split(' ').nth(1) {
        Some("200") if status.starts_with("HTTP/1.") => Ok(()),
        _ => Err(HealthcheckError::Status(status)),
    }
}

/// Runs `stompgate healthcheck`: the exit code is 0 when healthy, 1 when not, 64 (EX_USAGE) for
/// a URL it cannot fetch; the reason goes to stderr.
pub fn run_cli(args: &HealthcheckArgs) -> u8 {
    match run(args) {
        Ok(()) => 0,
        Err(e @ HealthcheckError::BadUrl(_)) => {
            eprintln!("stompgate: {e}");
            64
        }
        Err(e) => {
            eprintln!("stompgate healthcheck: {e}");
            1
        }
    }
}

fn resolve(authority: &str) -> std::io::Result<SocketAddr> {
    authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host"))
}

/// Time left before `deadline`, never zero (a zero timeout means "none" to `std::net`).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Reads until the first CRLF (or `MAX_RESPONSE_BYTES`, or EOF) and returns that line.
fn read_status_line(stream: &mut TcpStream, deadline: Instant) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    while buf.len() < MAX_RESPONSE_BYTES && !buf.windows(2).any(|w| w == b"\r\n") {
        stream.set_read_timeout(Some(remaining(deadline)))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(&[]);
    Ok(String::from_utf8_lossy(line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn args(url: String) -> HealthcheckArgs {
        HealthcheckArgs {
            url: Some(url),
            admin_listen: "127.0.0.1:1".into(),
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn default_url_is_healthz_on_the_admin_listener() {
        let with = |admin: &str| HealthcheckArgs {
            url: None,
            admin_listen: admin.into(),
            timeout: Duration::from_secs(1),
        };
        let url = |admin| effective_url(&with(admin));
        assert_eq!(url("0.0.0.0:8081"), "http://127.0.0.1:8081/healthz");
        assert_eq!(url("[::]:9"), "http://[::1]:9/healthz");
        assert_eq!(url("10.1.2.3:7"), "http://10.1.2.3:7/healthz");
        assert_eq!(
            effective_url(&args("http://h:1/readyz".into())),
            "http://h:1/readyz"
        );
    }

    /// Serves one connection with `answer` and returns the request it read.
    fn serve_once(answer: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).unwrap();
            s.write_all(answer).unwrap();
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        (url, handle)
    }

    #[test]
    fn urls_are_parsed_or_refused() {
        let ok = parse_url("http://127.0.0.1:8081/healthz").unwrap();
        assert_eq!(ok.authority, "127.0.0.1:8081");
        assert_eq!(ok.path, "/healthz");
        assert_eq!(parse_url("http://[::1]:9/").unwrap().authority, "[::1]:9");
        assert_eq!(parse_url("http://localhost:1").unwrap().path, "/");
        for bad in [
            "https://127.0.0.1:8081/healthz",
            "http://127.0.0.1/healthz",
            "http://:8081/",
            "http://u@h:1/",
            "http://h:1/a b",
            "127.0.0.1:8081",
        ] {
            assert!(
                matches!(parse_url(bad), Err(HealthcheckError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ok_answer_is_healthy_and_request_is_a_get_for_the_path() {
        let (url, server) = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
        run(&args(url)).unwrap();
        let req = server.join().unwrap();
        assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nHost: 127.0.0.1:"), "{req}");
    }

    #[test]
    fn other_statuses_and_garbage_are_unhealthy() {
        for answer in [
            &b"HTTP/1.1 503 Service Unavailable\r\n\r\ndraining\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n",
            b"",
        ] {
            let (url, server) = serve_once(answer);
            let err = run(&args(url)).unwrap_err();
            assert!(matches!(err, HealthcheckError::Status(_)), "{err}");
            server.join().unwrap();
        }
    }

    #[test]
    fn closed_port_is_unhealthy() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = run(&args(format!("http://127.0.0.1:{port}/healthz"))).unwrap_err();
        assert!(matches!(err, HealthcheckError::Io { .. }), "{err}");
    }

    #[test]
    fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        let started = Instant::now();
        let err = run(&HealthcheckArgs {
            timeout: Duration::from_millis(300),
            ..args(url)
        })
        .unwrap_err();
        assert!(matches!(err, HealthcheckError::Io { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }
}
