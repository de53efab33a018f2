//! The one error type of the memos domain.
//!
//! Variants are kinds of failure, not places. The HTTP layer maps each variant to a MemOS
//! error code and status in a single exhaustive `match` (`memos-server::http::error`), so
//! adding a variant here is a compile error there until it is mapped.

use std::sync::Arc;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the domain.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A request field is missing, malformed or out of range. The message names the field
    /// and is safe to show to the client.
    #[error("{message}")]
    InvalidInput {
        /// The offending field, as the client spelled it (`messages[2].content`).
        field: String,
        /// What is wrong with it.
        message: String,
        /// Which of MemOS's parameter codes applies.
        kind: InputErrorKind,
    },
    /// The thing asked for does not exist in the caller's project.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `memory 3f2a...`; safe to show.
        what: String,
        /// Which of MemOS's not-found codes applies.
        kind: NotFoundKind,
    },
    /// No credentials were given.
    #[error("API key authentication required")]
    MissingCredentials,
    /// Credentials were given but match no active key.
    #[error("invalid or expired API key")]
    InvalidCredentials,
    /// The storage backend failed. The source is logged, never sent to a client.
    #[error("storage backend failed: {0}")]
    Backend(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The search index failed. Also logged only.
    #[error("search index failed: {0}")]
    Index(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The configuration is invalid; raised at start-up only.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The embedding model failed on an input at run time. Logged; a 500 to the client.
    #[error("embedding failed: {0}")]
    Embedding(String),
    /// The LLM extractor failed (gave up after its retries, or got an answer it cannot
    /// use). The fast path's memories stand.
    #[error("extraction failed: {0}")]
    Extraction(String),
    /// A stored row holds what this version does not understand. Logged with the detail;
    /// a 500 to the client (the data is there, the request may be fine).
    #[error("stored data not understood: {0}")]
    Corrupt(String),
    /// What a write was computed from changed before it could land (the memory was
    /// deleted or edited, or its user erased): nothing was written. Safe to show.
    #[error("{0}")]
    Conflict(String),
    /// `chat` was asked for but no LLM is configured. Safe to show.
    #[error("{0}")]
    NoLlm(String),
    /// The chat model failed (after its retries) or answered with nothing usable. The
    /// detail is logged; the client hears that the model failed.
    #[error("chat model failed: {0}")]
    Llm(String),
    /// The service is shutting down or a background worker is gone.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// Whether trying again later may succeed: the store, the index or a worker failed
    /// (a full disk, a lost connection, a restart), not the request or the data.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Backend(_) | Self::Index(_) | Self::Unavailable(_) => true,
            Self::InvalidInput { .. }
            | Self::NotFound { .. }
            | Self::MissingCredentials
            | Self::InvalidCredentials
            | Self::Config(_)
            | Self::Embedding(_)
            | Self::Extraction(_)
            | Self::Corrupt(_)
            | Self::Conflict(_)
            | Self::NoLlm(_)
            | Self::Llm(_) => false,
        }
    }
}

/// Sub-kinds of [`Error::InvalidInput`] that MemOS gives distinct codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputErrorKind {
    /// 40000: wrong type, format or range.
    Invalid,
    /// 40002: a required field is missing or blank.
    Required,
    /// 40003: a list or object that must have entries is empty.
    Empty,
    /// 40010: `user_id` longer than allowed.
    UserIdTooLong,
    /// 40011: `conversation_id` longer than allowed.
    ConversationIdTooLong,
    /// 40305: the content is larger than one request may carry.
    TooLarge,
    /// 50103: more files in one upload than allowed.
    TooManyFiles,
    /// 50104: one file larger than allowed.
    FileTooLarge,
    /// 50105: the files of one upload larger than allowed together.
    FilesTooLarge,
}

/// Sub-kinds of [`Error::NotFound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFoundKind {
    /// 40001: a memory or other record.
    Record,
    /// 40307: a memory named in a delete request.
    MemoryToDelete,
    /// 40308: a user named in a delete request has nothing stored.
    UserToDelete,
    /// 50131: an unknown task id.
    Task,
    /// 50120: an unknown knowledge base (or one of another project).
    KnowledgeBase,
}

impl Error {
    /// A 40000 error about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::input(field, message, InputErrorKind::Invalid)
    }

    /// A 40002 error: `field` is required.
    pub fn required(field: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field} is required and cannot be empty");
        Self::input(field, message, InputErrorKind::Required)
    }

    /// An input error of the given kind.
    pub fn input(
        field: impl Into<String>,
        message: impl Into<String>,
        kind: InputErrorKind,
    ) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
            kind,
        }
    }

    /// A not-found error.
    pub fn not_found(what: impl Into<String>, kind: NotFoundKind) -> Self {
        Self::NotFound {
            what: what.into(),
            kind,
        }
    }

    /// Wraps a storage failure.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Arc::new(err))
    }

    /// Wraps an index failure.
    pub fn index(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Index(Arc::new(err))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        // Our own error, carried through a rusqlite row callback (the SQL stores' shared
        // row mappers), comes back as itself: corrupt data stays `Corrupt`.
        if let rusqlite::Error::FromSqlConversionFailure(i, t, e) = err {
            return match e.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Self::backend(rusqlite::Error::FromSqlConversionFailure(i, t, other)),
            };
        }
        Self::backend(err)
    }
}

impl From<tantivy::TantivyError> for Error {
    fn from(err: tantivy::TantivyError) -> Self {
        Self::index(err)
    }
}
