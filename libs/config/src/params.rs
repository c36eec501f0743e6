//! The table of known main.cf parameters: name, default and value kind.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

/// How a parameter's value is interpreted and validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Bool,
    Int,
    /// A time value; the char is the unit assumed when the value has none.
    Time(char),
    /// A byte count.
    Size,
    /// A decimal number such as a spam score level (6.2, -999).
    Score,
    List,
    /// One of a fixed set of words (any case).
    Choice(&'static [&'static str]),
    /// Text whose `$name`s are expanded later, by the service, with names
    /// of its own (default_rbl_reply's $rbl_code): kept as written.
    Raw,
}

#[derive(Debug)]
pub(crate) struct Param {
    pub name: &'static str,
    pub default: &'static str,
    pub kind: Kind,
}

const fn p(name: &'static str, default: &'static str, kind: Kind) -> Param {
    Param {
        name,
        default,
        kind,
    }
}

use Kind::{Bool, Choice, Int, List, Raw, Score, Size, Str, Time};

const TEMPFAIL: &[&str] = &["defer_if_permit", "defer"];

/// `myhostname` and `mydomain` have computed defaults (see `MainConfig`); their entries
/// here carry an empty placeholder.
static PARAMS: &[Param] = &[
    // Identity.
    p("myhostname", "", Str),
    p("mydomain", "", Str),
    p("myorigin", "$myhostname", Str),
    p("mail_name", "mailgate", Str),
    p("mail_owner", "mailgate", Str),
    // The users smtpd and relay run as (mailgate): their own uids, so the
    // services they must not call can refuse them.
    p("smtpd_owner", "mailgate-smtpd", Str),
    p("relay_owner", "mailgate-relay", Str),
    p("syslog_name", "mailgate", Str),
    p("maillog_file", "", Str),
    p("compatibility_level", "3.6", Str),
    p("biff", "no", Bool),
    // Directories and Postfix install paths (accepted so existing main.cf files load).
    p("queue_directory", "/var/spool/mailgate", Str),
    p("daemon_directory", "", Str),
    p("data_directory", "/var/lib/mailgate", Str),
    p("command_directory", "/usr/sbin", Str),
    p("config_directory", "/etc/mailgate", Str),
    p("html_directory", "no", Str),
    p("manpage_directory", "/usr/share/man", Str),
    p("readme_directory", "no", Str),
    p("sample_directory", "/etc/mailgate", Str),
    p("sendmail_path", "/usr/sbin/sendmail", Str),
    p("newaliases_path", "/usr/bin/newaliases", Str),
    p("mailq_path", "/usr/bin/mailq", Str),
    p("setgid_group", "postdrop", Str),
    // Destinations and routing.
    // Empty on purpose: a gateway delivers nothing locally.
    p("mydestination", "", List),
    p("mynetworks", "127.0.0.0/8 [::1]/128", List),
    p("mynetworks_style", "host", Str),
    p("inet_interfaces", "all", List),
    p("inet_protocols", "all", List),
    p("relay_domains", "", List),
    p("relay_recipient_maps", "", List),
    p("transport_maps", "", List),
    p("relayhost", "", Str),
    p("default_transport", "smtp", Str),
    p("relay_transport", "relay", Str),
    p(
        "local_transport",
        "error:local mail delivery is disabled",
        Str,
    ),
    p("defer_transports", "", List),
    p(
        "parent_domain_matches_subdomains",
        "debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,qmqpd_authorized_clients,relay_domains,smtpd_access_maps",
        List,
    ),
    p(
        "local_recipient_maps",
        "proxy:unix:passwd.byname $alias_maps",
        List,
    ),
    p("alias_maps", "", List),
    p("alias_database", "", List),
    p("virtual_alias_maps", "", List),
    p("canonical_maps", "", List),
    p("sender_canonical_maps", "", List),
    p("recipient_canonical_maps", "", List),
    p("recipient_delimiter", "", Str),
    p("virtual_alias_domains", "$virtual_alias_maps", List),
    p("virtual_alias_recursion_limit", "1000", Int),
    p("virtual_alias_expansion_limit", "1000", Int),
    p("propagate_unmatched_extensions", "canonical, virtual", List),
    p("content_filter", "", Str),
    p("smtpd_authorized_xforward_hosts", "", List),
    p("receive_override_options", "", List),
    p("dns_nameservers", "", List),
    p("disable_dns_lookups", "no", Bool),
    p("smtp_host_lookup", "dns", List),
    // Message limits.
    p("message_size_limit", "10240000", Size),
    p("header_size_limit", "102400", Size),
    p("line_length_limit", "2048", Int),
    p("hopcount_limit", "50", Int),
    p("always_add_missing_headers", "no", Bool),
    p("strict_rfc821_envelopes", "no", Bool),
    p("allow_percent_hack", "no", Bool),
    p("swap_bangpath", "no", Bool),
    p("resolve_dequoted_address", "yes", Bool),
    p("smtputf8_enable", "yes", Bool),
    p("header_checks", "", List),
    p("body_checks", "", List),
    p("mime_header_checks", "$header_checks", List),
    p("nested_header_checks", "$header_checks", List),
    // Content filtering (mailgate): the scanner service and what it decides.
    p("content_scanner", "", Str),
    p("scanner_owner", "mailgate-scan", Str),
    p("scanner_directory", "$data_directory/scanner", Str),
    p("scanner_timeout", "120s", Time('s')),
    p("scanner_failure_action", "defer", Str),
    p("clamd_socket", "", Str),
    p("clamd_timeout", "60s", Time('s')),
    // auto, instream or fildes; checked by ClamdTransfer (clamd.rs).
    p("clamd_transfer", "auto", Str),
    p("virus_action", "reject", Str),
    p("virus_admin", "", Str),
    p("banned_action", "reject", Str),
    p("banned_unchecked_action", "reject", Str),
    p("banned_filename_re", "", List),
    p(
        "banned_filename_extensions",
        "exe scr pif bat cmd com vbs vbe js jse hta cpl lnk msi msp wsf wsh reg dll ocx shb shs vxd ps1 jar application gadget msc iso img vhd vhdx one",
        List,
    ),
    p(
        "banned_mime_types",
        "application/x-msdownload application/x-msdos-program application/x-dosexec application/x-executable application/hta application/x-ms-shortcut",
        List,
    ),
    p("banned_executable_content", "yes", Bool),
    p("scanner_archive_depth", "3", Int),
    p("scanner_archive_max_size", "52428800", Size),
    p("scanner_archive_max_ratio", "100", Int),
    p("scanner_archive_max_entries", "1000", Int),
    p("spam_message_size_limit", "409600", Size),
    p("spam_tag_level", "-999", Score),
    // SpamAssassin's own required_score: X-Spam-Flag marks what SpamAssassin would.
    p("spam_tag2_level", "5", Score),
    p("spam_kill_level", "6.9", Score),
    p("spam_kill_action", "reject", Str),
    p("spam_subject_tag", "***SPAM***", Str),
    p("spam_lovers_maps", "", List),
    p("virus_lovers_maps", "", List),
    p("banned_files_lovers_maps", "", List),
    p("bypass_spam_checks_maps", "", List),
    p("bypass_virus_checks_maps", "", List),
    p("bypass_banned_checks_maps", "", List),
    // SMTP server.
    p("smtpd_banner", "$myhostname ESMTP $mail_name", Str),
    p(
        "smtpd_relay_restrictions",
        "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
        List,
    ),
    p("smtpd_recipient_restrictions", "", List),
    p("smtpd_client_restrictions", "", List),
    p("smtpd_helo_restrictions", "", List),
    p("smtpd_sender_restrictions", "", List),
    p("smtpd_data_restrictions", "", List),
    p("smtpd_end_of_data_restrictions", "", List),
    p("smtpd_etrn_restrictions", "", List),
    p("smtpd_restriction_classes", "", List),
    p("smtpd_null_access_lookup_key", "<>", Str),
    p("smtpd_sender_login_maps", "", List),
    p("smtpd_helo_required", "no", Bool),
    p("smtpd_delay_reject", "yes", Bool),
    p("smtpd_reject_unlisted_sender", "no", Bool),
    p("smtpd_peername_lookup", "yes", Bool),
    p("smtpd_log_access_permit_actions", "", List),
    p("smtpd_forbid_unauth_pipelining", "no", Bool),
    p(
        "smtpd_forbidden_commands",
        "CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}}",
        List,
    ),
    p("smtpd_relay_before_recipient_restrictions", "yes", Bool),
    p("disable_vrfy_command", "no", Bool),
    // Set to "yes" for a service under stress (all its slots busy); the
    // ${stress?{...}:{...}} defaults below shrink then.
    p("stress", "", Str),
    p("smtpd_timeout", "${stress?{10}:{300}}s", Time('s')),
    p("smtpd_per_record_deadline", "${stress?{yes}:{no}}", Bool),
    p(
        "smtpd_per_request_deadline",
        "$smtpd_per_record_deadline",
        Bool,
    ),
    p("smtpd_min_data_rate", "500", Int),
    p("smtpd_hard_error_limit", "${stress?{1}:{20}}", Int),
    p("smtpd_soft_error_limit", "10", Int),
    p("smtpd_error_sleep_time", "1s", Time('s')),
    p("smtpd_junk_command_limit", "100", Int),
    p("smtpd_recipient_limit", "1000", Int),
    p("smtpd_recipient_overshoot_limit", "1000", Int),
    p("smtpd_client_connection_count_limit", "50", Int),
    p("smtpd_client_connection_rate_limit", "0", Int),
    p("smtpd_client_message_rate_limit", "0", Int),
    p("smtpd_client_recipient_rate_limit", "0", Int),
    p("smtpd_client_event_limit_exceptions", "$mynetworks", List),
    p("smtpd_client_new_tls_session_rate_limit", "0", Int),
    p("smtpd_client_auth_rate_limit", "0", Int),
    p("anvil_rate_time_unit", "60s", Time('s')),
    p("anvil_status_update_time", "600s", Time('s')),
    // Postfix 3.9's values. Only <CR><LF>.<CR><LF> ever ends DATA, and a
    // bare LF ends a line, whatever the value ("no" too, unlike Postfix);
    // "note" also logs it, "reject" refuses it.
    p(
        "smtpd_forbid_bare_newline",
        "normalize",
        Choice(&["normalize", "yes", "no", "note", "reject"]),
    ),
    p("smtpd_forbid_bare_newline_exclusions", "$mynetworks", List),
    p("smtpd_forbid_bare_newline_reject_code", "550", Int),
    // RFC 6531: a non-ASCII address needs SMTPUTF8 on MAIL FROM. Postfix's
    // default is no; mailgate's is yes.
    p("strict_smtputf8", "yes", Bool),
    // mailgate: the message content all smtpd sessions may hold in memory
    // before cleanup has it; past it, 452 4.3.1.
    p("smtpd_message_memory_limit", "536870912", Size),
    p("smtpd_reject_unlisted_recipient", "yes", Bool),
    // Milters (smtpd's; see libs/milter). The lists keep their { ... }
    // groups, so they are read whole and split by the milter parser.
    p("smtpd_milters", "", Str),
    p("non_smtpd_milters", "", Str),
    p("smtpd_milter_maps", "", Str),
    p("milter_protocol", "6", Choice(&["6"])),
    // Postfix before 3.11 (and compatibility level 3.6): tempfail.
    p(
        "milter_default_action",
        "tempfail",
        Choice(&["accept", "reject", "tempfail", "quarantine", "shutdown"]),
    ),
    p("milter_connect_timeout", "30s", Time('s')),
    p("milter_command_timeout", "30s", Time('s')),
    p("milter_content_timeout", "300s", Time('s')),
    p(
        "milter_connect_macros",
        "j {daemon_name} {daemon_addr} v _",
        Str,
    ),
    p(
        "milter_helo_macros",
        "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
        Str,
    ),
    p(
        "milter_mail_macros",
        "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
        Str,
    ),
    p(
        "milter_rcpt_macros",
        "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
        Str,
    ),
    p("milter_data_macros", "i", Str),
    p("milter_end_of_header_macros", "i", Str),
    p("milter_end_of_data_macros", "i", Str),
    p("milter_unknown_command_macros", "", Str),
    p("milter_macro_daemon_name", "$myhostname", Str),
    p("milter_macro_v", "$mail_name", Str),
    p("milter_macro_defaults", "", Str),
    p("milter_header_checks", "", Str),
    p(
        "local_header_rewrite_clients",
        "permit_inet_interfaces",
        List,
    ),
    p("unknown_relay_recipient_reject_code", "550", Int),
    p("unknown_virtual_alias_reject_code", "550", Int),
    p("unknown_local_recipient_reject_code", "550", Int),
    p("relay_domains_reject_code", "554", Int),
    p("access_map_reject_code", "554", Int),
    p("access_map_defer_code", "450", Int),
    p("defer_code", "450", Int),
    p("reject_code", "554", Int),
    p("unknown_client_reject_code", "450", Int),
    p("unknown_hostname_reject_code", "450", Int),
    p("unknown_address_reject_code", "450", Int),
    p("non_fqdn_reject_code", "504", Int),
    p("invalid_hostname_reject_code", "501", Int),
    p("multi_recipient_bounce_reject_code", "550", Int),
    p("plaintext_reject_code", "450", Int),
    p("maps_rbl_reject_code", "554", Int),
    // What a DNS failure does to reject_unknown_{helo_hostname,sender_domain,
    // recipient_domain}: defer_if_permit (answer 4xx unless another
    // restriction rejects) or defer (answer 4xx at once).
    p(
        "reject_tempfail_action",
        "defer_if_permit",
        Choice(TEMPFAIL),
    ),
    p(
        "unknown_helo_hostname_tempfail_action",
        "$reject_tempfail_action",
        Choice(TEMPFAIL),
    ),
    p(
        "unknown_address_tempfail_action",
        "$reject_tempfail_action",
        Choice(TEMPFAIL),
    ),
    // mailgate: what a DNS list lookup that fails does. Postfix lets the
    // client through (dunno); mailgate fails closed by default.
    p(
        "rbl_tempfail_action",
        "defer_if_permit",
        Choice(&["defer_if_permit", "defer", "dunno"]),
    ),
    p(
        "default_rbl_reply",
        "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}",
        Raw,
    ),
    p("rbl_reply_maps", "", List),
    p("show_user_unknown_table_name", "yes", Bool),
    // reject_unverified_recipient and reject_unverified_sender (smtpd's
    // side of address verification): Postfix's names and defaults.
    p("unverified_recipient_reject_code", "450", Int),
    p("unverified_recipient_defer_code", "450", Int),
    p(
        "unverified_recipient_tempfail_action",
        "$reject_tempfail_action",
        Choice(TEMPFAIL),
    ),
    p("unverified_recipient_reject_reason", "", Str),
    p("unverified_sender_reject_code", "450", Int),
    p("unverified_sender_defer_code", "450", Int),
    p(
        "unverified_sender_tempfail_action",
        "$reject_tempfail_action",
        Choice(TEMPFAIL),
    ),
    p("unverified_sender_reject_reason", "", Str),
    p("address_verify_service_name", "verify", Str),
    p("address_verify_poll_count", "${stress?{1}:{3}}", Int),
    p("address_verify_poll_delay", "3s", Time('s')),
    // mailgate: how long smtpd waits for the verify service's answer before
    // it counts as failed (a 4xx, never a pass).
    p("address_verify_service_timeout", "10s", Time('s')),
    // The verify service: its cache (a redb file, or Redis shared by
    // several gateways; empty: in memory only, as in Postfix) and probes.
    p(
        "address_verify_map",
        "redb:$data_directory/verify_cache.redb",
        Str,
    ),
    // mailgate: the longest a Redis operation of the cache may take.
    p("address_verify_map_timeout", "5s", Time('s')),
    p("address_verify_positive_expire_time", "31d", Time('d')),
    p("address_verify_positive_refresh_time", "7d", Time('d')),
    p("address_verify_negative_expire_time", "3d", Time('d')),
    p("address_verify_negative_refresh_time", "3h", Time('h')),
    p("address_verify_negative_cache", "yes", Bool),
    p("address_verify_cache_cleanup_interval", "12h", Time('s')),
    p("double_bounce_sender", "double-bounce", Str),
    p("address_verify_sender", "$double_bounce_sender", Str),
    p("address_verify_sender_ttl", "0s", Time('s')),
    // Postfix's default is a quarter of qmgr_message_active_limit's.
    p("address_verify_pending_request_limit", "5000", Int),
    p("address_verify_transport_maps", "$transport_maps", List),
    p("address_verify_relayhost", "$relayhost", Str),
    p(
        "address_verify_default_transport",
        "$default_transport",
        Str,
    ),
    p("address_verify_relay_transport", "$relay_transport", Str),
    p("address_verify_local_transport", "$local_transport", Str),
    p("smtp_address_verify_target", "rcpt", Str),
    // mailgate: check_client_score, policyd-weight's weighted checks.
    p("client_score_dnsbl_sites", "", List),
    p("client_score_rhsbl_sites", "", List),
    p("client_score_no_reverse_name", "1.0", Score),
    p("client_score_forged_reverse_name", "1.5", Score),
    p("client_score_helo_invalid", "2.5", Score),
    p("client_score_helo_numeric", "2.5", Score),
    p("client_score_helo_unresolvable", "1.5", Score),
    p("client_score_helo_mismatch", "0.5", Score),
    p("client_score_helo_is_client", "-1.0", Score),
    p("client_score_sender_domain_unknown", "2.5", Score),
    p("client_score_sender_domain_mismatch", "0.5", Score),
    p("client_score_defer_level", "3.5", Score),
    p("client_score_reject_level", "5", Score),
    p(
        "client_score_reject_reply",
        "550 5.7.1 Mail appeared to be SPAM or forged. Ask your Mail/DNS-Administrator to correct HELO and DNS MX settings or to get removed from DNSBLs",
        Str,
    ),
    p(
        "client_score_defer_reply",
        "450 4.7.1 Mail appeared to be SPAM or forged; please try again later",
        Str,
    ),
    // mailgate: sender authentication. check_spf (smtpd) with policyd-spf's
    // settings; DKIM and DMARC verification (scanner).
    p("authserv_id", "$myhostname", Str),
    p(
        "spf_helo_reject",
        "fail",
        Choice(&["fail", "softfail", "not_pass", "null", "no", "no_check"]),
    ),
    p(
        "spf_mail_from_reject",
        "fail",
        Choice(&["fail", "softfail", "not_pass", "no", "no_check"]),
    ),
    p("spf_permerror_reject", "no", Bool),
    p("spf_temperror_defer", "yes", Bool),
    p("spf_received_header", "yes", Bool),
    p(
        "spf_reject_reason",
        "Message $rejectdefer due to: $spf. Please see http://www.openspf.net/Why?s=$scope;id=$identity;ip=$client_address;r=$receiver",
        Raw,
    ),
    p("dkim_verify", "no", Bool),
    p("dmarc_verify", "no", Bool),
    p(
        "dmarc_reject_action",
        "reject",
        Choice(&["reject", "quarantine", "tag"]),
    ),
    p(
        "dmarc_quarantine_action",
        "quarantine",
        Choice(&["reject", "quarantine", "tag"]),
    ),
    p("dmarc_tempfail_action", "defer", Choice(&["defer", "tag"])),
    // DKIM signing (cleanup, with the keys in tlskeys).
    p("dkim_signing_table", "", List),
    p("dkim_key_table", "", Str),
    p(
        "dkim_sign_headers",
        "From, Reply-To, Subject, Date, Message-ID, To, Cc, In-Reply-To, References, MIME-Version, Content-Type, Content-Transfer-Encoding",
        List,
    ),
    // ARC sealing (RFC 8617) of mail from outside (cleanup, with the key
    // in tlskeys).
    p("arc_sealing", "no", Bool),
    p("arc_seal_key", "", Str),
    p(
        "arc_seal_headers",
        "$dkim_sign_headers, DKIM-Signature, Authentication-Results",
        List,
    ),
    // Policy delegation client (check_policy_service): Postfix's names and defaults.
    p("smtpd_policy_service_timeout", "100s", Time('s')),
    p("smtpd_policy_service_max_idle", "300s", Time('s')),
    p("smtpd_policy_service_max_ttl", "1000s", Time('s')),
    p("smtpd_policy_service_request_limit", "0", Int),
    p("smtpd_policy_service_try_limit", "2", Int),
    p("smtpd_policy_service_retry_delay", "1s", Time('s')),
    p(
        "smtpd_policy_service_default_action",
        "451 4.3.5 Server configuration problem",
        Str,
    ),
    p("smtpd_policy_service_policy_context", "", Str),
    p("debug_peer_list", "", List),
    p("debug_peer_level", "2", Int),
    // SMTP AUTH (smtpd's AUTH command, checked by Dovecot or the IMAP server).
    p("smtpd_sasl_auth_enable", "no", Bool),
    p("smtpd_sasl_type", "cyrus", Str),
    p("smtpd_sasl_path", "smtpd", Str),
    p("smtpd_sasl_service", "smtp", Str),
    p("smtpd_sasl_security_options", "noanonymous", List),
    p(
        "smtpd_sasl_tls_security_options",
        "$smtpd_sasl_security_options",
        List,
    ),
    p("smtpd_sasl_local_domain", "", Str),
    p("smtpd_sasl_authenticated_header", "no", Bool),
    p("smtpd_sasl_exceptions_networks", "", List),
    p("broken_sasl_auth_clients", "no", Bool),
    // mailgate: the delay before a failed AUTH is answered, against
    // password guessing (Dovecot's auth_failure_delay).
    p("smtpd_sasl_failure_delay", "2s", Time('s')),
    // mailgate: how smtpd reaches an imap:/imaps: server for AUTH.
    p("smtpd_sasl_imap_tls_security_level", "may", Str),
    p("smtpd_sasl_imap_tls_CAfile", "", Str),
    p("smtpd_sasl_timeout", "10s", Time('s')),
    // TLS in smtpd: certificates are read by tlskeys, never by smtpd.
    p("smtpd_tls_security_level", "", Str),
    p("smtpd_use_tls", "no", Bool),
    p("smtpd_enforce_tls", "no", Bool),
    p("smtpd_tls_cert_file", "", Str),
    p("smtpd_tls_key_file", "$smtpd_tls_cert_file", Str),
    p("smtpd_tls_eccert_file", "", Str),
    p("smtpd_tls_eckey_file", "$smtpd_tls_eccert_file", Str),
    p("smtpd_tls_dcert_file", "", Str),
    p("smtpd_tls_dkey_file", "$smtpd_tls_dcert_file", Str),
    p("smtpd_tls_chain_files", "", List),
    p("smtpd_tls_CAfile", "", Str),
    p("smtpd_tls_CApath", "", Str),
    p("smtpd_tls_loglevel", "0", Int),
    p("smtpd_tls_received_header", "no", Bool),
    p("smtpd_tls_auth_only", "no", Bool),
    p("smtpd_tls_wrappermode", "no", Bool),
    p("smtpd_tls_ask_ccert", "no", Bool),
    p("smtpd_tls_req_ccert", "no", Bool),
    p("smtpd_tls_protocols", "!SSLv2, !SSLv3", List),
    p("smtpd_tls_mandatory_protocols", "!SSLv2, !SSLv3", List),
    p("smtpd_tls_ciphers", "medium", Str),
    p("smtpd_tls_mandatory_ciphers", "medium", Str),
    p("smtpd_tls_exclude_ciphers", "", List),
    p("smtpd_tls_mandatory_exclude_ciphers", "", List),
    p("smtpd_tls_session_cache_database", "", Str),
    p("smtpd_tls_session_cache_timeout", "3600s", Time('s')),
    p("smtpd_tls_dh1024_param_file", "", Str),
    p("smtpd_tls_eecdh_grade", "auto", Str),
    p("smtpd_tls_always_issue_session_ids", "yes", Bool),
    p("smtpd_tls_fingerprint_digest", "sha256", Str),
    p("smtpd_starttls_timeout", "300s", Time('s')),
    p("tls_preempt_cipherlist", "no", Bool),
    p("tls_ssl_options", "", List),
    p("tls_random_source", "dev:/dev/urandom", Str),
    p("tls_high_cipherlist", "", Str),
    p("tls_medium_cipherlist", "", Str),
    // mailgate: tlskeys, the process that holds the private keys.
    p("tlskeys_owner", "mailgate-tls", Str),
    p("tlskeys_directory", "$data_directory/tlskeys", Str),
    p("tlskeys_timeout", "10s", Time('s')),
    // TLS in relay (the SMTP client).
    p("smtp_tls_security_level", "", Str),
    p("smtp_use_tls", "no", Bool),
    p("smtp_enforce_tls", "no", Bool),
    p("smtp_tls_enforce_peername", "yes", Bool),
    p("smtp_tls_policy_maps", "", List),
    p("smtp_tls_CAfile", "", Str),
    p("smtp_tls_CApath", "", Str),
    p("smtp_tls_loglevel", "0", Int),
    p("smtp_tls_protocols", "!SSLv2, !SSLv3", List),
    p("smtp_tls_mandatory_protocols", "!SSLv2, !SSLv3", List),
    p("smtp_tls_ciphers", "medium", Str),
    p("smtp_tls_mandatory_ciphers", "medium", Str),
    p("smtp_tls_exclude_ciphers", "", List),
    p("smtp_tls_mandatory_exclude_ciphers", "", List),
    p("smtp_tls_verify_cert_match", "hostname", List),
    p("smtp_tls_secure_cert_match", "nexthop, dot-nexthop", List),
    p("smtp_tls_cert_file", "", Str),
    p("smtp_tls_key_file", "$smtp_tls_cert_file", Str),
    p("smtp_tls_eccert_file", "", Str),
    p("smtp_tls_eckey_file", "$smtp_tls_eccert_file", Str),
    p("smtp_tls_dcert_file", "", Str),
    p("smtp_tls_dkey_file", "$smtp_tls_dcert_file", Str),
    p("smtp_tls_chain_files", "", List),
    p("smtp_tls_session_cache_database", "", Str),
    p("smtp_tls_session_cache_timeout", "3600s", Time('s')),
    p("smtp_tls_note_starttls_offer", "no", Bool),
    p("smtp_tls_servername", "", Str),
    p("smtp_tls_wrappermode", "no", Bool),
    p("smtp_tls_connection_reuse", "no", Bool),
    p("smtp_tls_fingerprint_digest", "sha256", Str),
    p("smtp_tls_fingerprint_cert_match", "", List),
    p("smtp_starttls_timeout", "300s", Time('s')),
    // Queue manager.
    p("minimal_backoff_time", "300s", Time('s')),
    p("maximal_backoff_time", "4000s", Time('s')),
    p("queue_run_delay", "300s", Time('s')),
    p("maximal_queue_lifetime", "5d", Time('d')),
    p("bounce_queue_lifetime", "5d", Time('d')),
    p("delay_warning_time", "0h", Time('h')),
    p("default_destination_concurrency_limit", "20", Int),
    p("default_destination_recipient_limit", "50", Int),
    p("qmgr_message_active_limit", "20000", Int),
    // SMTP client.
    p("smtp_connect_timeout", "30s", Time('s')),
    p("smtp_helo_timeout", "300s", Time('s')),
    p("smtp_mail_timeout", "300s", Time('s')),
    p("smtp_rcpt_timeout", "300s", Time('s')),
    p("smtp_data_init_timeout", "120s", Time('s')),
    p("smtp_data_xfer_timeout", "180s", Time('s')),
    p("smtp_data_done_timeout", "600s", Time('s')),
    p("smtp_quit_timeout", "300s", Time('s')),
    p("smtp_helo_name", "$myhostname", Str),
    p("smtp_mx_address_limit", "5", Int),
    p("smtp_line_length_limit", "998", Int),
    p("smtp_mx_session_limit", "2", Int),
    p("smtp_delivery_time_limit", "3600s", Time('s')),
    p("proxy_interfaces", "", List),
    p("smtp_send_xforward_command", "no", Bool),
    // LMTP client: relay started for master.cf's command `lmtp`.
    p("lmtp_connect_timeout", "0s", Time('s')),
    p("lmtp_lhlo_timeout", "300s", Time('s')),
    p("lmtp_mail_timeout", "300s", Time('s')),
    p("lmtp_rcpt_timeout", "300s", Time('s')),
    p("lmtp_data_init_timeout", "120s", Time('s')),
    p("lmtp_data_xfer_timeout", "180s", Time('s')),
    p("lmtp_data_done_timeout", "600s", Time('s')),
    p("lmtp_quit_timeout", "300s", Time('s')),
    p("lmtp_lhlo_name", "$myhostname", Str),
    p("lmtp_host_lookup", "dns", List),
    p("lmtp_mx_address_limit", "5", Int),
    p("lmtp_line_length_limit", "998", Int),
    p("lmtp_mx_session_limit", "2", Int),
    p("lmtp_send_xforward_command", "no", Bool),
    // Master and process management.
    p("default_process_limit", "100", Int),
    p("service_throttle_time", "60s", Time('s')),
    p("daemon_timeout", "18000s", Time('s')),
    p("ipc_timeout", "3600s", Time('s')),
    p("max_idle", "100s", Time('s')),
    p("max_use", "100", Int),
    p("command_time_limit", "1000s", Time('s')),
    p("in_flow_delay", "1s", Time('s')),
    p("master_drain_time", "30s", Time('s')),
    // Processes per service and runtime threads per process (mailgate).
    p("mailgate_service_processes", "auto", Str),
    p("mailgate_service_threads", "1", Int),
    // The web page (web service in master.cf, off by default).
    p("web_admin_users", "", List),
    p("web_sasl_type", "dovecot", Str),
    p("web_sasl_path", "private/auth", Str),
    p("web_tls_cert_file", "", Str),
    p("web_tls_key_file", "$web_tls_cert_file", Str),
    p("web_session_timeout", "3600s", Time('s')),
    // Spam scoring (mailgate-spam); the levels are with the scanner's parameters.
    p("spam_rules_files", "", List),
    p("spam_stock_rules_directory", "/usr/share/spamassassin", Str),
    p("spam_bayes_directory", "$data_directory/bayes", Str),
    p("spam_bayes_enabled", "yes", Bool),
    p("spam_network_tests", "no", Bool),
    p("spam_bayes_auto_learn", "no", Bool),
    p("spam_bayes_auto_learn_threshold_spam", "12.0", Score),
    p("spam_bayes_auto_learn_threshold_nonspam", "0.1", Score),
    // Greylisting (the greylist service): postgrey's semantics and defaults.
    p("greylist_delay", "300s", Time('s')),
    p("greylist_retry_window", "2d", Time('d')),
    p("greylist_max_age", "35d", Time('d')),
    p("greylist_auto_whitelist_clients", "5", Int),
    p("greylist_whitelist_clients", "", List),
    p("greylist_whitelist_recipients", "", List),
    p(
        "greylist_text",
        "Greylisted, see http://postgrey.schweikert.ch/help/%r.html",
        Str,
    ),
    p(
        "greylist_database",
        "redb:$data_directory/greylist.redb",
        Str,
    ),
    p("greylist_database_timeout", "5s", Time('s')),
    p("sandbox_mode", "enforce", Str),
    p("table_check_interval", "5s", Time('s')),
];

/// Looks up a parameter in the table.
pub(crate) fn find(name: &str) -> Option<&'static Param> {
    static INDEX: OnceLock<HashMap<&'static str, &'static Param>> = OnceLock::new();
    INDEX
        .get_or_init(|| PARAMS.iter().map(|p| (p.name, p)).collect())
        .get(name)
        .copied()
}

pub(crate) fn all() -> &'static [Param] {
    PARAMS
}

/// The known parameter closest to an unknown `name` ("did you mean"): one
/// a few edits away, or one that differs only in the order of its words.
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    let limit = (name.len() / 4).clamp(1, 3);
    let words = |n: &str| {
        let mut w: Vec<String> = n.split('_').map(str::to_string).collect();
        w.sort();
        w
    };
    let reordered = words(name);
    PARAMS
        .iter()
        .filter_map(|p| {
            let distance = edit_distance(name, p.name);
            if distance <= limit {
                Some((distance, p.name))
            } else if words(p.name) == reordered {
                Some((limit, p.name))
            } else {
                None
            }
        })
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance with adjacent transpositions counting as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// A parameter as the manual shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterDoc {
    pub name: &'static str,
    /// The built-in default, unexpanded (`$name` references kept).
    pub default: &'static str,
    /// What kind of value it takes, in words.
    pub kind: String,
    /// One line; empty when the parameter is not described yet.
    pub description: &'static str,
}

/// Every parameter in the table with its documentation, sorted by name:
/// what mailgate.cf(5) lists.
pub fn documentation() -> Vec<ParameterDoc> {
    let described: HashMap<&str, &str> =
        crate::descriptions::DESCRIPTIONS.iter().copied().collect();
    let mut docs: Vec<ParameterDoc> = PARAMS
        .iter()
        .map(|p| ParameterDoc {
            name: p.name,
            default: p.default,
            kind: match p.kind {
                Kind::Str => "text".to_string(),
                Kind::Bool => "yes or no".to_string(),
                Kind::Int => "integer".to_string(),
                Kind::Size => "size in bytes".to_string(),
                Kind::Score => "decimal number".to_string(),
                Kind::List => "list".to_string(),
                Kind::Time(unit) => format!("time (s, m, h, d or w; default unit {unit})"),
                Kind::Choice(words) => format!("one of {}", words.join(", ")),
                Kind::Raw => "text".to_string(),
            },
            description: described.get(p.name).copied().unwrap_or(""),
        })
        .collect();
    docs.sort_by_key(|d| d.name);
    docs
}

/// Postfix booleans: yes or no, any case.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if value.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

pub(crate) fn parse_int(value: &str) -> Option<i64> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

pub(crate) fn parse_size(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// A Postfix time value: a number with an optional unit s, m, h, d or w;
/// without a unit, `default_unit` applies.
pub(crate) fn parse_time(value: &str, default_unit: char) -> Option<Duration> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit = match unit {
        "" => default_unit,
        u if u.len() == 1 => u.chars().next()?.to_ascii_lowercase(),
        _ => return None,
    };
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        'w' => 604_800,
        _ => return None,
    };
    number.checked_mul(factor).map(Duration::from_secs)
}

pub(crate) fn parse_score(value: &str) -> Option<f64> {
    value.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Checks a value against its kind; the error explains the expected form.
pub(crate) fn validate(kind: Kind, value: &str) -> Result<(), String> {
    let ok = match kind {
        Kind::Str | Kind::List | Kind::Raw => true,
        Kind::Choice(words) => words.iter().any(|w| w.eq_ignore_ascii_case(value)),
        Kind::Bool => parse_bool(value).is_some(),
        Kind::Int => parse_int(value).is_some(),
        Kind::Size => parse_size(value).is_some(),
        Kind::Time(unit) => parse_time(value, unit).is_some(),
        Kind::Score => parse_score(value).is_some(),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Kind::Bool => format!("invalid boolean value \"{value}\" (use yes or no)"),
        Kind::Int => format!("invalid number \"{value}\" (expected an integer)"),
        Kind::Size => format!("invalid size \"{value}\" (expected a byte count)"),
        Kind::Score => format!("invalid score \"{value}\" (expected a number such as 6.2)"),
        Kind::Time(unit) => format!(
            "invalid time value \"{value}\" (expected a number with an optional unit s, m, h, d or w; the default unit is {unit})"
        ),
        Kind::Choice(words) => format!("invalid value \"{value}\" (expected {})", words.join(", ")),
        Kind::Str | Kind::List | Kind::Raw => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_valid_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for param in all() {
            assert!(seen.insert(param.name), "duplicate {}", param.name);
            if !param.default.contains('$') {
                assert!(
                    validate(param.kind, param.default).is_ok(),
                    "bad default for {}",
                    param.name
                );
            }
        }
    }

    #[test]
    fn suggestions_for_misspelled_names() {
        assert_eq!(suggest("sendmail_pth"), Some("sendmail_path"));
        assert_eq!(suggest("relay_domain"), Some("relay_domains"));
        assert_eq!(suggest("mynetwork"), Some("mynetworks"));
        assert_eq!(
            suggest("smtpd_relay_restrictons"),
            Some("smtpd_relay_restrictions")
        );
        assert_eq!(
            suggest("restrictions_relay_smtpd"),
            Some("smtpd_relay_restrictions")
        );
        assert_eq!(suggest("myhsotname"), Some("myhostname"));
        assert_eq!(suggest("completely_unrelated_thing"), None);
        assert_eq!(suggest("my_checks"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn documentation_lists_every_parameter_sorted() {
        let docs = documentation();
        assert_eq!(docs.len(), all().len());
        assert!(docs.windows(2).all(|w| w[0].name < w[1].name));
        let relayhost = docs.iter().find(|d| d.name == "relayhost").unwrap();
        assert!(relayhost.description.contains("next hop"));
        let timeout = docs
            .iter()
            .find(|d| d.name == "minimal_backoff_time")
            .unwrap();
        assert_eq!(timeout.default, "300s");
        assert!(timeout.kind.starts_with("time"));
    }

    #[test]
    fn time_values() {
        assert_eq!(parse_time("30s", 's'), Some(Duration::from_secs(30)));
        assert_eq!(parse_time("5m", 's'), Some(Duration::from_secs(300)));
        assert_eq!(parse_time("1h", 's'), Some(Duration::from_secs(3600)));
        assert_eq!(parse_time("2d", 's'), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_time("1w", 's'), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_time("5", 'd'), Some(Duration::from_secs(432_000)));
        assert_eq!(parse_time("1200", 's'), Some(Duration::from_secs(1200)));
        assert_eq!(parse_time("0", 'h'), Some(Duration::ZERO));
        assert_eq!(parse_time("", 's'), None);
        assert_eq!(parse_time("5x", 's'), None);
        assert_eq!(parse_time("5ms", 's'), None);
        assert_eq!(parse_time("-5s", 's'), None);
        assert_eq!(parse_time("99999999999999999999s", 's'), None);
    }

    #[test]
    fn scalar_values() {
        assert_eq!(parse_bool("YES"), Some(true));
        assert_eq!(parse_bool("no"), Some(false));
        assert_eq!(parse_bool("true"), None);
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("+3"), None);
        assert_eq!(parse_int("3k"), None);
        assert_eq!(parse_size("10240000"), Some(10_240_000));
        assert_eq!(parse_size("-1"), None);
        assert!(
            validate(Kind::Bool, "maybe")
                .unwrap_err()
                .contains("yes or no")
        );
    }
}
