//! API keys: creation, hashing and lookup. A key is shown once; only its SHA-256 is stored.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{ApiKey, now_millis};
use crate::store::MemoryStore;

/// Prefix of every generated key, so leaked keys are recognisable by scanners.
pub const KEY_PREFIX: &str = "mk_";
/// The project keys belong to when none is named.
pub const DEFAULT_PROJECT: &str = "default";

/// Hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh random secret: `mk_` and 256 bits in hex.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

fn check_project(project_id: &str) -> Result<()> {
    let ok = !project_id.is_empty()
        && project_id.len() <= 64
        && project_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "project",
            "project names are 1-64 of A-Z a-z 0-9 - _ .",
        ))
    }
}

fn record(secret: &str, project_id: &str, label: &str) -> ApiKey {
    ApiKey {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        project_id: project_id.to_string(),
        hash: hash_secret(secret),
        prefix: secret.chars().take(10).collect(),
        label: label.to_string(),
        create_time: now_millis(),
        revoked_time: None,
    }
}

/// Creates a key for a project and returns its record and the secret (shown once).
pub async fn create_key(
    store: &dyn MemoryStore,
    project_id: &str,
    label: &str,
) -> Result<(ApiKey, String)> {
    check_project(project_id)?;
    let secret = generate_secret();
    let key = record(&secret, project_id, label);
    store.insert_key(key.clone()).await?;
    Ok((key, secret))
}

/// Makes sure `secret` is a key of `project_id` (used for `MEMOS_API_KEY`). Idempotent; a
/// key revoked earlier stays revoked, with a warning.
pub async fn seed_key(store: &dyn MemoryStore, secret: &str, project_id: &str) -> Result<()> {
    check_project(project_id)?;
    if secret.trim().len() < 8 {
        return Err(Error::Config(
            "MEMOS_API_KEY must be at least 8 characters".into(),
        ));
    }
    match store.find_key(&hash_secret(secret)).await? {
        Some(k) if k.revoked_time.is_some() => {
            tracing::warn!(key = %k.id, "MEMOS_API_KEY names a revoked key; it stays revoked");
            Ok(())
        }
        Some(_) => Ok(()),
        None => {
            store
                .insert_key(record(secret, project_id, "seeded from MEMOS_API_KEY"))
                .await
        }
    }
}

/// The project a presented secret grants, or why not.
pub async fn authenticate(store: &dyn MemoryStore, secret: Option<&str>) -> Result<String> {
    authenticate_key(store, secret).await.map(|k| k.project_id)
}

/// The key a presented secret is (its project, id and label), or why it is refused:
/// missing, unknown or revoked.
pub async fn authenticate_key(store: &dyn MemoryStore, secret: Option<&str>) -> Result<ApiKey> {
    let secret = secret
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(Error::MissingCredentials)?;
    match store.find_key(&hash_secret(secret)).await? {
        Some(k) if k.revoked_time.is_none() => Ok(k),
        _ => Err(Error::InvalidCredentials),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{InMemoryStore, KeyStore};

    #[tokio::test]
    async fn created_keys_authenticate_until_revoked() {
        let store = InMemoryStore::new();
        let (key, secret) = create_key(&store, "acme", "ci").await.unwrap();
        assert!(secret.starts_with(KEY_PREFIX) && secret.len() == 67);
        assert_ne!(key.hash, secret, "the secret itself is never stored");
        assert_eq!(authenticate(&store, Some(&secret)).await.unwrap(), "acme");
        assert!(matches!(
            authenticate(&store, Some("mk_wrong")).await,
            Err(Error::InvalidCredentials)
        ));
        assert!(matches!(
            authenticate(&store, None).await,
            Err(Error::MissingCredentials)
        ));
        store.revoke_key(&key.id, 1).await.unwrap();
        assert!(matches!(
            authenticate(&store, Some(&secret)).await,
            Err(Error::InvalidCredentials)
        ));
    }

    #[tokio::test]
    async fn seeding_is_idempotent() {
        let store = InMemoryStore::new();
        seed_key(&store, "local-dev-key", DEFAULT_PROJECT)
            .await
            .unwrap();
        seed_key(&store, "local-dev-key", DEFAULT_PROJECT)
            .await
            .unwrap();
        assert_eq!(store.list_keys().await.unwrap().len(), 1);
        assert_eq!(
            authenticate(&store, Some("local-dev-key")).await.unwrap(),
            DEFAULT_PROJECT
        );
        assert!(create_key(&store, "bad project!", "").await.is_err());
    }
}
