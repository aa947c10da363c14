//! `logs` and `ps:logs`: the last lines over HTTP, or `-f` over the logs
//! WebSocket (first frame [`LogsStart`], then one text message per line).

use crate::cli::LogsOpt;
use crate::session::Session;
use crate::ws;
use anyhow::anyhow;
use drycc_api_types::LogsStart;
use futures::{SinkExt, StreamExt};
use std::io::Write;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

pub async fn show(
    session: &Session,
    app: &str,
    process: Option<&str>,
    opt: &LogsOpt,
) -> anyhow::Result<()> {
    if !opt.follow {
        let mut query = vec![("log_lines", opt.lines.to_string())];
        if let Some(p) = process {
            query.push(("process", p.to_string()));
        }
        let text = session
            .client
            .get_text(&format!("/v2/apps/{app}/logs/"), &query)
            .await?;
        let text = plain_lines(text);
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        if !text.is_empty() && !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        return Ok(());
    }

    let socket = ws::connect(&session.config, &format!("/v2/apps/{app}/logs")).await?;
    let (mut sink, mut stream) = socket.split();
    let start = LogsStart {
        lines: Some(opt.lines),
        follow: true,
        process: process.map(String::from),
    };
    let controller = session.config.controller.clone();
    sink.send(Message::Text(serde_json::to_string(&start)?.into()))
        .await
        .map_err(|e| ws::map_error(&controller, e))?;
    while let Some(msg) = stream.next().await {
        let msg = msg.map_err(|e| ws::map_error(&controller, e))?;
        let mut out = std::io::stdout().lock();
        match msg {
            Message::Text(line) => {
                out.write_all(line.as_bytes())?;
                if !line.ends_with('\n') {
                    out.write_all(b"\n")?;
                }
                out.flush()?;
            }
            Message::Binary(data) => {
                out.write_all(&data)?;
                out.flush()?;
            }
            Message::Close(Some(frame))
                if frame.code != CloseCode::Normal && frame.code != CloseCode::Away =>
            {
                let reason = frame.reason.to_string();
                return Err(if reason.is_empty() {
                    anyhow!(
                        "the controller closed the log stream (code {})",
                        u16::from(frame.code)
                    )
                } else {
                    anyhow!(reason)
                });
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

/// The logs body is text; a JSON string or list of lines is accepted too.
fn plain_lines(body: String) -> String {
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Array(lines)) if lines.iter().all(|l| l.is_string()) => lines
            .iter()
            .filter_map(|l| l.as_str())
            .map(|l| format!("{}\n", l.trim_end_matches('\n')))
            .collect(),
        _ => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_bodies() {
        assert_eq!(plain_lines("a\nb\n".into()), "a\nb\n");
        assert_eq!(plain_lines("\"a\\nb\"".into()), "a\nb");
        assert_eq!(plain_lines("[\"a\", \"b\\n\"]".into()), "a\nb\n");
        assert_eq!(plain_lines("{\"x\": 1}".into()), "{\"x\": 1}");
    }
}
