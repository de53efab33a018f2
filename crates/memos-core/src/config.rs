//! Configuration: built-in defaults, then `memos.toml`, then `MEMOS__SECTION__KEY`
//! environment variables, then command-line flags (applied by the binary). Checked once at
//! start; a bad value stops the server with a message naming it.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct Config {
    /// HTTP listener.
    pub server: ServerConfig,
    /// Where data lives.
    pub store: StoreConfig,
    /// Search behaviour.
    pub search: SearchConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// The embedding model of the dense retriever.
    pub embed: EmbedConfig,
    /// The optional LLM extractor (the fine path).
    pub llm: LlmConfig,
    /// Knowledge bases.
    pub knowledge: KnowledgeConfig,
}

/// Knowledge bases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// Whether a file's `content` may be a URL that memos downloads. Off by default: memos
    /// then reaches nothing on the network by itself.
    pub fetch_urls: bool,
    /// How long one download may take.
    pub fetch_timeout_ms: u64,
    /// How long reading one file (a PDF's or DOCX's text) may take before the file is
    /// refused: a parser caught in a malformed file must not hold the upload forever.
    pub read_timeout_ms: u64,
    /// Files of this many bytes or more are read in the background: the call answers with
    /// them `PROCESSING`, and a task (durable, so a restart finishes it) reads and chunks
    /// them. Smaller files are searchable when the call answers.
    pub background_bytes: usize,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            fetch_urls: false,
            fetch_timeout_ms: 60_000,
            read_timeout_ms: 60_000,
            background_bytes: 4 * 1024 * 1024,
        }
    }
}

/// An OpenAI-compatible chat-completions endpoint for memory extraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Base URL up to `/v1` (e.g. `http://127.0.0.1:8080/v1`); empty: fast path only.
    pub base_url: String,
    /// The model name the server expects.
    pub model: String,
    /// Environment variable holding the API key (none needed for local servers).
    pub api_key_env: String,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Most tokens one extraction or profile reply may take (`max_tokens`): a small model
    /// that runs on inventing items stops there instead of filling its window.
    pub max_tokens: u32,
    /// Retries after a bad reply, a 429, a 5xx or a timeout.
    pub max_retries: u32,
    /// First retry delay; doubles each time.
    pub backoff_ms: u64,
    /// Messages per call.
    pub window: usize,
    /// `json_schema` (OpenAI, vLLM, llama.cpp, Ollama) or `json_object` (servers that only
    /// know JSON mode). The reply is checked against the schema either way.
    pub response_format: ResponseFormat,
    /// Whether every add is refined by the LLM (the fine path); `false` keeps the LLM for
    /// `chat` only.
    pub refine: bool,
    /// Models `chat` may name in `model_name`, besides `model` (the default).
    pub chat_models: Vec<String>,
    /// Turns of the conversation's chat log that `chat` shows the model before the query.
    pub chat_history: usize,
}

/// How the fine path asks the LLM for JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    /// `response_format: {type: json_schema}` with the bounded schema.
    #[default]
    JsonSchema,
    /// `response_format: {type: json_object, schema}`, for servers that only know JSON mode
    /// (llama-cpp-python's form: the schema beside the type; llama.cpp's server reads it too).
    JsonObject,
}

impl std::str::FromStr for ResponseFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "json_schema" => Ok(Self::JsonSchema),
            "json_object" => Ok(Self::JsonObject),
            _ => Err(Error::Config(format!(
                "llm.response_format: must be `json_schema` or `json_object`, not `{s}`"
            ))),
        }
    }
}

/// Which store holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// SQLite and tantivy in `data_dir`: one process, one binary.
    #[default]
    Embedded,
    /// PostgreSQL at `url`: several servers share it, and it searches itself.
    Postgres,
    /// Nothing persisted (tests, demos).
    Memory,
}

impl StoreBackend {
    /// The name in configuration files and `/health`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Postgres => "postgres",
            Self::Memory => "memory",
        }
    }
}

impl std::str::FromStr for StoreBackend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "embedded" => Ok(Self::Embedded),
            "postgres" => Ok(Self::Postgres),
            "memory" => Ok(Self::Memory),
            _ => Err(Error::Config(format!(
                "store.backend: must be `embedded`, `postgres` or `memory`, not `{s}`"
            ))),
        }
    }
}

/// How search merges the lexical and dense lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// Weighted sum of calibrated relevance.
    #[default]
    Score,
    /// Reciprocal rank fusion.
    Rrf,
}

impl LlmConfig {
    /// The API key from the environment variable `api_key_env`; none is fine for local
    /// servers.
    pub fn api_key(&self) -> Option<String> {
        std::env::var(&self.api_key_env)
            .ok()
            .filter(|k| !k.is_empty())
    }

    /// The chat-completions endpoint under `base_url`.
    pub fn completions_url(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }

    /// How long to wait before retry `attempt` (1-based): `backoff_ms`, doubling, capped
    /// at 64 times.
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.backoff_ms
                .saturating_mul(1 << attempt.saturating_sub(1).min(6)),
        )
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            model: "gpt-4o-mini".into(),
            api_key_env: "MEMOS_LLM_API_KEY".into(),
            timeout_ms: 60_000,
            max_tokens: 2_048,
            max_retries: 3,
            backoff_ms: 500,
            window: 24,
            response_format: ResponseFormat::JsonSchema,
            refine: true,
            chat_models: vec![],
            chat_history: 10,
        }
    }
}

/// Embedding model settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// Directory of the model (see `scripts/fetch-models.sh`); empty disables dense search.
    pub model_dir: PathBuf,
    /// Fail at start when the model cannot be loaded, instead of serving lexical search only.
    pub required: bool,
    /// Embed new memories before an add returns. Off by default: adds return once the
    /// memories are stored and lexically searchable, and a background worker adds their
    /// vectors moments later (an add is then ~100x faster on a CPU).
    pub inline: bool,
    /// `int8` (default): the encoder's dense layers in 8 bits on the CPU's int8 dot-product
    /// instructions, about 4x faster; `f32`: the reference arithmetic. Vectors of either
    /// search the other's (cosine >= 0.999 apart).
    pub precision: crate::embed::Precision,
    /// Find the preferences the rules miss with the trained head over the model's vectors
    /// (`ingest::head`; only for the model it was trained on). The add then embeds its facts
    /// before extracting them, a few milliseconds each on its path, and stores those vectors
    /// (the background embedder would have computed them anyway). Off: the rules alone.
    pub preference_head: bool,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            model_dir: PathBuf::from("models/multilingual-e5-small-q4"),
            required: false,
            inline: false,
            precision: crate::embed::Precision::Int8,
            preference_head: true,
        }
    }
}

/// HTTP listener settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind; loopback by default so a fresh install is not exposed.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Longest a client may take to send a request body, in milliseconds: a body sent
    /// slower (or never finished) is cut off, so half-sent requests cannot hold
    /// connections and memory (slowloris).
    pub body_timeout_ms: u64,
    /// Most requests of one project that run at once; more answer 429 (40300) at once
    /// rather than slow every project down.
    pub max_concurrent_per_project: usize,
    /// Requests per second each API key may make, on average; 0 (the default) sets no
    /// limit. Beyond it a request answers 429 (40300) at once, saying when to retry.
    pub rate_limit_per_second: u32,
    /// How many requests a key may make at once after being idle (the bucket's size);
    /// 0 means as many as `rate_limit_per_second`.
    pub rate_limit_burst: u32,
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `embedded` (SQLite + tantivy in `data_dir`), `postgres` (the database at `url`, the
    /// lexical index in `data_dir`) or `memory` (nothing persisted).
    pub backend: StoreBackend,
    /// Directory of the embedded store and its indexes.
    pub data_dir: PathBuf,
    /// PostgreSQL URL (`postgres://user:pass@host:5432/db`), for `backend = "postgres"`.
    pub url: String,
    /// Most database connections per server.
    pub max_connections: usize,
    /// How long a worker holds an async add task without renewing it (it renews every
    /// third of this while it works). When a server dies, another takes its tasks over
    /// this long after its last renewal.
    pub task_lease_ms: u64,
    /// Memory PostgreSQL may use to build a vector index (`maintenance_work_mem` for that
    /// build only). A build whose graph does not fit runs many times slower: a million
    /// 384-dimension vectors need about 3 GB.
    pub vector_index_memory_mb: usize,
    /// PostgreSQL streaming replicas searches read from, in turn (writes, task leases and
    /// everything else stay on `url`). Empty: searches read the primary.
    pub replica_urls: Vec<String>,
    /// How long a search waits for a replica to replay the primary's latest write (so a
    /// client reads its own writes whichever server it asks) before reading the primary.
    pub replica_wait_ms: u64,
}

/// Search settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Results when the request names no `memory_limit_number`.
    pub default_limit: usize,
    /// Most results one search may ask for.
    pub max_limit: usize,
    /// Factor applied to memories of the request's conversation (MemOS uses 1.3).
    pub conversation_boost: f32,
    /// How many of a conversation's newest memories show as `WorkingMemory`.
    pub working_memory_size: usize,
    /// Weight of the lexical (BM25) list in rank fusion.
    pub lexical_weight: f32,
    /// Weight of the dense (embedding) list in rank fusion.
    pub dense_weight: f32,
    /// How the lists are merged: `score` (weighted sum of calibrated relevance) or `rrf`
    /// (reciprocal rank).
    pub fusion: Fusion,
    /// Weight of the second pass inside a date the query names ("last week", "上个月");
    /// 0 turns date awareness off.
    pub date_weight: f32,
    /// Near-duplicate suppression: a result whose word set overlaps a better one's this much
    /// (Jaccard) is moved below the others; above 1 turns it off.
    pub duplicate_similarity: f32,
    /// A verbatim turn whose fact was superseded ranks right below what replaced it (which
    /// is brought in when missing); `false` ranks it on its own match alone.
    pub current_fact_first: bool,
    /// A long query (a dialogue pasted in whole) is embedded by its last this many tokens
    /// (about: see [`crate::text::tail_by_tokens`]), where the question is; 0 embeds it
    /// from the start up to the model's window.
    pub dense_query_tokens: usize,
    /// The same for BM25's terms; 0 searches every term of the query.
    pub lexical_query_tokens: usize,
    /// A dialogue pasted in as the query is searched by its last line, the question; with a
    /// weight above 0 the lines before it (their last `dense_query_tokens`) are searched
    /// too, at that weight. 0 (the default): the question alone.
    pub context_weight: f32,
    /// RAM (MB) for what searches keep between calls: the vectors of the users searched
    /// lately (fifteen sixteenths) and query vectors (the rest). Users searched least
    /// lately give way and load again from the store when next searched.
    pub cache_mb: u64,
    /// Users with up to this many vectors are scanned exactly; a bigger user's search
    /// ranks every row on a 1-bit code first and scores the best 4% exactly (about a
    /// sixth of the memory read, an approximation: see `search::vector`).
    pub exact_scan_rows: usize,
}

/// Input limits; MemOS's where it has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Longest `user_id` / `conversation_id` and other ids, in characters.
    pub max_id_chars: usize,
    /// Most messages in one add.
    pub max_messages: usize,
    /// Most characters of content in one add (about MemOS's 20k tokens).
    pub max_add_chars: usize,
    /// Most characters in a search query (about MemOS's 4k tokens).
    pub max_query_chars: usize,
    /// Most tags on one add.
    pub max_tags: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            body_limit_bytes: 2 * 1024 * 1024,
            body_timeout_ms: 30_000,
            max_concurrent_per_project: 64,
            rate_limit_per_second: 0,
            rate_limit_burst: 0,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Embedded,
            data_dir: PathBuf::from("./memos-data"),
            url: String::new(),
            max_connections: 16,
            task_lease_ms: 30_000,
            vector_index_memory_mb: 1024,
            replica_urls: Vec::new(),
            replica_wait_ms: 200,
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            default_limit: 6,
            max_limit: 25,
            conversation_boost: 1.3,
            working_memory_size: 20,
            lexical_weight: 1.0,
            // Measured on LoCoMo (README, Performance): with e5 at equal weight the dense list
            // pulls good lexical hits down; at half weight it adds recall at depth.
            dense_weight: 0.5,
            fusion: Fusion::Score,
            date_weight: 1.0,
            duplicate_similarity: 0.9,
            current_fact_first: true,
            dense_query_tokens: 64,
            lexical_query_tokens: 0,
            // Measured on LoCoMo with ten turns before each question: the context pass at
            // 0.25 cost 2.4 points of message recall@10 (0.833 -> 0.809) and a second pass
            // of both retrievers, so it is off until an app's questions need it.
            context_weight: 0.0,
            cache_mb: 512,
            exact_scan_rows: 20_000,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_id_chars: 100,
            max_messages: 500,
            max_add_chars: 80_000,
            max_query_chars: 16_000,
            max_tags: 32,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (an explicit file must exist; without one `./memos.toml`
    /// is read when present), then `MEMOS__…` variables. Does not validate.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) if !f.exists() => {
                return Err(Error::Config(format!(
                    "config file {} does not exist",
                    f.display()
                )));
            }
            Some(f) => fig = fig.merge(Toml::file(f)),
            None if Path::new("memos.toml").exists() => fig = fig.merge(Toml::file("memos.toml")),
            None => {}
        }
        fig = fig.merge(Env::prefixed("MEMOS__").split("__"));
        fig.extract().map_err(|e| Error::Config(e.to_string()))
    }

    /// Checks every value; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("{key}: {why}")));
        if self.server.host.trim().is_empty() {
            return bad("server.host", "must not be empty");
        }
        if self.server.max_concurrent_per_project == 0 {
            return bad("server.max_concurrent_per_project", "must be at least 1");
        }
        if self.server.body_timeout_ms == 0 {
            return bad("server.body_timeout_ms", "must be at least 1");
        }
        if self.server.body_limit_bytes < 1024 {
            return bad("server.body_limit_bytes", "must be at least 1024");
        }
        if self.store.backend == StoreBackend::Postgres && self.store.url.trim().is_empty() {
            return bad("store.url", "the postgres backend needs a database URL");
        }
        if !self.store.replica_urls.is_empty() && self.store.backend != StoreBackend::Postgres {
            return bad(
                "store.replica_urls",
                "replicas are PostgreSQL's: set store.backend = \"postgres\"",
            );
        }
        let s = &self.search;
        if s.max_limit == 0 || s.default_limit == 0 || s.default_limit > s.max_limit {
            return bad(
                "search.default_limit",
                "must be between 1 and search.max_limit",
            );
        }
        if s.cache_mb < 16 {
            return bad("search.cache_mb", "must be at least 16");
        }
        if !(1.0..=10.0).contains(&s.conversation_boost) {
            return bad("search.conversation_boost", "must be between 1.0 and 10.0");
        }
        if !(0.0..=10.0).contains(&s.lexical_weight) || !(0.0..=10.0).contains(&s.dense_weight) {
            return bad(
                "search.lexical_weight",
                "fusion weights must be between 0 and 10",
            );
        }
        if s.date_weight.is_nan() || s.date_weight < 0.0 {
            return bad("search.date_weight", "must be 0 or more");
        }
        if s.duplicate_similarity.is_nan() || s.duplicate_similarity <= 0.0 {
            return bad("search.duplicate_similarity", "must be above 0");
        }
        let l = &self.llm;
        let scheme_ok = l.base_url.starts_with("http://") || l.base_url.starts_with("https://");
        if !(l.base_url.is_empty() || scheme_ok) {
            return bad("llm.base_url", "must start with http:// or https://");
        }
        if l.window == 0 || l.timeout_ms == 0 {
            return bad(
                "llm.window",
                "llm.window and llm.timeout_ms must be above 0",
            );
        }
        let l = &self.limits;
        for (k, v) in [
            ("limits.max_id_chars", l.max_id_chars),
            ("limits.max_messages", l.max_messages),
            ("limits.max_add_chars", l.max_add_chars),
            ("limits.max_query_chars", l.max_query_chars),
        ] {
            if v == 0 {
                return bad(k, "must be positive");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn file_overrides_defaults_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memos.toml");
        std::fs::write(&f, "[server]\nport = 9100\n[search]\ndefault_limit = 30\n").unwrap();
        let cfg = Config::load(Some(&f)).unwrap();
        assert_eq!(cfg.server.port, 9100);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("search.default_limit"), "{err}");
        std::fs::write(&f, "[server]\nprot = 1\n").unwrap();
        let err = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
        // Typed values: a misspelled backend, fusion or format is an error naming the key.
        for (toml, key) in [
            ("[store]\nbackend = \"postgress\"\n", "backend"),
            ("[search]\nfusion = \"sum\"\n", "fusion"),
            ("[llm]\nresponse_format = \"json\"\n", "response_format"),
        ] {
            std::fs::write(&f, toml).unwrap();
            let err = Config::load(Some(&f)).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        std::fs::write(
            &f,
            "[store]\nbackend = \"memory\"\n[search]\nfusion = \"rrf\"\n",
        )
        .unwrap();
        let cfg = Config::load(Some(&f)).unwrap();
        assert_eq!(cfg.store.backend, StoreBackend::Memory);
        assert_eq!(cfg.search.fusion, Fusion::Rrf);
    }
}
