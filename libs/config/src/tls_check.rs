//! `mailgate check` for the TLS and SMTP AUTH settings: what smtpd,
//! relay and tlskeys would refuse at start-up, found before.

use crate::main_cf::MainConfig;
use crate::tls::{
    ClientLevel, FingerprintDigest, Protocols, ServerLevel, Side, check_cipher_grade,
    excluded_cipher_fragments, fingerprint_cert_match, key_sources,
};

/// Every problem with the TLS and SMTP AUTH settings of one configuration
/// (main.cf, or a service's view with its `-o` overrides), as (parameter,
/// message), for `mailgate check`: what smtpd, relay and tlskeys would
/// refuse at start-up.
pub(crate) fn problems(config: &MainConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |parameter: &str, message: String| out.push((parameter.to_string(), message));
    if let Err(e) = ServerLevel::from_config(config) {
        push("smtpd_tls_security_level", e.to_string());
    }
    match ClientLevel::from_config(config) {
        Err(e) => push("smtp_tls_security_level", e.to_string()),
        Ok(level) => {
            if let Err(e) = FingerprintDigest::from_config(config) {
                push("smtp_tls_fingerprint_digest", e.to_string());
            }
            match fingerprint_cert_match(config) {
                Err(e) => push("smtp_tls_fingerprint_cert_match", e.to_string()),
                Ok(prints) if prints.is_empty() && level == ClientLevel::Fingerprint => push(
                    "smtp_tls_security_level",
                    "smtp_tls_security_level = fingerprint without smtp_tls_fingerprint_cert_match: \
                     no certificate could be accepted"
                        .into(),
                ),
                Ok(_) => {}
            }
        }
    }
    for name in [
        "smtpd_tls_protocols",
        "smtpd_tls_mandatory_protocols",
        "smtp_tls_protocols",
        "smtp_tls_mandatory_protocols",
    ] {
        if let Err(e) = Protocols::from_config(config, name) {
            push(name, e.to_string());
        }
    }
    for name in [
        "smtpd_tls_ciphers",
        "smtpd_tls_mandatory_ciphers",
        "smtp_tls_ciphers",
        "smtp_tls_mandatory_ciphers",
    ] {
        if let Err(e) = check_cipher_grade(name, &config.get(name)) {
            push(name, e.to_string());
        }
    }
    for name in [
        "smtpd_tls_exclude_ciphers",
        "smtpd_tls_mandatory_exclude_ciphers",
        "smtp_tls_exclude_ciphers",
        "smtp_tls_mandatory_exclude_ciphers",
    ] {
        if let Err(e) = excluded_cipher_fragments(name, &config.get(name)) {
            push(name, e.to_string());
        }
    }
    for side in [Side::Server, Side::Client] {
        match key_sources(config, side) {
            Err(e) => push(&format!("{}_tls_cert_file", prefix(side)), e.to_string()),
            Ok(sources) => {
                for source in sources {
                    for path in [&source.cert, &source.key] {
                        if let Err(e) = std::fs::metadata(path) {
                            push(
                                &format!("{}_tls_cert_file", prefix(side)),
                                format!("cannot read {}: {e}", path.display()),
                            );
                        }
                    }
                }
            }
        }
    }
    let server_tls = matches!(ServerLevel::from_config(config), Ok(l) if l > ServerLevel::None)
        || config.bool("smtpd_tls_wrappermode");
    if server_tls && key_sources(config, Side::Server).is_ok_and(|s| s.is_empty()) {
        push(
            "smtpd_tls_security_level",
            "TLS is asked for but no certificate is configured (smtpd_tls_cert_file, \
             smtpd_tls_eccert_file or smtpd_tls_chain_files)"
                .to_string(),
        );
    }
    match crate::sasl::SaslBackend::from_config(config) {
        Err(e) => push(e.parameter, e.message),
        Ok(Some(crate::sasl::SaslBackend::Imap { .. })) => {
            match crate::sasl::ImapTls::from_config(config) {
                Err(e) => push(e.parameter, e.message),
                Ok(crate::sasl::ImapTls::Verify)
                    if config.get("smtpd_sasl_imap_tls_CAfile").trim().is_empty() =>
                {
                    push(
                        "smtpd_sasl_imap_tls_security_level",
                        "verify needs smtpd_sasl_imap_tls_CAfile".to_string(),
                    );
                }
                Ok(_) => {}
            }
        }
        Ok(_) => {}
    }
    for name in [
        "smtpd_sasl_security_options",
        "smtpd_sasl_tls_security_options",
    ] {
        if let Err(e) = crate::sasl::mechanisms_allowed(name, &config.list(name)) {
            push(e.parameter, e.message);
        }
    }
    out
}

/// Whether a configuration needs the tlskeys service: a certificate for
/// smtpd or relay is configured.
pub(crate) fn needs_tlskeys(config: &MainConfig) -> bool {
    [Side::Server, Side::Client]
        .iter()
        .any(|side| key_sources(config, *side).is_ok_and(|s| !s.is_empty()))
}

fn prefix(side: Side) -> &'static str {
    match side {
        Side::Server => "smtpd",
        Side::Client => "smtp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(text: &str) -> Vec<(String, String)> {
        let config = MainConfig::parse(
            text,
            std::path::Path::new("/etc/mg/main.cf"),
            std::path::Path::new("/etc/mg"),
            &[],
        )
        .unwrap();
        problems(&config)
    }

    #[test]
    fn the_fingerprint_level_needs_fingerprints_it_can_read() {
        let none = problems_of("smtp_tls_security_level = fingerprint\n");
        assert!(
            none.iter()
                .any(|(p, m)| p == "smtp_tls_security_level" && m.contains("no certificate")),
            "{none:?}"
        );
        let bad = problems_of(
            "smtp_tls_security_level = fingerprint\nsmtp_tls_fingerprint_cert_match = nothex\n",
        );
        assert!(
            bad.iter()
                .any(|(p, _)| p == "smtp_tls_fingerprint_cert_match"),
            "{bad:?}"
        );
        let md5 = problems_of("smtp_tls_fingerprint_digest = md5\n");
        assert!(
            md5.iter().any(|(p, _)| p == "smtp_tls_fingerprint_digest"),
            "{md5:?}"
        );
        assert!(
            problems_of(
                "smtp_tls_security_level = fingerprint\nsmtp_tls_fingerprint_cert_match = AB:CD\n"
            )
            .is_empty()
        );
    }
}
