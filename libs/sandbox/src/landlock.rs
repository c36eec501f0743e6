//! A profile's Landlock part turned into a ruleset and enforced: the second
//! wall behind chroot and seccomp. Where seccomp decides which calls a
//! process may make, Landlock decides on what: which directories it may
//! use (and how), which TCP ports it may connect to or bind, and that it
//! can neither reach an abstract Unix socket nor signal a process made
//! outside its own sandbox.
//!
//! Rulesets are written for Landlock ABI 7 (Linux 6.15 and later), the
//! newest this code is tested on. A kernel with an older ABI enforces what
//! it knows (best effort) and the state says so; a kernel without Landlock
//! leaves chroot and seccomp alone, which `mailgate status` and the log show.

use std::fmt;
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, NetPort,
    PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use mailgate_config::MainConfig;

use crate::privileges::SandboxError;
use crate::profiles::{Files, PortSource, Ports, Profile};

/// The ABI the rulesets are written for.
const TARGET: ABI = ABI::V7;

/// How far Landlock confines the process, for the log and `mailgate status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LandlockState {
    /// Every rule of the profile is enforced.
    Enforced { abi: i32 },
    /// The kernel's Landlock is older than the rulesets: what it knows is
    /// enforced.
    Partial { abi: i32 },
    /// No Landlock in this kernel (or it is turned off).
    NotEnforced { why: &'static str },
}

impl fmt::Display for LandlockState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LandlockState::Enforced { abi } => write!(f, "enforced (ABI {abi})"),
            LandlockState::Partial { abi } => write!(f, "partial (ABI {abi})"),
            LandlockState::NotEnforced { why } => write!(f, "not enforced ({why})"),
        }
    }
}

fn rights(files: Files) -> BitFlags<AccessFs> {
    let queue = AccessFs::ReadFile
        | AccessFs::WriteFile
        | AccessFs::ReadDir
        | AccessFs::MakeReg
        | AccessFs::RemoveFile;
    match files {
        Files::Read => AccessFs::ReadFile | AccessFs::ReadDir,
        Files::Queue => queue,
        Files::QueueMove => queue | AccessFs::Refer | AccessFs::Truncate,
    }
}

/// The port an address names: `inet:host:port` (Postfix's form, for
/// clamd_socket, the policy services and Dovecot's auth service),
/// `redis:host:port[/db]`, or `imap:host[:port]` / `imaps:host[:port]` (143
/// and 993 when none is given). A Unix socket has none.
fn port_in(value: &str) -> Option<u16> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(':')?;
    let default = match scheme {
        "inet" | "redis" => None,
        "imap" => Some(143),
        "imaps" => Some(993),
        _ => return None,
    };
    let rest = rest.split('/').next().unwrap_or(rest);
    let port = if rest.starts_with('[') {
        rest.rsplit_once("]:").map(|(_, port)| port)
    } else if rest.matches(':').count() == 1 {
        rest.rsplit_once(':').map(|(_, port)| port)
    } else {
        None
    };
    match port {
        Some(port) => port.parse().ok(),
        None => default,
    }
}

/// Every `check_policy_service inet:host:port` of the configuration, in any
/// parameter (restriction lists and classes), with or without `{ ... }`
/// settings around it.
fn policy_ports(config: Option<&MainConfig>) -> Vec<u16> {
    let Some(config) = config else {
        return Vec::new();
    };
    let mut ports = Vec::new();
    for (name, _) in config.all() {
        let value = config.get(&name);
        let words: Vec<&str> = value
            .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
            .filter(|w| !w.is_empty())
            .collect();
        for pair in words.windows(2) {
            if pair[0] == "check_policy_service"
                && let Some(port) = port_in(pair[1])
            {
                ports.push(port);
            }
        }
    }
    ports
}

/// The ports of the `inet:` milters of smtpd_milters and of every
/// smtpd_milter_maps result known before a look-up (a regexp result that
/// uses $n is not: a milter it names cannot be reached, and gets
/// milter_default_action). A list that does not parse allows none (smtpd
/// refuses to start with it anyway).
fn milter_ports(config: Option<&MainConfig>) -> Vec<u16> {
    use mailgate_config::milter::{Address, MilterSpec, defaults_from_config, parse_map_result};
    let Some(config) = config else {
        return Vec::new();
    };
    let inet = |milters: Vec<MilterSpec>| -> Vec<u16> {
        milters
            .iter()
            .filter_map(|m| match m.address {
                Address::Inet { port, .. } => Some(port),
                Address::Unix(_) => None,
            })
            .collect()
    };
    let mut ports = mailgate_config::milter::from_config(config, "smtpd_milters")
        .map(inet)
        .unwrap_or_default();
    let Ok(defaults) = defaults_from_config(config) else {
        return ports;
    };
    for spec in config.list("smtpd_milter_maps") {
        let Ok(table) = mailgate_config::Table::open(&spec, config.config_dir()) else {
            continue;
        };
        for result in table.results().unwrap_or_default() {
            ports.extend(
                parse_map_result(&result, &defaults)
                    .map(inet)
                    .unwrap_or_default(),
            );
        }
    }
    ports
}

/// The ports of the DNS servers: each dns_nameservers entry's (`ip:port`,
/// `[ip]:port`; 53 for a bare address), or 53 for /etc/resolv.conf's.
fn dns_ports(config: Option<&MainConfig>) -> Vec<u16> {
    let entries = config
        .map(|c| c.list("dns_nameservers"))
        .unwrap_or_default();
    let mut ports: Vec<u16> = entries
        .iter()
        .map(|entry| {
            if entry.parse::<std::net::IpAddr>().is_ok() {
                53
            } else {
                entry
                    .parse::<std::net::SocketAddr>()
                    .map(|a| a.port())
                    .unwrap_or(53)
            }
        })
        .collect();
    if ports.is_empty() {
        ports.push(53);
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn landlock_error(e: impl fmt::Display) -> SandboxError {
    SandboxError::Landlock {
        reason: e.to_string(),
    }
}

/// The TCP ports the profile may connect to and bind, from the
/// configuration: computed before the chroot, while the tables some of
/// them come from (smtpd_milter_maps) can still be read.
pub struct NetPorts {
    connect: Vec<u16>,
    bind: Vec<u16>,
}

pub fn net_ports(profile: &Profile, config: Option<&MainConfig>) -> NetPorts {
    let rules = &profile.landlock;
    let collect = |ports: Ports| {
        let mut allowed = Vec::new();
        if let Ports::Of(sources) = ports {
            for source in sources {
                match source {
                    PortSource::Parameter(parameter) => {
                        allowed.extend(config.and_then(|c| port_in(&c.get(parameter))));
                    }
                    PortSource::DnsServers => allowed.extend(dns_ports(config)),
                    PortSource::PolicyServices => allowed.extend(policy_ports(config)),
                    PortSource::Milters => allowed.extend(milter_ports(config)),
                }
            }
        }
        allowed.sort_unstable();
        allowed.dedup();
        allowed
    };
    NetPorts {
        connect: collect(rules.tcp_connect),
        bind: collect(rules.tcp_bind),
    }
}

/// Builds the profile's ruleset and restricts the calling thread (call
/// while single-threaded, after no_new_privs and before seccomp, which does
/// not allow the Landlock calls). Directories are relative to the current
/// directory: the root the process was just put in.
pub fn restrict(profile: &Profile, ports: NetPorts) -> Result<LandlockState, SandboxError> {
    let rules = &profile.landlock;
    let mut net = BitFlags::<AccessNet>::empty();
    if rules.tcp_connect != Ports::Any {
        net |= AccessNet::ConnectTcp;
    }
    if rules.tcp_bind != Ports::Any {
        net |= AccessNet::BindTcp;
    }
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TARGET))
        .map_err(landlock_error)?
        .scope(Scope::from_all(TARGET))
        .map_err(landlock_error)?;
    if !net.is_empty() {
        ruleset = ruleset.handle_access(net).map_err(landlock_error)?;
    }
    let mut created = ruleset.create().map_err(landlock_error)?;
    for (dir, files) in rules.dirs {
        let fd = PathFd::new(Path::new(dir)).map_err(|e| SandboxError::Landlock {
            reason: format!("{dir}: {e}"),
        })?;
        created = created
            .add_rule(PathBeneath::new(fd, rights(*files)))
            .map_err(landlock_error)?;
    }
    for (allowed, access) in [
        (ports.connect, AccessNet::ConnectTcp),
        (ports.bind, AccessNet::BindTcp),
    ] {
        for port in allowed {
            created = created
                .add_rule(NetPort::new(port, access))
                .map_err(landlock_error)?;
        }
    }
    let status = created.restrict_self().map_err(landlock_error)?;
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.unwrap_or(effective_abi as i32),
        LandlockStatus::NotEnabled => {
            return Ok(LandlockState::NotEnforced {
                why: "turned off in this kernel",
            });
        }
        LandlockStatus::NotImplemented => {
            return Ok(LandlockState::NotEnforced {
                why: "not in this kernel",
            });
        }
    };
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockState::Enforced { abi },
        RulesetStatus::PartiallyEnforced => LandlockState::Partial { abi },
        RulesetStatus::NotEnforced => LandlockState::NotEnforced {
            why: "not supported here",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_well() {
        assert_eq!(
            LandlockState::Enforced { abi: 7 }.to_string(),
            "enforced (ABI 7)"
        );
        assert_eq!(
            LandlockState::NotEnforced {
                why: "not in this kernel"
            }
            .to_string(),
            "not enforced (not in this kernel)"
        );
    }

    #[test]
    fn ports_are_read_from_addresses() {
        assert_eq!(port_in("inet:127.0.0.1:3310"), Some(3310));
        assert_eq!(port_in("inet:[::1]:10023"), Some(10023));
        assert_eq!(port_in("redis:127.0.0.1:6379/2"), Some(6379));
        assert_eq!(port_in("unix:/run/clamd.sock"), None);
        assert_eq!(port_in("private/auth"), None);
        assert_eq!(port_in("imap:mail.example.com:1143"), Some(1143));
        assert_eq!(port_in("imaps:mail.example.com"), Some(993));
    }

    #[test]
    fn smtpd_may_reach_its_inet_milters_ports_only() {
        let config = MainConfig::parse(
            "smtpd_milters = inet:127.0.0.1:8891, unix:/milter/sock, \
             { inet:[::1]:11332, default_action=accept }\n",
            Path::new("main.cf"),
            Path::new("/"),
            &[],
        )
        .unwrap();
        assert_eq!(milter_ports(Some(&config)), vec![8891, 11332]);
        // smtpd_milter_maps' results too.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("milter_map"),
            "127.0.0.2/32 DISABLE\n10.0.0.0/8 { inet:127.0.0.1:9000 }, inet:[::1]:9001\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("re"), "/^10\\./ inet:127.0.0.1:9002\n").unwrap();
        let config = MainConfig::parse(
            "smtpd_milters = inet:127.0.0.1:8891\n\
             smtpd_milter_maps = cidr:milter_map, regexp:re\n",
            &dir.path().join("main.cf"),
            dir.path(),
            &[],
        )
        .unwrap();
        assert_eq!(milter_ports(Some(&config)), vec![8891, 9000, 9001, 9002]);
        let none = MainConfig::parse("\n", Path::new("main.cf"), Path::new("/"), &[]).unwrap();
        assert!(milter_ports(Some(&none)).is_empty());
    }

    #[test]
    fn queue_moves_need_refer_and_truncate_and_nothing_executes() {
        assert!(rights(Files::QueueMove).contains(AccessFs::Refer | AccessFs::Truncate));
        assert!(!rights(Files::Queue).contains(AccessFs::Refer));
        for files in [Files::Queue, Files::QueueMove] {
            assert!(!rights(files).contains(AccessFs::Execute));
            assert!(!rights(files).contains(AccessFs::MakeSock));
            assert!(!rights(files).contains(AccessFs::MakeSym));
        }
    }
}
