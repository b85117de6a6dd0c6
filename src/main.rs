//! `aliasflow`: parses the command line, starts logging, runs one command, prints one result.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use aliasflow::cli::{Cli, OutputFormat};
use aliasflow::{output, App};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.global.verbose {
        // The SDK's own warnings (a credential provider that failed before another succeeded)
        // are noise on a terminal; the one-line error says what went wrong.
        0 => "aliasflow=warn,functions=warn,statemachines=warn,error",
        1 => "aliasflow=debug,functions=debug,statemachines=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();

    let app = App::from_env();
    match aliasflow::run(&cli, &app).await {
        Ok(reply) => match output::print(&reply, cli.global.output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: writing the output: {e}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            for line in error.to_string().lines() {
                eprintln!("error: {line}");
            }
            if cli.global.output == OutputFormat::Json {
                let reply = output::Reply::new(error.to_json(), String::new());
                let _ = output::print(&reply, OutputFormat::Json);
            }
            ExitCode::FAILURE
        }
    }
}
