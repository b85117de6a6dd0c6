//! The command line: global flags and subcommands. Parsing only.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// aliasflow: deploy AWS Lambda services as aliases on shared versions.
#[derive(Debug, Parser)]
#[command(
    name = "aliasflow",
    version,
    about = "Deploy AWS Lambda services as aliases on shared versions: one service stack, one stack per stage"
)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The manifest; paths inside it are relative to its folder.
    #[arg(short = 'f', long, global = true, default_value = "aliasflow.yaml")]
    pub file: PathBuf,
    /// `json`: exactly one JSON document on stdout; progress, logs and errors on stderr.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Where the workflows run: in this process, or on the installed deployer.
    #[arg(long, global = true, value_enum, default_value_t = EngineKind::Local)]
    pub engine: EngineKind,
    /// More logs on stderr: -v debug, -vv trace.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables and sentences.
    Text,
    /// One JSON document.
    Json,
}

/// Where the workflows run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// In this process, on aliasflow's own ASL interpreter.
    Local,
    /// On AWS Step Functions, as executions of the installed deployer.
    Aws,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Check the manifest; calls no AWS API.
    Validate,
    /// Print the service stack's template, or with --stage only that stage's; calls no AWS API.
    Render {
        /// The stage whose stack template to print.
        #[arg(long)]
        stage: Option<String>,
    },
    /// Print the manifest's JSON Schema (for editors); calls no AWS API.
    Schema,
    /// Install the deployer into the account and region; run again to upgrade it in place.
    /// With --engine aws: the whole deployer (step functions, state machines, schedule, CI role).
    Bootstrap {
        /// --engine aws: the step handler zips, DIR/<binary>/bootstrap.zip as
        /// `bash scripts/package-lambdas.sh` (cargo lambda build) leaves them.
        #[arg(long, value_name = "DIR", default_value = "target/lambda")]
        handlers: PathBuf,
        /// --engine aws: a parameter of infra/deployer.json, e.g. GitHubRepository=org/repo;
        /// repeatable. Parameters not given keep their previous value.
        #[arg(long = "parameter", value_name = "KEY=VALUE")]
        parameters: Vec<String>,
    },
    /// Deploy the service stack, or a stage with --stage (created on first deploy).
    Deploy {
        /// The stage: every function's alias of this name points at the new versions.
        #[arg(long)]
        stage: Option<String>,
    },
    /// Point every alias of a stage back at the deployment before the active one, or at --to;
    /// recorded as a new deployment, so a second rollback walks further back.
    Rollback {
        /// The stage.
        #[arg(long)]
        stage: String,
        /// The deployment to return to (an id `aliasflow history --stage S` lists).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Give a stage another stage's active code and configuration, like `git reset`; the
    /// stage keeps its own stage resources and stage-bound settings.
    Reset {
        /// The stage that changes.
        #[arg(long)]
        stage: String,
        /// The stage whose code to take.
        #[arg(long)]
        from: String,
    },
    /// Create a stage (its stack and aliases) with another stage's versions.
    Clone {
        /// The new stage.
        #[arg(long)]
        stage: String,
        /// The stage to copy.
        #[arg(long)]
        from: String,
    },
    /// Remove a stage: its aliases, its stack, and the versions nothing needs any more; its
    /// history stays. Without --stage: every stage, then the service stack.
    Remove {
        /// The stage.
        #[arg(long)]
        stage: Option<String>,
    },
    /// Run the cleanup workflow now (it also runs on a schedule): removes stages whose ttl
    /// expired, breaks stale locks, deletes what nothing needs any more.
    Cleanup,
    /// Show what every alias points at, with drift against the history and the stage lock.
    Status {
        /// Only this stage.
        #[arg(long)]
        stage: Option<String>,
    },
    /// List a stage's deployments, newest first.
    History {
        /// The stage.
        #[arg(long)]
        stage: String,
    },
    /// Break a stage's lock on purpose (like `terraform force-unlock`).
    Unlock {
        /// The stage.
        #[arg(long)]
        stage: String,
        /// The holder shown by `status` or in the `StageLocked` error.
        #[arg(long)]
        lock_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `aliasflow ...` command lines of a document, with `"$VAR"` arguments filled in.
    fn command_lines(text: &str) -> Vec<Vec<String>> {
        let lines =
            text.lines().filter_map(|line| line.trim().strip_prefix("run: ")).filter(|l| l.starts_with("aliasflow "));
        lines.map(|line| line.split_whitespace().map(|word| word.replace("\"$STAGE\"", "pr-1")).collect()).collect()
    }

    #[test]
    fn the_example_ci_workflow_runs_commands_this_cli_accepts() {
        let workflow = include_str!("../examples/ci/github-actions.yml");
        let commands = command_lines(workflow);
        assert!(commands.len() >= 3, "the workflow validates, deploys and removes: {commands:?}");
        for argv in commands {
            let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{}: {e}", argv.join(" ")));
            if matches!(cli.command, Command::Deploy { .. } | Command::Remove { .. }) {
                assert_eq!(cli.global.engine, EngineKind::Aws, "{}", argv.join(" "));
            }
        }
    }
}
