//! The eval tests of SpamAssassin's SPF, DKIM and DMARC plugins
//! (`eval:check_for_spf_pass()`, `eval:check_dkim_valid_author_sig()`,
//! `eval:check_dmarc_reject()`...). This engine does no DNS: the caller
//! (the scanner, from what mailgate-mailauth found before the scan)
//! answers them, so the stock rules and scores of 25_spf.cf, 25_dkim.cf,
//! 25_dmarc.cf and 50_scores.cf apply to the gateway's own results.
//!
//! The rules are `tflags net` in SpamAssassin: they run only with network
//! tests on (`spam_network_tests = yes`, score sets 1 and 3), as
//! SpamAssassin skips them in local-only mode.

/// The sender-authentication results of one message.
pub trait SenderAuth: Sync {
    /// The value of `function(args)`, one of [`FUNCTIONS`], as the plugin
    /// would compute it.
    fn eval(&self, function: &str, args: &[String]) -> bool;
}

/// The eval functions a [`SenderAuth`] answers. Other functions of these
/// plugins (ADSP, the dkim/spf welcomelists) are listed as
/// unsupported rules.
pub const FUNCTIONS: &[&str] = &[
    "check_for_spf_pass",
    "check_for_spf_neutral",
    "check_for_spf_none",
    "check_for_spf_fail",
    "check_for_spf_softfail",
    "check_for_spf_permerror",
    "check_for_spf_temperror",
    "check_for_spf_helo_pass",
    "check_for_spf_helo_neutral",
    "check_for_spf_helo_none",
    "check_for_spf_helo_fail",
    "check_for_spf_helo_softfail",
    "check_for_spf_helo_permerror",
    "check_for_spf_helo_temperror",
    "check_dkim_signed",
    "check_dkim_valid",
    "check_dkim_valid_author_sig",
    "check_dkim_valid_envelopefrom",
    "check_dkim_dependable",
    "check_arc_signed",
    "check_arc_valid",
    "check_dmarc_pass",
    "check_dmarc_reject",
    "check_dmarc_quarantine",
    "check_dmarc_none",
    "check_dmarc_missing",
];
