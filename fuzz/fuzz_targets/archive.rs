//! The scanner's archive walkers (zip, gzip, tar) on any bytes: the first
//! byte picks the walker, the rest is the archive. Limits must hold
//! whatever the headers claim.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanner::archive::{Budget, Kind, Limits, members};

const LIMITS: Limits = Limits {
    depth: 3,
    max_size: 4 * 1024 * 1024,
    max_ratio: 100,
    max_entries: 200,
};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, archive)) = data.split_first() else {
        return;
    };
    let kind = match pick % 3 {
        0 => Kind::Zip,
        1 => Kind::Gzip,
        _ => Kind::Tar,
    };
    let mut budget = Budget::new(&LIMITS);
    if let Ok(found) = members(kind, archive, &LIMITS, &mut budget) {
        assert!(found.len() <= LIMITS.max_entries);
        let total: usize = found.iter().filter_map(|m| m.data()).map(<[u8]>::len).sum();
        assert!(total as u64 <= LIMITS.max_size);
    }
});
