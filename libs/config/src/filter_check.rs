//! `mailgate check` for after-queue content filtering: content_filter
//! must name a transport master.cf serves (or every message would wait in
//! the queue for a service that does not exist), and
//! receive_override_options only the options Postfix has.

use crate::main_cf::MainConfig;
use crate::master_cf::{MasterConfig, ServiceKind};

/// The options of receive_override_options mailgate carries out (smtpd
/// and cleanup): the same four as Postfix's SMTP server honours.
pub const RECEIVE_OVERRIDES: [&str; 4] = [
    "no_unknown_recipient_checks",
    "no_header_body_checks",
    "no_address_mappings",
    "no_milters",
];

/// Each problem as (parameter, message).
pub fn problems(config: &MainConfig, master: &MasterConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let filter = config.get("content_filter");
    let filter = filter.trim();
    if !filter.is_empty() {
        match filter.split_once(':') {
            Some((transport, _)) if !transport.trim().is_empty() => {
                let transport = transport.trim();
                let served = master
                    .services
                    .iter()
                    .any(|s| s.name == transport && s.kind == ServiceKind::Unix);
                if !served {
                    out.push((
                        "content_filter",
                        format!(
                            "content_filter = {filter}: master.cf has no unix service \
                             \"{transport}\" (such as `{transport} unix - - n - 2 smtp`)"
                        ),
                    ));
                }
            }
            _ => out.push((
                "content_filter",
                format!("content_filter = {filter}: expected transport:nexthop"),
            )),
        }
    }
    for item in config.list("receive_override_options") {
        if !RECEIVE_OVERRIDES.contains(&item.to_ascii_lowercase().as_str()) {
            out.push((
                "receive_override_options",
                format!(
                    "receive_override_options: unknown option \"{item}\" (expected {})",
                    RECEIVE_OVERRIDES.join(", ")
                ),
            ));
        }
    }
    out
}
