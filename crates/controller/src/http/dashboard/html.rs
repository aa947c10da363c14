//! HTML of the dashboard: escaping, the page layout and the fragments the
//! live stream sends. Every value from the store, the engine or a request
//! goes through [`escape`]; the page runs no inline script (the
//! Content-Security-Policy forbids it), only `/dashboard/assets/`.

use std::fmt::Write;

use drycc_engine::{ProcessStatus, ProcessUsage};

use crate::context::timestamp;

/// Text safe in HTML content and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// A path segment (app names and types are already restricted; this keeps
/// a link well-formed whatever they hold).
pub fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A message shown at the top of a page.
pub enum Notice {
    Done(&'static str),
    Refused(String),
}

/// The tabs of an app's pages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Processes,
    Releases,
    Config,
    Autoscale,
    Logs,
}

impl Tab {
    const ALL: [(Tab, &'static str, &'static str); 5] = [
        (Tab::Processes, "", "Processes"),
        (Tab::Releases, "/releases", "Releases"),
        (Tab::Config, "/config", "Config"),
        (Tab::Autoscale, "/autoscale", "Limits & autoscale"),
        (Tab::Logs, "/logs", "Logs"),
    ];

    pub fn path(self, app: &str) -> String {
        let suffix = Tab::ALL
            .iter()
            .find(|(tab, _, _)| *tab == self)
            .map_or("", |(_, suffix, _)| *suffix);
        format!("/dashboard/apps/{}{suffix}", segment(app))
    }
}

/// Who is signed in, for the header and the forms.
pub struct Viewer<'a> {
    pub username: &'a str,
    pub csrf: &'a str,
}

pub struct Page<'a> {
    pub title: String,
    pub viewer: Option<Viewer<'a>>,
    /// The app and its tab, on an app's pages.
    pub app: Option<(&'a str, Tab)>,
    pub notice: Option<Notice>,
    pub body: String,
    /// Also load the chart library.
    pub chart: bool,
}

/// A whole page.
pub fn render(page: Page<'_>) -> String {
    let mut out = String::new();
    let chart = if page.chart {
        r#"<link rel="stylesheet" href="/dashboard/assets/uPlot.min.css"><script defer src="/dashboard/assets/uPlot.iife.min.js"></script>"#
    } else {
        ""
    };
    let _ = write!(
        out,
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="color-scheme" content="light dark"><link rel="icon" href="data:,"><title>{title} · Drycc</title><link rel="stylesheet" href="/dashboard/assets/app.css">{chart}<script defer src="/dashboard/assets/app.js"></script></head><body><a class="skip" href="#main">Skip to content</a><header><a class="brand" href="/dashboard/">Drycc</a>"##,
        title = escape(&page.title),
    );
    if let Some(viewer) = &page.viewer {
        let _ = write!(
            out,
            r#"<span class="who">{user}</span><form method="post" action="/dashboard/logout" class="inline">{csrf}<button type="submit">Sign out</button></form>"#,
            user = escape(viewer.username),
            csrf = csrf_field(viewer.csrf),
        );
    }
    out.push_str("</header>");
    if let Some((app, current)) = page.app {
        let _ = write!(out, r#"<nav aria-label="{}">"#, escape(app));
        for (tab, _, label) in Tab::ALL {
            let here = if tab == current {
                r#" aria-current="page""#
            } else {
                ""
            };
            let _ = write!(out, r#"<a href="{}"{here}>{label}</a>"#, tab.path(app));
        }
        out.push_str("</nav>");
    }
    let _ = write!(out, r#"<main id="main"><h1>{}</h1>"#, escape(&page.title));
    match &page.notice {
        Some(Notice::Done(text)) => {
            let _ = write!(out, r#"<p class="notice done" role="status">{text}</p>"#);
        }
        Some(Notice::Refused(text)) => {
            let _ = write!(
                out,
                r#"<p class="notice refused" role="alert">{}</p>"#,
                escape(text)
            );
        }
        None => {}
    }
    out.push_str(&page.body);
    out.push_str("</main></body></html>");
    out
}

/// The hidden CSRF field of a form.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        escape(csrf)
    )
}

/// A one-button form posting `fields` to `action`.
pub fn button_form(action: &str, csrf: &str, fields: &[(&str, &str)], label: &str) -> String {
    button_form_for(action, csrf, fields, label, None)
}

/// A one-button form whose button names what it acts on for screen
/// readers (`Restart` in a row of many says which row's).
pub fn button_form_for(
    action: &str,
    csrf: &str,
    fields: &[(&str, &str)],
    label: &str,
    spoken: Option<&str>,
) -> String {
    let mut out = format!(
        r#"<form method="post" action="{}" class="inline">{}"#,
        escape(action),
        csrf_field(csrf)
    );
    for (name, value) in fields {
        let _ = write!(
            out,
            r#"<input type="hidden" name="{}" value="{}">"#,
            escape(name),
            escape(value)
        );
    }
    let spoken = spoken.map_or(String::new(), |text| {
        format!(r#" aria-label="{}""#, escape(text))
    });
    let _ = write!(
        out,
        r#"<button type="submit"{spoken}>{}</button></form>"#,
        escape(label)
    );
    out
}

/// Millicores as `12m`.
fn cpu(millis: Option<u64>) -> String {
    millis.map_or("–".into(), |m| format!("{m}m"))
}

/// Bytes in MiB.
fn memory(bytes: Option<u64>) -> String {
    bytes.map_or("–".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0))
}

/// The rows of the processes table (the live stream sends them again at
/// every change).
pub fn process_rows(
    app: &str,
    csrf: &str,
    processes: &[ProcessStatus],
    usage: &[ProcessUsage],
) -> String {
    let mut out = String::new();
    if processes.is_empty() {
        out.push_str(r#"<tr><td colspan="9">No processes run.</td></tr>"#);
    }
    let restart = format!("/dashboard/apps/{}/restart", segment(app));
    for process in processes {
        let used = usage.iter().find(|u| u.name == process.name);
        let _ = write!(
            out,
            r#"<tr data-type="{ptype}" data-name="{name}"><td>{name}</td><td>{ptype}</td><td>{state}{ready}</td><td>v{release}</td><td><time datetime="{started}">{started}</time></td><td>{restarts}</td><td>{cpu}</td><td>{memory}</td><td>{button}</td></tr>"#,
            name = escape(&process.name),
            ptype = escape(&process.ptype),
            state = escape(&process.state.to_string()),
            ready = if process.ready { "" } else { " (not ready)" },
            release = process.release,
            started = timestamp(&process.started),
            restarts = process.restarts,
            cpu = cpu(used.and_then(|u| u.cpu_millis)),
            memory = memory(used.and_then(|u| u.memory_bytes)),
            button = button_form_for(
                &restart,
                csrf,
                &[("type", &process.ptype), ("process", &process.name)],
                "Restart",
                Some(&format!("Restart {}", process.name)),
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn pages_carry_the_notice_and_the_sign_out_form() {
        let page = render(Page {
            title: "<apps>".into(),
            viewer: Some(Viewer {
                username: "alice",
                csrf: "c0ffee",
            }),
            app: Some(("web-app", Tab::Releases)),
            notice: Some(Notice::Refused("no <way>".into())),
            body: String::new(),
            chart: false,
        });
        assert!(page.contains("&lt;apps&gt;"));
        assert!(page.contains(r#"role="alert">no &lt;way&gt;"#));
        assert!(page.contains(r#"name="csrf" value="c0ffee""#));
        assert!(page.contains(r#"href="/dashboard/apps/web-app/releases" aria-current="page""#));
    }
}
