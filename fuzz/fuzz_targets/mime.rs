//! mailgate-mime on any message, and the three consumers that read through
//! it: every bound holds (nesting, entity count, spans inside their
//! buffers), the careful and the permissive readings both finish, and
//! cleanup's checks, the banned check and the spam engine read the same
//! entities with the same types, file names and decoded bodies. Then the
//! spam engine scores it (headers, rendered bodies, URIs, the Received
//! trust path, Bayes tokens).
#![no_main]

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mailgate_mime::{Limits, Mime};
use mailgate_spam::{Engine, EngineConfig};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let config = EngineConfig {
            bayes_enabled: false,
            ..EngineConfig::default()
        };
        Engine::from_rules(include_str!("../rules.cf"), &config).expect("fuzz/rules.cf")
    })
}

fn hash(data: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

fn bounds_hold(mime: &Mime<'_>, limits: &Limits) {
    assert!(!mime.entities.is_empty());
    assert!(mime.entities.len() <= limits.parts);
    for (i, e) in mime.entities.iter().enumerate() {
        let len = mime.source(e.source).len();
        assert!(e.depth <= limits.depth, "entity {i} at depth {}", e.depth);
        assert!(e.header_span.end <= e.body_span.start && e.body_span.end <= len);
        for f in &e.headers {
            assert!(f.span.start >= e.header_span.start && f.span.end <= e.header_span.end);
        }
        assert!(e.children.iter().all(|&c| c > i));
        assert!(mime.decoded(e).len() <= e.body_span.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let careful = Mime::parse(data, &limits);
    bounds_hold(&careful, &limits);
    bounds_hold(&Mime::parse_lenient(data, &limits), &limits);

    let spam = mailgate_spam::entity_views(data);
    let banned = scanner::banned::read_parts(data);
    assert_eq!(spam.len(), careful.entities.len());
    assert_eq!(spam.len(), banned.len());
    for (s, b) in spam.iter().zip(&banned) {
        assert_eq!(s.mime_type, b.content_type);
        assert_eq!(s.filename, b.filename);
        assert_eq!(s.decoded_hash, b.content.as_deref().map(hash));
    }
    for (entity, _, _) in cleanup::checks::sections(data) {
        assert!(banned[entity].in_message, "cleanup read entity {entity}");
    }

    let report = engine().score(data);
    assert!(report.score.is_finite(), "score {}", report.score);
});
