//! Posts one message to the operator's webhook (`--notify URL`): plain text that ntfy and
//! most chat webhooks take, or JSON with `--notify-format json`. Time-limited; a webhook that
//! fails is a warning, never the upgrade's failure.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::model::notify::Message;

/// How the message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Checks `url` before anything changes: http or https, with a host.
pub fn check_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(()),
        _ => bail!("--notify {url:?} is not an http:// or https:// URL"),
    }
}

/// Posts `message` to `url`.
pub fn send(url: &str, format: Format, message: &Message) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let response = match format {
        Format::Text => agent
            .post(url)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Title", &format!("disinto: {}", message.event))
            .send(message.text.as_bytes()),
        Format::Json => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(message)?.as_slice()),
    };
    match response {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => bail!("the webhook answered {}", r.status().as_u16()),
        Err(e) => bail!("the webhook could not be reached: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_that_cannot_be_reached_is_an_error_not_a_hang() {
        let message = Message {
            event: "upgraded",
            factory: "prod".into(),
            from: "v1.0.0".into(),
            to: "v1.1.0".into(),
            text: "disinto prod: upgraded".into(),
        };
        // Port 1 on loopback: nothing listens there.
        let e = send("http://127.0.0.1:1/hook", Format::Text, &message).unwrap_err();
        assert!(e.to_string().contains("could not be reached"), "{e}");
        assert!(check_url("https://ntfy.example/t").is_ok());
        for bad in ["ftp://x", "https://", "ntfy.example", "http:///path"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
