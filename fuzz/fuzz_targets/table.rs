//! The lookup-table parsers (hash/texthash text, cidr, regexp, pcre,
//! inline) on any table source, and a few lookups in what they built.
//! The first byte picks the type; the rest is the table's file (or the
//! inline table's body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailgate_config::{AddressLookup, Table, lookup_address};

const KEYS: &[&str] = &[
    "user@example.com",
    "example.com",
    "192.0.2.1",
    "2001:db8::1",
    "Subject: hello",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let Ok(body) = std::str::from_utf8(body) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("mailgate-fuzz-table-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let spec = match pick % 5 {
        0 => "texthash:t".to_string(),
        1 => "cidr:t".to_string(),
        2 => "regexp:t".to_string(),
        3 => "pcre:t".to_string(),
        _ => format!("inline:{{{body}}}"),
    };
    std::fs::write(dir.join("t"), body).expect("write the table");
    let Ok(table) = Table::open(&spec, &dir) else {
        return;
    };
    let opts = AddressLookup::default();
    for key in KEYS {
        let _ = table.lookup(key);
        let _ = lookup_address(&table, key, &opts);
    }
});
