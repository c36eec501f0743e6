//! Engine tests on small crafted messages.

use super::*;

fn engine(rules: &str) -> Engine {
    Engine::from_rules(rules, &EngineConfig::default()).unwrap()
}

fn names(r: &SpamReport) -> Vec<&str> {
    let mut v: Vec<&str> = r.hits.iter().map(|h| h.name.as_str()).collect();
    v.sort();
    v
}

const MSG: &[u8] = b"From sender@example.com Mon Jan  1 00:00:00 2024\n\
Received: from mx.partner.domain.com (mx.partner.domain.com [192.0.2.1]) by gw\n\
From: \"Big Boss\" <boss@Example.COM>\n\
To: staff@example.org\n\
Subject: =?iso-8859-1?Q?Cheap_pills?= today\n\
Content-Type: multipart/alternative; boundary=XX\n\
\n\
--XX\n\
Content-Type: text/plain\n\
\n\
Buy cheap\n\
pills now at http://pills.example.net/buy\n\
\n\
Second paragraph.\n\
--XX\n\
Content-Type: text/html\n\
\n\
<html><body><p>Buy <b>cheap</b> pills</p><a href=\"http://pills.example.net/html\">x</a>\
<img src=\"cid:1\" width=300 height=200></body></html>\n\
--XX--\n";

#[test]
fn each_rule_kind_hits_where_sa_would() {
    let e = engine(
        "header LOCAL_RCVD Received =~ /.*\\(\\S+\\.domain\\.com\\s+\\[.*\\]\\)/\n\
         score LOCAL_RCVD -50\n\
         header SUBJ Subject =~ /^Cheap pills today$/\n\
         header SUBJ_RAW Subject:raw =~ /=\\?iso/\n\
         header FROM_ADDR From:addr =~ /^boss\\@example\\.com$/i\n\
         header FROM_NAME From:name =~ /^Big Boss$/\n\
         header HAS_TO exists:To\n\
         header NO_CC exists:Cc\n\
         header NOT_SUBJ Subject !~ /viagra/\n\
         header UNSET X-Foo =~ /dflt/ [if-unset: dflt]\n\
         header ALLH ALL =~ /^To: staff/m\n\
         body BODY_JOIN /Buy cheap pills now/\n\
         body BODY_SUBJ /^Cheap pills today$/\n\
         body BODY_HTML /Buy cheap pills$/\n\
         rawbody RAW_TAG /<b>cheap<\\/b>/\n\
         body NO_TAG /<b>/\n\
         full FULL_HDR /^Content-Type: text\\/html/m\n\
         uri URI_NET m{^http://pills\\.example\\.net/}\n\
         mimeheader MIME_HTML Content-Type =~ /text\\/html/\n\
         body HTML_ONLY_IMG eval:html_image_ratio('0.0', '1')\n\
         meta META_BOOL BODY_JOIN && !NO_TAG\n\
         meta META_ARITH (BODY_JOIN + URI_NET + NO_TAG) >= 2\n\
         meta META_FALSE BODY_JOIN && NO_TAG\n\
         meta __SUB SUBJ\n\
         meta META_OF_SUB __SUB\n",
    );
    let r = e.score(MSG);
    assert_eq!(
        names(&r),
        [
            "ALLH",
            "BODY_HTML",
            "BODY_JOIN",
            "BODY_SUBJ",
            "FROM_ADDR",
            "FROM_NAME",
            "FULL_HDR",
            "HAS_TO",
            "HTML_ONLY_IMG",
            "LOCAL_RCVD",
            "META_ARITH",
            "META_BOOL",
            "META_OF_SUB",
            "MIME_HTML",
            "NOT_SUBJ",
            "RAW_TAG",
            "SUBJ",
            "SUBJ_RAW",
            "UNSET",
            "URI_NET"
        ]
    );
    // 19 rules at the default score of 1 and LOCAL_RCVD at -50.
    assert_eq!(r.score, -31.0);
    assert_eq!(r.required, 5.0);
    assert!(r.bayes_probability.is_none());
}

#[test]
fn gtube_is_spam_without_any_rules() {
    let e = engine("");
    let mut m = b"Subject: test\n\nThis is the GTUBE\n".to_vec();
    m.extend_from_slice(GTUBE);
    m.push(b'\n');
    let r = e.score(&m);
    assert!(r.score >= 1000.0);
    assert_eq!(r.hits[0].name, "GTUBE");
    assert!(e.score(b"Subject: test\n\nclean\n").hits.is_empty());
}

#[test]
fn welcome_and_block_lists() {
    let e = engine(
        "whitelist_from *@trusted.example\nblocklist_from spammer@bad.example\n\
         welcomelist_to vip@example.org\n\
         header USER_IN_WELCOMELIST eval:check_from_in_welcomelist()\nscore USER_IN_WELCOMELIST -100\n\
         header USER_IN_BLOCKLIST eval:check_from_in_blocklist()\nscore USER_IN_BLOCKLIST 100\n\
         header USER_IN_WELCOMELIST_TO eval:check_to_in_welcomelist()\nscore USER_IN_WELCOMELIST_TO -6\n",
    );
    assert_eq!(e.score(b"From: A <a@trusted.example>\n\nx\n").score, -100.0);
    assert_eq!(e.score(b"From: spammer@bad.example\n\nx\n").score, 100.0);
    assert_eq!(
        e.score(b"From: x@y\nTo: vip@example.org\n\nx\n").score,
        -6.0
    );
    assert_eq!(e.score(b"From: x@y\n\nx\n").score, 0.0);
}

#[test]
fn bayes_rules_follow_probability_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        bayes_dir: Some(dir.path().to_path_buf()),
        ..EngineConfig::default()
    };
    let e = Engine::from_rules(
        "body BAYES_00 eval:check_bayes('0.00', '0.01')\nscore BAYES_00 0 0 -1.9 -1.9\n\
         body BAYES_99 eval:check_bayes('0.99', '1.00')\nscore BAYES_99 0 0 3.5 3.5\n\
         tflags BAYES_99 learn\n",
        &config,
    )
    .unwrap();
    // Too little learned: Bayes abstains.
    assert!(
        e.score(b"Subject: x\n\ncheap pills\n")
            .bayes_probability
            .is_none()
    );
    // A handful of distinct messages per class, each learned with a different
    // Message-ID, until the minimum counts are met.
    let spam: Vec<Vec<u8>> = (0..bayes::MIN_LEARNED)
        .map(|i| format!("Message-ID: <s{i}@x>\nSubject: cheap pills\n\nbuy viagra cialis pharmacy offer {i}\n").into_bytes())
        .collect();
    let ham: Vec<Vec<u8>> = (0..bayes::MIN_LEARNED)
        .map(|i| format!("Message-ID: <h{i}@x>\nSubject: meeting notes\n\nagenda minutes project review {i}\n").into_bytes())
        .collect();
    let s: Vec<&[u8]> = spam.iter().map(Vec::as_slice).collect();
    let h: Vec<&[u8]> = ham.iter().map(Vec::as_slice).collect();
    e.learn_batch(&s, Class::Spam, false).unwrap();
    e.learn_batch(&h, Class::Ham, false).unwrap();
    let r = e.score(b"Subject: cheap pills\n\nbuy viagra pharmacy\n");
    assert!(r.bayes_probability.unwrap() > 0.99, "{r:?}");
    assert_eq!(names(&r), ["BAYES_99"]);
    assert_eq!(r.score, 3.5);
    let r = e.score(b"Subject: meeting notes\n\nproject agenda review\n");
    assert!(r.bayes_probability.unwrap() < 0.01);
    assert_eq!(names(&r), ["BAYES_00"]);
    assert_eq!(
        e.learn(s[0], Class::Spam, true).unwrap(),
        LearnOutcome::Forgotten
    );
    assert_eq!(
        e.bayes_counts().unwrap(),
        Some((bayes::MIN_LEARNED - 1, bayes::MIN_LEARNED))
    );
}

/// A cheap deterministic generator: no dependency needed for fuzz-ish input.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn hostile_input_never_panics() {
    let e = engine(
        "body B /a+b/\nrawbody R /x/\nuri U /y/\nmimeheader M Content-Type =~ /z/\nheader H ALL =~ /q/\n",
    );
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let pieces: &[&[u8]] = &[
        b"Content-Type: multipart/mixed; boundary=\"b\"\n",
        b"\n--b\n",
        b"--b--\n",
        b"Content-Transfer-Encoding: base64\n",
        b"Content-Transfer-Encoding: quoted-printable\n",
        b"=?utf-8?B?",
        b"?=",
        b"=\n",
        b"=4",
        b"<a href=",
        b"<!--",
        b"&#x",
        b"\r\n",
        b"Content-Type: message/rfc822\n",
        b"From ",
        b":",
        b"\n\n",
        b" \t",
    ];
    for _ in 0..400 {
        let len = (xorshift(&mut seed) % 300) as usize;
        let mut m = Vec::new();
        for _ in 0..len {
            let r = xorshift(&mut seed);
            if r.is_multiple_of(3) {
                m.extend_from_slice(pieces[(r >> 8) as usize % pieces.len()]);
            } else {
                m.push((r >> 16) as u8);
            }
        }
        e.score(&m);
    }
    // Deep nesting is bounded.
    let mut deep = Vec::new();
    for i in 0..500 {
        deep.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").as_bytes(),
        );
    }
    e.score(&deep);
    e.score(b"");
}

#[test]
fn stock_rules_load() {
    let dir = Path::new("/usr/share/spamassassin");
    assert!(
        dir.join("72_active.cf").is_file(),
        "SpamAssassin's stock rules are missing: install Debian's spamassassin package"
    );
    let config = EngineConfig {
        stock_rules_dir: Some(dir.to_path_buf()),
        ..EngineConfig::default()
    };
    let e = Engine::load(&config).unwrap();
    assert!(e.rule_count() > 1000, "only {} rules", e.rule_count());
    let unsupported = e.unsupported_rules();
    assert!(!unsupported.is_empty());
    assert!(unsupported.iter().all(|u| u.line > 0));
    let mut m = b"Subject: test\n\n".to_vec();
    m.extend_from_slice(GTUBE);
    assert!(e.score(&m).hits.iter().any(|h| h.name == "GTUBE"));
    assert!(e.score(&m).score >= e.required_score());
}

/// `tflags multiple` rules count their matches (up to maxhits) for metas and
/// score per match; `exists:` knows the pseudo-headers.
#[test]
fn multiple_rules_count_and_pseudo_headers_exist() {
    let e = engine(
        "body __TEXT_LINE /^\\s*\\S/\ntflags __TEXT_LINE multiple maxhits=3\n\
         meta ONE_LINE __TEXT_LINE < 2\n\
         meta MANY_LINES __TEXT_LINE >= 3\n\
         body PILL /pill/\ntflags PILL multiple\nscore PILL 0.5\n\
         header __TOCC_EXISTS exists:ToCc\n\
         meta NO_TOCC !__TOCC_EXISTS\n",
    );
    // The subject is the body's first line, as in SpamAssassin.
    let short = e.score(b"To: a@example.com\n\nhello\n");
    assert_eq!(names(&short), ["ONE_LINE"]);
    let long = e.score(b"Cc: a@example.com\nSubject: s\n\na pill\n\nb\n\nc pill pill\n\nd\n");
    assert_eq!(names(&long), ["MANY_LINES", "PILL"]);
    let pill = long.hits.iter().find(|h| h.name == "PILL").unwrap();
    assert_eq!(pill.score, 1.5, "three matches");
    assert_eq!(
        names(&e.score(b"From: b@example.com\n\nx\n")),
        ["NO_TOCC", "ONE_LINE"]
    );
}

/// SpamAssassin's auto-learn conditions: past a threshold without Bayes, and for
/// spam, 3 points each from header and body rules unless a rule forces it.
#[test]
fn auto_learn_follows_spamassassin_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        bayes_dir: Some(dir.path().to_path_buf()),
        auto_learn: true,
        ..EngineConfig::default()
    };
    let rules = "header H1 Subject =~ /offer/\nscore H1 7\n\
                 body B1 /cheap pills/\nscore B1 7\n\
                 body B2 /forced/\nscore B2 13\ntflags B2 autolearn_force\n\
                 body B3 /unlearnable/\nscore B3 20\ntflags B3 noautolearn\n\
                 body B4 /more pills/\nscore B4 7\n\
                 body NICE /thanks/\nscore NICE -1\n";
    let e = Engine::from_rules(rules, &config).unwrap();
    let class = |m: &str| e.score(m.as_bytes()).auto_learn.map(|a| a.class);
    assert_eq!(class("Subject: offer\n\ncheap pills\n"), Some(Class::Spam));
    assert_eq!(
        class("Subject: hi\n\ncheap pills forced\n"),
        Some(Class::Spam)
    );
    // 14 body points but none from headers: not learned.
    assert_eq!(class("Subject: hi\n\ncheap pills, more pills\n"), None);
    assert_eq!(class("Subject: hi\n\nunlearnable\n"), None, "noautolearn");
    assert_eq!(
        class("Subject: offer\n\nhello\n"),
        None,
        "between thresholds"
    );
    assert_eq!(class("Subject: hi\n\nthanks\n"), Some(Class::Ham));
    drop(e);
    let off = Engine::from_rules(
        rules,
        &EngineConfig {
            auto_learn: false,
            ..config.clone()
        },
    )
    .unwrap();
    assert!(off.score(b"Subject: hi\n\nthanks\n").auto_learn.is_none());
}

/// The prefilters only skip regexes that could not have matched: with the stock
/// rules, every message scores the same with and without them (a few built-in
/// messages always; with ../shared/corpus beside the checkout, 150 of its
/// messages of each class too).
#[test]
fn prefilter_changes_no_result() {
    let config = EngineConfig {
        stock_rules_dir: Some(PathBuf::from("/usr/share/spamassassin")),
        ..EngineConfig::default()
    };
    let filtered = Engine::load(&config).unwrap();
    let gated = |kind: Kind| {
        (0..filtered.rules.len())
            .filter(|&i| filtered.rules[i].kind == kind && filtered.gates.gated[i])
            .count()
    };
    assert!(
        gated(Kind::Body) + gated(Kind::RawBody) + gated(Kind::Uri) > 250,
        "most body, rawbody and uri rules with strings should be gated"
    );
    assert!(gated(Kind::Header) > 150, "header rules are gated too");
    let mut unfiltered = Engine::load(&config).unwrap();
    unfiltered.gates.gated.fill(false);
    let spammy = "Subject: Your password expires: verify your account now\n\
From: \"PayPal Security\" <service@paypa1.example>\n\
To: victim@example.org\n\
Content-Type: text/html\n\n\
<html><body><p>Dear Customer, your e-mail quota is full. Click here to unsubscribe.\n\
CONGRATULATIONS! You have WON the lottery prize of $1,500,000.00 USD. Cheap V1AGRA \n\
and C I A L I S, 100% satisfaction guaranteed, no prescription needed!!!\n\
Please fill in your full name, address, phone number and bank account number.\n\
<a href=\"http://bit.ly/abc\">http://www.paypal.com/verify</a> \
<img src=\"http://x.example/a.gif\" width=1 height=1>\n\
Send bitcoin to 1BoatSLRHtKNngkdXEeobR76b53LETtpyT within 48 hours.</p></body></html>\n";
    let mut messages: Vec<Vec<u8>> = vec![
        MSG.to_vec(),
        spammy.as_bytes().to_vec(),
        b"Subject: hi\n\nlunch at noon?\n".to_vec(),
        b"\n\nno headers at all\n".to_vec(),
    ];
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    for class in ["ham", "hard-ham", "spam"] {
        let Ok(dir) = std::fs::read_dir(corpus.join(class)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
        files.sort();
        let step = (files.len() / 150).max(1);
        for f in files.iter().step_by(step).take(150) {
            messages.push(std::fs::read(f).unwrap());
        }
    }
    for message in &messages {
        assert_eq!(
            names(&filtered.score(message)),
            names(&unfiltered.score(message)),
            "{}",
            String::from_utf8_lossy(message)
        );
    }
}

/// Header rules are gated by the value they read: a missing header reads as
/// empty (or as its `[if-unset: ...]` text), a negated rule hits when its
/// regex cannot match.
#[test]
fn header_prefilter_follows_what_each_rule_reads() {
    let rules = "header H_SUBJ Subject =~ /viagra/i\nscore H_SUBJ 1\n\
header H_NOT Subject !~ /hello there/\nscore H_NOT 1\n\
header H_UNSET X-Mailer =~ /mutt-like/ [if-unset: a mutt-like client]\nscore H_UNSET 1\n\
header H_ADDR From:addr =~ /example\\.org/\nscore H_ADDR 1\n\
header H_NAME From:name =~ /example\\.org/\nscore H_NAME 1\n";
    let filtered = engine(rules);
    assert!(
        ["H_SUBJ", "H_NOT", "H_UNSET", "H_ADDR", "H_NAME"]
            .iter()
            .all(
                |n| filtered.gates.gated[filtered.rules.iter().position(|r| r.name == *n).unwrap()]
            ),
        "every rule here has strings"
    );
    let mut unfiltered = engine(rules);
    unfiltered.gates.gated.fill(false);
    let cases: [(&[u8], &[&str]); 4] = [
        (
            b"Subject: Cheap VIAGRA\nFrom: Bob <bob@example.org>\n\nx\n",
            &["H_ADDR", "H_NOT", "H_SUBJ", "H_UNSET"],
        ),
        (
            b"Subject: hello there\nX-Mailer: Outlook\nFrom: example.org <b@c.test>\n\nx\n",
            &["H_NAME"],
        ),
        (b"X-Mailer: mutt-like 2\n\nx\n", &["H_NOT", "H_UNSET"]),
        (b"\n\nx\n", &["H_NOT", "H_UNSET"]),
    ];
    for (message, hits) in cases {
        let (got, all) = (filtered.score(message), unfiltered.score(message));
        assert_eq!(names(&got), hits, "{}", String::from_utf8_lossy(message));
        assert_eq!(names(&all), hits, "without the prefilter");
    }
}

#[test]
fn site_file_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local.cf");
    std::fs::write(&local, "score BAYES_99 4.3\nbody BAD /(unclosed/\n").unwrap();
    let config = EngineConfig {
        rule_files: vec![local.clone()],
        ..EngineConfig::default()
    };
    let err = Engine::load(&config).err().unwrap().to_string();
    assert!(
        err.starts_with(&format!("{}:2: BAD: ", local.display())),
        "{err}"
    );
}

/// The HTML, MIME and header facts reach rules and metas through the engine.
#[test]
fn eval_tests_feed_rules_and_metas() {
    let e = engine(
        "body HTML_MESSAGE eval:html_test('html')\n\
         body LOW_CONTRAST eval:html_test('font_low_contrast')\n\
         body BODY_OPEN eval:html_tag_balance('body', '!= 0')\n\
         body __SHORT_HTML eval:html_eval('length', '< 384')\n\
         body ALT_DIFF eval:multipart_alternative_difference('99', '100')\n\
         rawbody QP eval:check_for_mime('mime_qp_count')\n\
         header __ENV_FROM_MATCH eval:check_for_matching_env_and_hdr_from()\n\
         header NO_RCVD eval:gated_through_received_hdr_remover()\n\
         meta SHORT_HTML_OTHER_SENDER __SHORT_HTML && !__ENV_FROM_MATCH\n",
    );
    let message = "Return-Path: <bounce@example.org>\r\n\
                   From: shop@example.com\r\n\
                   Subject: offer\r\n\
                   Content-Type: multipart/alternative; boundary=b\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\n\r\nhello friend\r\n\
                   --b\r\nContent-Type: text/html\r\n\r\n\
                   <body><font color=white>cheap pills</font>\r\n--b--\r\n";
    let r = e.score(message.as_bytes());
    assert_eq!(
        names(&r),
        [
            "ALT_DIFF",
            "BODY_OPEN",
            "HTML_MESSAGE",
            "LOW_CONTRAST",
            "NO_RCVD",
            "SHORT_HTML_OTHER_SENDER"
        ]
    );
    let plain = e
        .score(b"Return-Path: <a@example.com>\nFrom: a@example.com\nReceived: from x by y\n\nhi\n");
    assert!(plain.hits.is_empty(), "{plain:?}");
}

/// The eval tests implemented natively are not listed as unsupported.
#[test]
fn stock_eval_tests_are_supported() {
    let config = EngineConfig {
        stock_rules_dir: Some(PathBuf::from("/usr/share/spamassassin")),
        ..EngineConfig::default()
    };
    let unsupported = Engine::load(&config).unwrap().unsupported_rules();
    for name in [
        "HTML_EXTRA_CLOSE",
        "HTML_FONT_SIZE_HUGE",
        "HTML_OBFUSCATE_20_30",
        "HTML_TAG_BALANCE_HEAD",
        "__HTML_LENGTH_384",
        "__COMMENT_EXISTS",
        "__HTML_TITLE_SUBJ_DIFF",
        "__HTML_CHARSET_FARAWAY",
        "__MIME_ATTACHMENT",
        "MIME_QP_LONG_LINE",
        "MIME_HTML_MOSTLY",
        "MPART_ALT_DIFF",
        "MPART_ALT_DIFF_COUNT",
        "__UPPERCASE_25_50",
        "__TVD_SPACE_RATIO",
        "FROM_ILLEGAL_CHARS",
        "__FORGED_AOL_RCVD",
        "__FORGED_HOTMAIL_RCVD",
        "FORGED_HOTMAIL_RCVD2",
        "FORGED_GMAIL_RCVD",
        "__GATED_THROUGH_RCVD_REMOVER",
        "__RATWARE_NAME_ID",
        "__ENV_AND_HDR_FROM_MATCH",
        "__FROM_ADDRLIST_BANKS",
        "__REPLYTO_ADDRLIST_SUSPNTLD",
        "PDS_OTHER_BAD_TLD",
        "__PDS_CASHSHORTENER",
        // Patterns too large for PCRE2, on the regex crate.
        "__FILL_THIS_FORM_LONG1",
        "__HOURS_DEADLINE",
        "__MY_MALWARE",
        "__YOUR_WEBCAM",
    ] {
        assert!(
            unsupported.iter().all(|u| u.name != name),
            "{name} is unsupported"
        );
    }
}

/// Found by fuzz/ (target mime): a URI from an HTML attribute whose fourth
/// byte is inside a multi-byte character made the engine panic.
#[test]
fn uri_with_a_character_across_byte_four_does_not_panic() {
    let e = engine("uri URI_ANY /./\n");
    let message = b"Subject: x\nContent-Type: text/html\n\n\
<img src=\"htt\xff\xffp://www.example.com/a.gif\"><a href=\"ww\xc3\xa9w.x\">y</a>\n";
    let report = e.score(message);
    assert!(report.score.is_finite());
}

/// `enlist_addrlist` and `enlist_uri_host` lists, as the stock rules use
/// them (banks, suspicious TLDs, cash link shorteners).
#[test]
fn address_and_uri_host_lists() {
    let e = engine(
        "enlist_addrlist (BANKS) *@bank.example *@*.bank.example\n\
         enlist_uri_host (NTLD) icu online !ok.online\n\
         enlist_uri_host (GONE) gone.example\ndelist_uri_host (GONE) gone.example\n\
         header FROM_BANK eval:check_from_in_list('BANKS')\n\
         header REPLY_BANK eval:check_replyto_in_list('BANKS')\n\
         body NTLD_LINK eval:check_uri_host_listed('NTLD')\n\
         body GONE_LINK eval:check_uri_host_listed('GONE')\n",
    );
    let r = e.score(
        b"From: Bank <alerts@mail.bank.example>\nReply-To: x@other.example\nSubject: hi\n\n\
          see http://www.login.icu/x and http://gone.example/\n",
    );
    assert_eq!(names(&r), ["FROM_BANK", "NTLD_LINK"]);
    let r = e.score(
        b"From: a@other.example\nReply-To: \"B\" <b@bank.example>\nSubject: hi\n\n\
          http://ok.online/ mailto:x@y.icu\n",
    );
    assert_eq!(names(&r), ["REPLY_BANK"]);
}

/// Sender-authentication results given by the caller, as a table.
struct Results(&'static [&'static str]);

impl crate::SenderAuth for Results {
    fn eval(&self, function: &str, _args: &[String]) -> bool {
        self.0.contains(&function)
    }
    fn valid_dkim_domains(&self) -> Vec<String> {
        Vec::new()
    }
    fn spf_pass_sender(&self) -> Option<String> {
        None
    }
}

/// The stock SPF, DKIM and DMARC rules (25_spf.cf, 25_dkim.cf,
/// 25_dmarc.cf) hit on the caller's results with 50_scores.cf's scores of
/// the network score set, and not at all without network tests, as
/// SpamAssassin runs its `tflags net` rules only then.
#[test]
fn stock_spf_dkim_and_dmarc_rules_score_the_callers_results() {
    let stock = |network_tests| {
        Engine::load(&EngineConfig {
            stock_rules_dir: Some(PathBuf::from("/usr/share/spamassassin")),
            bayes_enabled: false,
            network_tests,
            ..EngineConfig::default()
        })
        .unwrap()
    };
    let net = stock(true);
    let message = b"From: a@example.org\nTo: b@example.com\nSubject: hello\n\nhi\n";
    let auth_hits = |e: &Engine, results: &'static [&'static str]| {
        let mut hits: Vec<(String, f64)> = e
            .score_with(message, Some(&Results(results)))
            .hits
            .into_iter()
            .filter(|h| {
                ["SPF_", "DKIM_", "DMARC_", "T_SPF_"]
                    .iter()
                    .any(|p| h.name.starts_with(p))
            })
            .map(|h| (h.name, h.score))
            .collect();
        hits.sort_by(|a, b| a.0.cmp(&b.0));
        hits
    };
    let good = &[
        "check_for_spf_pass",
        "check_for_spf_helo_none",
        "check_dkim_signed",
        "check_dkim_valid",
        "check_dkim_valid_author_sig",
        "check_dkim_dependable",
        "check_dmarc_pass",
    ];
    assert_eq!(
        auth_hits(&net, good),
        [
            ("DKIM_SIGNED".to_string(), 0.1),
            ("DKIM_VALID".to_string(), -0.1),
            ("DKIM_VALID_AU".to_string(), -0.1),
            ("DMARC_PASS".to_string(), -0.001),
            ("SPF_HELO_NONE".to_string(), 0.001),
            ("SPF_PASS".to_string(), -0.001),
        ]
    );
    // A signature that does not verify, SPF fail, DMARC p=reject failed.
    let bad = &[
        "check_for_spf_fail",
        "check_for_spf_helo_softfail",
        "check_dkim_signed",
        "check_dkim_dependable",
        "check_dmarc_reject",
    ];
    assert_eq!(
        auth_hits(&net, bad),
        [
            ("DKIM_INVALID".to_string(), 0.1),
            ("DKIM_SIGNED".to_string(), 0.1),
            ("DMARC_REJECT".to_string(), 1.797),
            ("SPF_FAIL".to_string(), 0.919),
            ("SPF_HELO_SOFTFAIL".to_string(), 0.896),
        ]
    );
    let others = &[
        "check_for_spf_softfail",
        "check_dmarc_quarantine",
        "check_for_spf_temperror",
    ];
    assert_eq!(
        auth_hits(&net, others),
        [
            ("DMARC_QUAR".to_string(), 1.198),
            ("SPF_SOFTFAIL".to_string(), 0.972),
            ("T_SPF_TEMPERROR".to_string(), 0.01),
        ]
    );
    assert_eq!(
        auth_hits(&net, &["check_for_spf_none", "check_dmarc_none"]),
        [
            ("DMARC_NONE".to_string(), 0.898),
            ("SPF_NONE".to_string(), 0.001),
        ]
    );
    // No results (the checks did not run): nothing hits.
    assert!(auth_hits(&net, &[]).is_empty());
    // Local tests only: SpamAssassin runs none of them.
    assert!(auth_hits(&stock(false), good).is_empty());
    assert!(auth_hits(&stock(false), bad).is_empty());
    // The engine knows every function a caller answers.
    let unsupported = net.unsupported_rules();
    for name in [
        "SPF_PASS",
        "DKIM_VALID_AU",
        "DMARC_REJECT",
        "T_SPF_PERMERROR",
    ] {
        assert!(
            unsupported.iter().all(|u| u.name != name),
            "{name} is unsupported"
        );
    }
    for name in [
        "USER_IN_DEF_DKIM_WL",
        "USER_IN_DEF_SPF_WL",
        "USER_IN_DKIM_WELCOMELIST",
    ] {
        assert!(
            unsupported.iter().all(|u| u.name != name),
            "{name} is unsupported"
        );
    }
    // ADSP's tests are the engine's too.
    for name in [
        "DKIM_ADSP_NXDOMAIN",
        "DKIM_ADSP_ALL",
        "DKIM_ADSP_CUSTOM_HIGH",
    ] {
        assert!(
            unsupported.iter().all(|u| u.name != name),
            "{name} is unsupported"
        );
    }
}

/// ADSP candidates as the caller found them.
struct AdspResults(crate::Adsp);

impl crate::SenderAuth for AdspResults {
    fn eval(&self, _: &str, _: &[String]) -> bool {
        false
    }
    fn valid_dkim_domains(&self) -> Vec<String> {
        Vec::new()
    }
    fn spf_pass_sender(&self) -> Option<String> {
        None
    }
    fn adsp(&self) -> crate::Adsp {
        self.0.clone()
    }
}

/// The DKIM plugin's ADSP tests as SpamAssassin evaluates them: the
/// practices an author domain publishes, or adsp_override's (the domain,
/// then `*.` each parent, then `*`), scored by 50_scores.cf (network set);
/// a domain restriction matches the author domains.
#[test]
fn adsp_rules_as_the_dkim_plugin_evaluates_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("local.cf"),
        "adsp_override bank.example\nadsp_override *.shop.example all\n\
         adsp_override low.example custom_low\n\
         header MY_ADSP eval:check_dkim_adsp('*', '.shop.example')\nscore MY_ADSP 5\n\
         header MY_SIGNALL eval:check_dkim_signall()\nscore MY_SIGNALL 1\n",
    )
    .unwrap();
    let engine = Engine::load(&EngineConfig {
        stock_rules_dir: Some(PathBuf::from("/usr/share/spamassassin")),
        rule_files: vec![dir.path().join("local.cf")],
        bayes_enabled: false,
        network_tests: true,
        ..EngineConfig::default()
    })
    .unwrap();
    let message = b"From: a@example.org\nTo: b@example.com\nSubject: hello\n\nhi\n";
    let hits = |authors: &[&str], candidates: &[(&str, Option<char>)]| {
        let adsp = crate::Adsp {
            authors: authors.iter().map(|a| a.to_string()).collect(),
            candidates: candidates
                .iter()
                .map(|(d, p)| (d.to_string(), *p))
                .collect(),
        };
        let mut hits: Vec<(String, f64)> = engine
            .score_with(message, Some(&AdspResults(adsp)))
            .hits
            .into_iter()
            .filter(|h| h.name.contains("ADSP") || h.name == "MY_SIGNALL")
            .map(|h| (h.name, h.score))
            .collect();
        hits.sort_by(|a, b| a.0.cmp(&b.0));
        hits
    };
    // Published: nxdomain, discardable, all; unknown hits nothing.
    assert_eq!(
        hits(&["gone.example"], &[("gone.example", Some('N'))]),
        [("DKIM_ADSP_NXDOMAIN".to_string(), 0.8)]
    );
    assert_eq!(
        hits(&["d.example"], &[("d.example", Some('D'))]),
        [("DKIM_ADSP_DISCARD".to_string(), 1.8)]
    );
    assert_eq!(
        hits(&["a.example"], &[("a.example", Some('A'))]),
        [
            ("DKIM_ADSP_ALL".to_string(), 1.1),
            ("MY_SIGNALL".to_string(), 1.0)
        ]
    );
    assert!(hits(&["u.example"], &[("u.example", Some('U'))]).is_empty());
    // A valid author signature: no candidate, nothing.
    assert!(hits(&["bank.example"], &[]).is_empty());
    // Overrides win over DNS, and apply without it.
    assert_eq!(
        hits(&["bank.example"], &[("bank.example", Some('U'))]),
        [("DKIM_ADSP_DISCARD".to_string(), 1.8)]
    );
    assert_eq!(
        hits(&["low.example"], &[("low.example", None)]),
        // And 25_dkim.cf's meta for mail not from a list.
        [
            ("DKIM_ADSP_CUSTOM_LOW".to_string(), 0.001),
            ("NML_ADSP_CUSTOM_LOW".to_string(), 0.7)
        ]
    );
    // *.shop.example: subdomains only, and the restricted rule.
    assert_eq!(
        hits(&["m.shop.example"], &[("m.shop.example", None)]),
        [
            ("DKIM_ADSP_ALL".to_string(), 1.1),
            ("MY_ADSP".to_string(), 5.0),
            ("MY_SIGNALL".to_string(), 1.0)
        ]
    );
    assert!(hits(&["shop.example"], &[("shop.example", None)]).is_empty());
    // The stock 60_adsp_override_dkim.cf: paypal.com is discardable.
    assert_eq!(
        hits(&["paypal.com"], &[("paypal.com", None)]),
        [("DKIM_ADSP_DISCARD".to_string(), 1.8)]
    );
    // Without network tests, none of them runs.
    let local = Engine::load(&EngineConfig {
        stock_rules_dir: Some(PathBuf::from("/usr/share/spamassassin")),
        bayes_enabled: false,
        network_tests: false,
        ..EngineConfig::default()
    })
    .unwrap();
    let adsp = crate::Adsp {
        authors: vec!["paypal.com".into()],
        candidates: vec![("paypal.com".into(), Some('D'))],
    };
    assert!(
        local
            .score_with(message, Some(&AdspResults(adsp)))
            .hits
            .iter()
            .all(|h| !h.name.contains("ADSP"))
    );
}

#[test]
fn adsp_override_as_spamassassin_parses_it() {
    let mut lists = crate::sender_auth::AuthWelcomelists::default();
    lists.adsp_override("@Example.COM").unwrap();
    lists.adsp_override("*.example.net custom_high").unwrap();
    lists.adsp_override("* unknown").unwrap();
    assert_eq!(lists.adsp_override["example.com"], 'D');
    assert_eq!(lists.adsp_override["*.example.net"], '3');
    assert_eq!(lists.adsp_override["*"], 'U');
    assert!(lists.adsp_override("example.org sometimes").is_err());
    assert!(lists.adsp_override("exa$mple.org").is_err());
    assert!(lists.adsp_override("").is_err());
}

/// Valid DKIM signing domains and an SPF-passed sender.
struct Verified {
    sdids: &'static [&'static str],
    spf_sender: Option<&'static str>,
}

impl crate::SenderAuth for Verified {
    fn eval(&self, _: &str, _: &[String]) -> bool {
        false
    }
    fn valid_dkim_domains(&self) -> Vec<String> {
        self.sdids.iter().map(|s| s.to_string()).collect()
    }
    fn spf_pass_sender(&self) -> Option<String> {
        self.spf_sender.map(str::to_string)
    }
}

/// The SPF and DKIM plugins' welcomelists as SpamAssassin matches them:
/// the author (From:) with a valid signature of the listed signing domain,
/// or of its own domain (welcomelist_auth); the envelope sender whose SPF
/// passed.
#[test]
fn spf_and_dkim_welcomelists() {
    let e = Engine::from_rules(
        "header DKIM_WL eval:check_for_dkim_welcomelist_from()\nscore DKIM_WL -100\n\
         header DEF_DKIM_WL eval:check_for_def_dkim_welcomelist_from()\nscore DEF_DKIM_WL -7.5\n\
         header SPF_WL eval:check_for_spf_whitelist_from()\nscore SPF_WL -100\n\
         header DEF_SPF_WL eval:check_for_def_spf_welcomelist_from()\nscore DEF_SPF_WL -7.5\n\
         def_welcomelist_from_dkim *@* bank.example\n\
         def_welcomelist_from_dkim *@shop.example .mailer.example\n\
         whitelist_auth *@partner.example\n\
         def_whitelist_from_spf *@*.bulk.example\n\
         welcomelist_auth *@gone.example\nunwelcomelist_auth *@gone.example\n",
        &EngineConfig {
            network_tests: true,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let hits = |from: &str, sdids: &'static [&'static str], spf: Option<&'static str>| {
        let message = format!("From: {from}\nSubject: x\n\nhi\n");
        let auth = Verified {
            sdids,
            spf_sender: spf,
        };
        let mut names: Vec<String> = e
            .score_with(message.as_bytes(), Some(&auth))
            .hits
            .into_iter()
            .map(|h| h.name)
            .collect();
        names.sort();
        names
    };
    // A third-party signature by the listed signing domain.
    assert_eq!(
        hits("a@anything.example", &["bank.example"], None),
        ["DEF_DKIM_WL"]
    );
    assert!(hits("a@anything.example", &["other.example"], None).is_empty());
    // `.mailer.example`: subdomains only.
    assert_eq!(
        hits("a@shop.example", &["eu.mailer.example"], None),
        ["DEF_DKIM_WL"]
    );
    assert!(hits("a@shop.example", &["mailer.example"], None).is_empty());
    // welcomelist_auth: the author's own domain, or SPF for the sender.
    assert_eq!(
        hits("a@partner.example", &["partner.example"], None),
        ["DKIM_WL"]
    );
    assert!(hits("a@partner.example", &["bank2.example"], None).is_empty());
    assert_eq!(
        hits("x@y.example", &[], Some("b@partner.example")),
        ["SPF_WL"]
    );
    assert_eq!(
        hits("x@y.example", &[], Some("b@mx.bulk.example")),
        ["DEF_SPF_WL"]
    );
    // Removed again.
    assert!(hits("a@gone.example", &["gone.example"], Some("a@gone.example")).is_empty());
    // Without sender results (or network tests) nothing hits.
    let message = b"From: a@partner.example\n\nhi\n";
    assert!(e.score_with(message, None).hits.is_empty());
}
