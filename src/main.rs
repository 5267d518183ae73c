//! The `clickstream` binary: parses the command line, loads the configuration, starts the
//! runtime and maps errors to exit codes (0 ok, 1 bad link table, 64 bad config or usage).
//! Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use clickstream::app::{Node, StartError};
use clickstream::config::{Config, ConfigError};
use clickstream::links::LinkTable;

/// Exit code for a bad link table.
const EXIT_BAD_TABLE: u8 = 1;
/// Exit code for a bad configuration or command line (EX_USAGE).
const EXIT_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "clickstream",
    version,
    about = "Redirect edge server for branded short links, with a durable clickstream.",
    long_about = "Redirect edge server for branded short links, with a durable clickstream.\n\n\
        Answers GET https://<custom domain>/<slashtag> with a redirect and, for every click, \
        builds a click event (browser, OS, device, bot or human, country, session, referrer, \
        link and destination) and delivers it to files, webhooks and S3 buckets through a \
        durable on-disk spool.\n\n\
        Quick start: `clickstream serve` serves data/links.csv on 127.0.0.1:8080 and writes \
        events to events/ ; try `curl -i 127.0.0.1:8080/spring-sale`.\n\
        Reload the link table with SIGHUP (or just save the file); force a reload that drops \
        many links with SIGUSR1. Stop with SIGTERM: nothing is lost.",
    after_help = "Exit codes: 0 ok, 1 bad link table, 64 bad configuration or usage."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); RUST_LOG, when set, takes precedence (and
    /// is the only way to see rustls's own per-handshake messages).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve redirects and deliver click events until SIGTERM.
    Serve {
        #[command(flatten)]
        files: Files,
        /// Address to listen on, e.g. 0.0.0.0:80 (overrides [server] listen).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Validate the configuration and link table, print what they hold, and exit.
    Check {
        #[command(flatten)]
        files: Files,
    },
}

#[derive(clap::Args)]
struct Files {
    /// Configuration file (TOML); without it every key has its default.
    #[arg(long, short, value_name = "FILE", env = "CLICKSTREAM_CONFIG")]
    config: Option<PathBuf>,
    /// Link table, CSV or JSON Lines (overrides [server] links).
    #[arg(long, value_name = "FILE")]
    links: Option<PathBuf>,
}

impl Files {
    fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::embedded_default(),
        };
        if let Some(links) = &self.links {
            config.server.links = links.clone();
        }
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            // Printing help or a usage error to the terminal; nothing to do if that fails.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.log_format, &cli.log_level);
    match cli.command {
        Command::Check { files } => check(&files),
        Command::Serve { files, listen } => {
            let mut config = match files.load() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            if let Some(addr) = listen {
                config.server.listen = addr;
            }
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}", clickstream::error_chain(&*e));
                    match e.downcast_ref::<StartError>() {
                        Some(StartError::Links(_)) => ExitCode::from(EXIT_BAD_TABLE),
                        Some(StartError::Setup(_)) => ExitCode::from(EXIT_USAGE),
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    // rustls warns once per handshake about what a client did wrong (an IP address as SNI, as
    // wrk and some scanners send): a log line any client could repeat at will. Its messages
    // are shown only when RUST_LOG asks for them.
    let quiet_tls = |filter: tracing_subscriber::EnvFilter| match "rustls=error".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level).map(quiet_tls))
        .unwrap_or_else(|_| quiet_tls(tracing_subscriber::EnvFilter::new("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn check(files: &Files) -> ExitCode {
    let config = match files.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(errors) = clickstream::enrich::EnrichLists::load(&config.server) {
        eprintln!("error: {}", errors.join("\n"));
        return ExitCode::from(EXIT_USAGE);
    }
    if let Err(e) = clickstream::app::load_geo(&config) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    match LinkTable::load(&config.server.links, &config.server, &config.domains) {
        Ok(table) => {
            println!(
                "{}: {} links on {} domains; configuration ok ({} sinks)",
                config.server.links.display(),
                table.len(),
                table.domain_count(),
                config.sinks.len()
            );
            // The process exits now: freeing a million links one by one would only add time.
            std::mem::forget(table);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_TABLE)
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("clickstream-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Registered before start-up, so a signal that arrives while the table loads is kept.
        let signals = Signals::new()?;
        let sinks: Vec<String> = config.sinks.iter().map(|s| s.name.clone()).collect();
        let links_path = config.server.links.clone();
        let (node, loaded) = Node::start(config).await?;
        tracing::info!(
            listen = %node.addr,
            tls = ?node.tls_addr,
            admin = %node.admin_addr,
            max_connections = node.max_connections,
            links = loaded.links,
            domains = loaded.domains,
            table = %links_path.display(),
            geoip = %loaded.geoip,
            sinks = ?sinks,
            spool_id = node.spool.id(),
            "clickstream serving"
        );
        signals.wait(&node).await;
        tracing::info!("shutting down: finishing in-flight requests and flushing the spool");
        node.shutdown().await;
        Ok(())
    })
}

/// The signals `serve` answers.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
            usr1: signal(SignalKind::user_defined1()).context("cannot listen for SIGUSR1")?,
        })
    }

    /// Reloads on SIGHUP (SIGUSR1: forced) until SIGTERM or SIGINT.
    async fn wait(mut self, node: &Node) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                // Outcomes are logged and counted by the reloader.
                _ = self.hup.recv() => {
                    let _ = node.reload(false).await;
                    let _ = node.reload_certificates().await;
                }
                _ = self.usr1.recv() => { let _ = node.reload(true).await; }
            }
        }
    }
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
