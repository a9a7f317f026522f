//! `ringmq acl`: the access control lists in a data directory's acls.json, offline, as
//! `ringmq user` edits users (a running broker takes the change at SIGHUP). While it runs,
//! Kafka's CreateAcls, DescribeAcls and DeleteAcls change them online.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::broker::acls::{Acl, AclFilter, Acls, Operation, PatternType, Permission, ResourceType};

#[derive(Subcommand)]
pub enum AclCommand {
    /// Add a rule.
    Add(RuleArgs),
    /// Remove a rule (exactly as added).
    Remove(RuleArgs),
    /// List every rule, one per line.
    List {
        #[arg(long, env = "RINGMQ_DATA_DIR", default_value = "ringmq-data")]
        data_dir: PathBuf,
    },
}

#[derive(Args)]
pub struct RuleArgs {
    #[arg(long, env = "RINGMQ_DATA_DIR", default_value = "ringmq-data")]
    data_dir: PathBuf,
    /// `User:name`, or `User:*` for everyone.
    #[arg(long)]
    principal: String,
    /// The resource: `topic:NAME`, `group:NAME`, `cluster`; NAME may be `*`.
    #[arg(long)]
    resource: String,
    /// Match every name starting with NAME.
    #[arg(long)]
    prefixed: bool,
    /// all, read, write, create, delete, alter, describe, cluster-action, describe-configs,
    /// alter-configs, idempotent-write.
    #[arg(long)]
    operation: String,
    /// A deny rule (deny wins over any allow).
    #[arg(long)]
    deny: bool,
}

pub fn run(command: AclCommand) -> ExitCode {
    match execute(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("ringmq acl: {reason}");
            ExitCode::from(1)
        }
    }
}

fn execute(command: AclCommand) -> Result<(), String> {
    match command {
        AclCommand::Add(args) => {
            let mut acls = Acls::load(&args.data_dir)?;
            acls.add(rule(&args)?)?;
            save(&acls, &args.data_dir)
        }
        AclCommand::Remove(args) => {
            let mut acls = Acls::load(&args.data_dir)?;
            let wanted = rule(&args)?;
            let filter = AclFilter {
                principal: Some(wanted.principal),
                host: Some(wanted.host),
                resource_type: Some(wanted.resource_type),
                pattern_type: Some(wanted.pattern_type),
                name: Some(wanted.name),
                operation: Some(wanted.operation),
                permission: Some(wanted.permission),
            };
            if acls.remove(&filter).is_empty() {
                return Err("no such rule".into());
            }
            save(&acls, &args.data_dir)
        }
        AclCommand::List { data_dir } => {
            for acl in Acls::load(&data_dir)?.rules() {
                println!(
                    "{}\t{:?}\t{:?}:{}\t{:?}\t{:?}",
                    acl.principal,
                    acl.permission,
                    acl.resource_type,
                    acl.name,
                    acl.pattern_type,
                    acl.operation
                );
            }
            Ok(())
        }
    }
}

fn rule(args: &RuleArgs) -> Result<Acl, String> {
    if !args.principal.starts_with("User:") {
        return Err(format!("--principal {:?} is not User:name", args.principal));
    }
    let (resource_type, name) = match args.resource.split_once(':') {
        Some(("topic", name)) => (ResourceType::Topic, name),
        Some(("group", name)) => (ResourceType::Group, name),
        None if args.resource == "cluster" => (ResourceType::Cluster, "kafka-cluster"),
        _ => {
            return Err(format!(
                "--resource {:?} is not topic:NAME, group:NAME or cluster",
                args.resource
            ));
        }
    };
    let operations = [
        ("all", Operation::All),
        ("read", Operation::Read),
        ("write", Operation::Write),
        ("create", Operation::Create),
        ("delete", Operation::Delete),
        ("alter", Operation::Alter),
        ("describe", Operation::Describe),
        ("cluster-action", Operation::ClusterAction),
        ("describe-configs", Operation::DescribeConfigs),
        ("alter-configs", Operation::AlterConfigs),
        ("idempotent-write", Operation::IdempotentWrite),
    ];
    let operation = operations
        .iter()
        .find(|(text, _)| *text == args.operation)
        .map(|(_, operation)| *operation)
        .ok_or_else(|| format!("--operation {:?} is unknown", args.operation))?;
    Ok(Acl {
        principal: args.principal.clone(),
        host: "*".into(),
        resource_type,
        pattern_type: if args.prefixed {
            PatternType::Prefixed
        } else {
            PatternType::Literal
        },
        name: name.to_string(),
        operation,
        permission: if args.deny {
            Permission::Deny
        } else {
            Permission::Allow
        },
    })
}

fn save(acls: &Acls, data_dir: &std::path::Path) -> Result<(), String> {
    crate::storage::dirsync::create_dir_all_durable(data_dir)
        .and_then(|()| acls.save(data_dir))
        .map_err(|error| format!("{}: {error}", data_dir.display()))?;
    eprintln!("saved; a running broker takes it at its next SIGHUP (systemctl reload ringmq)");
    Ok(())
}
