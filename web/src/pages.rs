//! The pages, as plain HTML forms and links: no script anywhere (the
//! content security policy forbids it), every value escaped.

use std::fmt::Write as _;

use mailgate_ipc::envelope::RecipientState;
use mailgate_stats::{Counter, Period, Reason, Snapshot};

use crate::http::percent_encode;
use crate::spool::{Entry, Message};

/// Text for HTML: element content and attribute values alike.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

pub const STYLE: &str = "\
body{font-family:'DejaVu Sans',sans-serif;margin:0;color:#222;background:#fafafa}\
header{background:#234;color:#fff;padding:.6em 1em;display:flex;align-items:center;gap:1.2em}\
header a{color:#fff;text-decoration:none}header a.here{text-decoration:underline}\
header .who{margin-left:auto}header form{display:inline}\
main{padding:1em}h1{font-size:1.3em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#eee}td.n{text-align:right}pre{background:#fff;border:1px solid #ccc;padding:.6em;\
white-space:pre-wrap;word-break:break-all;font-size:.85em}\
.flash{background:#dfd;border:1px solid #8b8;padding:.5em}.error{background:#fdd;border:1px solid #b88;padding:.5em}\
form.inline{display:inline}button{margin:0 .1em}img{display:block;margin:.4em 0}\
.login{max-width:22em;margin:4em auto;background:#fff;border:1px solid #ccc;padding:1.5em}\
.login input{width:100%;margin:.3em 0 .8em;padding:.3em;box-sizing:border-box}";

/// What every signed-in page shows around its content.
pub struct Frame<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub flash: Option<&'a str>,
    pub here: &'a str,
}

pub fn page(frame: &Frame<'_>, title: &str, content: &str) -> String {
    let mut nav = String::new();
    for (path, label) in [
        ("/", "Overview"),
        ("/graphs", "Graphs"),
        ("/queue", "Queue"),
        ("/quarantine", "Quarantine"),
        ("/log", "Log"),
    ] {
        let class = if path == frame.here {
            " class=\"here\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{path}\"{class}>{label}</a>");
    }
    let flash = frame
        .flash
        .map(|f| format!("<p class=\"flash\" id=\"flash\">{}</p>", esc(f)))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} - mailgate</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body><header><strong>mailgate</strong>{nav}<span class=\"who\">{}\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\">Log out</button></form></span></header>\
         <main><h1>{}</h1>{flash}{content}</main></body></html>\n",
        esc(title),
        esc(frame.user),
        esc(frame.csrf),
        esc(title)
    )
}

pub fn login(token: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in - mailgate</title>\
         <link rel=\"stylesheet\" href=\"/style.css\"></head><body><div class=\"login\">\
         <h1>mailgate</h1>{error}<form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label>Login<input name=\"user\" autocomplete=\"username\" required></label>\
         <label>Password<input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\" id=\"login\">Log in</button></form></div></body></html>\n",
        esc(token)
    )
}

fn counts_table(snapshot: &Snapshot, now: i64) -> String {
    let periods = [
        Period::Hour,
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Year,
    ];
    let counts: Vec<_> = periods.iter().map(|p| p.counts(snapshot, now)).collect();
    let mut out = String::from("<table id=\"counts\"><tr><th></th>");
    for p in periods {
        let _ = write!(out, "<th>{}</th>", p.name());
    }
    out.push_str("</tr>");
    let mut row = |label: &str, id: &str, value: &dyn Fn(&mailgate_stats::Counts) -> u64| {
        let _ = write!(out, "<tr id=\"row-{id}\"><th>{label}</th>");
        for c in &counts {
            let _ = write!(out, "<td class=\"n\">{}</td>", value(c));
        }
        out.push_str("</tr>");
    };
    for (label, counter) in [
        ("received", Counter::Received),
        ("delivered", Counter::Delivered),
        ("deferred", Counter::Deferred),
        ("bounced", Counter::Bounced),
    ] {
        row(label, label, &move |c| c.get(counter));
    }
    row("rejected", "rejected", &|c| c.rejected());
    for reason in Reason::ALL {
        let label = format!("&nbsp;&nbsp;{}", reason.name());
        row(&label, &format!("rejected-{}", reason.name()), &move |c| {
            c.get(Counter::Rejected(reason))
        });
    }
    for (label, counter) in [
        ("virus", Counter::Virus),
        ("spam", Counter::Spam),
        ("banned", Counter::Banned),
        ("quarantined", Counter::Quarantined),
    ] {
        row(label, label, &move |c| c.get(counter));
    }
    out.push_str("</table>");
    out
}

pub fn overview(snapshot: Option<&Snapshot>, now: i64, problem: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(problem) = problem {
        let _ = write!(out, "<p class=\"error\">{}</p>", esc(problem));
    }
    if let Some(snapshot) = snapshot {
        out.push_str(&counts_table(snapshot, now));
        out.push_str(
            "<img src=\"/graph/traffic-day.svg\" alt=\"messages, last day\" width=\"720\" height=\"262\">\
             <img src=\"/graph/trouble-day.svg\" alt=\"refused and failed, last day\" width=\"720\" height=\"262\">",
        );
    }
    out
}

pub fn graphs() -> String {
    let mut out = String::new();
    for span in ["day", "week", "month", "year"] {
        let _ = write!(
            out,
            "<h2>{span}</h2><img src=\"/graph/traffic-{span}.svg\" alt=\"messages, last {span}\" width=\"720\" height=\"262\">\
             <img src=\"/graph/trouble-{span}.svg\" alt=\"refused and failed, last {span}\" width=\"720\" height=\"262\">"
        );
    }
    out
}

fn button(action: &str, target: &str, id: &str, csrf: &str, label: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{target}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"id\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"{action}\">\
         <button type=\"submit\" id=\"{action}-{}\">{label}</button></form>",
        esc(csrf),
        esc(id),
        esc(id)
    )
}

fn local_time(micros: u64) -> String {
    match mailgate_log::local_time((micros / 1_000_000) as i64) {
        Some(tm) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        ),
        None => "?".into(),
    }
}

fn problems(list: &[String]) -> String {
    list.iter()
        .map(|p| format!("<p class=\"error\">{}</p>", esc(p)))
        .collect()
}

fn sender(entry: &Entry) -> String {
    match entry.record.envelope.sender.as_str() {
        "" => "MAILER-DAEMON".into(),
        s => esc(s),
    }
}

pub fn queue(entries: &[Entry], trouble: &[String], csrf: &str) -> String {
    let mut out = problems(trouble);
    if entries.is_empty() {
        out.push_str("<p id=\"empty\">The queue is empty.</p>");
        return out;
    }
    out.push_str(
        "<table id=\"queue\"><tr><th>ID</th><th>queue</th><th>size</th><th>arrival</th>\
         <th>sender</th><th>recipients (last deferral)</th><th></th></tr>",
    );
    for e in entries {
        let id = &e.record.queue_id;
        let recipients: Vec<String> = e
            .pending()
            .into_iter()
            .map(|(a, why)| match why {
                Some(why) => format!("{} ({})", esc(a), esc(why)),
                None => esc(a),
            })
            .collect();
        let mut actions = String::new();
        if e.queue == mailgate_ipc::spool::HOLD {
            actions.push_str(&button("release", "/queue", id, csrf, "Release"));
        } else {
            actions.push_str(&button("hold", "/queue", id, csrf, "Hold"));
        }
        actions.push_str(&button("delete", "/queue", id, csrf, "Delete"));
        let _ = write!(
            out,
            "<tr id=\"msg-{0}\"><td><a href=\"/queue/{1}\">{0}</a></td><td>{2}</td><td class=\"n\">{3}</td>\
             <td>{4}</td><td>{5}</td><td>{6}</td><td>{actions}</td></tr>",
            esc(id),
            percent_encode(id),
            e.queue,
            e.record.content_length,
            local_time(e.record.envelope.arrival),
            sender(e),
            recipients.join("<br>")
        );
    }
    out.push_str("</table>");
    out
}

pub fn quarantine(entries: &[Entry], trouble: &[String], csrf: &str) -> String {
    let mut out = problems(trouble);
    if entries.is_empty() {
        out.push_str("<p id=\"empty\">The quarantine is empty.</p>");
        return out;
    }
    out.push_str(
        "<table id=\"quarantine\"><tr><th>ID</th><th>size</th><th>arrival</th><th>sender</th>\
         <th>recipients</th><th>reason</th><th></th></tr>",
    );
    for e in entries {
        let id = &e.record.queue_id;
        let recipients: Vec<String> = e
            .record
            .envelope
            .recipients
            .iter()
            .map(|r| esc(&r.address))
            .collect();
        let actions = format!(
            "{}{}",
            button("release", "/quarantine", id, csrf, "Release"),
            button("delete", "/quarantine", id, csrf, "Delete")
        );
        let _ = write!(
            out,
            "<tr id=\"msg-{0}\"><td><a href=\"/quarantine/{1}\">{0}</a></td><td class=\"n\">{2}</td>\
             <td>{3}</td><td>{4}</td><td>{5}</td><td>{6}</td><td>{actions}</td></tr>",
            esc(id),
            percent_encode(id),
            e.record.content_length,
            local_time(e.record.envelope.arrival),
            sender(e),
            recipients.join("<br>"),
            esc(&e.reason)
        );
    }
    out.push_str("</table>");
    out
}

/// One message: its envelope, its actions and its text.
pub fn message(message: &Message, csrf: &str, quarantined: bool) -> String {
    let e = &message.entry;
    let r = &e.record;
    let id = &r.queue_id;
    let mut out = String::from("<table id=\"envelope\">");
    let mut field = |name: &str, value: &str| {
        let _ = write!(out, "<tr><th>{name}</th><td>{}</td></tr>", esc(value));
    };
    field("queue", e.queue);
    field("size", &r.content_length.to_string());
    field("arrival", &local_time(r.envelope.arrival));
    field("sender", &r.envelope.sender);
    field("client", &r.envelope.client.label());
    if let Some(message_id) = &r.message_id {
        field("message-id", message_id);
    }
    if !e.reason.is_empty() {
        field("quarantine reason", &e.reason);
    }
    field("delivery attempts", &r.state.attempts.to_string());
    for recipient in &r.envelope.recipients {
        let state = match recipient.state {
            RecipientState::Pending => "recipient",
            RecipientState::Delivered => "delivered",
            RecipientState::Bounced => "bounced",
        };
        let text = match &recipient.last_reason {
            Some(why) => format!("{} ({why})", recipient.address),
            None => recipient.address.clone(),
        };
        field(state, &text);
    }
    out.push_str("</table><p>");
    if quarantined {
        out.push_str(&button("release", "/quarantine", id, csrf, "Release"));
        out.push_str(&button("delete", "/quarantine", id, csrf, "Delete"));
    } else {
        if e.queue == mailgate_ipc::spool::HOLD {
            out.push_str(&button("release", "/queue", id, csrf, "Release"));
        } else {
            out.push_str(&button("hold", "/queue", id, csrf, "Hold"));
        }
        out.push_str(&button("delete", "/queue", id, csrf, "Delete"));
    }
    out.push_str("</p>");
    let text: String = String::from_utf8_lossy(&message.content)
        .chars()
        .filter(|&c| c != '\r')
        .collect();
    let _ = write!(out, "<pre id=\"content\">{}</pre>", esc(&text));
    if message.truncated {
        let _ = write!(
            out,
            "<p>Only the first {} KiB are shown.</p>",
            crate::spool::SHOW_LIMIT / 1024
        );
    }
    out
}

pub fn log(lines: &[String], problem: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(problem) = problem {
        let _ = write!(out, "<p class=\"error\">{}</p>", esc(problem));
    }
    let text: Vec<String> = lines.iter().map(|l| esc(l)).collect();
    let _ = write!(out, "<pre id=\"log\">{}</pre>", text.join("\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("a\u{1b}[31m"), "a\u{fffd}[31m");
        let frame = Frame {
            user: "<script>",
            csrf: "\"><x",
            flash: Some("<b>"),
            here: "/queue",
        };
        let html = page(&frame, "Queue", "");
        assert!(!html.contains("<script>") && !html.contains("\"><x") && !html.contains("<b>"));
        assert!(html.contains("<a href=\"/queue\" class=\"here\">Queue</a>"));
        assert!(log(&["<img src=x onerror=alert(1)>".into()], None).contains("&lt;img"));
    }
}
