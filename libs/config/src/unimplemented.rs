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
    w(
        "milter_unknown_command_macros",
        EMPTY,
        "unknown SMTP commands are not shown to milters",
    ),
    w(
        "alias_database",
        EMPTY,
        "there is no newaliases: alias_maps tables are read from their text source",
    ),
    w("biff", NO, NO_LOCAL),
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
    e(
        "smtp_address_verify_target",
        &["rcpt"],
        "probes end after RCPT TO: an address the next hop refuses only after DATA \
         would be taken as deliverable",
    ),
    // SMTP AUTH.
    w(
        "smtpd_sasl_local_domain",
        EMPTY,
        "no realm is appended: the backend gets the login as the client sent it",
    ),
    // TLS.
    e(
        "smtpd_client_new_tls_session_rate_limit",
        &["0"],
        "the rate of new TLS sessions per client is not limited",
    ),
    w(
        "smtpd_tls_CAfile",
        EMPTY,
        "smtpd asks for no client certificates, so it verifies none",
    ),
    w(
        "smtpd_tls_CApath",
        EMPTY,
        "smtpd asks for no client certificates, so it verifies none",
    ),
    w(
        "smtpd_tls_fingerprint_digest",
        &["sha256"],
        "smtpd asks for no client certificates",
    ),
    w(
        "smtpd_tls_loglevel",
        &["0", "1"],
        "TLS connections are logged as at Postfix's level 1; there is no more detail",
    ),
    w(
        "smtp_tls_loglevel",
        &["0", "1"],
        "TLS connections are logged as at Postfix's level 1; there is no more detail",
    ),
    w(
        "smtpd_tls_session_cache_database",
        EMPTY,
        "sessions are resumed from memory and with session tickets, not from a database",
    ),
    w(
        "smtpd_tls_session_cache_timeout",
        &["3600s", "3600"],
        "resumed sessions and tickets follow rustls's own lifetimes",
    ),
    w(
        "smtp_tls_session_cache_database",
        EMPTY,
        "relay keeps connections open for reuse instead of caching TLS sessions",
    ),
    w(
        "smtp_tls_session_cache_timeout",
        &["3600s", "3600"],
        "relay does not cache TLS sessions",
    ),
    w(
        "smtpd_tls_dh1024_param_file",
        EMPTY,
        "no finite-field Diffie-Hellman: key exchange is ECDHE (X25519, P-256, P-384)",
    ),
    w(
        "smtpd_tls_eecdh_grade",
        &["auto"],
        "the ECDHE groups are rustls's (X25519, P-256, P-384)",
    ),
    w(
        "smtpd_tls_always_issue_session_ids",
        &["yes"],
        "session resumption is always offered",
    ),
    w(
        "tls_preempt_cipherlist",
        NO,
        "the server's cipher suite order is rustls's (AES-256-GCM first)",
    ),
    w("tls_ssl_options", EMPTY, "there are no OpenSSL options"),
    w(
        "tls_high_cipherlist",
        EMPTY,
        "every cipher suite mailgate offers is of the high grade",
    ),
    w(
        "tls_medium_cipherlist",
        EMPTY,
        "every cipher suite mailgate offers is of the high grade",
    ),
    w(
        "tls_random_source",
        &["dev:/dev/urandom"],
        "TLS takes its randomness from the kernel (getrandom)",
    ),
    w(
        "smtp_tls_cert_file",
        EMPTY,
        "relay presents no client certificate",
    ),
    w(
        "smtp_tls_key_file",
        &["", "$smtp_tls_cert_file"],
        "relay presents no client certificate",
    ),
    w(
        "smtp_tls_eccert_file",
        EMPTY,
        "relay presents no client certificate",
    ),
    w(
        "smtp_tls_eckey_file",
        &["", "$smtp_tls_eccert_file"],
        "relay presents no client certificate",
    ),
    w(
        "smtp_tls_chain_files",
        EMPTY,
        "relay presents no client certificate",
    ),
    w(
        "smtp_tls_connection_reuse",
        NO,
        "relay reuses its connections (TLS ones too) without a tlsproxy",
    ),
    e(
        "smtpd_tls_ask_ccert",
        NO,
        "client certificates are not requested, so permit_tls_clientcerts and \
         check_ccert_access could never match",
    ),
    e(
        "smtpd_tls_req_ccert",
        NO,
        "client certificates are not requested; a client without one would be let in",
    ),
    e(
        "smtp_tls_wrappermode",
        NO,
        "relay does not speak TLS from the first byte (SMTPS); deliveries to such a \
         port would fail",
    ),
    // The SMTP server.
    w(
        "smtpd_etrn_restrictions",
        EMPTY,
        "the ETRN command is not implemented (answered 502)",
    ),
    w(
        "debug_peer_level",
        &["2"],
        "debug_peer_list clients get the SMTP dialogue logged line by line, one level of \
         detail whatever the number",
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
