//! The `vigil` binary: parses the command line, sets up logging, runs the command.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vigil::cli::{Cli, LogFormat, execute};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cli.log_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(cli.worker_threads()).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("vigil: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}
