//! Who used the LLM, and how much: calls and tokens by project and job since start, for
//! `/metrics` (a hosted model is billed by the token, and a deployment serving several
//! teams bills them by project).
//!
//! Tokens are what the server reports in its replies' `usage`; a server that reports none
//! (or a streamed answer whose server sends no usage chunk) counts calls only.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What the LLM was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Job {
    /// Memories from messages (the fine path) and feedback.
    Extraction,
    /// Profile fields from messages.
    Profile,
    /// `chat` answers.
    Chat,
}

impl Job {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::Extraction => "extraction",
            Job::Profile => "profile",
            Job::Chat => "chat",
        }
    }
}

/// Calls and tokens of one project and job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Requests sent, retries included.
    pub calls: u64,
    /// Prompt tokens reported.
    pub prompt: u64,
    /// Completion tokens reported.
    pub completion: u64,
}

/// The running totals, shared by every LLM client of a service.
#[derive(Debug, Default)]
pub struct Ledger {
    by: Mutex<BTreeMap<(String, Job), Tokens>>,
}

impl Ledger {
    /// Adds one request's figures.
    pub fn record(&self, project: &str, job: Job, prompt: u64, completion: u64) {
        let mut by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        let t = by.entry((project.to_string(), job)).or_default();
        t.calls += 1;
        t.prompt += prompt;
        t.completion += completion;
    }

    /// Adds tokens reported after the call was counted (a stream's last chunk).
    pub fn add_tokens(&self, project: &str, job: Job, prompt: u64, completion: u64) {
        let mut by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        let t = by.entry((project.to_string(), job)).or_default();
        t.prompt += prompt;
        t.completion += completion;
    }

    /// Every project and job so far.
    pub fn snapshot(&self) -> Vec<(String, Job, Tokens)> {
        let by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        by.iter().map(|((p, j), t)| (p.clone(), *j, *t)).collect()
    }
}

/// `(prompt, completion)` from an OpenAI-style `usage` object, when there is one.
pub fn reported(reply: &serde_json::Value) -> Option<(u64, u64)> {
    let u = reply.get("usage").filter(|u| u.is_object())?;
    Some((
        u["prompt_tokens"].as_u64().unwrap_or(0),
        u["completion_tokens"].as_u64().unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_by_project_and_job() {
        let l = Ledger::default();
        l.record("a", Job::Chat, 10, 5);
        l.record("a", Job::Chat, 1, 1);
        l.add_tokens("a", Job::Chat, 0, 7);
        l.record("b", Job::Extraction, 3, 2);
        let s = l.snapshot();
        assert_eq!(
            s,
            vec![
                (
                    "a".into(),
                    Job::Chat,
                    Tokens {
                        calls: 2,
                        prompt: 11,
                        completion: 13
                    }
                ),
                (
                    "b".into(),
                    Job::Extraction,
                    Tokens {
                        calls: 1,
                        prompt: 3,
                        completion: 2
                    }
                ),
            ]
        );
        assert_eq!(
            reported(&serde_json::json!({"usage": {"prompt_tokens": 4}})),
            Some((4, 0))
        );
        assert_eq!(reported(&serde_json::json!({"usage": null})), None);
    }
}
