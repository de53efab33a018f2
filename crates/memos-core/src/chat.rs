//! The model `chat` answers with: any OpenAI-compatible chat-completions endpoint (the
//! fine path's `[llm]`), asked plainly or streamed token by token.
//!
//! A streamed answer is read as the server sends it (server-sent events, `data: {json}`
//! lines, `data: [DONE]` last) and handed on event by event: the caller forwards each
//! token as it comes, and dropping the [`AnswerStream`] closes the connection, which
//! cancels the generation on the server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::LlmConfig;
use crate::error::{Error, Result};
use crate::llm_usage::{Job, Ledger};

/// One message of the prompt, in OpenAI's roles.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptMessage {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// The text.
    pub content: String,
}

/// What the model is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The model name the server expects.
    pub model: String,
    /// The prompt.
    pub messages: Vec<PromptMessage>,
    /// Longest answer, in tokens.
    pub max_tokens: u32,
    /// Sampling temperature; the server's default when `None`.
    pub temperature: Option<f32>,
    /// Nucleus sampling; the server's default when `None`.
    pub top_p: Option<f32>,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerEvent {
    /// The model's reasoning, for servers that stream it apart (`reasoning_content`).
    Reasoning(String),
    /// Answer text.
    Text(String),
}

/// The chat model: an OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct ChatModel {
    client: reqwest::Client,
    /// `[llm]`: the endpoint, key, models, retries and backoff.
    config: LlmConfig,
    api_key: Option<String>,
    /// Calls and tokens by project, for `/metrics`.
    ledger: Arc<Ledger>,
}

impl ChatModel {
    /// The configured model, or `None` when no LLM is configured.
    pub fn new(config: &LlmConfig, ledger: Arc<Ledger>) -> Result<Option<Self>> {
        if config.base_url.is_empty() {
            return Ok(None);
        }
        // No overall timeout: a streamed answer may take long. A server that stops
        // sending is cut off by the read timeout instead.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            .read_timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| Error::Config(format!("llm client: {e}")))?;
        Ok(Some(Self {
            client,
            api_key: config.api_key(),
            config: config.clone(),
            ledger,
        }))
    }

    /// The model to ask: the one named, if the configuration allows it, or the default.
    pub fn pick(&self, named: Option<&str>) -> Result<String> {
        match named.map(str::trim).filter(|n| !n.is_empty()) {
            None => Ok(self.config.model.clone()),
            Some(n) if n == self.config.model || self.config.chat_models.iter().any(|a| a == n) => {
                Ok(n.to_string())
            }
            Some(n) => {
                let mut choices = vec![self.config.model.clone()];
                choices.extend(self.config.chat_models.iter().cloned());
                Err(Error::invalid(
                    "model_name",
                    format!(
                        "model_name `{n}` is not served here; choose one of: {}",
                        choices.join(", ")
                    ),
                ))
            }
        }
    }

    fn body(&self, req: &ChatRequest, stream: bool) -> Value {
        let messages: Vec<Value> = req
            .messages
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        let mut body = json!({
            "model": req.model,
            "messages": messages,
            "max_tokens": req.max_tokens,
            "stream": stream,
        });
        if stream {
            // OpenAI reports a stream's tokens only when asked (a last chunk of its own);
            // the per-project accounting needs them.
            body["stream_options"] = json!({"include_usage": true});
        }
        if let Some(t) = req.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(p) = req.top_p {
            body["top_p"] = json!(p);
        }
        body
    }

    /// Sends the request, retrying refused connections, 429s and 5xx answers with
    /// backoff; returns the first answer that is not one of those.
    async fn send(&self, project: &str, body: &Value) -> Result<reqwest::Response> {
        let url = self.config.completions_url();
        let mut last = String::new();
        for attempt in 0..=self.config.max_retries {
            if attempt > 0 {
                tokio::time::sleep(self.config.backoff(attempt)).await;
            }
            self.ledger.record(project, Job::Chat, 0, 0);
            let mut req = self.client.post(&url).json(body);
            if let Some(k) = &self.api_key {
                req = req.bearer_auth(k);
            }
            match req.send().await {
                Ok(resp) if resp.status().as_u16() == 429 || resp.status().is_server_error() => {
                    last = format!("HTTP {}", resp.status());
                }
                Ok(resp) if !resp.status().is_success() => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    return Err(Error::Llm(format!(
                        "HTTP {status}: {}",
                        text.chars().take(300).collect::<String>()
                    )));
                }
                Ok(resp) => return Ok(resp),
                Err(e) => last = format!("request failed: {e}"),
            }
        }
        Err(Error::Llm(format!(
            "gave up after {} attempts: {last}",
            self.config.max_retries + 1
        )))
    }

    /// The whole answer at once.
    pub async fn answer(&self, project: &str, req: &ChatRequest) -> Result<String> {
        let resp = self.send(project, &self.body(req, false)).await?;
        let reply: Value = resp
            .json()
            .await
            .map_err(|e| Error::Llm(format!("reply is not JSON: {e}")))?;
        if let Some((p, c)) = crate::llm_usage::reported(&reply) {
            self.ledger.add_tokens(project, Job::Chat, p, c);
        }
        reply["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::Llm("reply has no choices[0].message.content".into()))
    }

    /// The answer as the model writes it.
    pub async fn stream(&self, project: &str, req: &ChatRequest) -> Result<AnswerStream> {
        let resp = self.send(project, &self.body(req, true)).await?;
        Ok(AnswerStream {
            ledger: self.ledger.clone(),
            project: project.to_string(),
            resp,
            buf: Vec::new(),
            pending: std::collections::VecDeque::new(),
            done: false,
        })
    }
}

/// A streamed answer, read as the server sends it.
#[derive(Debug)]
pub struct AnswerStream {
    /// Where a usage chunk's tokens are counted, and for whom.
    ledger: Arc<Ledger>,
    project: String,
    resp: reqwest::Response,
    /// Bytes of a line not yet complete.
    buf: Vec<u8>,
    /// Events parsed but not yet handed out.
    pending: std::collections::VecDeque<AnswerEvent>,
    done: bool,
}

impl AnswerStream {
    /// The next piece of the answer; `None` once the model is done.
    pub async fn next(&mut self) -> Option<Result<AnswerEvent>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => {
                    self.buf.extend_from_slice(&bytes);
                    while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = self.buf.drain(..=end).collect();
                        if let Err(e) = self.line(&String::from_utf8_lossy(&line)) {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                Ok(None) => {
                    // A last line without its newline still counts.
                    let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).to_string();
                    self.done = true;
                    if let Err(e) = self.line(&rest) {
                        return Some(Err(e));
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(Error::Llm(format!("reading the stream: {e}"))));
                }
            }
        }
    }

    /// Takes one line of the event stream.
    fn line(&mut self, line: &str) -> Result<()> {
        let Some(data) = line.trim().strip_prefix("data:") else {
            // Comments, `event:` and `id:` lines, blank separators.
            return Ok(());
        };
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| Error::Llm(format!("stream event is not JSON: {e}")))?;
        if let Some(err) = v.get("error") {
            return Err(Error::Llm(format!("the server reported: {err}")));
        }
        // Servers that report a stream's usage do so in a chunk of their own.
        if let Some((p, c)) = crate::llm_usage::reported(&v) {
            self.ledger.add_tokens(&self.project, Job::Chat, p, c);
        }
        let delta = &v["choices"][0]["delta"];
        for (key, make) in [
            (
                "reasoning_content",
                AnswerEvent::Reasoning as fn(String) -> AnswerEvent,
            ),
            ("content", AnswerEvent::Text),
        ] {
            if let Some(s) = delta[key].as_str().filter(|s| !s.is_empty()) {
                self.pending.push_back(make(s.to_string()));
            }
        }
        Ok(())
    }
}
