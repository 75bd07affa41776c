//! HTML pieces of the console: escaping, the page frame and its stylesheet, tables and forms.
//! Server-rendered, no script: every value goes through `esc`, and every form that changes
//! something carries the console's CSRF token.

use std::fmt::Write;

/// Text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text in a URL: a path segment (an export or orchestration name) or a query value.
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

pub const STYLE: &str = "\
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1c2430;background:#f6f7f9}\
header{background:#1c2430;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}\
header a{color:#fff;text-decoration:none}header .who{margin-left:auto;opacity:.75;font-size:12px}\
main{padding:16px 24px;max-width:1400px}h1{font-size:20px;margin:8px 0 12px}h2{font-size:16px;margin:24px 0 8px}\
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:8px}\
th,td{border-bottom:1px solid #e3e6ea;padding:5px 8px;text-align:left;vertical-align:top}\
th{font-weight:600;background:#eef0f3;font-size:12px;text-transform:uppercase;letter-spacing:.03em}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.state{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;background:#e3e6ea}\
.active,.running,.succeeded,.resolved{background:#d8f3dc}.draft{background:#e7e5ff}.paused{background:#fff1c2}\
.failed,.firing,.stale{background:#ffd9d9}.bad{color:#b00020}.muted{color:#6b7480}\
form.inline{display:inline}button{font:inherit;padding:3px 10px;border:1px solid #9aa3ad;border-radius:4px;background:#fff;cursor:pointer}\
button.danger{border-color:#b00020;color:#b00020}button.primary{background:#1c5fd1;border-color:#1c5fd1;color:#fff}\
textarea{width:100%;font:12px/1.4 ui-monospace,monospace}input[type=text]{font:inherit;padding:3px 6px}\
pre{background:#fff;border:1px solid #e3e6ea;padding:8px;overflow:auto;font-size:12px}\
.diff-add{color:#0a6b2c}.diff-del{color:#b00020}.box{background:#fff;border:1px solid #e3e6ea;padding:12px 16px;margin:12px 0}\
nav.filters a{margin-right:10px}.actions{margin:8px 0}.actions a{margin-right:8px}.refused{border-left:4px solid #b00020}.done{border-left:4px solid #0a6b2c}";

/// A whole page: title, the header bar (who and which permissions), and the body.
pub fn page(title: &str, grants: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · Sluice</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body><header><a href=\"/\"><b>Sluice</b></a><a href=\"/\">Exports</a><a href=\"/new\">New export</a>\
         <span class=\"who\">permissions: {g}</span></header><main>{body}</main></body></html>",
        t = esc(title),
        g = esc(grants),
    )
}

/// A state as a coloured label.
pub fn state(s: &str) -> String {
    format!("<span class=\"state {c}\">{t}</span>", c = esc(&s.replace(' ', "-")), t = esc(s))
}

/// A table of already-escaped cells; `numeric` lists the columns aligned right.
pub fn table(head: &[&str], rows: &[Vec<String>], numeric: &[usize]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let class = if numeric.contains(&i) { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{c}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A POST form of one button (and hidden fields), with the CSRF token.
pub fn button(action: &str, label: &str, csrf: &str, fields: &[(&str, &str)], class: &str) -> String {
    let mut out = format!("<form class=\"inline\" method=\"post\" action=\"{}\">", esc(action));
    let _ = write!(out, "<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf));
    for (k, v) in fields {
        let _ = write!(out, "<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v));
    }
    let _ = write!(out, "<button type=\"submit\" class=\"{}\">{}</button></form>", esc(class), esc(label));
    out
}

/// A diff (`+`/`-` lines) coloured.
pub fn diff(text: &str) -> String {
    let mut out = String::from("<pre class=\"diff\">");
    for line in text.lines() {
        let class = if line.starts_with('+') {
            "diff-add"
        } else if line.starts_with('-') {
            "diff-del"
        } else {
            ""
        };
        let _ = writeln!(out, "<span class=\"{class}\">{}</span>", esc(line));
    }
    out.push_str("</pre>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(seg("crm/../x y"), "crm%2F..%2Fx%20y");
        assert!(button("/x", "Go", "tok\"", &[("a", "<b>")], "").contains("value=\"tok&quot;\""));
    }
}
