//! Sender authentication as main.cf configures it: check_spf's policy
//! (policyd-spf's settings under Postfix-style names) and the scanner's
//! DKIM and DMARC checks.

use crate::main_cf::MainConfig;

/// Which results of one SPF identity are refused (policyd-spf's
/// HELO_reject and Mail_From_reject).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpfReject {
    Fail,
    /// Fail and softfail.
    Softfail,
    /// Fail, softfail and neutral.
    NotPass,
    /// HELO only: fail, when the sender is the null sender.
    Null,
    /// Nothing: the header only.
    No,
    /// The identity is not checked at all.
    NoCheck,
}

impl SpfReject {
    fn parse(value: &str) -> SpfReject {
        match value.to_ascii_lowercase().as_str() {
            "softfail" => SpfReject::Softfail,
            "not_pass" => SpfReject::NotPass,
            "null" => SpfReject::Null,
            "no" => SpfReject::No,
            "no_check" => SpfReject::NoCheck,
            _ => SpfReject::Fail,
        }
    }
}

/// check_spf's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpfPolicy {
    pub helo: SpfReject,
    pub mail_from: SpfReject,
    pub permerror_reject: bool,
    pub temperror_defer: bool,
    pub received_header: bool,
    /// spf_reject_reason, with its $names unexpanded.
    pub reason: String,
}

impl SpfPolicy {
    pub fn load(config: &MainConfig) -> SpfPolicy {
        SpfPolicy {
            helo: SpfReject::parse(&config.get("spf_helo_reject")),
            mail_from: SpfReject::parse(&config.get("spf_mail_from_reject")),
            permerror_reject: config.bool("spf_permerror_reject"),
            temperror_defer: config.bool("spf_temperror_defer"),
            received_header: config.bool("spf_received_header"),
            reason: config.get("spf_reject_reason"),
        }
    }
}

/// What mail that fails DMARC (or whose check failed) gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarcAction {
    Reject,
    Quarantine,
    Tag,
    Defer,
}

impl DmarcAction {
    fn parse(value: &str) -> DmarcAction {
        match value.to_ascii_lowercase().as_str() {
            "reject" => DmarcAction::Reject,
            "quarantine" => DmarcAction::Quarantine,
            "defer" => DmarcAction::Defer,
            _ => DmarcAction::Tag,
        }
    }
}

/// The scanner's checks of mail from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyPolicy {
    pub dkim: bool,
    pub dmarc: bool,
    pub on_reject: DmarcAction,
    pub on_quarantine: DmarcAction,
    pub on_tempfail: DmarcAction,
    pub authserv_id: String,
    /// For SPF's %{r} macro when the scanner runs SPF itself.
    pub receiver: String,
}

impl VerifyPolicy {
    pub fn load(config: &MainConfig) -> VerifyPolicy {
        VerifyPolicy {
            dkim: config.bool("dkim_verify"),
            dmarc: config.bool("dmarc_verify"),
            on_reject: DmarcAction::parse(&config.get("dmarc_reject_action")),
            on_quarantine: DmarcAction::parse(&config.get("dmarc_quarantine_action")),
            on_tempfail: DmarcAction::parse(&config.get("dmarc_tempfail_action")),
            authserv_id: config.get("authserv_id").trim().to_string(),
            receiver: config.get("myhostname"),
        }
    }

    /// Any check at all: the scanner then needs DNS.
    pub fn any(&self) -> bool {
        self.dkim || self.dmarc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, text: &str) -> MainConfig {
        std::fs::write(dir.join("main.cf"), text).unwrap();
        MainConfig::load(dir).unwrap()
    }

    #[test]
    fn policies() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(
            dir.path(),
            "spf_mail_from_reject = softfail\nspf_helo_reject = no_check\ndmarc_verify = yes\n\
             dmarc_reject_action = quarantine\n",
        );
        let spf = SpfPolicy::load(&c);
        assert_eq!(spf.mail_from, SpfReject::Softfail);
        assert_eq!(spf.helo, SpfReject::NoCheck);
        assert!(spf.temperror_defer && !spf.permerror_reject && spf.received_header);
        let verify = VerifyPolicy::load(&c);
        assert!(verify.any() && verify.dmarc && !verify.dkim);
        assert_eq!(verify.on_reject, DmarcAction::Quarantine);
        assert_eq!(verify.on_quarantine, DmarcAction::Quarantine);
        assert_eq!(verify.on_tempfail, DmarcAction::Defer);
    }
}
