//! The `agentd` command: `serve` runs the server, `keys` manages API keys.
//!
//! The command line is a contract users and scripts rely on: `agentd serve
//! [--listen ADDR] [--data-dir DIR] [--config FILE]`, `agentd keys create --org NAME`
//! (the key alone on the last line of stdout), `keys list`, `keys revoke`, and the
//! `AGENTD_*` environment variables. Change it only compatibly.

mod keys;
mod serve;
mod settings;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "agentd",
    version,
    about = "A self-hosted server for the Agents API v2"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AGENTD_LISTEN")]
    listen: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args, Clone)]
struct CommonArgs {
    /// Folder of the database and the stored resources.
    #[arg(long, env = "AGENTD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (TOML).
    #[arg(long, env = "AGENTD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key for an organisation (created if new); prints the key last.
    Create {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// List API keys (never their secrets).
    List {
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Revoke an API key by id or prefix.
    Revoke {
        /// The key's id, or the prefix `keys list` shows.
        key: String,
        #[command(flatten)]
        common: CommonArgs,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let settings = settings::Settings::load(
                    args.common.config.as_deref(),
                    args.common.data_dir,
                    args.listen,
                )?;
                serve::run(settings).await
            }
            Command::Keys { command } => match command {
                KeysCommand::Create { org, common } => {
                    let settings =
                        settings::Settings::load(common.config.as_deref(), common.data_dir, None)?;
                    keys::create(&settings, &org).await
                }
                KeysCommand::List { org, common } => {
                    let settings =
                        settings::Settings::load(common.config.as_deref(), common.data_dir, None)?;
                    keys::list(&settings, org.as_deref()).await
                }
                KeysCommand::Revoke { key, common } => {
                    let settings =
                        settings::Settings::load(common.config.as_deref(), common.data_dir, None)?;
                    keys::revoke(&settings, &key).await
                }
            },
        }
    })
}
