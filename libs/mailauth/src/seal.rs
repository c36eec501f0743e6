//! ARC sealing (RFC 8617) with a key that lives in another process:
//! mail-auth's ArcSealer builds the set over the message as it will be
//! delivered, and the [`KeyHolder`] (tlskeys) signs the
//! ARC-Message-Signature and the ARC-Seal. The chain's state (cv=) is the
//! one the scanner verified; the sets it covers are read here from the
//! message, which needs no DNS.

use mail_auth::arc::{ArcError, ArcSealer, Set};
use mail_auth::common::headers::{Header, HeaderWriter};
use mail_auth::dkim::Canonicalization;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimResult, Error};

use crate::sign::{KeyHolder, KeyRef, SignError, remote, signing_error};
use crate::verify::ArcChain;

/// The most ARC sets a chain may have (RFC 8617 section 4.2.1).
pub const MAX_SETS: usize = 50;

/// What the verifier found about the chain the message arrived with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub chain: ArcChain,
    /// How many sets it had then.
    pub sets: u32,
}

/// The ARC set for `message` (the whole message as it will be
/// delivered): ARC-Seal, ARC-Message-Signature and
/// ARC-Authentication-Results (whose value is `results`, an
/// Authentication-Results value), each ending in CRLF, to put above it.
///
/// cv= is none when the message has no ARC set, pass when the verifier
/// found the chain valid and the message still has the sets it verified,
/// fail otherwise. A message that cannot carry a set (its chain is
/// malformed or already failed, or has 50 sets) is a
/// [`SignError::Message`]: it goes on unsealed.
pub fn arc_set(
    holder: &dyn KeyHolder,
    key: &KeyRef<'_>,
    headers: &[String],
    message: &[u8],
    results: &str,
    verified: Verified,
) -> Result<String, SignError> {
    let unsealable = |why: &str| SignError::Message(why.to_string());
    // The value goes into the seal as it is (mail-auth writes it
    // verbatim): one line, single spaces, as relaxed canonicalization
    // reads it.
    let results = results
        .split_ascii_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let parsed = AuthenticatedMessage::parse(message)
        .ok_or_else(|| unsealable("the message could not be parsed"))?;
    if parsed.has_arc_errors {
        return Err(unsealable(
            "its ARC header fields are malformed (no seal over a broken chain)",
        ));
    }
    let sets = parsed.as_headers.len();
    if sets != parsed.ams_headers.len() || sets != parsed.aar_headers.len() {
        return Err(unsealable(
            "its ARC chain is incomplete (no seal over a broken chain)",
        ));
    }
    if sets >= MAX_SETS {
        return Err(unsealable(
            "its ARC chain has 50 sets, the most there may be",
        ));
    }
    let result = match verified.chain {
        _ if sets == 0 => DkimResult::None,
        ArcChain::Pass if u32::try_from(sets).ok() == Some(verified.sets) => DkimResult::Pass,
        _ => DkimResult::Fail(Error::Arc(ArcError::BrokenChain)),
    };
    let mut output = ArcOutput::default().with_result(result);
    for (pos, ((seal, signature), aar)) in parsed
        .as_headers
        .iter()
        .zip(&parsed.ams_headers)
        .zip(&parsed.aar_headers)
        .enumerate()
    {
        let instance = u32::try_from(pos + 1).unwrap_or(u32::MAX);
        if seal.header.i != instance || signature.header.i != instance || aar.header.i != instance {
            return Err(unsealable(
                "its ARC sets are not numbered 1 to n (no seal over a broken chain)",
            ));
        }
        output = output.with_set(Set {
            signature: Header::new(signature.name, signature.value, &signature.header),
            seal: Header::new(seal.name, seal.value, &seal.header),
            results: Header::new(aar.name, aar.value, &aar.header),
        });
    }
    if !output.can_be_sealed() {
        return Err(unsealable(
            "the chain it arrived with has failed already (cv=fail)",
        ));
    }
    let results = AuthenticationResults::new(&results);
    let set = ArcSealer::from_key(remote(holder, key, true)?)
        .domain(key.domain)
        .selector(key.selector)
        .headers(headers.iter().map(String::as_str))
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .seal(&parsed, &results, &output)
        .map_err(signing_error)?;
    Ok(fold_results(&set.to_header()))
}

/// mail-auth writes the ARC-Authentication-Results on one line; folded at
/// its "; " separators it stays under 78 columns where it can, which
/// relaxed canonicalization reads as the same value.
fn fold_results(headers: &str) -> String {
    let mut out = String::with_capacity(headers.len() + 64);
    for line in headers.split_inclusive("\r\n") {
        if !line.starts_with("ARC-Authentication-Results:") || line.len() <= 78 {
            out.push_str(line);
            continue;
        }
        let body = line.trim_end_matches("\r\n");
        let mut width = 0;
        for (n, piece) in body.split("; ").enumerate() {
            if n > 0 {
                if width + 2 + piece.len() > 78 {
                    out.push_str(";\r\n\t");
                    width = 1;
                } else {
                    out.push_str("; ");
                    width += 2;
                }
            }
            out.push_str(piece);
            width += piece.len();
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::KeyAlgorithm;
    use mail_auth::common::crypto::{Ed25519Key, SigningKey};
    use std::cell::RefCell;

    /// A holder with an Ed25519 key in memory that records what it signed.
    struct Local(Ed25519Key, RefCell<Vec<Vec<u8>>>);

    impl KeyHolder for Local {
        fn algorithm(&self, _: &str) -> Result<KeyAlgorithm, String> {
            Ok(KeyAlgorithm::Ed25519Sha256)
        }
        fn sign(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, String> {
            Err("a DKIM signature was asked for".into())
        }
        fn sign_arc(&self, _: &str, data: &[u8]) -> Result<Vec<u8>, String> {
            self.1.borrow_mut().push(data.to_vec());
            self.0.sign(data).map_err(|e| e.to_string())
        }
    }

    fn holder() -> Local {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        Local(
            Ed25519Key::from_pkcs8_der(&pkcs8).unwrap(),
            RefCell::new(Vec::new()),
        )
    }

    const KEY: KeyRef<'static> = KeyRef {
        name: "arc",
        domain: "gw.example",
        selector: "arc1",
    };

    const MESSAGE: &str = "Authentication-Results: gw.example; dkim=none\r\n\
        From: Bob <bob@example.com>\r\nTo: alice@example.org\r\nSubject: ***SPAM*** hi\r\n\r\nHello.\r\n";

    fn headers() -> Vec<String> {
        vec![
            "From".into(),
            "Subject".into(),
            "Authentication-Results".into(),
        ]
    }

    #[test]
    fn a_first_set_has_cv_none_and_is_signed_by_the_holder() {
        let holder = holder();
        let results = "gw.example;  spf=pass smtp.mailfrom=bob@example.com; dkim=none; arc=none";
        let none = Verified {
            chain: ArcChain::None,
            sets: 0,
        };
        let set = arc_set(&holder, &KEY, &headers(), MESSAGE.as_bytes(), results, none).unwrap();
        assert!(
            set.starts_with("ARC-Seal: i=1; a=ed25519-sha256; s=arc1; d=gw.example; cv=none;"),
            "{set}"
        );
        assert!(set.contains("\r\nARC-Message-Signature: i=1; a=ed25519-sha256; s=arc1; d=gw.example; c=relaxed/relaxed;"), "{set}");
        assert!(set.replace("\r\n\t", " ").ends_with(
            "ARC-Authentication-Results: i=1; gw.example; spf=pass smtp.mailfrom=bob@example.com; dkim=none; arc=none\r\n"
        ), "{set}");
        // Two signatures, the message signature first, each ending with
        // its own field (what tlskeys checks).
        let signed = holder.1.borrow();
        assert_eq!(signed.len(), 2);
        let last_field = |data: &[u8]| {
            let text = String::from_utf8_lossy(data).to_string();
            text.rsplit("\r\n").next().unwrap().to_string()
        };
        assert!(last_field(&signed[0]).starts_with("arc-message-signature:i=1;"));
        assert!(last_field(&signed[1]).starts_with("arc-seal:i=1;"));
        assert!(last_field(&signed[1]).ends_with("b=;"));
    }

    #[test]
    fn later_sets_follow_the_verified_chain() {
        let holder = holder();
        let none = Verified {
            chain: ArcChain::None,
            sets: 0,
        };
        let first = arc_set(
            &holder,
            &KEY,
            &headers(),
            MESSAGE.as_bytes(),
            "gw.example; arc=none",
            none,
        )
        .unwrap();
        let sealed = format!("{first}{MESSAGE}");
        let pass = Verified {
            chain: ArcChain::Pass,
            sets: 1,
        };
        let second = arc_set(
            &holder,
            &KEY,
            &headers(),
            sealed.as_bytes(),
            "gw.example; arc=pass",
            pass,
        )
        .unwrap();
        assert!(
            second.starts_with("ARC-Seal: i=2; a=ed25519-sha256; s=arc1; d=gw.example; cv=pass;"),
            "{second}"
        );
        // A pass for another number of sets than the message has now: fail.
        let other = Verified {
            chain: ArcChain::Pass,
            sets: 2,
        };
        let failed = arc_set(
            &holder,
            &KEY,
            &headers(),
            sealed.as_bytes(),
            "gw.example; arc=pass",
            other,
        )
        .unwrap();
        assert!(
            failed.starts_with("ARC-Seal: i=2; a=ed25519-sha256; s=arc1; d=gw.example; cv=fail;"),
            "{failed}"
        );
        // After a cv=fail nothing is sealed.
        let after = format!("{failed}{sealed}");
        let err = arc_set(
            &holder,
            &KEY,
            &headers(),
            after.as_bytes(),
            "gw.example; arc=fail",
            pass,
        )
        .unwrap_err();
        assert!(
            matches!(err, SignError::Message(ref m) if m.contains("cv=fail")),
            "{err}"
        );
        // An incomplete set is not sealed over.
        let cut: String = sealed
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("ARC-Authentication-Results"))
            .collect();
        assert!(matches!(
            arc_set(
                &holder,
                &KEY,
                &headers(),
                cut.as_bytes(),
                "gw.example; arc=fail",
                none
            ),
            Err(SignError::Message(_))
        ));
    }

    #[test]
    fn long_results_are_folded_between_results() {
        let long = format!(
            "ARC-Seal: x\r\nARC-Authentication-Results: i=1; gw.example; spf=pass smtp.mailfrom={}@example.com; dkim=none; arc=none\r\n",
            "a".repeat(60)
        );
        let folded = fold_results(&long);
        assert!(
            folded.starts_with(
                "ARC-Seal: x\r\nARC-Authentication-Results: i=1; gw.example;\r\n\tspf=pass"
            ),
            "{folded}"
        );
        assert!(
            folded.contains("@example.com;\r\n\tdkim=none; arc=none\r\n"),
            "{folded}"
        );
        let unfolded = folded.replace("\r\n\t", " ");
        assert_eq!(unfolded, long);
    }
}
