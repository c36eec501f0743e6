//! The `eval:` tests implemented natively: Bayes first, then cheap ones that carry
//! weight in the stock scores. Any other eval test is listed as unsupported.

mod headers;
mod mime;

pub use headers::envelope_from;

use crate::msg::{self, Message};
use pcre2::bytes::Regex;

use mime::MimeTest;

/// An implemented eval test with its arguments parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Eval {
    Bayes {
        min: f64,
        max: f64,
    },
    FromInWelcomelist,
    FromInBlocklist,
    ToInWelcomelist,
    MissingToHeader,
    MimeHtml,
    MimeHtmlOnly,
    HtmlTest(String),
    HtmlTagExists(String),
    HtmlImageOnly {
        min: f64,
        max: f64,
    },
    HtmlImageRatio {
        min: f64,
        max: f64,
    },
    SubjectAllCaps,
    ParseFlag(String),
    HeaderCount {
        name: String,
        min: f64,
        max: f64,
    },
    BodyLength {
        max: f64,
    },
    Base64Length {
        min: f64,
        max: f64,
    },
    Gtube,
    /// Date header minus Received time within [min, max) hours.
    ShiftedDate {
        min: Option<f64>,
        max: Option<f64>,
    },
    /// Outlook-style Message-ID whose time stamp disagrees with Date and Received.
    OutlookMessageId,
    /// A header with an unexpanded `%VARIABLE` from a bulk mailer's template.
    UnresolvedTemplate,
    /// Seven or more recipients in sorted order.
    SortedRecipients,
    /// Similarity of recipient addresses within [min, max); `None` is unbounded.
    SimilarRecipients {
        min: Option<f64>,
        max: Option<f64>,
    },
    /// The To: address (`address`) or its local part (`user`) in the Subject.
    ToInSubject(String),
    /// From: a yahoo.com address, but no Received header from Yahoo's servers.
    ForgedYahooReceived,
    /// A numeric HTML result (html_range) in (min, max]; no max is unbounded.
    HtmlRange {
        name: String,
        min: f64,
        max: Option<f64>,
    },
    /// A numeric HTML result compared with a number (html_eval).
    HtmlCompare {
        name: String,
        cmp: Comparison,
    },
    /// Openings minus closings of a tag compared with a number (html_tag_balance).
    HtmlTagBalance {
        tag: String,
        cmp: Comparison,
    },
    /// A regex over HTML comments, titles, anchor texts or scripts.
    HtmlTextMatch {
        name: String,
        regex: Pattern,
    },
    /// A title more than this many times as long as the subject.
    HtmlTitleSubjectRatio(f64),
    /// The charset tests: with SpamAssassin's default ok_locales (`all`; this
    /// engine has no ok_locales setting) no charset is foreign.
    FarawayCharset,
    /// check_for_mime: a fact about the MIME structure.
    Mime(MimeTest),
    /// Bytes of text over bytes of HTML alternative in [min, max).
    MimeMultipartRatio {
        min: f64,
        max: f64,
    },
    /// Share (percent) of the HTML alternative's words the text one lacks, in
    /// (min, max]; min 0 includes 0, no max is unbounded.
    MultipartAltDifference {
        min: f64,
        max: Option<f64>,
    },
    /// More than `ratio` text words per HTML word, with more than `min_html`.
    MultipartAltDifferenceCount {
        ratio: f64,
        min_html: f64,
    },
    /// Percentage of capitals in the body in (min, max].
    Uppercase {
        min: f64,
        max: f64,
    },
    /// The highest share of spaces on a body line in [min, max).
    VerticalWords {
        min: f64,
        max: f64,
    },
    /// 8-bit or control characters in a header: share at least `ratio`, at
    /// least `count` of them.
    IllegalChars {
        header: String,
        ratio: f64,
        count: f64,
    },
    /// A relay named like AOL's (`rly-xx01.`) without AOL's marks.
    FakeAolRelay,
    /// A relay that names itself hotmail.com but is not Hotmail's.
    ForgedHotmailReceived,
    /// A hotmail.com sender with no Hotmail relay.
    NoHotmailReceived,
    /// Senders at eudoramail.com, juno.com and gmail.com without their
    /// services' own Received (or X-) headers.
    ForgedEudoramailReceived,
    ForgedJunoReceived,
    ForgedGmailReceived,
    /// The Received headers were removed on the way (or there are none).
    ReceivedHeadersRemoved,
    /// A Message-ID of 28 capitals and the From address, quoted as the name too.
    RatwareNameId,
    /// The envelope sender is the From address.
    EnvAndHdrFromMatch,
    /// A sender address in an `enlist_addrlist` list.
    FromInList(String),
    /// The Reply-To address in an `enlist_addrlist` list.
    ReplyToInList(String),
    /// A link's host (or a parent domain) in an `enlist_uri_host` list.
    UriHostListed(String),
    /// The DKIM welcomelist (`def`: the def_ one) of the From: address.
    DkimWelcomelist {
        def: bool,
    },
    /// The DKIM plugin's check_dkim_adsp: practices letters (`*`: any)
    /// and the author domains it is limited to.
    DkimAdsp {
        chars: String,
        domains: Vec<String>,
    },
    /// The SPF welcomelist (`def`: the def_ one) of the envelope sender.
    SpfWelcomelist {
        def: bool,
    },
    /// An SPF, DKIM or DMARC test, answered by the caller's results.
    SenderAuth {
        function: String,
        args: Vec<String>,
    },
}

/// A comparison as html_eval and html_tag_balance write it (`< 512`, `!= 0`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    op: Op,
    value: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Comparison {
    /// Parses `OP NUMBER`; SpamAssassin hands the text to Perl, so anything else
    /// is left unsupported rather than guessed at.
    fn parse(text: &str) -> Option<Comparison> {
        let t = text.trim();
        let (op, rest) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .iter()
        .find_map(|(s, op)| t.strip_prefix(s).map(|r| (*op, r)))?;
        let num = rest.trim().replace(' ', "");
        if num.is_empty()
            || !num
                .trim_start_matches(['-', '+'])
                .bytes()
                .all(|c| c.is_ascii_digit())
        {
            return None;
        }
        Some(Comparison {
            op,
            value: num.parse().ok()?,
        })
    }

    fn holds(self, v: f64) -> bool {
        match self.op {
            Op::Lt => v < self.value,
            Op::Le => v <= self.value,
            Op::Gt => v > self.value,
            Op::Ge => v >= self.value,
            Op::Eq => v == self.value,
            Op::Ne => v != self.value,
        }
    }
}

/// A compiled regex that compares by its pattern.
#[derive(Clone, Debug)]
pub struct Pattern(Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// What an eval test may look at besides the message.
pub struct Context<'a> {
    pub msg: &'a Message,
    pub bayes: Option<f64>,
    pub welcomelist_from: &'a [String],
    pub blocklist_from: &'a [String],
    pub welcomelist_to: &'a [String],
    pub addrlists: &'a std::collections::HashMap<String, Vec<String>>,
    pub uri_host_lists:
        &'a std::collections::HashMap<String, std::collections::HashMap<String, bool>>,
    /// SPF, DKIM and DMARC results, when the caller has them.
    pub sender_auth: Option<&'a dyn crate::sender_auth::SenderAuth>,
    pub auth_welcomelists: &'a crate::sender_auth::AuthWelcomelists,
}

/// SpamAssassin's check_uri_host_listed: a link's host, or the nearest of its
/// parent domains the list names, is listed (not excepted with `!`). mailto:
/// links do not count.
fn uri_host_listed(m: &Message, list: &std::collections::HashMap<String, bool>) -> bool {
    m.uris.iter().any(|uri| {
        let lower = uri.to_ascii_lowercase();
        if lower.starts_with("mailto:") {
            return false;
        }
        let rest = lower.split_once("://").map_or(lower.as_str(), |(_, r)| r);
        let host = rest
            .split(['/', '?', '#', ':'])
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let mut h = host;
        while !h.is_empty() {
            if let Some(&verdict) = list.get(h) {
                return verdict;
            }
            match h.split_once('.') {
                Some((_, parent)) => h = parent,
                None => break,
            }
        }
        false
    })
}

fn num(args: &[String], i: usize, default: f64) -> f64 {
    args.get(i)
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or(default)
}

impl Eval {
    /// The implementation of `function(args)`, if there is one.
    pub fn new(function: &str, args: &[String]) -> Option<Eval> {
        Some(match function {
            "check_bayes" => Eval::Bayes {
                min: num(args, 0, 0.0),
                max: num(args, 1, 1.0),
            },
            "check_from_in_whitelist" | "check_from_in_welcomelist" => Eval::FromInWelcomelist,
            "check_from_in_blacklist" | "check_from_in_blocklist" => Eval::FromInBlocklist,
            "check_to_in_whitelist" | "check_to_in_welcomelist" => Eval::ToInWelcomelist,
            "check_for_missing_to_header" => Eval::MissingToHeader,
            "check_for_mime_html" => Eval::MimeHtml,
            "check_for_mime_html_only" => Eval::MimeHtmlOnly,
            "html_test" => Eval::HtmlTest(args.first()?.clone()),
            "html_tag_exists" => Eval::HtmlTagExists(args.first()?.to_ascii_lowercase()),
            "html_image_only" => Eval::HtmlImageOnly {
                min: num(args, 0, 0.0),
                max: num(args, 1, f64::MAX),
            },
            "html_image_ratio" => Eval::HtmlImageRatio {
                min: num(args, 0, 0.0),
                max: num(args, 1, f64::MAX),
            },
            "subject_is_all_caps" => Eval::SubjectAllCaps,
            "check_msg_parse_flags" => Eval::ParseFlag(args.first()?.clone()),
            "check_header_count_range" => Eval::HeaderCount {
                name: args.first()?.clone(),
                min: num(args, 1, 0.0),
                max: num(args, 2, f64::MAX),
            },
            "check_body_length" => Eval::BodyLength {
                max: num(args, 0, 0.0),
            },
            "check_base64_length" => Eval::Base64Length {
                min: num(args, 0, 0.0),
                max: num(args, 1, f64::MAX),
            },
            "check_gtube" => Eval::Gtube,
            "check_for_shifted_date" => {
                let hours = |i: usize| {
                    let a = args.get(i)?.trim().trim_matches(['\'', '"']);
                    a.parse::<f64>().ok()
                };
                Eval::ShiftedDate {
                    min: hours(0),
                    max: hours(1),
                }
            }
            "check_outlook_message_id" => Eval::OutlookMessageId,
            "check_unresolved_template" => Eval::UnresolvedTemplate,
            "sorted_recipients" => Eval::SortedRecipients,
            "similar_recipients" => {
                // SpamAssassin passes the literal word `undef` for an open bound.
                let bound = |i: usize| args.get(i)?.trim().parse::<f64>().ok();
                Eval::SimilarRecipients {
                    min: bound(0),
                    max: bound(1),
                }
            }
            "check_for_to_in_subject" => Eval::ToInSubject(args.first()?.trim().to_string()),
            "check_for_forged_yahoo_received_headers" => Eval::ForgedYahooReceived,
            "html_range" => Eval::HtmlRange {
                name: args.first()?.clone(),
                min: num(args, 1, 0.0),
                // SpamAssassin's `inf` (or no max) is unbounded.
                max: match args.get(2).map(|m| m.trim()) {
                    None | Some("inf") => None,
                    Some(m) => Some(m.parse().ok()?),
                },
            },
            "html_eval" => Eval::HtmlCompare {
                name: args.first()?.clone(),
                cmp: Comparison::parse(args.get(1)?)?,
            },
            "html_tag_balance" => {
                let tag = args.first()?;
                if tag.is_empty() || !tag.bytes().all(|c| c.is_ascii_alphanumeric()) {
                    return None;
                }
                Eval::HtmlTagBalance {
                    tag: tag.clone(),
                    cmp: Comparison::parse(args.get(1)?)?,
                }
            }
            "html_text_match" => Eval::HtmlTextMatch {
                name: args.first()?.clone(),
                regex: Pattern(crate::perlre::compile(args.get(1)?, "").ok()?),
            },
            "html_title_subject_ratio" => Eval::HtmlTitleSubjectRatio(num(args, 0, f64::MAX)),
            "html_charset_faraway"
            | "check_for_faraway_charset"
            | "check_for_faraway_charset_in_headers" => Eval::FarawayCharset,
            "check_for_mime" => Eval::Mime(MimeTest::new(args.first()?)?),
            "check_mime_multipart_ratio" => Eval::MimeMultipartRatio {
                min: num(args, 0, 0.0),
                max: num(args, 1, f64::MAX),
            },
            "multipart_alternative_difference" => Eval::MultipartAltDifference {
                min: num(args, 0, 0.0),
                max: args.get(1).and_then(|m| m.trim().parse().ok()),
            },
            "multipart_alternative_difference_count" => Eval::MultipartAltDifferenceCount {
                ratio: num(args, 0, 0.0),
                min_html: num(args, 1, 0.0),
            },
            "check_for_uppercase" => Eval::Uppercase {
                min: num(args, 0, 0.0),
                max: num(args, 1, 100.0),
            },
            "tvd_vertical_words" => {
                // SpamAssassin's kludge: a max of 100 includes 100.
                let max = num(args, 1, 101.0);
                Eval::VerticalWords {
                    min: num(args, 0, 0.0),
                    max: if max >= 100.0 { 101.0 } else { max },
                }
            }
            "check_illegal_chars" => Eval::IllegalChars {
                header: args.first()?.trim().to_string(),
                ratio: num(args, 1, 0.0),
                count: num(args, 2, 0.0),
            },
            "check_for_fake_aol_relay_in_rcvd" => Eval::FakeAolRelay,
            "check_for_forged_hotmail_received_headers" => Eval::ForgedHotmailReceived,
            "check_for_no_hotmail_received_headers" => Eval::NoHotmailReceived,
            "check_for_forged_eudoramail_received_headers" => Eval::ForgedEudoramailReceived,
            "check_for_forged_juno_received_headers" => Eval::ForgedJunoReceived,
            "check_for_forged_gmail_received_headers" => Eval::ForgedGmailReceived,
            "gated_through_received_hdr_remover" => Eval::ReceivedHeadersRemoved,
            "check_ratware_name_id" => Eval::RatwareNameId,
            "check_for_matching_env_and_hdr_from" => Eval::EnvAndHdrFromMatch,
            "check_from_in_list" => Eval::FromInList(args.first()?.trim().to_string()),
            "check_replyto_in_list" => Eval::ReplyToInList(args.first()?.trim().to_string()),
            "check_uri_host_listed" => Eval::UriHostListed(args.first()?.trim().to_string()),
            "check_for_dkim_welcomelist_from" | "check_for_dkim_whitelist_from" => {
                Eval::DkimWelcomelist { def: false }
            }
            "check_for_def_dkim_welcomelist_from" | "check_for_def_dkim_whitelist_from" => {
                Eval::DkimWelcomelist { def: true }
            }
            // The DKIM plugin's ADSP tests: check_dkim_signall is
            // check_dkim_adsp('A'); check_dkim_signsome never hits there.
            "check_dkim_adsp" => Eval::DkimAdsp {
                chars: args.first()?.trim().trim_matches(['\'', '"']).to_string(),
                domains: args[1..].to_vec(),
            },
            "check_dkim_signall" => Eval::DkimAdsp {
                chars: "A".into(),
                domains: Vec::new(),
            },
            "check_dkim_signsome" => Eval::DkimAdsp {
                chars: String::new(),
                domains: Vec::new(),
            },
            "check_for_spf_welcomelist_from" | "check_for_spf_whitelist_from" => {
                Eval::SpfWelcomelist { def: false }
            }
            "check_for_def_spf_welcomelist_from" | "check_for_def_spf_whitelist_from" => {
                Eval::SpfWelcomelist { def: true }
            }
            f if crate::sender_auth::FUNCTIONS.contains(&f) => Eval::SenderAuth {
                function: f.to_string(),
                args: args.to_vec(),
            },
            _ => return None,
        })
    }

    /// SpamAssassin's check_bayes: (min, max], with min 0 meaning from 0; false
    /// for other tests.
    pub fn bayes_hit(&self, bayes: Option<f64>) -> bool {
        match self {
            Eval::Bayes { min, max } => {
                bayes.is_some_and(|p| (*min == 0.0 || p > *min) && p <= *max)
            }
            _ => false,
        }
    }

    pub fn run(&self, cx: &Context) -> bool {
        let m = cx.msg;
        match self {
            Eval::Bayes { .. } => self.bayes_hit(cx.bayes),
            Eval::FromInWelcomelist => senders(m).iter().any(|a| listed(a, cx.welcomelist_from)),
            Eval::FromInList(name) => cx
                .addrlists
                .get(name)
                .is_some_and(|l| senders(m).iter().any(|a| listed(a, l))),
            Eval::ReplyToInList(name) => cx.addrlists.get(name).is_some_and(|l| {
                m.header("reply-to").is_some_and(|v| {
                    let addr = String::from_utf8_lossy(&msg::first_addr(&v)).to_lowercase();
                    !addr.is_empty() && listed(&addr, l)
                })
            }),
            Eval::UriHostListed(name) => cx
                .uri_host_lists
                .get(name)
                .is_some_and(|l| uri_host_listed(m, l)),
            Eval::FromInBlocklist => senders(m).iter().any(|a| listed(a, cx.blocklist_from)),
            Eval::ToInWelcomelist => recipients(m).iter().any(|a| listed(a, cx.welcomelist_to)),
            Eval::MissingToHeader => {
                m.header("to").is_none() && m.header("apparently-to").is_none()
            }
            Eval::MimeHtml => mime::mime_html(m, false),
            Eval::MimeHtmlOnly => mime::mime_html(m, true),
            Eval::HtmlTest(what) => m.html.iter().any(|h| h.test(what)),
            Eval::HtmlTagExists(tag) => m.html.iter().any(|h| h.has_tag(tag)),
            // The length of the HTML source of a part with an image.
            Eval::HtmlImageOnly { min, max } => m.html.iter().any(|h| {
                let len = h.length as f64;
                h.has_tag("img") && len > *min && len <= *max
            }),
            Eval::HtmlImageRatio { min, max } => m.html.iter().any(|h| {
                if h.image_area == 0 {
                    return false;
                }
                let ratio = h.non_space_len as f64 / h.image_area as f64;
                ratio > *min && ratio <= *max
            }),
            Eval::HtmlRange { name, min, max } => m.html.iter().any(|h| {
                h.value(name)
                    .is_some_and(|v| v > *min && max.is_none_or(|max| v <= max))
            }),
            Eval::HtmlCompare { name, cmp } => m
                .html
                .iter()
                .any(|h| h.value(name).is_some_and(|v| cmp.holds(v))),
            Eval::HtmlTagBalance { tag, cmp } => m.html.iter().any(|h| {
                h.inside
                    .get(tag.as_bytes())
                    .is_some_and(|&n| cmp.holds(n as f64))
            }),
            Eval::HtmlTextMatch { name, regex } => m.html.iter().any(|h| {
                h.strings(name).is_some_and(|strings| {
                    strings.iter().any(|s| regex.0.is_match(s).unwrap_or(false))
                })
            }),
            Eval::HtmlTitleSubjectRatio(ratio) => title_subject_ratio(m, *ratio),
            Eval::FarawayCharset => false,
            Eval::Mime(test) => test.run(m),
            Eval::MimeMultipartRatio { min, max } => {
                let r = mime::MimeFacts::of(m).multipart_ratio;
                r >= *min && r < *max
            }
            Eval::MultipartAltDifference { min, max } => {
                let d = mime::alternative_difference(m).percent;
                (*min == 0.0 || d > *min) && max.is_none_or(|max| d <= max)
            }
            Eval::MultipartAltDifferenceCount { ratio, min_html } => {
                let d = mime::alternative_difference(m);
                d.html_words as f64 > *min_html
                    && d.text_words as f64 / d.html_words as f64 > *ratio
            }
            Eval::Uppercase { min, max } => {
                let p = mime::uppercase_percent(m);
                p > *min && p <= *max
            }
            Eval::VerticalWords { min, max } => {
                let v = mime::vertical_words(m);
                v >= *min && v < *max
            }
            Eval::IllegalChars {
                header,
                ratio,
                count,
            } => headers::illegal_chars(m, header, *ratio, *count),
            Eval::FakeAolRelay => headers::fake_aol_relay(m),
            Eval::ForgedHotmailReceived => headers::hotmail(m).forged,
            Eval::NoHotmailReceived => headers::hotmail(m).missing,
            Eval::ForgedEudoramailReceived => headers::forged_eudoramail(m),
            Eval::ForgedJunoReceived => headers::forged_juno(m),
            Eval::ForgedGmailReceived => headers::forged_gmail(m),
            Eval::ReceivedHeadersRemoved => headers::received_headers_removed(m),
            Eval::RatwareNameId => headers::ratware_name_id(m),
            Eval::EnvAndHdrFromMatch => headers::env_and_hdr_from_match(m),
            Eval::SubjectAllCaps => subject_all_caps(&m.header("subject").unwrap_or_default()),
            Eval::ParseFlag(flag) => match flag.as_str() {
                "missing_head_body_separator" => m.missing_separator,
                "mime_epilogue_exists" => m.mime_epilogue,
                _ => false,
            },
            Eval::HeaderCount { name, min, max } => {
                let n = msg::header_values(&m.headers, name).count() as f64;
                n >= *min && n <= *max
            }
            Eval::BodyLength { max } => (m.body_len as f64) <= *max,
            // The longest base64 line of the message (calendar invitations aside).
            Eval::Base64Length { min, max } => {
                let l = m
                    .parts
                    .iter()
                    .filter(|p| p.content_type != "application/ics")
                    .map(|p| p.base64_longest_line)
                    .max()
                    .unwrap_or(0) as f64;
                l >= *min && l <= *max
            }
            Eval::Gtube => crate::is_gtube(&m.full),
            Eval::ShiftedDate { min, max } => {
                let diff = crate::dates::date_diff(m) as f64;
                min.is_none_or(|h| diff >= h * 3600.0) && max.is_none_or(|h| diff < h * 3600.0)
            }
            Eval::OutlookMessageId => outlook_message_id(m),
            Eval::UnresolvedTemplate => unresolved_template(m),
            Eval::SortedRecipients => recipient_order(m).0,
            Eval::SimilarRecipients { min, max } => {
                let similar = recipient_order(m).1;
                min.is_none_or(|v| similar >= v) && max.is_none_or(|v| similar < v)
            }
            Eval::ToInSubject(test) => to_in_subject(m, test),
            Eval::ForgedYahooReceived => headers::forged_yahoo(m),
            Eval::SenderAuth { function, args } => {
                cx.sender_auth.is_some_and(|a| a.eval(function, args))
            }
            Eval::DkimWelcomelist { def } => cx.sender_auth.is_some_and(|a| {
                let authors = addresses(m, &["from"]);
                cx.auth_welcomelists
                    .dkim_listed(*def, &authors, &a.valid_dkim_domains())
            }),
            Eval::DkimAdsp { chars, domains } => cx
                .sender_auth
                .is_some_and(|a| cx.auth_welcomelists.adsp_hit(&a.adsp(), chars, domains)),
            Eval::SpfWelcomelist { def } => cx.sender_auth.is_some_and(|a| {
                a.spf_pass_sender()
                    .is_some_and(|sender| cx.auth_welcomelists.spf_listed(*def, &sender))
            }),
        }
    }
}

fn addresses(m: &Message, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| msg::header_values(&m.headers, n))
        .flat_map(|v| {
            let decoded = msg::decode_header(v);
            decoded
                .split(|&c| c == b',')
                .map(|a| String::from_utf8_lossy(&msg::first_addr(a)).to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|a| a.contains('@'))
        .collect()
}

/// The addresses welcomelist_from and blocklist_from are checked against, as SA's
/// all_from_addrs: author, sender and envelope sender.
fn senders(m: &Message) -> Vec<String> {
    addresses(
        m,
        &[
            "from",
            "resent-from",
            "sender",
            "envelope-from",
            "return-path",
        ],
    )
}

fn recipients(m: &Message) -> Vec<String> {
    addresses(m, &["to", "cc", "resent-to", "resent-cc"])
}

/// SpamAssassin list entries are globs: `*` any run, `?` one character.
fn listed(addr: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| glob(p.as_bytes(), addr.as_bytes()))
}

/// Whether `addr` matches the list entry `pattern` (a glob).
pub(crate) fn glob_matches(pattern: &str, addr: &str) -> bool {
    glob(pattern.as_bytes(), addr.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[expect(
    clippy::string_slice,
    reason = "cuts after an ASCII prefix found by starts_with"
)]
fn subject_all_caps(subject: &[u8]) -> bool {
    let s = String::from_utf8_lossy(subject);
    let mut s = s.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let prefix = ["re:", "fwd:", "fw:", "aw:", "antwort:", "sv:"]
            .iter()
            .find(|p| lower.starts_with(*p));
        match prefix {
            Some(p) => s = s[p.len()..].trim_start(),
            None => break,
        }
    }
    if !s.contains(char::is_whitespace) || s.len() < 10 {
        return false;
    }
    let letters: String = s.chars().filter(char::is_ascii_alphabetic).collect();
    !letters.is_empty() && letters == letters.to_ascii_uppercase()
}

/// HeaderEval's check_outlook_message_id: Outlook's Message-ID carries a time
/// stamp in 1/429.4967296 s units; ratware copying the format gets it wrong. The
/// stamp must be far (250 units) from both the Date and the Received time.
fn outlook_message_id(m: &Message) -> bool {
    // SpamAssassin's MESSAGEID: these headers in this order, the first non-empty.
    let id = [
        "x-message-id",
        "resent-message-id",
        "x-original-message-id",
        "message-id",
    ]
    .iter()
    .flat_map(|n| msg::header_values(&m.headers, n))
    .map(|v| msg::decode_header(v).trim_ascii_start().to_vec())
    .find(|v| !v.is_empty());
    let Some(token) = id.as_deref().and_then(outlook_time_token) else {
        return false;
    };
    const FUDGE: i64 = 250;
    let expected = |value: Option<Vec<u8>>| {
        let secs = value
            .and_then(|v| crate::dates::parse_rfc822(&String::from_utf8_lossy(&v)))
            .unwrap_or(0);
        (secs as f64 * 0.0023283064365387 + 27111902.8329849) as i64
    };
    if (token - expected(m.header("date"))).abs() < FUDGE {
        return false;
    }
    // As in SpamAssassin, the date is parsed from all Received headers together,
    // which yields the first date found in them.
    (token - expected(m.header("received"))).abs() >= FUDGE
}

/// The time stamp in `<XXXXtttttttt$xxxxxxxx$xxxxxxxx@`, lowercase hex only.
fn outlook_time_token(id: &[u8]) -> Option<i64> {
    let hex = |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let rest = id.strip_prefix(b"<")?;
    if rest.len() < 31
        || !hex(&rest[..12])
        || rest[12] != b'$'
        || !hex(&rest[13..21])
        || rest[21] != b'$'
        || !hex(&rest[22..30])
        || rest.get(30) != Some(&b'@')
    {
        return None;
    }
    i64::from_str_radix(std::str::from_utf8(&rest[4..12]).ok()?, 16).ok()
}

/// HeaderEval's check_unresolved_template: `%[A-Z][A-Z_-]` in a header other than
/// those where a percent sign is normal (addresses, subjects, ids, encodings).
fn unresolved_template(m: &Message) -> bool {
    const EXEMPT: &[&str] = &[
        "x-vms-to",
        "x-uidl",
        "x-face",
        "to",
        "cc",
        "from",
        "subject",
        "references",
        "in-reply-to",
        "message-id",
        "x-message-id",
        "resent-message-id",
        "x-original-message-id",
    ];
    m.headers.iter().any(|h| {
        !EXEMPT.iter().any(|e| h.name.eq_ignore_ascii_case(e))
            && msg::decode_header(&h.raw).windows(3).any(|w| {
                w[0] == b'%'
                    && w[1].is_ascii_uppercase()
                    && matches!(w[2], b'A'..=b'Z' | b'_' | b'-')
            })
    })
}

/// The recipient addresses as written (case kept), To then Cc, then Bcc when
/// those give fewer than five: SpamAssassin's input to its recipient tests.
fn recipient_list(m: &Message) -> Vec<Vec<u8>> {
    let from = |names: &[&str]| -> Vec<Vec<u8>> {
        names
            .iter()
            .flat_map(|n| msg::header_values(&m.headers, n))
            .flat_map(|v| {
                msg::split_addresses(&msg::decode_header(v))
                    .into_iter()
                    .map(msg::first_addr)
                    .filter(|a| a.contains(&b'@'))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut all = from(&["to", "cc"]);
    if all.len() < TOCC_SIMILAR_COUNT {
        all.extend(from(&["bcc"]));
    }
    all
}

const TOCC_SORTED_COUNT: usize = 7;
const TOCC_SIMILAR_COUNT: usize = 5;
const TOCC_SIMILAR_LENGTH: usize = 2;

/// HeaderEval's _check_recipients: whether the recipients are sorted, and how
/// similar they are (share of address pairs with the same first two characters
/// of the local part, plus pairs on different hosts starting alike).
fn recipient_order(m: &Message) -> (bool, f64) {
    // Adjacent duplicates (case-insensitive) count once; at most 256 addresses.
    let mut address: Vec<Vec<u8>> = Vec::new();
    for a in recipient_list(m) {
        if address.last().is_none_or(|p| !p.eq_ignore_ascii_case(&a)) {
            address.push(a);
        }
        if address.len() == 256 {
            break;
        }
    }
    let sorted = address.len() >= TOCC_SORTED_COUNT && address.is_sorted();
    if address.len() < TOCC_SIMILAR_COUNT {
        return (sorted, 0.0);
    }
    let prefix = |s: &[u8]| s[..s.len().min(TOCC_SIMILAR_LENGTH)].to_vec();
    let fqhn: Vec<&[u8]> = address
        .iter()
        .map(|a| {
            a.iter()
                .position(|&c| c == b'@')
                .map_or(&[][..], |p| &a[p + 1..])
        })
        .collect();
    let (mut hits, mut combinations) = (0u64, 0u64);
    for i in 0..address.len() {
        for j in i + 1..address.len() {
            if prefix(&address[i]) == prefix(&address[j]) {
                hits += 1;
            }
            if prefix(fqhn[i]) == prefix(fqhn[j]) && fqhn[i] != fqhn[j] {
                hits += 1;
            }
            combinations += 1;
        }
    }
    (sorted, hits as f64 / combinations as f64)
}

/// HeaderEval's check_for_to_in_subject: the first To: address, or its local
/// part (`user`) as the whole subject, after a Re:/Fw: and one word, or as a
/// salutation ("joe: ...", "..., joe!").
fn to_in_subject(m: &Message, test: &str) -> bool {
    let Some(to) = msg::header_values(&m.headers, "to")
        .flat_map(|v| {
            msg::split_addresses(&msg::decode_header(v))
                .into_iter()
                .map(msg::first_addr)
                .collect::<Vec<_>>()
        })
        .find(|a| !a.is_empty())
    else {
        return false;
    };
    let subject = m.header("subject").unwrap_or_default();
    let quoted = |b: &[u8]| pcre2_quote(&String::from_utf8_lossy(b));
    let user = &to[..to.iter().position(|&c| c == b'@').unwrap_or(to.len())];
    let needle = if test == "address" { &to[..] } else { user };
    // Every pattern below needs the text itself in the subject; most subjects lack
    // it, and then no regex need be compiled for this message.
    if !contains_ignoring_ascii_case(&subject, needle) {
        return false;
    }
    let pattern = match test {
        "address" => format!(r"(?i)\b{}\b", quoted(&to)),
        "user" => {
            let u = quoted(user);
            format!(
                r"(?i)^(?:(?:re|fw):\s*(?:\w+\s+)?{u}$|(?-i:{u})\s*[,:;!?-](?:$|\s)|{u}$|,\s*{u}[,:;!?-]$)"
            )
        }
        _ => return false,
    };
    pcre2::bytes::Regex::new(&pattern).is_ok_and(|re| re.is_match(&subject).unwrap_or(false))
}

fn contains_ignoring_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// html_title_subject_ratio: a title over `ratio` times as long as the subject
/// (counted with its line break, as SpamAssassin reads it).
fn title_subject_ratio(m: &Message, ratio: f64) -> bool {
    let Some(subject) = m.header("subject") else {
        return false;
    };
    let subject_len = crate::html::char_count(&subject).0 + 1;
    m.html.iter().any(|h| {
        h.titles
            .iter()
            .map(|t| crate::html::char_count(t).0 as f64 / subject_len as f64)
            .fold(0.0, f64::max)
            > ratio
    })
}

/// Perl's `\Q...\E`: every character but letters, digits and `_` escaped.
fn pcre2_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c.is_ascii() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(b"*@example.com", b"joe@example.com"));
        assert!(glob(b"j?e@*", b"joe@x"));
        assert!(!glob(b"*@example.com", b"joe@example.org"));
    }

    #[test]
    fn caps() {
        assert!(subject_all_caps(b"Re: FREE MONEY NOW"));
        assert!(!subject_all_caps(b"FREE"));
        assert!(!subject_all_caps(b"Free money now"));
    }

    fn parse(text: &str) -> Message {
        Message::parse(text.replace('\n', "\r\n").as_bytes())
    }

    #[test]
    fn outlook_message_id() {
        // Token for 2002-08-14 12:00:00 UTC is about 0x3c1e_2a2c; this one is far off.
        let forged = "Message-ID: <0000deadbeef$01234567$89abcdef@example.com>\n\
                      Date: Wed, 14 Aug 2002 12:00:00 +0000\n\
                      Received: from x by y; Wed, 14 Aug 2002 12:00:00 +0000\n\n\
                      hi\n";
        assert!(super::outlook_message_id(&parse(forged)));
        let secs = crate::dates::parse_rfc822("Wed, 14 Aug 2002 12:00:00 +0000").unwrap();
        let token = (secs as f64 * 0.0023283064365387 + 27111902.8329849) as i64;
        let genuine = forged.replace("deadbeef", &format!("{token:08x}"));
        assert!(!super::outlook_message_id(&parse(&genuine)));
        assert!(!super::outlook_message_id(&parse(
            "Message-ID: <abc@example.com>\n\nhi\n"
        )));
        assert!(!super::outlook_message_id(&parse(
            "Message-ID: <0000\n\nhi\n"
        )));
    }

    #[test]
    fn unresolved_template() {
        assert!(super::unresolved_template(&parse(
            "X-Mailer: %MAILER_NAME\nSubject: hi\n\nbody\n"
        )));
        assert!(!super::unresolved_template(&parse(
            "Subject: 50%OFF\nTo: %JOE <joe@x>\n\nbody\n"
        )));
        assert!(!super::unresolved_template(&parse(
            "X-Rate: 100%ok\n\nbody\n"
        )));
    }

    #[test]
    fn recipients() {
        let sorted = "To: a1@x.com, b2@y.com, c3@z.com, \"Dee, D\" <d4@w.com>\nCc: e5@v.com, f6@u.com, g7@t.com\n\nhi\n";
        let (is_sorted, similar) = super::recipient_order(&parse(sorted));
        assert!(is_sorted);
        assert_eq!(similar, 0.0);
        let unsorted = sorted.replace("a1@", "z1@");
        assert!(!super::recipient_order(&parse(&unsorted)).0);
        // Five of a kind: every pair shares "jo" and a different host starting "ex".
        let similar = "To: jo1@ex1.com, jo2@ex2.com, jo3@ex3.com, jo4@ex4.com, jo5@ex5.com\n\nhi\n";
        let (_, ratio) = super::recipient_order(&parse(similar));
        assert_eq!(ratio, 2.0);
        let eval = Eval::new("similar_recipients", &["0.65".into(), "undef".into()]).unwrap();
        assert_eq!(
            eval,
            Eval::SimilarRecipients {
                min: Some(0.65),
                max: None
            }
        );
        // Fewer than five recipients: not assessed.
        assert_eq!(
            super::recipient_order(&parse("To: a@b, c@d\n\nhi\n")),
            (false, 0.0)
        );
    }

    #[test]
    fn to_in_subject() {
        let m = |subject: &str| {
            parse(&format!(
                "To: Joe <joe@example.com>\nSubject: {subject}\n\nhi\n"
            ))
        };
        assert!(super::to_in_subject(&m("joe, your account"), "user"));
        assert!(super::to_in_subject(&m("Re: hello joe"), "user"));
        assert!(super::to_in_subject(&m("joe"), "user"));
        assert!(!super::to_in_subject(&m("Special offer for joe"), "user"));
        assert!(!super::to_in_subject(&m("Joe, your account"), "user"));
        assert!(!super::to_in_subject(&m("joey is here"), "user"));
        assert!(super::to_in_subject(
            &m("mail for joe@example.com today"),
            "address"
        ));
        assert!(!super::to_in_subject(
            &parse("To: (a.b*c+)@x\nSubject: (a.b*c+)\n\nhi\n"),
            "nonsense"
        ));
        assert!(super::to_in_subject(
            &parse("To: a.b*c+@x\nSubject: a.b*c+\n\nhi\n"),
            "user"
        ));
    }

    #[test]
    fn forged_yahoo() {
        let forged = "Received: from [10.1.2.3] by mx.example.net with SMTP; Wed, 14 Aug 2002 12:00:00 +0000\n\
                      From: Joe <joe@yahoo.com>\n\nhi\n";
        assert!(headers::forged_yahoo(&parse(forged)));
        let genuine = "Received: from [10.1.2.3] by web12.mail.yahoo.com via HTTP; Wed, 14 Aug 2002 12:00:00 +0000\n\
                       From: Joe <joe@yahoo.com>\n\nhi\n";
        assert!(!headers::forged_yahoo(&parse(genuine)));
        // Not from Yahoo, or no Received headers to judge by.
        assert!(!headers::forged_yahoo(&parse(
            &forged.replace("yahoo.com>", "example.com>")
        )));
        assert!(!headers::forged_yahoo(&parse(
            "From: joe@yahoo.com\n\nhi\n"
        )));
    }

    /// Whether `function(args)` hits a message given as bytes.
    fn hits_bytes(function: &str, args: &[&str], message: &[u8]) -> bool {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let eval = Eval::new(function, &args).unwrap_or_else(|| panic!("{function}"));
        let m = Message::parse(message);
        eval.run(&Context {
            msg: &m,
            bayes: None,
            welcomelist_from: &[],
            blocklist_from: &[],
            welcomelist_to: &[],
            addrlists: &Default::default(),
            uri_host_lists: &Default::default(),
            sender_auth: None,
            auth_welcomelists: &Default::default(),
        })
    }

    /// The same with the message as text, in CRLF lines as the gateway has them.
    fn hits(function: &str, args: &[&str], message: &str) -> bool {
        hits_bytes(function, args, message.replace('\n', "\r\n").as_bytes())
    }

    fn html(body: &str) -> String {
        format!("Subject: hi\nContent-Type: text/html\n\n{body}\n")
    }

    #[test]
    fn html_ranges_and_comparisons() {
        let sized = |n| html(&format!("<font size={n}>big</font>"));
        assert!(hits("html_range", &["max_size", "5", "6"], &sized(6)));
        assert!(!hits("html_range", &["max_size", "5", "6"], &sized(7)));
        assert!(hits("html_range", &["max_size", "6", "inf"], &sized(7)));
        assert!(!hits("html_range", &["max_size", "6", "inf"], &sized(4)));
        let extra = html("<p>x</p></b></b>");
        assert!(hits(
            "html_range",
            &["closed_extra_ratio", "0.09", "inf"],
            &extra
        ));
        assert!(!hits(
            "html_range",
            &["closed_extra_ratio", "0.09", "inf"],
            &html("<p>x</p>")
        ));
        // No tags, no ratio: undefined, so no range holds.
        assert!(!hits(
            "html_range",
            &["closed_extra_ratio", "-1", "inf"],
            &html("x")
        ));
        assert!(hits(
            "html_eval",
            &["length", "< 384"],
            &html("<p>short</p>")
        ));
        assert!(!hits(
            "html_eval",
            &["length", "< 384"],
            &html(&"<p>long</p>".repeat(50))
        ));
        assert!(Eval::new("html_eval", &["length".into(), "< 3 + x".into()]).is_none());
        assert!(hits(
            "html_tag_balance",
            &["body", "!= 0"],
            &html("<body>x")
        ));
        assert!(!hits(
            "html_tag_balance",
            &["body", "!= 0"],
            &html("<body>x</body>")
        ));
        assert!(!hits(
            "html_tag_balance",
            &["head", "!= 0"],
            &html("<body>x")
        ));
        assert!(Eval::new("html_tag_balance", &["b*".into(), "!= 0".into()]).is_none());
    }

    #[test]
    fn html_texts_and_tests() {
        let saved = html("<!-- saved from url=(0022)http://x.example/ --><p>x</p>");
        let saved_url = ["comment", r"<!-- saved from url=\(\d{4}\)"];
        assert!(hits("html_text_match", &saved_url, &saved));
        assert!(!hits(
            "html_text_match",
            &saved_url,
            &html("<!-- hi --><p>x</p>")
        ));
        let link_image = ["anchor", "<img>"];
        assert!(hits(
            "html_text_match",
            &link_image,
            &html("<a href=x><img src=y></a>")
        ));
        assert!(!hits(
            "html_text_match",
            &link_image,
            &html("<a href=x>y</a><img src=y>")
        ));
        // "hi" is read with its line break: 11 / 3 > 3.5 and 10 / 3 is not.
        let titled = |t: &str| html(&format!("<title>{t}</title>x"));
        assert!(hits(
            "html_title_subject_ratio",
            &["3.5"],
            &titled("elevenchars")
        ));
        assert!(!hits(
            "html_title_subject_ratio",
            &["3.5"],
            &titled("tenchars..")
        ));
        let contrast = ["font_low_contrast"];
        assert!(hits(
            "html_test",
            &contrast,
            &html("<font color=#fefefe>x</font>")
        ));
        assert!(!hits(
            "html_test",
            &contrast,
            &html("<font color=#000080>x</font>")
        ));
        assert!(hits("html_test", &["html"], &html("x")));
        assert!(!hits("html_test", &["html"], "Subject: hi\n\nx\n"));
        assert!(!hits(
            "html_charset_faraway",
            &[],
            &html("<meta http-equiv=\"Content-Type\" content=\"text/html; charset=koi8-r\">x")
        ));
    }

    #[test]
    fn html_images() {
        // SpamAssassin's image-only tests measure the HTML source, not its text.
        let image = html("<img src=x width=10 height=10>");
        assert!(hits("html_image_only", &["0", "400"], &image));
        assert!(!hits("html_image_only", &["0", "10"], &image));
        assert!(!hits(
            "html_image_only",
            &["0", "400"],
            &html("<p>no image</p>")
        ));
        // 3 characters of text over 100 pixels.
        let ratio = html("<img src=x width=10 height=10>abc");
        assert!(hits("html_image_ratio", &["0.02", "0.04"], &ratio));
        assert!(!hits("html_image_ratio", &["0.04", "0.06"], &ratio));
    }

    fn alternative(text: &str, html: &str) -> String {
        format!(
            "Subject: hi\nContent-Type: multipart/alternative; boundary=b\n\n--b\n\
             Content-Type: text/plain\n\n{text}\n--b\nContent-Type: text/html\n\n{html}\n--b--\n"
        )
    }

    #[test]
    fn mime_structure() {
        let attachment = "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n\
                          hi\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment\n\
                          Content-Transfer-Encoding: base64\n\nAAAA\n--b--\n";
        assert!(hits("check_for_mime", &["mime_attachment"], attachment));
        assert!(hits("check_for_mime", &["mime_base64_count"], attachment));
        assert!(!hits(
            "check_for_mime",
            &["mime_attachment"],
            "Subject: x\n\nhi\n"
        ));
        let b64_text =
            "Subject: x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGk=\n";
        assert!(hits(
            "check_for_mime",
            &["mime_base64_encoded_text"],
            b64_text
        ));
        let utf8 = b64_text.replace("text/plain", "text/plain; charset=utf-8");
        assert!(!hits(
            "check_for_mime",
            &["mime_base64_encoded_text"],
            &utf8
        ));
        let qp = |body: &str| {
            format!("Subject: x\nContent-Transfer-Encoding: quoted-printable\n\n{body}\n")
        };
        // Escaped letters are needless escapes; escaped `=` is not.
        assert!(hits("check_for_mime", &["mime_qp_count"], &qp("=41=42")));
        assert!(!hits("check_for_mime", &["mime_qp_count"], &qp("a=3Db")));
        assert!(hits(
            "check_for_mime",
            &["mime_qp_long_line"],
            &qp(&"x".repeat(79))
        ));
        assert!(!hits(
            "check_for_mime",
            &["mime_qp_long_line"],
            &qp(&"x".repeat(78))
        ));
        assert!(!hits(
            "check_for_mime",
            &["mimepart_limit_exceeded"],
            &qp("x")
        ));
        assert!(Eval::new("check_for_mime", &["mime_unknown".into()]).is_none());
        let mostly_html = alternative("hi", &"<p>lots of html</p>".repeat(20));
        assert!(hits(
            "check_mime_multipart_ratio",
            &["0.00", "0.01"],
            &mostly_html
        ));
        assert!(!hits(
            "check_mime_multipart_ratio",
            &["0.00", "0.01"],
            &alternative("hi", "<p>hi</p>")
        ));
        assert!(hits("check_for_mime_html_only", &[], &html("x")));
        assert!(!hits("check_for_mime_html_only", &[], &mostly_html));
        assert!(hits("check_for_mime_html", &[], &mostly_html));
    }

    #[test]
    fn alternatives_that_differ() {
        let same = alternative("buy cheap pills now", "<p>buy cheap pills now</p>");
        let differ = alternative("hello there friend", "<p>buy cheap pills now</p>");
        assert!(hits(
            "multipart_alternative_difference",
            &["99", "100"],
            &differ
        ));
        assert!(!hits(
            "multipart_alternative_difference",
            &["99", "100"],
            &same
        ));
        let wordy = alternative("one two three four five six seven", "<p>one two</p>");
        assert!(hits(
            "multipart_alternative_difference_count",
            &["3", "1"],
            &wordy
        ));
        assert!(!hits(
            "multipart_alternative_difference_count",
            &["3", "1"],
            &same
        ));
        // Exchange's meeting requests are exempt.
        let calendar = "Subject: x\nContent-Type: multipart/alternative; boundary=b\n\n--b\n\
                        Content-Type: text/html\n\n<p>meet</p>\n--b\nContent-Type: text/calendar\n\n\
                        BEGIN:VCALENDAR\n--b--\n";
        assert!(!hits(
            "multipart_alternative_difference",
            &["99", "100"],
            calendar
        ));
    }

    #[test]
    fn body_shapes() {
        let text = |body: &str| format!("Subject: x\n\n{body}\n");
        // 6 capitals in 22 letters: 27%.
        let shouting = "BUY NOW and save big things ".repeat(10);
        assert!(hits("check_for_uppercase", &["25", "50"], &text(&shouting)));
        assert!(!hits(
            "check_for_uppercase",
            &["25", "50"],
            &text(&shouting.to_lowercase())
        ));
        // Short bodies and charsets without case are not judged.
        assert!(!hits(
            "check_for_uppercase",
            &["25", "50"],
            &text("BUY NOW and SAVE")
        ));
        let chinese =
            format!("Subject: x\nContent-Type: text/plain; charset=gb2312\n\n{shouting}\n");
        assert!(!hits("check_for_uppercase", &["25", "50"], &chinese));
        let vertical = "Subject: xxxxxxxxxxxx\n\naaaaaaaaaaaaaaaaaaaa b\n";
        assert!(hits("tvd_vertical_words", &["0", "10"], vertical));
        assert!(!hits(
            "tvd_vertical_words",
            &["0", "10"],
            &text("the cat sat on the mat")
        ));
    }

    #[test]
    fn illegal_characters() {
        let subject = |s: &[u8]| [&b"Subject: "[..], s, b"\n\nhi\n"].concat();
        let args = ["Subject", "0.00", "2"];
        assert!(hits_bytes(
            "check_illegal_chars",
            &args,
            &subject(b"caf\xe9 cr\xe8me")
        ));
        assert!(!hits_bytes(
            "check_illegal_chars",
            &args,
            &subject(b"caf\xe9")
        ));
        assert!(!hits_bytes(
            "check_illegal_chars",
            &args,
            &subject("café crème".as_bytes())
        ));
        // One pound sign is allowed in a subject, so two 8-bit bytes count once.
        assert!(!hits_bytes(
            "check_illegal_chars",
            &args,
            &subject(b"\xa3 10 \xe9")
        ));
        let from = [&b"From: "[..], b"\xe9\xe9 <a@example.com>\n\nhi\n"].concat();
        assert!(hits_bytes(
            "check_illegal_chars",
            &["From", "0.05", "2"],
            &from
        ));
        assert!(!hits_bytes(
            "check_illegal_chars",
            &["From", "0.20", "2"],
            &from
        ));
    }

    #[test]
    fn forged_free_mail_relays() {
        let aol = "Received: from x (HELO y) (10.0.0.1) by rly-xw01.mx.aol.com with QMQP\n\n";
        assert!(hits("check_for_fake_aol_relay_in_rcvd", &[], aol));
        let genuine_aol = aol.replace("QMQP", "ESMTP id RELAYIN7-0501132011");
        assert!(!hits("check_for_fake_aol_relay_in_rcvd", &[], &genuine_aol));
        let hotmail = |received: &str, extra: &str| {
            format!("Received: {received}\n{extra}From: joe@hotmail.com\n\nhi\n")
        };
        let plain = hotmail("from mx.example.net (mx.example.net [192.0.2.1]) by mx", "");
        assert!(hits("check_for_no_hotmail_received_headers", &[], &plain));
        assert!(!hits(
            "check_for_forged_hotmail_received_headers",
            &[],
            &plain
        ));
        let helo = hotmail("from hotmail.com (spam.example [192.0.2.1]) by mx", "");
        assert!(hits(
            "check_for_forged_hotmail_received_headers",
            &[],
            &helo
        ));
        let genuine = hotmail(
            "from hotmail.com (f135.law8.hotmail.com [216.33.241.135]) by mx",
            "X-Originating-IP: [192.0.2.7]\n",
        );
        assert!(!hits(
            "check_for_forged_hotmail_received_headers",
            &[],
            &genuine
        ));
        assert!(!hits(
            "check_for_no_hotmail_received_headers",
            &[],
            &genuine
        ));
        let eudora = "Received: from x by mx\nFrom: a@eudoramail.com\n\nhi\n";
        assert!(hits(
            "check_for_forged_eudoramail_received_headers",
            &[],
            eudora
        ));
        let genuine_eudora = "Received: from Unknown/Local ([?.?.?.?]) by shared1-mail.whowhere.com; Thu\n\
                              X-Sender-Ip: 192.0.2.1\nFrom: a@eudoramail.com\n\nhi\n";
        assert!(!hits(
            "check_for_forged_eudoramail_received_headers",
            &[],
            genuine_eudora
        ));
        let juno = "Received: from x by mx\nFrom: a@juno.com\n\nhi\n";
        assert!(hits("check_for_forged_juno_received_headers", &[], juno));
        let genuine_juno = "Received: from cookie.juno.com (cookie.juno.com [192.0.2.1]) by mx\n\
                            X-Originating-IP: [192.0.2.1]\nX-Mailer: Juno 5.0\nFrom: a@juno.com\n\nhi\n";
        assert!(!hits(
            "check_for_forged_juno_received_headers",
            &[],
            genuine_juno
        ));
        let gmail = "Received: from x by mx\nFrom: a@gmail.com\n\nhi\n";
        assert!(hits("check_for_forged_gmail_received_headers", &[], gmail));
        let genuine_gmail =
            gmail.replace("From:", "X-Received: by 10.1.2.3 with SMTP id abc\nFrom:");
        assert!(!hits(
            "check_for_forged_gmail_received_headers",
            &[],
            &genuine_gmail
        ));
        // Without Received headers nothing can be judged.
        assert!(hits(
            "gated_through_received_hdr_remover",
            &[],
            "From: a@juno.com\n\nhi\n"
        ));
        assert!(!hits("gated_through_received_hdr_remover", &[], juno));
        assert!(!hits(
            "check_for_forged_juno_received_headers",
            &[],
            "From: a@juno.com\n\nhi\n"
        ));
    }

    #[test]
    fn ratware_and_envelope() {
        let ratware = |from: &str| {
            format!(
                "Message-ID: <ABCDEFGHIJKLMNOPQRSTUVWXYZAB.joe@example.com>\nFrom: {from}\n\nhi\n"
            )
        };
        assert!(hits(
            "check_ratware_name_id",
            &[],
            &ratware("\"joe@example.com\" <joe@example.com>")
        ));
        assert!(!hits(
            "check_ratware_name_id",
            &[],
            &ratware("joe@example.com")
        ));
        let env = |return_path: &str| {
            format!("{return_path}Received: from x by mx\nFrom: Joe <Joe@Example.com>\n\nhi\n")
        };
        let matching = env("Return-Path: <joe@example.com>\n");
        assert!(hits("check_for_matching_env_and_hdr_from", &[], &matching));
        assert!(!hits(
            "check_for_matching_env_and_hdr_from",
            &[],
            &env("Return-Path: <bounce@example.org>\n")
        ));
        // A Return-Path below a Received header was not written on delivery here.
        let below =
            "Received: from x by mx\nReturn-Path: <joe@example.com>\nFrom: joe@example.com\n\nhi\n";
        assert!(!hits("check_for_matching_env_and_hdr_from", &[], below));
        assert!(hits(
            "check_for_matching_env_and_hdr_from",
            &[],
            "Subject: x\n\nhi\n"
        ));
    }
}
