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
mod vectors;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::fmt::format::FmtSpan;

fn main() -> ExitCode {
    // `zhiku parse --chunks big.pdf | head` must end quietly when `head` has read enough, as other
    // Unix tools do, instead of panicking in println! on the closed pipe.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    init_logging(args.verbose, args.log_format);
    match commands::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One line, the whole cause chain: "cannot open store at X: permission denied".
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8, format: cli::LogFormat) {
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
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match format {
        cli::LogFormat::Text => logs.init(),
        // Spans (ingest, retrieve, answer, generate, request) report their duration on closing.
        cli::LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).with_span_events(FmtSpan::CLOSE).init(),
    }
}
