//! `mailgate`: the administrator's command, like Postfix's postfix(1) and postconf(1).
//!
//! Exit status: 0 on success, 1 when the command failed (including "not running" and
//! configuration errors), 2 for a usage error.

mod check;
mod config;
mod confine;
mod control;
mod dkim;
mod error;
mod imap;
mod imap_learn;
mod learn;
mod locate;
mod manpage;
mod quarantine;
mod queue;
mod scan;
mod scores;
mod sendmail;
mod sendmail_milters;
mod stats;
#[cfg(test)]
mod testdir;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Source;
use crate::locate::{Invocation, Setting};

#[derive(Debug, Parser)]
#[command(
    name = "mailgate",
    version,
    about = "Control the mailgate mail gateway and inspect its configuration",
    long_about = "Control the mailgate mail gateway and inspect its configuration.\n\n\
        mailgate reads main.cf and master.cf (Postfix syntax) from the configuration \
        directory. Messages go to stderr as \"mailgate: ...\", like Postfix's.",
    after_help = "Exit status: 0 success; 1 failure, including \"not running\" and \
        configuration errors; 2 usage error."
)]
struct Cli {
    /// The configuration directory, holding main.cf and master.cf. Without -c, the
    /// MAILGATE_CONFIG environment variable, or /etc/mailgate.
    #[arg(
        short = 'c',
        value_name = "DIR",
        env = "MAILGATE_CONFIG",
        default_value = locate::DEFAULT_CONFIG_DIR
    )]
    config_dir: PathBuf,

    /// Override a main.cf parameter for this command; repeatable. `start` passes the
    /// overrides on to the master.
    #[arg(short = 'o', value_name = "NAME=VALUE", value_parser = Setting::parse)]
    overrides: Vec<Setting>,

    #[command(subcommand)]
    command: Cmd,
}

/// The administrator's commands.
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check the configuration, then run the master in the foreground.
    ///
    /// Refuses to start when the configuration has errors, when the mail system
    /// already runs, or (as root) when mail_owner does not exist. The master is
    /// DAEMON_DIR/master, where DAEMON_DIR is main.cf's daemon_directory or, when that
    /// is empty, the directory holding this program.
    Start,
    /// Stop the mail system: SIGTERM to the master, then wait for it to drain.
    ///
    /// Waits up to master_drain_time plus 10 seconds for the master to exit.
    Stop,
    /// Tell whether the mail system is running (exit status 0) or not (1).
    Status,
    /// Make the running master reread its configuration (SIGHUP).
    ///
    /// A configuration with errors is refused, and the running gateway keeps its old
    /// one.
    Reload,
    /// Check main.cf, master.cf and every table and list they name.
    ///
    /// Prints every error as "mailgate: error: FILE:LINE: message" and exits 1 if
    /// there is any; for a good configuration prints one line starting with "ok:"
    /// that says what was checked, and exits 0. Services that run without chroot
    /// get a warning.
    Check,
    /// Show main.cf parameters as "name = value" lines, like postconf.
    Config(ConfigArgs),
    /// The content filter's quarantine: list, show, release or delete the
    /// messages it kept back.
    Quarantine {
        #[command(subcommand)]
        command: quarantine::QuarantineCmd,
    },
    /// See and steer the queue, like postqueue, postsuper and postcat.
    ///
    /// Only root and mail_owner may use it. Changes go through the queue manager
    /// while the mail system runs, and are made on the files when it does not.
    Queue {
        #[command(subcommand)]
        command: queue::QueueCmd,
    },
    /// Submit a message read from standard input, like sendmail(1).
    ///
    /// Only root and mail_owner may submit, and only while the mail system runs.
    /// Exit status as sendmail's (sysexits): 75 means try again later.
    Sendmail(sendmail::SendmailArgs),
    /// Score messages with the spam engine offline, one line per message.
    ///
    /// Takes message files, Maildir folders, directories and mbox files; uses all
    /// cores. Each line: path, action (pass, tag, spam, kill by the spam_*_level
    /// parameters), score and the rules hit.
    Scan(scan::ScanArgs),
    /// Train the Bayes classifier with spam or ham, or untrain it (--forget).
    Learn(learn::LearnArgs),
    /// Learn the rule scores from labelled mail, or measure them (--cv).
    ///
    /// Runs the rules over the mail, trains Bayes in memory on all folds but
    /// one for each message, and fits the scores by regularised logistic
    /// regression towards the stock ones. Writes SpamAssassin `score` lines for
    /// spam_rules_files; with --cv, reports by nested cross-validation how
    /// much ham (per PATH) is flagged and spam caught.
    Scores(scores::ScoresArgs),
    /// Traffic counters (received, delivered, deferred, bounced, rejected by
    /// reason, greylisted, virus, spam, banned, ...) over the last hour, day,
    /// week, month and year, as the stats service counted them from the log.
    ///
    /// With --graphs, writes mailgraph-like SVG graphs for a day, a week, a
    /// month and a year instead.
    Stats(stats::StatsArgs),
    /// DKIM keys: `keygen DOMAIN SELECTOR` makes a key pair for
    /// dkim_key_table and prints the DNS TXT record to publish.
    Dkim {
        #[command(subcommand)]
        command: dkim::DkimCmd,
    },
    /// Print a manual page in roff: 8 for mailgate(8), 5 for mailgate.cf(5).
    ///
    /// Both are generated from this program (its commands and its parameter
    /// table), so they always match it: `mailgate manpage 5 | man -l -`.
    Manpage {
        #[arg(value_name = "SECTION", value_enum)]
        section: manpage::Section,
    },
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Show only parameters set explicitly (in main.cf or with -o).
    #[arg(short = 'n', conflicts_with = "defaults")]
    explicit: bool,

    /// Show built-in default values instead of the values in effect.
    #[arg(short = 'd')]
    defaults: bool,

    /// Print every parameter's status in mailgate as a Markdown table
    /// (implemented, or accepted and not carried out: what `check` says).
    #[arg(long, conflicts_with_all = ["explicit", "defaults", "names"])]
    status: bool,

    /// Parameters to show, in this order; all when none is given.
    #[arg(value_name = "NAME")]
    names: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let invocation = Invocation {
        config_dir: cli.config_dir,
        settings: cli.overrides,
    };
    let result = match &cli.command {
        Cmd::Start => control::start(&invocation),
        Cmd::Stop => control::stop(&invocation),
        Cmd::Status => control::status(&invocation),
        Cmd::Reload => control::reload(&invocation),
        Cmd::Check => check::report(&invocation),
        Cmd::Queue { command } => queue::run(&invocation, command),
        Cmd::Quarantine { command } => quarantine::run(&invocation, command),
        Cmd::Sendmail(args) => return sendmail::main(&invocation, args),
        Cmd::Scan(args) => scan::run(&invocation, args),
        Cmd::Learn(args) => learn::run(&invocation, args),
        Cmd::Scores(args) => scores::run(&invocation, args),
        Cmd::Stats(args) => stats::run(&invocation, args),
        Cmd::Dkim { command } => dkim::run(command).map_err(error::Error::Dkim),
        Cmd::Manpage { section } => {
            use clap::CommandFactory;
            manpage::run(*section, &Cli::command())
        }
        Cmd::Config(args) if args.status => config::status_table(),
        Cmd::Config(args) => {
            let source = if args.defaults {
                Source::Defaults
            } else if args.explicit {
                Source::Explicit
            } else {
                Source::Effective
            };
            config::run(&invocation, source, &args.names)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.report();
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_come_before_the_command() {
        let cli = Cli::try_parse_from([
            "mailgate",
            "-c",
            "/tmp/x",
            "-o",
            "a=1",
            "-o",
            "b = 2",
            "config",
            "-n",
            "relayhost",
        ])
        .unwrap();
        assert_eq!(cli.config_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cli.overrides.len(), 2);
        assert_eq!(cli.overrides[1].to_arg(), "b=2");
        assert!(matches!(&cli.command, Cmd::Config(a) if a.explicit && a.names == ["relayhost"]));

        let cli = Cli::try_parse_from(["mailgate", "status"]).unwrap();
        assert_eq!(cli.config_dir, PathBuf::from("/etc/mailgate"));
        assert!(Cli::try_parse_from(["mailgate", "-o", "novalue", "status"]).is_err());
        assert!(Cli::try_parse_from(["mailgate", "config", "-n", "-d"]).is_err());
        assert!(Cli::try_parse_from(["mailgate"]).is_err());
        assert!(Cli::try_parse_from(["mailgate", "frobnicate"]).is_err());
    }
}
