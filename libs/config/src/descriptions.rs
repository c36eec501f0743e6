//! One line of documentation for every main.cf parameter, keyed by name.
//!
//! `mailgate.cf(5)` is generated from these lines together with the
//! parameter table (params.rs), so the manual always lists exactly the
//! parameters `mailgate config` knows. A parameter added to the table needs
//! a line here: a unit test names any that are missing.

/// `(name, description)`. Order does not matter; the manual is sorted.
pub(crate) static DESCRIPTIONS: &[(&str, &str)] = &[
    // Sender authentication.
    (
        "dkim_signing_table",
        "Lookup tables from the From: address (user@domain, domain, parent domains) to a key name of dkim_key_table: mail from mynetworks, authenticated clients and the gateway itself is DKIM-signed with that key (opendkim's SigningTable). Needs the tlskeys service.",
    ),
    (
        "dkim_key_table",
        "A lookup table from key names to domain:selector:/path/to/key.pem (opendkim's KeyTable); tlskeys reads the keys (RSA or Ed25519, PKCS#8 or PKCS#1 PEM), no other process does.",
    ),
    (
        "dkim_sign_headers",
        "The header fields a DKIM signature covers, when the message has them (From always).",
    ),
    (
        "arc_sealing",
        "ARC-seal (RFC 8617) mail from outside that the scanner checked (dkim_verify): cleanup adds an ARC set (ARC-Authentication-Results with the gateway's results, ARC-Message-Signature, ARC-Seal with cv=none, pass or fail for the chain it arrived with) over the message as it is delivered, Subject tag and X-Spam headers included, so the internal server sees a valid chain. Needs arc_seal_key and the tlskeys service.",
    ),
    (
        "arc_seal_key",
        "The key of dkim_key_table that seals (arc_sealing); its domain and selector are the seal's d= and s=, and tlskeys signs ARC sets with this key only.",
    ),
    (
        "arc_seal_headers",
        "The header fields the ARC-Message-Signature covers, when the message has them (From always).",
    ),
    (
        "authserv_id",
        "The gateway's name in the Authentication-Results headers it adds (RFC 8601); such headers with this name that arrive from outside are removed.",
    ),
    (
        "dkim_verify",
        "The scanner verifies the DKIM signatures (RFC 6376) of mail from outside, and the ARC chain (RFC 8617) it arrived with, and records them in an Authentication-Results header (dkim=, arc=). Needs content_scanner.",
    ),
    (
        "dmarc_verify",
        "The scanner evaluates the From domain's DMARC policy (RFC 7489) on mail from outside, with SPF (smtpd's check_spf result, or its own) and DKIM, and applies dmarc_reject_action and dmarc_quarantine_action. Needs content_scanner.",
    ),
    (
        "dmarc_reject_action",
        "What mail failing DMARC under p=reject gets: reject (550 5.7.1), quarantine, or tag (the Authentication-Results header only).",
    ),
    (
        "dmarc_quarantine_action",
        "What mail failing DMARC under p=quarantine gets: reject, quarantine, or tag.",
    ),
    (
        "dmarc_tempfail_action",
        "What mail gets whose DMARC policy could not be looked up (a DNS failure): defer (451 4.4.3, the sender retries) or tag.",
    ),
    (
        "spf_helo_reject",
        "check_spf: which HELO results are refused with 550 5.7.23 (policyd-spf's HELO_reject): fail, softfail, not_pass, null (fail for the null sender only), no (header only) or no_check.",
    ),
    (
        "spf_mail_from_reject",
        "check_spf: which MAIL FROM results are refused with 550 5.7.23 (policyd-spf's Mail_From_reject): fail, softfail, not_pass, no (header only) or no_check.",
    ),
    (
        "spf_permerror_reject",
        "check_spf: refuse an SPF permerror with 550 5.7.24 (policyd-spf's PermError_reject).",
    ),
    (
        "spf_temperror_defer",
        "check_spf: an SPF temperror (a DNS failure) gets 451 4.4.3 and the sender retries; with no, it gets the Received-SPF header only (policyd-spf's TempError_Defer).",
    ),
    (
        "spf_received_header",
        "check_spf: put a Received-SPF header (RFC 7208) above the message.",
    ),
    (
        "spf_reject_reason",
        "check_spf: the text of a refusal or deferral, with $rejectdefer, $spf (the reason), $scope (helo or mfrom), $identity, $client_address and $receiver (the recipient's domain) (policyd-spf's Reason_Message).",
    ),
    // check_client_score.
    (
        "client_score_dnsbl_sites",
        "DNS lists check_client_score asks about the client address, as domain[=filter]*weight (zen.spamhaus.org*3.5).",
    ),
    (
        "client_score_rhsbl_sites",
        "Domain lists check_client_score asks about the sender domain, the HELO name and the client name, as domain[=filter]*weight.",
    ),
    (
        "client_score_no_reverse_name",
        "check_client_score weight: the client address has no PTR name.",
    ),
    (
        "client_score_forged_reverse_name",
        "check_client_score weight: the client's PTR name does not resolve back to its address.",
    ),
    (
        "client_score_helo_invalid",
        "check_client_score weight: the HELO name is not a valid fully-qualified host name.",
    ),
    (
        "client_score_helo_numeric",
        "check_client_score weight: the HELO name is an address (literal or bare) that is not the client's.",
    ),
    (
        "client_score_helo_unresolvable",
        "check_client_score weight: the HELO name has no A, AAAA or MX record.",
    ),
    (
        "client_score_helo_mismatch",
        "check_client_score weight: the HELO name resolves, but not to the client's address.",
    ),
    (
        "client_score_helo_is_client",
        "check_client_score weight (usually negative): the HELO name resolves to the client's address.",
    ),
    (
        "client_score_sender_domain_unknown",
        "check_client_score weight: the sender's domain has no MX, A or AAAA record.",
    ),
    (
        "client_score_sender_domain_mismatch",
        "check_client_score weight: the sender's domain is neither the HELO name's nor the client name's domain.",
    ),
    (
        "client_score_defer_level",
        "check_client_score: a total at or above this gets client_score_defer_reply.",
    ),
    (
        "client_score_reject_level",
        "check_client_score: a total at or above this gets client_score_reject_reply.",
    ),
    (
        "client_score_reject_reply",
        "check_client_score: the reply (code, enhanced status, text) for a total at the reject level.",
    ),
    (
        "client_score_defer_reply",
        "check_client_score: the reply for a total at the defer level.",
    ),
    // Identity.
    (
        "myhostname",
        "The gateway's fully-qualified host name, used in the SMTP greeting, HELO and Received headers; defaults to the machine's host name.",
    ),
    (
        "mydomain",
        "The gateway's domain; defaults to myhostname without its first label.",
    ),
    (
        "myorigin",
        "The domain that locally submitted mail without a domain appears to come from.",
    ),
    (
        "mail_name",
        "The name of the mail system in the SMTP greeting and in generated mail.",
    ),
    (
        "mail_owner",
        "The unprivileged user the workers run as and who owns the spool; never root.",
    ),
    (
        "smtpd_owner",
        "The user smtpd runs as, in mail_owner's group: a uid of its own, so qmgr, relay and the scanner refuse it.",
    ),
    (
        "relay_owner",
        "The user relay runs as: a uid and group of its own, which reach no socket of the spool.",
    ),
    (
        "syslog_name",
        "The program name prefix on every log line (mailgate/smtpd[pid]); pflogsumm --syslog-name reads it.",
    ),
    (
        "maillog_file",
        "A file the master and every service append their log lines to; empty: the master's standard error (the journal under systemd). The stats service follows this file.",
    ),
    (
        "compatibility_level",
        "Postfix's compatibility level; accepted so existing main.cf files load.",
    ),
    (
        "biff",
        "Postfix's biff notification; a gateway delivers nothing locally, so only no is meaningful.",
    ),
    // Directories and install paths.
    (
        "queue_directory",
        "The spool: queue directories, service sockets, the master's pid file and the statistics file; the chroot of the workers.",
    ),
    (
        "daemon_directory",
        "Where the master and the worker programs are; empty: the directory holding the mailgate program.",
    ),
    (
        "data_directory",
        "Where long-lived data lives (the scanner's directory and the Bayes store by default).",
    ),
    (
        "command_directory",
        "Where the administrator's commands are installed (Postfix install path; informational).",
    ),
    (
        "config_directory",
        "Where main.cf and master.cf are (informational: mailgate -c or MAILGATE_CONFIG selects the directory).",
    ),
    (
        "html_directory",
        "Postfix install path for HTML documentation; informational.",
    ),
    (
        "manpage_directory",
        "Where the manual pages are installed; informational.",
    ),
    (
        "readme_directory",
        "Postfix install path for README files; informational.",
    ),
    (
        "sample_directory",
        "Postfix install path for sample files; informational.",
    ),
    (
        "sendmail_path",
        "Where the sendmail-compatible command is installed; informational (mailgate sendmail is the submission command).",
    ),
    (
        "newaliases_path",
        "Postfix install path of newaliases; informational, mailgate reads alias files as text.",
    ),
    (
        "mailq_path",
        "Postfix install path of mailq; informational (mailgate queue list is the listing command).",
    ),
    (
        "setgid_group",
        "Postfix's postdrop group; informational, mailgate has no world-writable maildrop.",
    ),
    // Destinations and routing.
    (
        "mydestination",
        "Local domains: their names are forwarded by alias_maps, unknown ones refused (local_recipient_maps); the rest goes to local_transport.",
    ),
    (
        "mynetworks",
        "Clients trusted to relay anywhere (permit_mynetworks): networks, hosts and tables.",
    ),
    (
        "mynetworks_style",
        "When set and mynetworks is not: mynetworks is computed from the machine's addresses as hosts, subnets or classes, as in Postfix.",
    ),
    (
        "inet_interfaces",
        "The addresses inet services listen on: all, loopback-only or a list of addresses.",
    ),
    (
        "inet_protocols",
        "The IP versions used: all, ipv4 or ipv6 (the wildcard and loopback addresses listened on, the next-hop addresses relay tries).",
    ),
    (
        "relay_domains",
        "The domains this gateway accepts mail for and relays to their internal servers.",
    ),
    (
        "relay_recipient_maps",
        "Tables of the valid recipients in relay_domains; others are refused during SMTP. Empty: any recipient.",
    ),
    (
        "transport_maps",
        "Tables that map a recipient domain or address to transport:nexthop, such as smtp:[mail.example.com].",
    ),
    (
        "relayhost",
        "The next hop for mail that transport_maps does not route: [host]:port, host or domain; empty: deliver by MX.",
    ),
    (
        "default_transport",
        "The transport for mail to domains that are not relay_domains.",
    ),
    (
        "relay_transport",
        "The transport for mail to relay_domains when transport_maps says nothing.",
    ),
    (
        "local_transport",
        "The transport for local recipients no alias forwards; by default an error (they bounce).",
    ),
    (
        "defer_transports",
        "Transports whose mail is kept in the queue and not delivered until flushed.",
    ),
    (
        "parent_domain_matches_subdomains",
        "Which lists match subdomains of a listed domain, as in Postfix.",
    ),
    (
        "local_recipient_maps",
        "Tables of valid recipients in mydestination domains (unix:passwd.byname lists no one on a gateway).",
    ),
    (
        "alias_maps",
        "aliases(5) tables forwarding local names (postmaster, abuse) to addresses; commands, files and :include: are refused.",
    ),
    (
        "alias_database",
        "Alias databases newaliases rebuilds; mailgate reads alias_maps from their text, so there is none.",
    ),
    (
        "virtual_alias_maps",
        "Tables that rewrite recipient addresses to other addresses.",
    ),
    (
        "canonical_maps",
        "Tables that rewrite sender and recipient addresses.",
    ),
    (
        "sender_canonical_maps",
        "Tables that rewrite sender addresses.",
    ),
    (
        "recipient_canonical_maps",
        "Tables that rewrite recipient addresses.",
    ),
    (
        "virtual_alias_domains",
        "Domains whose users are only those virtual_alias_maps lists (others: User unknown in virtual alias table).",
    ),
    (
        "virtual_alias_recursion_limit",
        "How deep virtual alias results may be expanded again before the message is deferred.",
    ),
    (
        "virtual_alias_expansion_limit",
        "How many addresses one recipient may expand into before the message is deferred.",
    ),
    (
        "propagate_unmatched_extensions",
        "Where an address extension the tables did not match is carried over to the result (canonical, virtual).",
    ),
    (
        "unknown_virtual_alias_reject_code",
        "The reply code for a user virtual_alias_maps does not list in a virtual alias domain.",
    ),
    (
        "recipient_delimiter",
        "The separator of address extensions (user+ext), for table lookups.",
    ),
    (
        "content_filter",
        "After-queue content filter as transport:nexthop (smtp-amavis:[127.0.0.1]:10024): every recipient of the mail this service receives goes there instead of its normal route.",
    ),
    (
        "receive_override_options",
        "Turns off, for the mail this smtpd receives: no_address_mappings, no_header_body_checks, no_unknown_recipient_checks, no_milters (a content filter's re-injection service).",
    ),
    (
        "smtpd_authorized_xforward_hosts",
        "Clients (as mynetworks) allowed to use XFORWARD to name the original client of mail they re-inject.",
    ),
    (
        "dns_nameservers",
        "DNS servers to ask instead of those in /etc/resolv.conf (address or address:port).",
    ),
    (
        "disable_dns_lookups",
        "Do not use DNS to find the next hop (deliver to relayhost or transport_maps hosts by address).",
    ),
    (
        "smtp_host_lookup",
        "How the SMTP client finds next-hop hosts: dns, native or both.",
    ),
    // Message limits.
    (
        "message_size_limit",
        "The largest message accepted, in bytes (SIZE in EHLO; larger ones get 552).",
    ),
    (
        "header_size_limit",
        "The largest header section accepted, in bytes.",
    ),
    (
        "line_length_limit",
        "Longer lines are split when stored, as Postfix does.",
    ),
    (
        "hopcount_limit",
        "Messages with more Received headers than this are refused as a mail loop.",
    ),
    (
        "always_add_missing_headers",
        "Add From, To, Date and Message-ID to mail that lacks them, not only to local mail.",
    ),
    (
        "strict_rfc821_envelopes",
        "Refuse MAIL FROM and RCPT TO addresses that are not strictly RFC 821 (<user@domain>).",
    ),
    (
        "allow_percent_hack",
        "Rewrite user%domain@gateway to user@domain (off: the address trick does not get through).",
    ),
    (
        "swap_bangpath",
        "Rewrite site!user to user@site (off: the address trick does not get through).",
    ),
    (
        "resolve_dequoted_address",
        "Resolve a quoted local part after removing the quotes, as Postfix does.",
    ),
    (
        "smtputf8_enable",
        "Offer SMTPUTF8 and accept internationalized addresses.",
    ),
    (
        "header_checks",
        "regexp: or pcre: tables of header patterns with Postfix's cleanup actions (REJECT, WARN, INFO, FILTER, PASS, DISCARD, HOLD, PREPEND, REPLACE, REDIRECT, BCC, STRIP, IGNORE, DUNNO); mailgate check warns about entries cleanup would ignore.",
    ),
    (
        "body_checks",
        "regexp: or pcre: tables of body line patterns with header_checks' actions.",
    ),
    (
        "mime_header_checks",
        "Header patterns for MIME part headers; defaults to header_checks.",
    ),
    (
        "nested_header_checks",
        "Header patterns for attached messages' headers; defaults to header_checks.",
    ),
    // Content filtering.
    (
        "content_scanner",
        "The master.cf unix service that scans every message before it is accepted; empty: no scanning.",
    ),
    (
        "scanner_owner",
        "The user the scanner runs as (not mail_owner: it has no spool access).",
    ),
    (
        "scanner_directory",
        "The scanner's chroot: its data, and clamd's Unix socket when clamd is reached that way.",
    ),
    (
        "scanner_timeout",
        "How long cleanup waits for the scanner's verdict before applying scanner_failure_action.",
    ),
    (
        "scanner_failure_action",
        "What the client gets when the scanner or clamd fails: defer (4xx, the default) or reject.",
    ),
    (
        "clamd_socket",
        "clamd's address: unix:PATH inside scanner_directory, or inet:host:port; empty: no virus scanning.",
    ),
    (
        "clamd_timeout",
        "How long the scanner waits for clamd's answer.",
    ),
    (
        "clamd_transfer",
        "How the message reaches clamd: auto, fildes (its descriptor over a Unix socket) or instream (the bytes).",
    ),
    (
        "virus_action",
        "What to do with a virus: reject (554), quarantine or discard.",
    ),
    (
        "virus_admin",
        "An address told about each virus found; never the (forged) sender.",
    ),
    (
        "banned_action",
        "What to do with a banned attachment: reject, quarantine or discard.",
    ),
    (
        "smtp_line_length_limit",
        "Lines longer than this go out broken with CRLF and a space, as Postfix breaks them (0: never).",
    ),
    (
        "smtp_mx_address_limit",
        "The most IP addresses one delivery tries, from all MX hosts together (0: no limit), as Postfix.",
    ),
    (
        "smtp_mx_session_limit",
        "The most SMTP sessions (past the greeting and EHLO) one delivery opens before it gives up (0: no limit), as Postfix.",
    ),
    (
        "smtp_delivery_time_limit",
        "The most one delivery may take, lookups, connections and sessions together; then its recipients are deferred (mailgate).",
    ),
    (
        "proxy_interfaces",
        "Addresses on which this gateway receives mail through a proxy or NAT: mail to port 25 of one of them loops back, as Postfix.",
    ),
    (
        "banned_unchecked_action",
        "What to do with content the banned check cannot look into (encrypted or damaged archive members, unknown compression methods, unreadable archives, archives nested deeper than scanner_archive_depth, message/rfc822 parts nested deeper than 16): reject (default), quarantine, discard, or pass (amavisd-new's default for UNCHECKED: delivered with an X-Unchecked-Content header).",
    ),
    (
        "banned_filename_re",
        "Extra regular expressions of banned attachment names.",
    ),
    (
        "banned_filename_extensions",
        "Attachment name extensions that are banned, also as double extensions and inside archives.",
    ),
    (
        "banned_mime_types",
        "Declared MIME types of banned attachments.",
    ),
    (
        "banned_executable_content",
        "Ban PE and ELF programs by content, whatever their name.",
    ),
    (
        "scanner_archive_depth",
        "How deep the scanner looks into nested zip, gzip and tar archives.",
    ),
    (
        "spam_message_size_limit",
        "The spam engine reads at most this many bytes of a message (the rest is cut at a line end), as amavisd-new's sa_mail_body_size_limit: bounds its time and memory per message.",
    ),
    (
        "scanner_archive_max_size",
        "The most bytes unpacked from one message's archives (against archive bombs).",
    ),
    (
        "scanner_archive_max_ratio",
        "The largest compression ratio accepted in an archive (against archive bombs).",
    ),
    (
        "scanner_archive_max_entries",
        "The most archive members looked at in one message.",
    ),
    (
        "spam_tag_level",
        "From this score up, X-Spam-Status, X-Spam-Score and X-Spam-Level are added.",
    ),
    (
        "spam_tag2_level",
        "From this score up, mail is spam: X-Spam-Flag: YES and spam_subject_tag.",
    ),
    (
        "spam_kill_level",
        "From this score up, spam_kill_action applies.",
    ),
    (
        "spam_kill_action",
        "What to do with mail at spam_kill_level: reject, quarantine, discard or pass.",
    ),
    (
        "spam_subject_tag",
        "Prefix added to the Subject of mail at spam_tag2_level; empty: none.",
    ),
    (
        "spam_lovers_maps",
        "Recipients who get spam anyway (amavisd-new's spam lovers).",
    ),
    ("virus_lovers_maps", "Recipients who get viruses anyway."),
    (
        "banned_files_lovers_maps",
        "Recipients who get banned attachments anyway.",
    ),
    (
        "bypass_spam_checks_maps",
        "Recipients whose mail is not scored for spam.",
    ),
    (
        "bypass_virus_checks_maps",
        "Recipients whose mail is not scanned for viruses.",
    ),
    (
        "bypass_banned_checks_maps",
        "Recipients whose mail is not checked for banned attachments.",
    ),
    // SMTP server.
    ("smtpd_banner", "The text after 220 in the SMTP greeting."),
    (
        "smtpd_relay_restrictions",
        "Restrictions that decide relaying at RCPT TO (permit_mynetworks, reject_unauth_destination, ...).",
    ),
    (
        "smtpd_recipient_restrictions",
        "Restrictions applied at RCPT TO after the relay restrictions.",
    ),
    (
        "smtpd_client_restrictions",
        "Restrictions on the client's address and name.",
    ),
    (
        "smtpd_helo_restrictions",
        "Restrictions on the HELO/EHLO name.",
    ),
    (
        "smtpd_sender_restrictions",
        "Restrictions on the MAIL FROM address.",
    ),
    ("smtpd_data_restrictions", "Restrictions applied at DATA."),
    (
        "smtpd_end_of_data_restrictions",
        "Restrictions applied after the message is received.",
    ),
    ("smtpd_etrn_restrictions", "Restrictions applied to ETRN."),
    (
        "smtpd_restriction_classes",
        "Names of user-defined restriction lists that access tables may return.",
    ),
    (
        "smtpd_null_access_lookup_key",
        "The key access tables see for the null sender (<>).",
    ),
    (
        "smtpd_sender_login_maps",
        "Which authenticated logins may use which sender addresses.",
    ),
    (
        "smtpd_helo_required",
        "Refuse MAIL FROM before HELO or EHLO.",
    ),
    (
        "smtpd_delay_reject",
        "Apply client, HELO and sender restrictions at RCPT TO, as Postfix does by default.",
    ),
    ("disable_vrfy_command", "Refuse the VRFY command."),
    (
        "smtpd_timeout",
        "How long smtpd waits for a client's command or data.",
    ),
    (
        "smtpd_hard_error_limit",
        "Errors after which a session is closed.",
    ),
    (
        "smtpd_soft_error_limit",
        "Errors after which each reply is delayed by smtpd_error_sleep_time.",
    ),
    (
        "smtpd_error_sleep_time",
        "The delay before replies once smtpd_soft_error_limit is reached.",
    ),
    (
        "smtpd_junk_command_limit",
        "Commands that do not move a transaction forward (NOOP, RSET, ...) before the session is closed.",
    ),
    (
        "smtpd_recipient_limit",
        "The most recipients accepted in one message.",
    ),
    (
        "smtpd_client_connection_count_limit",
        "The most simultaneous sessions from one client address.",
    ),
    (
        "smtpd_client_connection_rate_limit",
        "The most connections one client may make per minute; 0: no limit.",
    ),
    (
        "smtpd_forbid_bare_newline_exclusions",
        "Clients for which a bare LF is never refused or noted (default $mynetworks).",
    ),
    (
        "smtpd_forbid_bare_newline_reject_code",
        "The reply code when smtpd_forbid_bare_newline = reject refuses a bare LF.",
    ),
    (
        "strict_smtputf8",
        "Refuse a non-ASCII address unless MAIL FROM declared SMTPUTF8 (553 5.6.7), as RFC 6531 requires (Postfix's default is no).",
    ),
    (
        "smtpd_message_memory_limit",
        "Bytes of message content all SMTP sessions of a service together may hold in memory before cleanup has them (each smtpd process holds an equal share); past it a message gets 452 4.3.1.",
    ),
    (
        "smtpd_forbid_bare_newline",
        "What to do with bare LF line ends in SMTP (normalize, reject or no), against SMTP smuggling.",
    ),
    (
        "smtpd_reject_unlisted_recipient",
        "Refuse recipients in relay_domains that relay_recipient_maps does not list.",
    ),
    (
        "smtpd_milters",
        "Milter applications (inet:host:port, unix:pathname, or { address, setting=value, ... }) that smtpd asks during the SMTP dialogue and at the end of each message, before its 250.",
    ),
    (
        "smtpd_milter_maps",
        "Tables looked up by the client's IP address whose result is the milter list used instead of smtpd_milters for that client, or DISABLE for none.",
    ),
    ("milter_protocol", "The milter protocol version spoken (6)."),
    (
        "milter_default_action",
        "What a milter that cannot be reached or misbehaves means: accept, reject, tempfail, quarantine or shutdown.",
    ),
    (
        "milter_connect_timeout",
        "Time limit for connecting to a milter and negotiating with it.",
    ),
    (
        "milter_command_timeout",
        "Time limit for a milter's answer to one SMTP event.",
    ),
    (
        "milter_content_timeout",
        "Time limit for sending a message to a milter and reading its answer.",
    ),
    (
        "milter_connect_macros",
        "Macros sent to milters with the connection.",
    ),
    (
        "milter_helo_macros",
        "Macros sent to milters with HELO/EHLO.",
    ),
    (
        "milter_mail_macros",
        "Macros sent to milters with MAIL FROM.",
    ),
    ("milter_rcpt_macros", "Macros sent to milters with RCPT TO."),
    ("milter_data_macros", "Macros sent to milters with DATA."),
    (
        "milter_end_of_header_macros",
        "Macros sent to milters at the end of the message header.",
    ),
    (
        "milter_end_of_data_macros",
        "Macros sent to milters at the end of the message.",
    ),
    (
        "milter_unknown_command_macros",
        "Macros sent with unknown commands (not implemented: those are not sent).",
    ),
    (
        "milter_macro_daemon_name",
        "The {daemon_name} macro's value.",
    ),
    ("milter_macro_v", "The v macro's value."),
    (
        "milter_macro_defaults",
        "name=value pairs: values for the macros a milter is sent that have no value of their own.",
    ),
    (
        "milter_header_checks",
        "header_checks tables applied to each header a milter adds or changes (REJECT, DISCARD, HOLD, FILTER, REDIRECT, BCC, IGNORE, STRIP, REPLACE, WARN, INFO).",
    ),
    (
        "non_smtpd_milters",
        "Milter applications for mail submitted with `mailgate sendmail`, which asks them itself before it hands the message to cleanup.",
    ),
    (
        "local_header_rewrite_clients",
        "Clients whose mail gets local-style header rewriting.",
    ),
    (
        "unknown_relay_recipient_reject_code",
        "The reply code for recipients missing from relay_recipient_maps.",
    ),
    (
        "unknown_local_recipient_reject_code",
        "The reply code for unknown local recipients.",
    ),
    (
        "unverified_recipient_reject_code",
        "reject_unverified_recipient: the reply code when the next hop refused the address for good (5xx).",
    ),
    (
        "unverified_recipient_defer_code",
        "reject_unverified_recipient: the reply code when the next hop could not say (4xx, unreachable) or verification is still in progress.",
    ),
    (
        "unverified_recipient_tempfail_action",
        "reject_unverified_recipient when verification is in progress, failed for now or the verify service cannot be asked: defer_if_permit or defer.",
    ),
    (
        "unverified_recipient_reject_reason",
        "Fixed text for reject_unverified_recipient's refusals instead of the next hop's reply.",
    ),
    (
        "unverified_sender_reject_code",
        "reject_unverified_sender: the reply code when the next hop refused the address for good (5xx).",
    ),
    (
        "unverified_sender_defer_code",
        "reject_unverified_sender: the reply code when the next hop could not say or verification is still in progress.",
    ),
    (
        "unverified_sender_tempfail_action",
        "reject_unverified_sender when verification is in progress, failed for now or the verify service cannot be asked: defer_if_permit or defer.",
    ),
    (
        "unverified_sender_reject_reason",
        "Fixed text for reject_unverified_sender's refusals instead of the next hop's reply.",
    ),
    (
        "address_verify_service_name",
        "The master.cf service smtpd asks to verify addresses (private/NAME).",
    ),
    (
        "address_verify_poll_count",
        "How many times smtpd asks the verify service about an address whose probe is in progress before it answers 450.",
    ),
    (
        "address_verify_poll_delay",
        "How long smtpd waits between two such questions.",
    ),
    (
        "address_verify_service_timeout",
        "How long smtpd waits for the verify service's answer; past it the check defers (mailgate).",
    ),
    (
        "address_verify_map_timeout",
        "The longest a Redis operation of the verification cache may take (mailgate).",
    ),
    (
        "address_verify_positive_expire_time",
        "How long a deliverable address stays in the verification cache without a new probe.",
    ),
    (
        "address_verify_positive_refresh_time",
        "After this long a deliverable address is probed again (the cached result is used meanwhile).",
    ),
    (
        "address_verify_negative_expire_time",
        "How long an undeliverable address stays in the verification cache without a new probe.",
    ),
    (
        "address_verify_negative_refresh_time",
        "After this long an undeliverable address is probed again (the cached result is used meanwhile).",
    ),
    (
        "address_verify_negative_cache",
        "Cache failed probes; with no, a refused address is probed again at every lookup.",
    ),
    (
        "address_verify_cache_cleanup_interval",
        "How often the verify service removes expired entries from its redb file (0: never).",
    ),
    (
        "double_bounce_sender",
        "The local part of the sender of mail that must never bounce, such as address probes.",
    ),
    (
        "address_verify_sender",
        "The sender of address probes (qualified with $myorigin); empty or <> for the null sender.",
    ),
    (
        "address_verify_sender_ttl",
        "When not 0: a time-dependent part is added to the probe sender's local part, changing this often.",
    ),
    (
        "address_verify_pending_request_limit",
        "The most probes in progress at once; a probe beyond it fails for now (4.3.2 Too many address verification requests).",
    ),
    (
        "address_verify_transport_maps",
        "transport_maps for address probes.",
    ),
    ("address_verify_relayhost", "relayhost for address probes."),
    (
        "address_verify_default_transport",
        "default_transport for address probes.",
    ),
    (
        "address_verify_relay_transport",
        "relay_transport for address probes.",
    ),
    (
        "address_verify_local_transport",
        "local_transport for address probes.",
    ),
    (
        "smtp_address_verify_target",
        "The SMTP command a probe stops after: rcpt (data is not implemented).",
    ),
    (
        "relay_domains_reject_code",
        "The reply code for relaying that is not allowed.",
    ),
    (
        "access_map_reject_code",
        "The reply code for REJECT in an access table.",
    ),
    (
        "access_map_defer_code",
        "The reply code for DEFER in an access table.",
    ),
    (
        "defer_code",
        "The reply code for defer and defer_if_permit restrictions.",
    ),
    ("reject_code", "The reply code for the reject restriction."),
    (
        "address_verify_map",
        "The cache of address verification results: redb:/path, redis:host:port[/db] shared by several gateways, or empty (memory only); Postfix's btree:/path is the redb file /path.redb.",
    ),
    (
        "debug_peer_list",
        "Clients (smtpd) and servers (relay) whose SMTP dialogue is logged line by line: addresses, networks, names, tables.",
    ),
    (
        "debug_peer_level",
        "How much more detail debug_peer_list gets.",
    ),
    (
        "smtpd_reject_unlisted_sender",
        "Refuse sender addresses in our own domains that the recipient tables do not list.",
    ),
    (
        "smtpd_peername_lookup",
        "Look up the client's host name in DNS (off: every client is unknown[address]).",
    ),
    (
        "smtpd_log_access_permit_actions",
        "Access table actions (such as OK) that are logged when they permit a request.",
    ),
    (
        "smtpd_forbid_unauth_pipelining",
        "Disconnect clients that send commands ahead of the replies without PIPELINING.",
    ),
    (
        "smtpd_relay_before_recipient_restrictions",
        "Evaluate smtpd_relay_restrictions before smtpd_recipient_restrictions.",
    ),
    (
        "stress",
        "Set by the master when the SMTP service is overloaded; other defaults (timeouts, error limits) depend on it.",
    ),
    (
        "smtpd_per_record_deadline",
        "Apply smtpd_timeout to each whole command or data record, not to each read.",
    ),
    (
        "smtpd_per_request_deadline",
        "Apply the time limit to each whole request.",
    ),
    (
        "smtpd_min_data_rate",
        "The slowest data rate, in bytes per second, a client may send at once the per-record deadline applies.",
    ),
    (
        "smtpd_recipient_overshoot_limit",
        "Recipients over smtpd_recipient_limit answered before the session counts them as errors.",
    ),
    (
        "smtpd_client_message_rate_limit",
        "The most messages one client may send per anvil_rate_time_unit; 0: no limit.",
    ),
    (
        "smtpd_client_recipient_rate_limit",
        "The most recipients one client may send to per anvil_rate_time_unit; 0: no limit.",
    ),
    (
        "smtpd_client_event_limit_exceptions",
        "Clients exempt from the connection, message and recipient limits.",
    ),
    (
        "anvil_rate_time_unit",
        "The period the client rate limits count over.",
    ),
    (
        "anvil_status_update_time",
        "How often the anvil service logs the highest per-client counts it saw.",
    ),
    (
        "unknown_client_reject_code",
        "The reply code when a client's address has no (valid) host name.",
    ),
    (
        "unknown_hostname_reject_code",
        "The reply code when the HELO name has no DNS record.",
    ),
    (
        "unknown_address_reject_code",
        "The reply code when the sender or recipient domain has no DNS record.",
    ),
    (
        "non_fqdn_reject_code",
        "The reply code for host names and addresses that are not fully qualified.",
    ),
    (
        "invalid_hostname_reject_code",
        "The reply code for a syntactically invalid HELO name.",
    ),
    (
        "multi_recipient_bounce_reject_code",
        "The reply code for a null-sender message to more than one recipient.",
    ),
    (
        "plaintext_reject_code",
        "The reply code when TLS is required and the client did not start it.",
    ),
    (
        "maps_rbl_reject_code",
        "The reply code when a DNS block list lists the client.",
    ),
    (
        "reject_tempfail_action",
        "What a restriction does when its lookup fails temporarily: defer, defer_if_permit, ...",
    ),
    (
        "unknown_helo_hostname_tempfail_action",
        "What reject_unknown_helo_hostname does when DNS fails temporarily.",
    ),
    (
        "unknown_address_tempfail_action",
        "What the unknown sender and recipient domain checks do when DNS fails temporarily.",
    ),
    (
        "rbl_tempfail_action",
        "What a DNS block list check does when DNS fails temporarily.",
    ),
    (
        "default_rbl_reply",
        "The reply text for a DNS block list listing ($rbl_code, $rbl_class, $rbl_what, $rbl_domain, $rbl_reason).",
    ),
    (
        "rbl_reply_maps",
        "Tables with a reply text per block list domain, instead of default_rbl_reply.",
    ),
    (
        "show_user_unknown_table_name",
        "Name the table in \"User unknown in ... table\" replies.",
    ),
    (
        "smtpd_forbidden_commands",
        "Commands (such as CONNECT, GET, POST) after which a session is closed at once: a web client, not a mail client.",
    ),
    (
        "smtpd_client_new_tls_session_rate_limit",
        "The most new TLS sessions one client may negotiate per anvil_rate_time_unit; 0: no limit.",
    ),
    (
        "smtpd_client_auth_rate_limit",
        "The most AUTH commands one client may send per anvil_rate_time_unit; 0: no limit.",
    ),
    (
        "smtpd_policy_service_timeout",
        "How long a check_policy_service query may take.",
    ),
    (
        "smtpd_policy_service_max_idle",
        "How long an idle connection to a policy service is kept.",
    ),
    (
        "smtpd_policy_service_max_ttl",
        "How long a connection to a policy service is reused at most.",
    ),
    (
        "smtpd_policy_service_request_limit",
        "Queries per connection to a policy service; 0: no limit.",
    ),
    (
        "smtpd_policy_service_try_limit",
        "How many times a policy query is tried before the default action.",
    ),
    (
        "smtpd_policy_service_retry_delay",
        "The wait between tries of a policy query.",
    ),
    (
        "smtpd_policy_service_default_action",
        "The answer when a policy service cannot be asked (never a pass).",
    ),
    (
        "smtpd_policy_service_policy_context",
        "Text sent to policy services as policy_context=.",
    ),
    // SMTP AUTH and TLS.
    ("smtpd_sasl_auth_enable", "Offer SMTP AUTH to clients."),
    (
        "smtpd_sasl_type",
        "The SASL backend that checks SMTP AUTH logins: dovecot (Dovecot's auth service) or imap (an IMAP login, as saslauthd's rimap).",
    ),
    (
        "smtpd_sasl_path",
        "Where the SASL backend is reached: private/auth (relative to queue_directory) or inet:host:port for dovecot; imap:host:port or imaps:host:port for imap.",
    ),
    (
        "smtpd_sasl_security_options",
        "Which SASL mechanisms are offered (noanonymous, noplaintext, ...).",
    ),
    (
        "smtpd_sasl_local_domain",
        "The realm appended to logins without one.",
    ),
    (
        "smtpd_sasl_authenticated_header",
        "Name the authenticated login in the Received header.",
    ),
    (
        "broken_sasl_auth_clients",
        "Also announce AUTH in the old AUTH= form for broken clients.",
    ),
    (
        "smtpd_tls_security_level",
        "TLS in the SMTP server: empty or none, may (STARTTLS offered) or encrypt (required).",
    ),
    (
        "smtpd_tls_cert_file",
        "The SMTP server's certificate chain (PEM).",
    ),
    (
        "smtpd_tls_key_file",
        "The SMTP server's private key (PEM); defaults to the certificate file.",
    ),
    (
        "smtpd_tls_CAfile",
        "CA certificates for client certificates.",
    ),
    (
        "smtpd_tls_CApath",
        "A directory of CA certificates for client certificates.",
    ),
    (
        "smtpd_tls_loglevel",
        "How much the SMTP server logs about TLS.",
    ),
    (
        "smtpd_tls_received_header",
        "Note the TLS protocol and cipher in the Received header.",
    ),
    ("smtpd_tls_auth_only", "Offer AUTH only after STARTTLS."),
    (
        "smtpd_tls_session_cache_database",
        "Where TLS sessions of the SMTP server are cached.",
    ),
    (
        "smtpd_use_tls",
        "Postfix's older switch for smtpd_tls_security_level = may.",
    ),
    (
        "smtp_tls_security_level",
        "TLS in the SMTP client: empty or none, may, encrypt, verify or secure.",
    ),
    ("smtp_tls_CAfile", "CA certificates the SMTP client trusts."),
    (
        "smtp_tls_CApath",
        "A directory of CA certificates the SMTP client trusts.",
    ),
    (
        "smtp_tls_loglevel",
        "How much the SMTP client logs about TLS.",
    ),
    (
        "smtp_tls_session_cache_database",
        "Where TLS sessions of the SMTP client are cached.",
    ),
    (
        "smtp_use_tls",
        "Postfix's older switch for smtp_tls_security_level = may.",
    ),
    (
        "tls_random_source",
        "Postfix's TLS random source; informational (the kernel's getrandom is used).",
    ),
    (
        "smtpd_sasl_service",
        "The service name smtpd gives Dovecot's auth service (smtp).",
    ),
    (
        "smtpd_sasl_tls_security_options",
        "The SASL security options over TLS; defaults to smtpd_sasl_security_options.",
    ),
    (
        "smtpd_sasl_exceptions_networks",
        "Clients to which AUTH is not announced.",
    ),
    (
        "smtpd_sasl_failure_delay",
        "How long a failed AUTH waits before its 535 (mailgate; against password guessing).",
    ),
    (
        "smtpd_sasl_imap_tls_security_level",
        "TLS to the IMAP server of smtpd_sasl_type = imap: none, may (STARTTLS when offered), encrypt or verify (mailgate).",
    ),
    (
        "smtpd_sasl_imap_tls_CAfile",
        "CA certificates for verifying the IMAP server's certificate (mailgate).",
    ),
    (
        "smtpd_sasl_timeout",
        "How long smtpd waits for the SASL backend (mailgate).",
    ),
    (
        "smtpd_enforce_tls",
        "Postfix's older switch for smtpd_tls_security_level = encrypt.",
    ),
    (
        "smtpd_tls_eccert_file",
        "The SMTP server's ECDSA certificate chain (PEM).",
    ),
    (
        "smtpd_tls_eckey_file",
        "The SMTP server's ECDSA private key (PEM); defaults to the ECDSA certificate file.",
    ),
    (
        "smtpd_tls_dcert_file",
        "A DSA certificate; DSA is not supported.",
    ),
    ("smtpd_tls_dkey_file", "A DSA key; DSA is not supported."),
    (
        "smtpd_tls_chain_files",
        "Files each holding a private key followed by its certificate chain (RSA and ECDSA); read by tlskeys.",
    ),
    (
        "smtpd_tls_wrappermode",
        "TLS from the first byte (SMTPS, port 465), usually as a master.cf -o override.",
    ),
    ("smtpd_tls_ask_ccert", "Ask clients for a certificate."),
    ("smtpd_tls_req_ccert", "Require a client certificate."),
    (
        "smtpd_tls_protocols",
        "The TLS protocols of opportunistic TLS (!SSLv2, >=TLSv1.2, ...); mailgate speaks TLSv1.2 and TLSv1.3.",
    ),
    (
        "smtpd_tls_mandatory_protocols",
        "The TLS protocols when TLS is required (encrypt, SMTPS).",
    ),
    (
        "smtpd_tls_ciphers",
        "The cipher grade of opportunistic TLS; every suite mailgate offers is of the high grade.",
    ),
    (
        "smtpd_tls_mandatory_ciphers",
        "The cipher grade when TLS is required.",
    ),
    (
        "smtpd_tls_exclude_ciphers",
        "Cipher suites to leave out (OpenSSL names).",
    ),
    (
        "smtpd_tls_mandatory_exclude_ciphers",
        "Cipher suites to leave out when TLS is required.",
    ),
    (
        "smtpd_tls_session_cache_timeout",
        "Postfix's session cache lifetime; sessions are resumed from memory and tickets.",
    ),
    (
        "smtpd_tls_dh1024_param_file",
        "Finite-field DH parameters; key exchange is ECDHE only.",
    ),
    (
        "smtpd_tls_eecdh_grade",
        "Postfix's ECDHE curve grade; the curves are rustls's.",
    ),
    (
        "smtpd_tls_always_issue_session_ids",
        "Postfix's session ID switch; resumption is always offered.",
    ),
    (
        "smtpd_tls_fingerprint_digest",
        "The digest of client certificate fingerprints (client certificates are not requested).",
    ),
    (
        "smtpd_starttls_timeout",
        "How long the TLS handshake of the SMTP server may take.",
    ),
    (
        "tls_preempt_cipherlist",
        "Postfix's server cipher preference switch; the order is rustls's.",
    ),
    (
        "tls_ssl_options",
        "OpenSSL options; there are none in mailgate.",
    ),
    (
        "tls_high_cipherlist",
        "OpenSSL's high-grade cipher list; mailgate's suites are all of it.",
    ),
    (
        "tls_medium_cipherlist",
        "OpenSSL's medium-grade cipher list; mailgate's suites are all high-grade.",
    ),
    (
        "tlskeys_owner",
        "The user tlskeys, the holder of the TLS private keys, runs as (mailgate).",
    ),
    (
        "tlskeys_directory",
        "The empty directory tlskeys is chrooted into (mailgate).",
    ),
    (
        "tlskeys_timeout",
        "How long smtpd waits for tlskeys to sign a handshake (mailgate).",
    ),
    (
        "smtp_enforce_tls",
        "Postfix's older switch for smtp_tls_security_level = encrypt (verify with smtp_tls_enforce_peername).",
    ),
    (
        "smtp_tls_enforce_peername",
        "With smtp_enforce_tls: also check the server's name (verify).",
    ),
    (
        "smtp_tls_policy_maps",
        "Per-destination TLS levels: next hop or domain to \"level [match=...] [protocols=...]\".",
    ),
    (
        "smtp_tls_protocols",
        "The TLS protocols of opportunistic TLS in the SMTP client.",
    ),
    (
        "smtp_tls_mandatory_protocols",
        "The TLS protocols when TLS is required (encrypt, verify, secure).",
    ),
    (
        "smtp_tls_ciphers",
        "The cipher grade of opportunistic TLS in the SMTP client.",
    ),
    (
        "smtp_tls_mandatory_ciphers",
        "The cipher grade when TLS is required.",
    ),
    (
        "smtp_tls_exclude_ciphers",
        "Cipher suites the SMTP client leaves out.",
    ),
    (
        "smtp_tls_mandatory_exclude_ciphers",
        "Cipher suites the SMTP client leaves out when TLS is required.",
    ),
    (
        "smtp_tls_verify_cert_match",
        "The names a certificate must match at the verify level (hostname, nexthop, dot-nexthop, names).",
    ),
    (
        "smtp_tls_secure_cert_match",
        "The names a certificate must match at the secure level.",
    ),
    (
        "smtp_tls_cert_file",
        "A client certificate for the SMTP client (not implemented).",
    ),
    (
        "smtp_tls_key_file",
        "The client certificate's key (not implemented).",
    ),
    (
        "smtp_tls_eccert_file",
        "An ECDSA client certificate (not implemented).",
    ),
    (
        "smtp_tls_eckey_file",
        "The ECDSA client certificate's key (not implemented).",
    ),
    (
        "smtp_tls_dcert_file",
        "A DSA client certificate; DSA is not supported.",
    ),
    (
        "smtp_tls_dkey_file",
        "A DSA client key; DSA is not supported.",
    ),
    (
        "smtp_tls_chain_files",
        "Client keys and certificates in one file (not implemented).",
    ),
    (
        "smtp_tls_session_cache_timeout",
        "Postfix's client session cache lifetime (sessions are not cached).",
    ),
    (
        "smtp_tls_note_starttls_offer",
        "Log servers that offer STARTTLS when TLS is not used with them (level none).",
    ),
    (
        "smtp_tls_servername",
        "The SNI name the SMTP client sends: empty (none), hostname, nexthop or a name.",
    ),
    (
        "smtp_tls_wrappermode",
        "TLS from the first byte to the next hop (not implemented).",
    ),
    (
        "smtp_tls_connection_reuse",
        "Postfix's tlsproxy-based reuse of TLS connections; relay reuses connections itself.",
    ),
    (
        "smtp_tls_fingerprint_digest",
        "The digest of certificate fingerprints at the fingerprint level (sha256; sha384, sha512, sha1).",
    ),
    (
        "smtp_tls_fingerprint_cert_match",
        "Fingerprints of the certificates or public keys the fingerprint level accepts.",
    ),
    (
        "smtp_starttls_timeout",
        "How long the TLS handshake of the SMTP client may take.",
    ),
    // Queue manager.
    (
        "minimal_backoff_time",
        "The shortest wait before a deferred message is tried again.",
    ),
    (
        "maximal_backoff_time",
        "The longest wait before a deferred message is tried again.",
    ),
    (
        "queue_run_delay",
        "How often the deferred queue is scanned for mail that is due.",
    ),
    (
        "maximal_queue_lifetime",
        "How long a message may stay undelivered before it is bounced.",
    ),
    (
        "bounce_queue_lifetime",
        "How long a bounce may stay undelivered before it is given up.",
    ),
    (
        "delay_warning_time",
        "After this long undelivered, the sender gets one delay notice; 0: never.",
    ),
    (
        "default_destination_concurrency_limit",
        "The most simultaneous deliveries to one destination.",
    ),
    (
        "default_destination_recipient_limit",
        "The most recipients in one delivery.",
    ),
    (
        "qmgr_message_active_limit",
        "The most messages in the active queue at once.",
    ),
    // SMTP client.
    (
        "smtp_connect_timeout",
        "How long the SMTP client waits to connect.",
    ),
    (
        "smtp_helo_timeout",
        "How long the SMTP client waits for the greeting and the EHLO reply.",
    ),
    (
        "smtp_mail_timeout",
        "How long the SMTP client waits for the MAIL FROM reply.",
    ),
    (
        "smtp_rcpt_timeout",
        "How long the SMTP client waits for each RCPT TO reply.",
    ),
    (
        "smtp_data_init_timeout",
        "How long the SMTP client waits for the DATA reply.",
    ),
    (
        "smtp_data_xfer_timeout",
        "How long the SMTP client waits while sending the message.",
    ),
    (
        "smtp_data_done_timeout",
        "How long the SMTP client waits for the reply after the message.",
    ),
    (
        "smtp_quit_timeout",
        "How long the SMTP client waits for the QUIT reply.",
    ),
    ("smtp_helo_name", "The name the SMTP client sends in EHLO."),
    (
        "smtp_send_xforward_command",
        "Send XFORWARD with the original client's details to the next hop.",
    ),
    (
        "lmtp_connect_timeout",
        "How long the LMTP client may take to connect (0: only the delivery's own limit).",
    ),
    (
        "lmtp_lhlo_timeout",
        "How long the LMTP client waits for the greeting and the LHLO reply.",
    ),
    (
        "lmtp_mail_timeout",
        "How long the LMTP client waits for the reply to MAIL FROM (and XFORWARD).",
    ),
    (
        "lmtp_rcpt_timeout",
        "How long the LMTP client waits for the reply to RCPT TO.",
    ),
    (
        "lmtp_data_init_timeout",
        "How long the LMTP client waits for the reply to DATA.",
    ),
    (
        "lmtp_data_xfer_timeout",
        "How long the LMTP client may take to send a piece of the content.",
    ),
    (
        "lmtp_data_done_timeout",
        "How long the LMTP client waits for the replies after the final dot.",
    ),
    (
        "lmtp_quit_timeout",
        "How long the LMTP client waits for the reply to QUIT.",
    ),
    (
        "lmtp_lhlo_name",
        "The name the LMTP client sends with LHLO.",
    ),
    (
        "lmtp_host_lookup",
        "How the LMTP client finds the next hop's addresses (dns).",
    ),
    (
        "lmtp_mx_address_limit",
        "The most addresses the LMTP client tries per delivery.",
    ),
    (
        "lmtp_line_length_limit",
        "Longer content lines are broken by the LMTP client (0: never).",
    ),
    (
        "lmtp_mx_session_limit",
        "The most LMTP sessions per delivery (0: no limit).",
    ),
    (
        "lmtp_send_xforward_command",
        "Send XFORWARD with the original client's details to the LMTP server.",
    ),
    // Master and process management.
    (
        "default_process_limit",
        "maxproc for master.cf services whose column says -.",
    ),
    (
        "mailgate_service_processes",
        "How many processes run one master.cf service, all accepting on its socket (auto: the number of cores for smtpd, cleanup, relay and scanner, one for the others); master.cf's maxproc is split among them.",
    ),
    (
        "mailgate_service_threads",
        "How many runtime threads each service process runs (1 to 256): 1 runs its sessions on one thread with no hand-off between threads, and the service's several processes use the cores; more runs a multi-threaded runtime.",
    ),
    (
        "service_throttle_time",
        "How long the master waits before restarting a service that keeps dying at start-up.",
    ),
    (
        "daemon_timeout",
        "How long a service may take for one request before it is considered stuck.",
    ),
    (
        "ipc_timeout",
        "How long a process waits on a peer over a Unix socket.",
    ),
    (
        "max_idle",
        "Postfix restarts idle daemons after this; accepted, mailgate's long-lived workers do not use it (see SECURITY.md).",
    ),
    (
        "max_use",
        "Postfix restarts daemons after this many clients; accepted, mailgate's workers do not use it (see SECURITY.md).",
    ),
    (
        "command_time_limit",
        "How long an external command may run.",
    ),
    (
        "in_flow_delay",
        "Postfix's delay for submissions when the queue manager falls behind.",
    ),
    (
        "master_drain_time",
        "How long sessions in progress get to finish when the gateway stops.",
    ),
    // Spam scoring.
    (
        "spam_rules_files",
        "SpamAssassin rule files loaded after the stock rules, such as a site's local.cf.",
    ),
    (
        "spam_stock_rules_directory",
        "Where SpamAssassin's stock rules are (the spamassassin package).",
    ),
    (
        "spam_bayes_directory",
        "The Bayes store that mailgate learn trains and the scanner reads.",
    ),
    (
        "spam_bayes_enabled",
        "Use the Bayes classifier in spam scores.",
    ),
    (
        "spam_network_tests",
        "Run the rules that need the network (DNS block lists and the like).",
    ),
    (
        "spam_bayes_auto_learn",
        "Let the scanner learn the clear cases by itself, as SpamAssassin's bayes_auto_learn.",
    ),
    (
        "spam_bayes_auto_learn_threshold_spam",
        "The score without Bayes from which mail is auto-learned as spam.",
    ),
    (
        "spam_bayes_auto_learn_threshold_nonspam",
        "The score without Bayes below which mail is auto-learned as ham.",
    ),
    (
        "greylist_delay",
        "How long a new triplet (client, sender, recipient) is deferred, as postgrey's --delay.",
    ),
    (
        "greylist_retry_window",
        "How long after the delay a retry still passes a new triplet.",
    ),
    (
        "greylist_max_age",
        "Triplets not seen for this long are forgotten.",
    ),
    (
        "greylist_auto_whitelist_clients",
        "Clients that retried properly this many times pass at once (postgrey's AWL); 0: never.",
    ),
    (
        "greylist_whitelist_clients",
        "Tables of clients never greylisted (postgrey's whitelist_clients).",
    ),
    (
        "greylist_whitelist_recipients",
        "Tables of recipients never greylisted (postgrey's whitelist_recipients).",
    ),
    (
        "greylist_text",
        "The text of the greylisting deferral; %r is the recipient's domain.",
    ),
    (
        "greylist_database",
        "Where the triplets are: redb:PATH (one process) or redis:host:port[/db] (shared by gateways).",
    ),
    (
        "greylist_database_timeout",
        "How long the greylist service waits for its store before it defers.",
    ),
    (
        "sandbox_mode",
        "enforce: a call outside a service's seccomp profile kills it; log: it is only logged (to find a missing call).",
    ),
    (
        "table_check_interval",
        "How often the master looks whether a lookup table file changed (and reloads when one did).",
    ),
    // The web page.
    (
        "web_admin_users",
        "The logins allowed on the web page (each also checked by the SASL backend); empty: nobody.",
    ),
    (
        "web_sasl_type",
        "The backend that checks web page logins: dovecot (Dovecot's auth protocol).",
    ),
    (
        "web_sasl_path",
        "Where the login backend is reached: a Unix socket relative to queue_directory, such as private/auth.",
    ),
    (
        "web_tls_cert_file",
        "The web page's certificate chain (PEM); set, the page is served over HTTPS only.",
    ),
    (
        "web_tls_key_file",
        "The web page's private key (PEM); defaults to web_tls_cert_file.",
    ),
    (
        "web_session_timeout",
        "A web page session ends after this long without a request.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_has_one_description_and_no_description_is_orphaned() {
        let mut seen = std::collections::HashSet::new();
        for (name, text) in DESCRIPTIONS {
            assert!(seen.insert(*name), "{name} is described twice");
            assert!(
                crate::params::find(name).is_some(),
                "{name} is described but is not a parameter"
            );
            assert!(!text.is_empty() && !text.contains('\n'), "{name}");
        }
        let missing: Vec<&str> = crate::params::all()
            .iter()
            .map(|p| p.name)
            .filter(|name| !seen.contains(name))
            .collect();
        assert!(
            missing.is_empty(),
            "parameters without a line in libs/config/src/descriptions.rs (mailgate.cf(5) is \
             generated from it): {missing:?}"
        );
    }
}
