//! API keys through the facade: the HTTP layer authenticates a request and `memos serve`
//! seeds its key without reaching into the store. (`memos keys` opens the store alone, so
//! keys can be managed beside a running server.)

use crate::auth;
use crate::error::Result;
use crate::model::ApiKey;

use super::MemoryService;

impl MemoryService {
    /// The key a secret is (its project, id and label); a missing, unknown or revoked
    /// secret is refused.
    pub async fn authenticate(&self, secret: Option<&str>) -> Result<ApiKey> {
        auth::authenticate_key(self.store.as_ref(), secret).await
    }

    /// Stores `secret` as a key of `project_id` unless it is stored already.
    pub async fn seed_key(&self, secret: &str, project_id: &str) -> Result<()> {
        auth::seed_key(self.store.as_ref(), secret, project_id).await
    }

    /// Whether any key is still valid, so a server without one can say how to make one.
    pub async fn has_live_key(&self) -> Result<bool> {
        Ok(self
            .store
            .list_keys()
            .await?
            .iter()
            .any(|k| k.revoked_time.is_none()))
    }
}
