//! `hashforum incident ...`: declare and close incidents (admin), and list them.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::admin::submit_actions;
use super::output::{incident_json, incident_line};
use super::{connect, ClientOpts};
use crate::pb;
use crate::statement::admin;

/// `hashforum incident ...`.
#[derive(Debug, Args)]
pub struct IncidentArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: IncidentCommand,
}

/// The levels of the GIFCT Incident Response Framework (see docs/provenance.md).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LevelArg {
    /// Incident: an event with online aspects.
    Incident,
    /// Content Incident: perpetrator content of an offline attack circulates.
    ContentIncident,
    /// Content Incident Protocol: live-streamed or recorded perpetrator video of an attack.
    Cip,
    /// Perpetrator Content Incident (the 2025 framework).
    Pci,
}

impl LevelArg {
    fn to_pb(self) -> pb::IncidentLevel {
        match self {
            LevelArg::Incident => pb::IncidentLevel::Incident,
            LevelArg::ContentIncident => pb::IncidentLevel::ContentIncident,
            LevelArg::Cip => pb::IncidentLevel::ContentIncidentProtocol,
            LevelArg::Pci => pb::IncidentLevel::PerpetratorContentIncident,
        }
    }
}

/// Incident subcommands.
#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Declare an incident (admin): submissions may name it with `submit --incident ID`.
    Declare {
        /// Its id: 1-64 characters of [a-z0-9._-]; never reused.
        #[arg(long)]
        id: String,
        /// What happened.
        #[arg(long)]
        title: String,
        /// Its level.
        #[arg(long, value_enum)]
        level: LevelArg,
    },
    /// Close an open incident (admin): submissions may no longer name it.
    Close {
        /// The incident.
        #[arg(long)]
        id: String,
        /// Why (optional).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List the incidents, open and closed.
    List,
}

/// Runs `incident`.
///
/// # Errors
/// Whatever the identity or the server answers.
pub async fn run(args: IncidentArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        IncidentCommand::Declare { id, title, level } => {
            let body = admin::declare_incident(&id, &title, level.to_pb());
            submit_actions(&args.client, vec![body]).await
        }
        IncidentCommand::Close { id, reason } => {
            submit_actions(&args.client, vec![admin::close_incident(&id, &reason)]).await
        }
        IncidentCommand::List => {
            let mut client = connect(&args.client).await?;
            let incidents = client
                .registry
                .list_incidents(pb::ListIncidentsRequest {})
                .await?
                .into_inner()
                .incidents;
            for i in &incidents {
                if args.client.json {
                    println!("{}", incident_json(i));
                } else {
                    println!("{}", incident_line(i));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
