//! `zhiku`: the command line. Parses flags, builds the validated configuration, dispatches to
//! the shared `zhiku-rag` functions and turns the outcome into an exit code.

mod cli;
mod cluster;
mod commands;
mod config;
mod finetune;
mod governance;
mod graph;
mod npy;
mod ops;
mod telemetry;
mod vectors;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

fn main() -> ExitCode {
    // `zhiku parse --chunks big.pdf | head` must end quietly when `head` has read enough, as other
    // Unix tools do, instead of panicking in println! on the closed pipe.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    // Held to the end: dropping it sends the spans still queued.
    let _traces = init_logging(args.verbose, args.log_format);
    match commands::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One line, the whole cause chain: "cannot open store at X: permission denied".
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8, format: cli::LogFormat) -> Option<telemetry::ExportGuard> {
    // Libraries speak up only for errors unless asked: html5ever warns about every quirk of
    // broken HTML it repairs, lopdf about every odd font, none of which the user can act on.
    let ours = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let others = if verbose >= 2 { "debug" } else { "error" };
    let crates = ["zhiku", "zhiku_core", "zhiku_ingest", "zhiku_index", "zhiku_models", "zhiku_rag", "zhiku_server", "zhiku_store"];
    let default = std::iter::once(others.to_string()).chain(crates.iter().map(|c| format!("{c}={ours}"))).collect::<Vec<_>>().join(",");
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZHIKU_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false);
    let logs = match format {
        cli::LogFormat::Text => logs.boxed(),
        // Spans (ingest, retrieve, answer, generate, request) report their duration on closing.
        cli::LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).with_span_events(FmtSpan::CLOSE).boxed(),
    };
    // Traces go out whatever the log level: zhiku's own spans, all at info.
    let (traces, guard) = match telemetry::ExportSettings::from_env(|name| std::env::var(name).ok()).map(telemetry::layer) {
        Some(Ok((layer, guard))) => {
            let spans = tracing_subscriber::EnvFilter::new(crates.iter().map(|c| format!("{c}=info")).collect::<Vec<_>>().join(","));
            (Some(layer.with_filter(spans)), Some(guard))
        }
        Some(Err(e)) => {
            eprintln!("warning: cannot start the trace exporter: {e}");
            (None, None)
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(logs.with_filter(filter)).with(traces).init();
    guard
}
