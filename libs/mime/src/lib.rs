//! mailgate's one MIME parser. cleanup's header and body checks, the
//! scanner's banned-attachment check and the spam engine all read a
//! message through [`Mime::parse`], so they see the same entities in the
//! same order, with the same declared types, file names and decoded
//! bodies: a message cannot be one thing to one check and another thing
//! to the next.
//!
//! How hostile shapes are read (DESIGN.md, "One MIME parser"):
//! - a delimiter is a whole line, `--boundary` then maybe `--` then only
//!   white space (RFC 2046, Thunderbird's libmime); a longer boundary that
//!   starts with an outer one is not the outer one;
//! - a missing closing delimiter ends the last part at the end of its
//!   container; a multipart without a boundary, or whose boundary never
//!   appears, is one leaf;
//! - of several Content-Type fields the first counts (Thunderbird, Python's
//!   email package), and the entity notes [`Anomaly::DuplicateContentType`];
//! - where readers differ (several Content-Type fields, lines that start
//!   with a delimiter but go on), [`Mime::parse_lenient`] gives the most
//!   permissive reading, for checks that must see what any reader shows;
//! - a message/rfc822 (or message/global) part is read as a message, also
//!   when it is base64 or quoted-printable encoded (readers decode it);
//! - bounds: [`Limits`] on nesting, entity count and bytes decoded to read
//!   encoded messages; what lies past them is a leaf with an anomaly, so a
//!   check can treat it as unchecked. Nothing panics and nothing fails.

mod decode;
mod params;
mod split;

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

pub use decode::{decode_base64, decode_body, decode_header, decode_qp, strip_line_ends};
pub use params::{Value, parse as parse_value};
pub use split::is_header_line;

/// Bounds on what one message may cost.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Entities nested deeper than this are leaves.
    pub depth: usize,
    /// At most this many entities are listed.
    pub parts: usize,
    /// At most this many bytes are decoded to read encoded attached messages.
    pub decoded: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            depth: 20,
            parts: 1000,
            decoded: 32 << 20,
        }
    }
}

/// One header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// As written, trimmed.
    pub name: String,
    /// The value after the colon (one leading space dropped), continuation
    /// lines joined with `\n`, carriage returns removed.
    pub raw: Vec<u8>,
    /// Its lines in the entity's source, line ends included.
    pub span: Range<usize>,
}

/// Where an entity stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The message itself.
    Message,
    /// A body part of a multipart.
    Part,
    /// The message inside a message/rfc822 part.
    Attached,
}

/// The bytes an entity's offsets refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The message as given to [`Mime::parse`].
    Raw,
    /// The decoded body of an encoded message/rfc822 part.
    Decoded(usize),
}

/// Something about an entity that readers may take differently, or a
/// bound that was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// More than one Content-Type field: the first was used.
    DuplicateContentType,
    /// A multipart without a boundary parameter: read as a leaf.
    NoBoundary,
    /// A multipart whose boundary never appears: read as a leaf.
    NoDelimiter,
    /// A multipart without its closing delimiter.
    Unterminated,
    /// A line some readers take for a delimiter and others do not (the
    /// boundary followed by more text, a delimiter after the closing one).
    LooseDelimiter,
    /// The header section did not end with an empty line.
    MissingSeparator,
    /// A message/rfc822 part with a transfer encoding (decoded and read).
    EncodedMessage,
    /// Nested deeper than [`Limits::depth`]: read as a leaf.
    TooDeep,
    /// More entities than [`Limits::parts`]: the rest are not listed.
    TooManyParts,
    /// Decoding this attached message would pass [`Limits::decoded`].
    DecodedLimit,
}

impl Anomaly {
    /// Whether content went unread because of it.
    pub fn is_bound(self) -> bool {
        matches!(
            self,
            Anomaly::TooDeep | Anomaly::TooManyParts | Anomaly::DecodedLimit
        )
    }
}

/// A MIME entity: the message, a body part, or an attached message.
#[derive(Clone, Debug)]
pub struct Entity {
    pub role: Role,
    /// 0 for the message; one more per container.
    pub depth: usize,
    pub parent: Option<usize>,
    pub source: Source,
    pub headers: Vec<Field>,
    /// The header fields and the empty line after them.
    pub header_span: Range<usize>,
    pub body_span: Range<usize>,
    /// Lowercase `type/subtype` of the first Content-Type field (the last
    /// in [`Mime::parse_lenient`]); the
    /// default (text/plain, or message/rfc822 in a multipart/digest) when
    /// there is none or it has no `/`.
    pub content_type: String,
    /// A Content-Type field was there.
    pub declared: bool,
    /// The first Content-Type field's parameters.
    pub params: Vec<(String, String)>,
    /// Lowercase Content-Transfer-Encoding, empty when none.
    pub encoding: String,
    /// Content-Disposition's filename, else Content-Type's name.
    pub filename: Option<String>,
    /// Entities directly inside it.
    pub children: Vec<usize>,
    /// Not read as a container (its body is content).
    pub is_leaf: bool,
    pub anomalies: Vec<Anomaly>,
}

impl Entity {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first field of this name.
    pub fn header(&self, name: &str) -> Option<&Field> {
        self.headers
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// A parsed message: its entities in document order (each container
/// before what it contains).
#[derive(Debug)]
pub struct Mime<'a> {
    raw: &'a [u8],
    decoded: Vec<Arc<[u8]>>,
    pub entities: Vec<Entity>,
    /// Delimiter lines in the raw message, line ends included.
    pub delimiters: Vec<Range<usize>>,
    /// Text after the closing delimiter of some multipart.
    pub epilogue: bool,
}

impl<'a> Mime<'a> {
    /// Parses a message as careful readers do (RFC 2046, Thunderbird). A
    /// leading mbox `From ` line is skipped.
    pub fn parse(raw: &'a [u8], limits: &Limits) -> Mime<'a> {
        Self::read(raw, limits, false)
    }

    /// Parses a message as the most permissive readers do: the last
    /// Content-Type counts, any line that starts with a delimiter is one,
    /// a closing delimiter closes only when no delimiter follows. Where
    /// [`Mime::parse`] notes [`Anomaly::DuplicateContentType`] or
    /// [`Anomaly::LooseDelimiter`], a check that must not miss what any
    /// reader shows reads this too.
    pub fn parse_lenient(raw: &'a [u8], limits: &Limits) -> Mime<'a> {
        Self::read(raw, limits, true)
    }

    /// Whether some reader may see other parts than [`Mime::parse`] lists.
    pub fn ambiguous(&self) -> bool {
        self.entities.iter().any(|e| {
            e.anomalies
                .iter()
                .any(|a| matches!(a, Anomaly::DuplicateContentType | Anomaly::LooseDelimiter))
        })
    }

    fn read(raw: &'a [u8], limits: &Limits, lenient: bool) -> Mime<'a> {
        let start = if raw.starts_with(b"From ") {
            raw.iter()
                .position(|&c| c == b'\n')
                .map_or(raw.len(), |p| p + 1)
        } else {
            0
        };
        let mut walker = Walker {
            mime: Mime {
                raw,
                decoded: Vec::new(),
                entities: Vec::new(),
                delimiters: Vec::new(),
                epilogue: false,
            },
            limits: *limits,
            decoded_bytes: 0,
            lenient,
        };
        walker.entity(Source::Raw, start..raw.len(), Role::Message, 0, None);
        walker.mime
    }

    /// The bytes a source names.
    pub fn source(&self, source: Source) -> &[u8] {
        match source {
            Source::Raw => self.raw,
            Source::Decoded(i) => &self.decoded[i],
        }
    }

    /// An entity's body as written.
    pub fn body(&self, entity: &Entity) -> &[u8] {
        &self.source(entity.source)[entity.body_span.clone()]
    }

    /// An entity's body decoded from its transfer encoding.
    pub fn decoded(&self, entity: &Entity) -> Cow<'_, [u8]> {
        let body = self.body(entity);
        match entity.encoding.as_str() {
            "base64" | "quoted-printable" => Cow::Owned(decode_body(&entity.encoding, body)),
            _ => Cow::Borrowed(body),
        }
    }

    /// The leaves, in order.
    pub fn leaves(&self) -> impl Iterator<Item = &Entity> {
        self.entities.iter().filter(|e| e.is_leaf)
    }

    /// The message's own header fields.
    pub fn headers(&self) -> &[Field] {
        self.entities.first().map_or(&[], |e| &e.headers)
    }
}

struct Walker<'a> {
    mime: Mime<'a>,
    limits: Limits,
    decoded_bytes: usize,
    lenient: bool,
}

/// The bytes being read: the raw message or a decoded buffer.
enum Buf<'a> {
    Raw(&'a [u8]),
    Decoded(Arc<[u8]>),
}

impl std::ops::Deref for Buf<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buf::Raw(r) => r,
            Buf::Decoded(d) => d,
        }
    }
}

impl Walker<'_> {
    fn entity(
        &mut self,
        source: Source,
        span: Range<usize>,
        role: Role,
        depth: usize,
        parent: Option<usize>,
    ) {
        if self.mime.entities.len() >= self.limits.parts {
            if let Some(root) = self.mime.entities.first_mut()
                && !root.anomalies.contains(&Anomaly::TooManyParts)
            {
                root.anomalies.push(Anomaly::TooManyParts);
            }
            return;
        }
        let data = match source {
            Source::Raw => Buf::Raw(self.mime.raw),
            Source::Decoded(i) => Buf::Decoded(self.mime.decoded[i].clone()),
        };
        let head = split::head(&data, span.start, span.end);
        let headers = split::fields(&data, head.fields.clone());
        let mut anomalies = Vec::new();
        if head.missing_separator && role != Role::Part {
            anomalies.push(Anomaly::MissingSeparator);
        }
        let ctypes: Vec<&Field> = headers
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("content-type"))
            .collect();
        let chosen = if self.lenient {
            ctypes.last()
        } else {
            ctypes.first()
        };
        let ctype = chosen.map(|f| params::parse(&f.raw));
        if ctypes.len() > 1 {
            anomalies.push(Anomaly::DuplicateContentType);
        }
        let default = match parent.map(|p| &self.mime.entities[p]) {
            Some(p) if role == Role::Part && p.content_type == "multipart/digest" => {
                "message/rfc822"
            }
            _ => "text/plain",
        };
        let content_type = match &ctype {
            Some(v) if v.token.contains('/') => v.token.clone(),
            _ => default.to_string(),
        };
        let first_value = |name: &str| {
            headers
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| params::parse(&f.raw))
        };
        let encoding = first_value("content-transfer-encoding")
            .map(|v| v.token)
            .unwrap_or_default();
        let filename = first_value("content-disposition")
            .and_then(|v| v.param("filename").map(str::to_string))
            .filter(|n| !n.is_empty())
            .or_else(|| {
                ctype
                    .as_ref()
                    .and_then(|v| v.param("name").map(str::to_string))
            })
            .filter(|n| !n.is_empty());
        let index = self.mime.entities.len();
        if let Some(p) = parent {
            self.mime.entities[p].children.push(index);
        }
        self.mime.entities.push(Entity {
            role,
            depth,
            parent,
            source,
            headers,
            header_span: head.section.clone(),
            body_span: head.body_start..span.end,
            content_type: content_type.clone(),
            declared: ctype.is_some(),
            params: ctype.map(|v| v.params).unwrap_or_default(),
            encoding: encoding.clone(),
            filename,
            children: Vec::new(),
            is_leaf: true,
            anomalies,
        });
        let body = head.body_start..span.end;
        if content_type.starts_with("multipart/") {
            let boundary = self.mime.entities[index]
                .param("boundary")
                .filter(|b| !b.is_empty())
                .map(|b| b.as_bytes().to_vec());
            let Some(boundary) = boundary else {
                return self.note(index, Anomaly::NoBoundary);
            };
            if depth >= self.limits.depth {
                return self.note(index, Anomaly::TooDeep);
            }
            let mp = split::multipart(&data, body, &boundary, self.limits.parts, self.lenient);
            if mp.delimiters.is_empty() {
                return self.note(index, Anomaly::NoDelimiter);
            }
            self.mime.entities[index].is_leaf = false;
            if !mp.closed {
                self.note(index, Anomaly::Unterminated);
            }
            if mp.cut {
                self.note(index, Anomaly::TooManyParts);
            }
            if mp.loose {
                self.note(index, Anomaly::LooseDelimiter);
            }
            if source == Source::Raw {
                self.mime.delimiters.extend(mp.delimiters.iter().cloned());
            }
            self.mime.epilogue |= mp.epilogue;
            for part in mp.parts {
                self.entity(source, part, Role::Part, depth + 1, Some(index));
            }
        } else if content_type == "message/rfc822" || content_type == "message/global" {
            if depth >= self.limits.depth {
                return self.note(index, Anomaly::TooDeep);
            }
            self.mime.entities[index].is_leaf = false;
            if matches!(encoding.as_str(), "base64" | "quoted-printable") {
                self.note(index, Anomaly::EncodedMessage);
                if self.decoded_bytes + body.len() > self.limits.decoded {
                    self.mime.entities[index].is_leaf = true;
                    return self.note(index, Anomaly::DecodedLimit);
                }
                let inner: Arc<[u8]> = decode_body(&encoding, &data[body]).into();
                self.decoded_bytes += inner.len();
                let len = inner.len();
                self.mime.decoded.push(inner);
                let source = Source::Decoded(self.mime.decoded.len() - 1);
                self.entity(source, 0..len, Role::Attached, depth + 1, Some(index));
            } else {
                self.entity(source, body, Role::Attached, depth + 1, Some(index));
            }
        }
    }

    fn note(&mut self, index: usize, anomaly: Anomaly) {
        self.mime.entities[index].anomalies.push(anomaly);
    }
}

#[cfg(test)]
mod tests;
