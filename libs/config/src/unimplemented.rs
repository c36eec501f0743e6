//! Parameters mailgate accepts (so a Postfix main.cf loads) but does not
//! implement. `mailgate check`, `mailgate start` and every reload report
//! each one that is set, with its file and line: the security-relevant ones
//! as errors that stop the start, the rest as warnings. A parameter that is
//! not listed here is implemented by some service. When a parameter gets
//! implemented, its entry goes.

/// How much it matters that a setting is not carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Ignoring it would weaken a defence or let mail through that the
    /// administrator meant to stop: the gateway does not start.
    Error,
    /// Ignoring it changes nothing that protects mail.
    Warning,
}

pub struct Unimplemented {
    pub name: &'static str,
    pub severity: Severity,
    /// Values that mean "off" in Postfix: setting one of these asks for
    /// nothing mailgate lacks, so nothing is reported.
    pub inert: &'static [&'static str],
    pub why: &'static str,
}

const fn e(name: &'static str, inert: &'static [&'static str], why: &'static str) -> Unimplemented {
    Unimplemented {
        name,
        severity: Severity::Error,
        inert,
        why,
    }
}

const fn w(name: &'static str, inert: &'static [&'static str], why: &'static str) -> Unimplemented {
    Unimplemented {
        name,
        severity: Severity::Warning,
        inert,
        why,
    }
}

const NO: &[&str] = &["no"];
const EMPTY: &[&str] = &[""];
const INSTALL: &str = "a Postfix installation path; mailgate installs its own files";
const NO_LOCAL: &str = "mailgate delivers no mail locally";
static TABLE: &[Unimplemented] = &[
    // After-queue filtering, rewriting and local delivery (the drop-in issue).
    e(
        "content_filter",
        EMPTY,
        "after-queue content filters are not implemented: mail would go out unscanned \
         (use the built-in scanner: content_scanner)",
    ),
    e(
        "smtpd_milters",
        EMPTY,
        "milters are not implemented: mail would pass unchecked by them",
    ),
    e(
        "non_smtpd_milters",
        EMPTY,
        "milters are not implemented: mail would pass unchecked by them",
    ),
    w(
        "receive_override_options",
        EMPTY,
        "only meaningful with content_filter, which is not implemented",
    ),
    w(
        "virtual_alias_maps",
        EMPTY,
        "address rewriting is not implemented",
    ),
    w(
        "canonical_maps",
        EMPTY,
        "address rewriting is not implemented",
    ),
    w(
        "sender_canonical_maps",
        EMPTY,
        "address rewriting is not implemented",
    ),
    w(
        "recipient_canonical_maps",
        EMPTY,
        "address rewriting is not implemented",
    ),
    w("alias_maps", EMPTY, NO_LOCAL),
    w("alias_database", EMPTY, NO_LOCAL),
    w("local_recipient_maps", EMPTY, NO_LOCAL),
    w(
        "mydestination",
        EMPTY,
        "mailgate delivers no mail locally: mail for these domains is refused unless they \
         are in relay_domains",
    ),
    w("biff", NO, NO_LOCAL),
    w(
        "mynetworks_style",
        &["host"],
        "not implemented: only the clients listed in mynetworks are trusted",
    ),
    w(
        "defer_transports",
        EMPTY,
        "not implemented: no transport is held back",
    ),
    w(
        "smtp_send_xforward_command",
        NO,
        "XFORWARD is not implemented: the next hop does not learn the original client",
    ),
    w(
        "allow_percent_hack",
        NO,
        "mailgate refuses user%domain addresses and never rewrites them",
    ),
    w(
        "swap_bangpath",
        NO,
        "mailgate refuses host!user addresses and never rewrites them",
    ),
    w(
        "resolve_dequoted_address",
        &["yes"],
        "mailgate always refuses quoted local parts that hide a destination",
    ),
    w(
        "always_add_missing_headers",
        NO,
        "cleanup adds only Message-ID and Date when they are missing",
    ),
    w(
        "local_header_rewrite_clients",
        &["permit_inet_interfaces"],
        "header rewriting is not implemented",
    ),
    // Address verification.
    w(
        "address_verify_map",
        EMPTY,
        "address verification is not implemented",
    ),
    w(
        "unverified_recipient_reject_code",
        &["450"],
        "address verification is not implemented",
    ),
    // SMTP AUTH.
    e("smtpd_sasl_auth_enable", NO, "SMTP AUTH is not implemented"),
    e(
        "smtpd_sender_login_maps",
        EMPTY,
        "SMTP AUTH is not implemented",
    ),
    w(
        "smtpd_sasl_type",
        &["cyrus"],
        "SMTP AUTH is not implemented",
    ),
    w(
        "smtpd_sasl_path",
        &["smtpd"],
        "SMTP AUTH is not implemented",
    ),
    w(
        "smtpd_sasl_security_options",
        &["noanonymous"],
        "SMTP AUTH is not implemented",
    ),
    w(
        "smtpd_sasl_local_domain",
        EMPTY,
        "SMTP AUTH is not implemented",
    ),
    w(
        "smtpd_sasl_authenticated_header",
        NO,
        "SMTP AUTH is not implemented",
    ),
    w(
        "broken_sasl_auth_clients",
        NO,
        "SMTP AUTH is not implemented",
    ),
    e(
        "smtpd_client_auth_rate_limit",
        &["0"],
        "SMTP AUTH is not implemented, so there is nothing to limit yet",
    ),
    // TLS.
    e(
        "smtpd_client_new_tls_session_rate_limit",
        &["0"],
        "TLS is not implemented, so there is nothing to limit yet",
    ),
    e(
        "smtpd_tls_security_level",
        &["", "none"],
        "TLS is not implemented",
    ),
    e("smtpd_use_tls", NO, "TLS is not implemented"),
    e("smtpd_tls_auth_only", NO, "TLS is not implemented"),
    w("smtpd_tls_cert_file", EMPTY, "TLS is not implemented"),
    w(
        "smtpd_tls_key_file",
        &["", "$smtpd_tls_cert_file"],
        "TLS is not implemented",
    ),
    w("smtpd_tls_CAfile", EMPTY, "TLS is not implemented"),
    w("smtpd_tls_CApath", EMPTY, "TLS is not implemented"),
    w("smtpd_tls_loglevel", &["0"], "TLS is not implemented"),
    w("smtpd_tls_received_header", NO, "TLS is not implemented"),
    w(
        "smtpd_tls_session_cache_database",
        EMPTY,
        "TLS is not implemented",
    ),
    e(
        "smtp_tls_security_level",
        &["", "none", "may"],
        "TLS is not implemented: mail would leave in clear text",
    ),
    e(
        "smtp_use_tls",
        NO,
        "TLS is not implemented: mail would leave in clear text",
    ),
    w("smtp_tls_CAfile", EMPTY, "TLS is not implemented"),
    w("smtp_tls_CApath", EMPTY, "TLS is not implemented"),
    w("smtp_tls_loglevel", &["0"], "TLS is not implemented"),
    w(
        "smtp_tls_session_cache_database",
        EMPTY,
        "TLS is not implemented",
    ),
    w(
        "tls_random_source",
        &["dev:/dev/urandom"],
        "TLS is not implemented",
    ),
    // The SMTP server.
    w(
        "smtpd_etrn_restrictions",
        EMPTY,
        "the ETRN command is not implemented (answered 502)",
    ),
    w(
        "debug_peer_list",
        EMPTY,
        "per-client debug logging is not implemented",
    ),
    w(
        "debug_peer_level",
        &["2"],
        "per-client debug logging is not implemented",
    ),
    // Process management (see SECURITY.md for why workers are not recycled).
    w(
        "max_use",
        &["100"],
        "workers serve many clients and are not recycled after max_use",
    ),
    w("max_idle", &["100s"], "workers are not stopped when idle"),
    w("daemon_timeout", &["18000s"], "not implemented"),
    w("command_time_limit", &["1000s"], "not implemented"),
    w("in_flow_delay", &["1s"], "not implemented"),
    w(
        "compatibility_level",
        &["3.6"],
        "mailgate always uses the defaults of Postfix's compatibility level 3.6",
    ),
    // Postfix installation paths.
    w("html_directory", &["no"], INSTALL),
    w("manpage_directory", &["/usr/share/man"], INSTALL),
    w("readme_directory", &["no"], INSTALL),
    w("sample_directory", &["/etc/mailgate"], INSTALL),
    w("sendmail_path", &["/usr/sbin/sendmail"], INSTALL),
    w("newaliases_path", &["/usr/bin/newaliases"], INSTALL),
    w("mailq_path", &["/usr/bin/mailq"], INSTALL),
    w("setgid_group", &["postdrop"], INSTALL),
    w("command_directory", &["/usr/sbin"], INSTALL),
    w(
        "config_directory",
        &["/etc/mailgate"],
        "mailgate takes its configuration directory from -c",
    ),
    w(
        "inet_protocols",
        &["all"],
        "not implemented: the listeners and the DNS lookups use IPv4 and IPv6 as available",
    ),
];

/// The entry for a parameter that mailgate accepts without implementing it.
pub fn find(name: &str) -> Option<&'static Unimplemented> {
    TABLE.iter().find(|u| u.name == name)
}

/// Every entry, for `mailgate config` and the documentation.
pub fn all() -> &'static [Unimplemented] {
    TABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_a_known_parameter_once() {
        let mut seen = std::collections::HashSet::new();
        for entry in all() {
            assert!(seen.insert(entry.name), "duplicate {}", entry.name);
            let param = crate::params::find(entry.name)
                .unwrap_or_else(|| panic!("{} is not in params.rs", entry.name));
            // The default asks for nothing mailgate lacks.
            assert!(
                entry.inert.contains(&param.default),
                "{}: default {:?} is not inert",
                entry.name,
                param.default
            );
        }
    }
}
