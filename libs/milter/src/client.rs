//! One milter: the connection, option negotiation, and Postfix's milter8
//! state machine (events skipped after ACCEPT, the default reply after an
//! error or a connection-level REJECT).

use std::pin::Pin;

use mailgate_log::warning;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::macros::{MacroLists, Macros, STAGES, Stage, split};
use crate::spec::{Address, DefaultAction, MilterSpec};
use crate::verdict::Verdict;
use crate::wire::{self, Builder, Fields, Frame, WireError};

pub trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Stream for T {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ready,
    /// ACCEPT at connect or HELO: nothing more for this connection.
    AcceptConnection,
    /// ACCEPT for this message: nothing more until the next MAIL.
    AcceptMessage,
    /// REJECT/TEMPFAIL/REPLYCODE at connect or HELO, or a broken
    /// conversation: every event answers the stored reply.
    Stuck,
}

/// What the milter changes at the end of a message, in its order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    AddHeader(String, String),
    InsertHeader(u32, String, String),
    ChangeHeader(u32, String, String),
    /// One chunk of the new body; consecutive chunks join.
    ReplaceBody(Vec<u8>),
    AddRecipient(String, Option<String>),
    DeleteRecipient(String),
    ChangeSender(String, Option<String>),
    /// SMFIR_QUARANTINE: put the message on hold, for this reason.
    Quarantine(String),
}

pub struct Milter {
    pub spec: MilterSpec,
    stream: Option<Pin<Box<dyn Stream>>>,
    state: State,
    /// The reply every event gets in state Stuck (None: accept).
    stored: Option<Verdict>,
    actions: u32,
    protocol: u32,
    lists: MacroLists,
}

impl Milter {
    /// Connects and negotiates within milter_connect_timeout. A milter that
    /// cannot be reached is not an error here: it gets its default action
    /// at every event, as in Postfix.
    pub async fn open(spec: MilterSpec, lists: &MacroLists) -> Milter {
        let mut milter = Milter {
            spec,
            stream: None,
            state: State::Ready,
            stored: None,
            actions: 0,
            protocol: 0,
            lists: lists.clone(),
        };
        let timeout = milter.spec.connect_timeout;
        match tokio::time::timeout(timeout, milter.connect()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warning!("connect to Milter service {}: {e}", milter.spec.name);
                milter.failed();
            }
            Err(_) => {
                warning!(
                    "connect to Milter service {}: timeout after {}s",
                    milter.spec.name,
                    timeout.as_secs()
                );
                milter.failed();
            }
        }
        milter
    }

    /// A milter that cannot be used (a malformed smtpd_milter_maps
    /// result): every event gets `reply`, as a milter that failed gets its
    /// default action.
    pub fn unusable(spec: MilterSpec, reply: Verdict) -> Milter {
        Milter {
            spec,
            stream: None,
            state: State::Stuck,
            stored: Some(reply),
            actions: 0,
            protocol: 0,
            lists: MacroLists::default(),
        }
    }

    /// A milter on a stream already open (the fuzz target's scripted
    /// peer): negotiates as [`Milter::open`] does.
    pub async fn over(
        spec: MilterSpec,
        lists: &MacroLists,
        stream: Pin<Box<dyn Stream>>,
    ) -> Milter {
        let mut milter = Milter {
            spec,
            stream: Some(stream),
            state: State::Ready,
            stored: None,
            actions: 0,
            protocol: 0,
            lists: lists.clone(),
        };
        let timeout = milter.spec.connect_timeout;
        match tokio::time::timeout(timeout, milter.negotiate()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warning!("milter {}: {e}", milter.spec.name);
                milter.failed();
            }
            Err(_) => {
                warning!("milter {}: negotiation timed out", milter.spec.name);
                milter.failed();
            }
        }
        milter
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream: Pin<Box<dyn Stream>> = match &self.spec.address {
            Address::Inet { host, port } => Box::pin(
                TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Address::Unix(path) => {
                Box::pin(UnixStream::connect(path).await.map_err(|e| e.to_string())?)
            }
        };
        self.stream = Some(stream);
        self.negotiate().await
    }

    async fn negotiate(&mut self) -> Result<(), String> {
        let offer = Builder::default()
            .u32(wire::VERSION)
            .u32(wire::ACTIONS)
            .u32(wire::PROTOCOL);
        self.send(wire::C_OPTNEG, &offer.data)
            .await
            .map_err(|e| format!("can't send SMFIC_OPTNEG: {e}"))?;
        let frame = self
            .recv()
            .await
            .map_err(|e| format!("can't read SMFIC_OPTNEG reply packet: {e}"))?;
        if frame.cmd != wire::C_OPTNEG {
            return Err(format!(
                "unexpected reply '{}' to SMFIC_OPTNEG",
                frame.cmd.escape_ascii()
            ));
        }
        let mut f = Fields::new(&frame.data);
        let bad = |_| "malformed SMFIC_OPTNEG reply".to_string();
        let version = f.u32().map_err(bad)?;
        let actions = f.u32().map_err(bad)?;
        let protocol = f.u32().map_err(bad)?;
        if !(2..=wire::VERSION).contains(&version) {
            return Err(format!("unsupported protocol version {version}"));
        }
        if actions & !wire::ACTIONS != 0 {
            return Err(format!(
                "requested actions 0x{actions:x} beyond those offered"
            ));
        }
        if protocol & !wire::PROTOCOL != 0 {
            return Err(format!(
                "requested protocol options 0x{protocol:x} beyond those offered"
            ));
        }
        // Macro lists the milter asks for instead of milter_*_macros.
        while !f.is_empty() {
            let stage = f.u32().map_err(bad)? as usize;
            let names = f.string().map_err(bad)?;
            if stage < STAGES && actions & wire::F_SETSYMLIST != 0 {
                self.lists.stages[stage] = split(&names);
            }
        }
        self.actions = actions;
        self.protocol = protocol;
        Ok(())
    }

    async fn send(&mut self, cmd: u8, data: &[u8]) -> Result<(), WireError> {
        let stream = self.stream.as_mut().ok_or(WireError::Closed)?;
        wire::write_frame(stream, cmd, data).await
    }

    async fn recv(&mut self) -> Result<Frame, WireError> {
        let stream = self.stream.as_mut().ok_or(WireError::Closed)?;
        wire::read_frame(stream).await
    }

    /// Postfix's milter8_comm_error: the connection is dropped and the
    /// default action answers from now on.
    fn failed(&mut self) {
        self.stream = None;
        self.state = State::Stuck;
        self.stored = match self.spec.default_action {
            DefaultAction::Accept => None,
            DefaultAction::Reject => Some(Verdict::Reply("550 5.5.0 Service unavailable".into())),
            DefaultAction::Tempfail => Some(Verdict::Reply(
                "451 4.7.1 Service unavailable - try again later".into(),
            )),
            DefaultAction::Shutdown => Some(Verdict::Reply(
                "421 4.7.1 Service unavailable - try again later".into(),
            )),
            DefaultAction::Quarantine => Some(Verdict::Hold("default_action".into())),
        };
    }

    fn fail(&mut self, what: &str, e: impl std::fmt::Display) -> Option<Verdict> {
        warning!("milter {}: {what}: {e}", self.spec.name);
        self.failed();
        self.stored.clone()
    }

    fn skipped(&self, stage: Stage) -> Option<Option<Verdict>> {
        match self.state {
            State::Stuck => Some(self.stored.clone()),
            State::AcceptConnection => Some(None),
            State::AcceptMessage if !matches!(stage, Stage::Connect | Stage::Helo) => Some(None),
            _ => None,
        }
    }

    /// An event from CONNECT to DATA. `no` is the SMFIP_NO* flag that
    /// skips it, `nr` the SMFIP_NR_* flag that says it gets no reply.
    pub async fn event(
        &mut self,
        stage: Stage,
        cmd: u8,
        data: &[u8],
        macros: &Macros,
        no: u32,
        nr: u32,
    ) -> Option<Verdict> {
        // ACCEPT held for one message: a new MAIL starts the next.
        if stage == Stage::Mail && self.state == State::AcceptMessage {
            self.state = State::Ready;
        }
        if let Some(verdict) = self.skipped(stage) {
            return verdict;
        }
        if self.protocol & no != 0 {
            return None;
        }
        let timeout = self.spec.command_timeout;
        let what = command_name(cmd);
        let exchange = async {
            self.send_macros(stage, cmd, macros).await?;
            self.send(cmd, data).await?;
            if self.protocol & nr != 0 {
                return Ok(Reply::Continue);
            }
            self.reply(stage, &mut Vec::new()).await
        };
        let reply = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return self.fail(what, e),
            Err(_) => return self.fail(what, WireError::Timeout),
        };
        self.decide(stage, reply)
    }

    async fn send_macros(
        &mut self,
        stage: Stage,
        cmd: u8,
        macros: &Macros,
    ) -> Result<(), WireError> {
        let lists = &self.lists;
        if let Some(data) = macros.encode(&lists.stages[stage as usize], &lists.defaults) {
            let mut frame = vec![cmd];
            frame.extend_from_slice(&data);
            self.send(wire::C_MACRO, &frame).await?;
        }
        Ok(())
    }

    /// Reads until a final reply, collecting modifications (allowed only
    /// at the end of the message, and only those negotiated).
    async fn reply(&mut self, stage: Stage, edits: &mut Vec<Edit>) -> Result<Reply, WireError> {
        loop {
            let frame = self.recv().await?;
            let mut f = Fields::new(&frame.data);
            let modification = |needed: u32, actions: u32| {
                if stage != Stage::Eom {
                    Err(WireError::Malformed(
                        "modification before the end of the message",
                    ))
                } else if actions & needed == 0 {
                    Err(WireError::Malformed("modification action not negotiated"))
                } else {
                    Ok(())
                }
            };
            let actions = self.actions;
            match frame.cmd {
                wire::R_PROGRESS => continue,
                wire::R_CONTINUE => return Ok(Reply::Continue),
                wire::R_ACCEPT => return Ok(Reply::Accept),
                wire::R_REJECT => return Ok(Reply::Reject),
                wire::R_TEMPFAIL => return Ok(Reply::Tempfail),
                wire::R_DISCARD => return Ok(Reply::Discard),
                wire::R_SKIP => return Ok(Reply::Skip),
                wire::R_CONN_FAIL => return Ok(Reply::Tempfail),
                wire::R_REPLYCODE => return Ok(Reply::Code(f.string()?)),
                // Not a decision (Sendmail 8.13): the final reply follows.
                wire::R_QUARANTINE => {
                    modification(wire::F_QUARANTINE, actions)?;
                    edits.push(Edit::Quarantine(f.string()?));
                }
                wire::R_ADDHEADER => {
                    modification(wire::F_ADDHDRS, actions)?;
                    edits.push(Edit::AddHeader(f.string()?, f.string()?));
                }
                wire::R_INSHEADER => {
                    modification(wire::F_ADDHDRS, actions)?;
                    edits.push(Edit::InsertHeader(f.u32()?, f.string()?, f.string()?));
                }
                wire::R_CHGHEADER => {
                    modification(wire::F_CHGHDRS, actions)?;
                    edits.push(Edit::ChangeHeader(f.u32()?, f.string()?, f.string()?));
                }
                wire::R_REPLBODY => {
                    modification(wire::F_CHGBODY, actions)?;
                    edits.push(Edit::ReplaceBody(frame.data));
                }
                wire::R_ADDRCPT => {
                    modification(wire::F_ADDRCPT, actions)?;
                    edits.push(Edit::AddRecipient(f.string()?, None));
                }
                wire::R_ADDRCPT_PAR => {
                    modification(wire::F_ADDRCPT_PAR, actions)?;
                    let rcpt = f.string()?;
                    let args = if f.is_empty() {
                        None
                    } else {
                        Some(f.string()?)
                    };
                    edits.push(Edit::AddRecipient(rcpt, args));
                }
                wire::R_DELRCPT => {
                    modification(wire::F_DELRCPT, actions)?;
                    edits.push(Edit::DeleteRecipient(f.string()?));
                }
                wire::R_CHGFROM => {
                    modification(wire::F_CHGFROM, actions)?;
                    let from = f.string()?;
                    let args = if f.is_empty() {
                        None
                    } else {
                        Some(f.string()?)
                    };
                    edits.push(Edit::ChangeSender(from, args));
                }
                _ => return Err(WireError::Malformed("unknown reply code")),
            }
            if edits.len() > MAX_EDITS {
                return Err(WireError::Malformed("too many modifications"));
            }
        }
    }

    /// Turns a final reply into Postfix's decision and state change.
    fn decide(&mut self, stage: Stage, reply: Reply) -> Option<Verdict> {
        let connection_level = matches!(stage, Stage::Connect | Stage::Helo);
        let verdict = match reply {
            Reply::Continue | Reply::Skip => return None,
            Reply::Accept => {
                self.state = if connection_level {
                    State::AcceptConnection
                } else {
                    State::AcceptMessage
                };
                return None;
            }
            Reply::Discard if connection_level => {
                warning!(
                    "milter {}: DISCARD action is not allowed for connect or helo",
                    self.spec.name
                );
                return None;
            }
            Reply::Discard => {
                self.state = State::AcceptMessage;
                return Some(Verdict::Discard);
            }
            Reply::Reject => Verdict::Reply("550 5.7.1 Command rejected".into()),
            Reply::Tempfail => {
                Verdict::Reply("451 4.7.1 Service unavailable - try again later".into())
            }
            Reply::Code(text) => match valid_reply(&text) {
                Some(text) => Verdict::Reply(text),
                None => {
                    warning!("milter {}: malformed reply: {text}", self.spec.name);
                    self.stream = None;
                    self.state = State::Stuck;
                    self.stored = Some(Verdict::Reply(
                        "451 4.3.5 Server configuration problem - try again later".into(),
                    ));
                    return self.stored.clone();
                }
            },
        };
        if connection_level {
            self.state = State::Stuck;
            self.stored = Some(verdict.clone());
        }
        Some(verdict)
    }

    /// The message: headers, end of headers, body, end of body, within
    /// milter_content_timeout. Returns the decision and the
    /// modifications.
    pub async fn message(
        &mut self,
        headers: &[(String, Vec<u8>)],
        body: &[u8],
        macros: &Macros,
    ) -> (Option<Verdict>, Vec<Edit>) {
        if self.state == State::AcceptMessage {
            // Accepted before its content: the milter is told the message
            // is over (Postfix's milter8_abort), and sees the next one.
            self.abort().await;
            return (None, Vec::new());
        }
        if let Some(verdict) = self.skipped(Stage::Eom) {
            return (verdict, Vec::new());
        }
        let timeout = self.spec.content_timeout;
        let mut edits = Vec::new();
        let result =
            tokio::time::timeout(timeout, self.content(headers, body, macros, &mut edits)).await;
        let reply = match result {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return (self.fail("end of message", e), Vec::new()),
            Err(_) => return (self.fail("end of message", WireError::Timeout), Vec::new()),
        };
        // The message is done: the next one starts afresh.
        if self.state == State::AcceptMessage {
            self.state = State::Ready;
        }
        let verdict = self.decide(Stage::Eom, reply);
        if self.state == State::AcceptMessage {
            self.state = State::Ready;
        }
        (verdict, edits)
    }

    async fn content(
        &mut self,
        headers: &[(String, Vec<u8>)],
        body: &[u8],
        macros: &Macros,
        edits: &mut Vec<Edit>,
    ) -> Result<Reply, WireError> {
        let early = |reply: Reply| !matches!(reply, Reply::Continue);
        if self.protocol & wire::P_NOHDRS == 0 {
            for (name, value) in headers {
                let data = Builder::default().string(name).bytes(value);
                self.send(wire::C_HEADER, &data.data).await?;
                if self.protocol & wire::P_NR_HDR == 0 {
                    let reply = self.reply(Stage::Data, edits).await?;
                    if matches!(reply, Reply::Skip) {
                        break;
                    }
                    if early(reply.clone()) {
                        return Ok(reply);
                    }
                }
            }
        }
        if self.protocol & wire::P_NOEOH == 0 {
            self.send_macros(Stage::Eoh, wire::C_EOH, macros).await?;
            self.send(wire::C_EOH, &[]).await?;
            if self.protocol & wire::P_NR_EOH == 0 {
                let reply = self.reply(Stage::Data, edits).await?;
                if early(reply.clone()) {
                    return Ok(reply);
                }
            }
        }
        if self.protocol & wire::P_NOBODY == 0 {
            for chunk in body.chunks(wire::CHUNK) {
                self.send(wire::C_BODY, chunk).await?;
                if self.protocol & wire::P_NR_BODY == 0 {
                    let reply = self.reply(Stage::Data, edits).await?;
                    if matches!(reply, Reply::Skip) {
                        break;
                    }
                    if early(reply.clone()) {
                        return Ok(reply);
                    }
                }
            }
        }
        self.send_macros(Stage::Eom, wire::C_BODYEOB, macros)
            .await?;
        self.send(wire::C_BODYEOB, &[]).await?;
        self.reply(Stage::Eom, edits).await
    }

    /// RSET or a new MAIL: the milter forgets the message (no reply).
    pub async fn abort(&mut self) {
        if self.state == State::AcceptMessage {
            self.state = State::Ready;
        }
        if self.stream.is_some() && matches!(self.state, State::Ready) {
            let timeout = self.spec.command_timeout;
            match tokio::time::timeout(timeout, self.send(wire::C_ABORT, &[])).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.fail("abort", e);
                }
                Err(_) => {
                    self.fail("abort", WireError::Timeout);
                }
            }
        }
    }

    /// The end of the SMTP session.
    pub async fn quit(&mut self) {
        if self.stream.is_some() {
            let timeout = self.spec.command_timeout;
            let _ = tokio::time::timeout(timeout, self.send(wire::C_QUIT, &[])).await;
        }
        self.stream = None;
    }
}

/// At most this many modifications per message from one milter.
const MAX_EDITS: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Reply {
    Continue,
    Accept,
    Reject,
    Tempfail,
    Discard,
    Skip,
    Code(String),
}

fn command_name(cmd: u8) -> &'static str {
    match cmd {
        wire::C_CONNECT => "SMFIC_CONNECT",
        wire::C_HELO => "SMFIC_HELO",
        wire::C_MAIL => "SMFIC_MAIL",
        wire::C_RCPT => "SMFIC_RCPT",
        wire::C_DATA => "SMFIC_DATA",
        _ => "command",
    }
}

/// A milter's SMTP reply (SMFIR_REPLYCODE): a 4xx or 5xx code, possibly
/// several lines joined by CRLF, each starting with the same code. `%%`
/// becomes `%` and a lone `%` goes, as Postfix does (Sendmail uses the
/// text as a format string).
pub fn valid_reply(text: &str) -> Option<String> {
    let code = text.get(..3)?;
    if !matches!(code.as_bytes()[0], b'4' | b'5') || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    for line in text.split("\r\n") {
        if !line.starts_with(code) || !matches!(line.as_bytes().get(3), None | Some(b' ' | b'-')) {
            return None;
        }
        if line.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return None;
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked_as_postfix_checks_them() {
        assert_eq!(
            valid_reply("550 5.7.1 Virus found: 100%% sure").as_deref(),
            Some("550 5.7.1 Virus found: 100% sure")
        );
        assert!(valid_reply("250 2.0.0 ok").is_none());
        assert!(valid_reply("55").is_none());
        assert!(valid_reply("550-5.7.1 a\r\n551 5.7.1 b").is_none());
        assert!(valid_reply("550-5.7.1 a\r\n550 5.7.1 b").is_some());
        assert!(valid_reply("550 a\nb").is_none());
    }
}
