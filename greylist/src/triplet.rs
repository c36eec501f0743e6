//! The greylisting key, built exactly as postgrey builds it (1.37,
//! `--lookup-by-subnet`, its default): client network / normalised sender /
//! recipient, lower-cased.

use std::net::IpAddr;

/// The client's network: /24 for IPv4, /64 for IPv6 (postgrey's defaults),
/// so a sender retrying from another host of its pool is still recognised.
pub fn client_network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0")
        }
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            std::net::Ipv6Addr::from(segments).to_string()
        }
    }
}

/// postgrey's sender substitutions: a BATV `prvs=tag=local` local part
/// becomes its local part, an address extension (`+...`) goes, and every
/// number standing alone between non-word characters becomes `#`, so that
/// VERP and BATV senders keep one key from message to message.
pub fn normalise_sender(address: &str) -> String {
    let Some((user, domain)) = address.split_once('@') else {
        return address.to_string();
    };
    let mut user = user.to_string();
    if user.starts_with("prvs=") {
        let parts: Vec<&str> = user.split('=').collect();
        if parts.len() == 3 {
            let tag_like = |s: &str| {
                s.len() >= 10
                    && s.bytes()
                        .take(10)
                        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            };
            // The standard form is prvs=tag=local; some send prvs=local=tag.
            user = if tag_like(parts[2]) && !tag_like(parts[1]) {
                parts[1].to_string()
            } else {
                parts[2].to_string()
            };
        }
    }
    if let Some(plus) = user.find('+') {
        user.truncate(plus);
    }
    format!("{}@{domain}", hash_numbers(&user))
}

/// Perl's `s/\b\d+\b/#/g` for ASCII word characters.
fn hash_numbers(text: &str) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !is_word(chars[i - 1]);
        if chars[i].is_ascii_digit() && starts_word {
            let end = (i..chars.len())
                .find(|&j| !chars[j].is_ascii_digit())
                .unwrap_or(chars.len());
            if end == chars.len() || !is_word(chars[end]) {
                out.push('#');
                i = end;
                continue;
            }
            // Digits followed by letters: a word, kept whole.
            let word_end = (end..chars.len())
                .find(|&j| !is_word(chars[j]))
                .unwrap_or(chars.len());
            out.extend(&chars[i..word_end]);
            i = word_end;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The key of a triplet.
pub fn key(network: &str, sender: &str, recipient: &str) -> String {
    format!("{network}/{}/{recipient}", normalise_sender(sender)).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_the_slash_24_and_slash_64() {
        assert_eq!(client_network("192.0.2.77".parse().unwrap()), "192.0.2.0");
        assert_eq!(
            client_network("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::"
        );
    }

    #[test]
    fn senders_are_normalised_as_postgrey_does() {
        for (sender, expected) in [
            ("alice@example.org", "alice@example.org"),
            ("alice+list@example.org", "alice@example.org"),
            ("bounce-123-456@lists.example", "bounce-#-#@lists.example"),
            ("user123@example.org", "user123@example.org"),
            ("123abc@example.org", "123abc@example.org"),
            ("42@example.org", "#@example.org"),
            ("a.2024.b@example.org", "a.#.b@example.org"),
            ("prvs=0123456789=alice@example.org", "alice@example.org"),
            ("prvs=alice=0123456789@example.org", "alice@example.org"),
            ("prvs=a=b@example.org", "b@example.org"),
            ("", ""),
            ("no-domain", "no-domain"),
        ] {
            assert_eq!(normalise_sender(sender), expected, "{sender}");
        }
    }

    #[test]
    fn keys_are_lower_case() {
        assert_eq!(
            key("192.0.2.0", "Bounce+X@Lists.Example", "Bob@Example.COM"),
            "192.0.2.0/bounce@lists.example/bob@example.com"
        );
    }
}
