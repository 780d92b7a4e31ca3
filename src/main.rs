//! The `stompgate` binary: parse the configuration, set up logging, serve until a signal.

use std::process::ExitCode;
use std::sync::Arc;

use stompgate::config::{Config, Options, Tool};
use stompgate::server::Gateway;

/// Exit code for configuration errors (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let options = match Options::load() {
        Ok(o) => o,
        Err(e) => return config_error(e),
    };
    if let Some(Tool::HashPassword(args)) = &options.command {
        return match stompgate::policy::hash_password_cli(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => config_error(e),
        };
    }
    if let Some(Tool::Healthcheck(args)) = &options.command {
        return ExitCode::from(stompgate::healthcheck::run_cli(args));
    }
    let check = options.check_config;
    let config = match Config::resolve(options) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    if check {
        println!(
            "configuration ok: listen {} upstream {}",
            config.listen,
            config.upstream.addrs.join(",")
        );
        return ExitCode::SUCCESS;
    }
    stompgate::logging::init(config.log_format, config.log.as_deref());
    // Accept loops, the admin API and reloads; client connections run on their own threads
    // (`--worker-threads`, default half the CPUs; `stompgate::shards`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => config_error(e),
    }
}

fn config_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("stompgate: {e}");
    ExitCode::from(EXIT_CONFIG)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let gateway = Gateway::bind(Arc::new(config)).await?;
    // Tests and scripts read these lines to learn the real ports (`--listen 127.0.0.1:0`).
    println!("listening client {}", gateway.client_addr());
    if let Some(tls) = gateway.tls_addr() {
        println!("listening client-tls {tls}");
    }
    println!("listening admin {}", gateway.admin_addr());
    let token = gateway.shutdown_token();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
        tracing::info!("signal received: draining");
        token.cancel();
    });
    Ok(gateway.run().await?)
}
