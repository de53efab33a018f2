//! Moving a deployment between backends (`memos migrate`): every memory, message, task,
//! history entry, vector and API key, copied page by page in write order, so ids, times,
//! statuses and list order come out as they went in.

use super::{MemoryStore, WriteBatch};
use crate::error::{Error, Result};

/// Rows per page read from the source and per transaction written to the target.
const PAGE: usize = 2_000;

/// How many of each thing were copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Memories, whatever their status.
    pub memories: usize,
    /// Chat-log messages.
    pub messages: usize,
    /// Add tasks, finished or not.
    pub tasks: usize,
    /// History entries.
    pub history: usize,
    /// Vectors, of every model.
    pub embeddings: usize,
    /// API keys, revoked ones included.
    pub keys: usize,
    /// Documents: profile templates and instances.
    pub docs: usize,
}

/// Copies everything in `from` into `to`, which must be empty: merging two deployments
/// could silently mix their projects, so it is refused. `progress` hears each page.
pub async fn copy_store(
    from: &dyn MemoryStore,
    to: &dyn MemoryStore,
    progress: &dyn Fn(&Copied),
) -> Result<Copied> {
    if to.revision().await? > 0 || !to.list_keys().await?.is_empty() {
        return Err(Error::Config(
            "the target store already holds data; migrate into an empty one".into(),
        ));
    }
    let mut n = Copied::default();
    for key in from.list_keys().await? {
        to.insert_key(key).await?;
        n.keys += 1;
    }
    // Few and small: one batch.
    let docs = from.list_docs(crate::model::DocSelect::default()).await?;
    n.docs = docs.len();
    to.put_docs(docs).await?;
    // Pages of one kind of row, each written as one batch field and counted in `n`.
    macro_rules! copy_pages {
        ($scan:ident, $field:ident, $count:ident) => {
            let mut cursor = None;
            loop {
                let (page, next) = from.$scan(cursor, PAGE).await?;
                if page.is_empty() {
                    break;
                }
                n.$count += page.len();
                to.write(WriteBatch {
                    $field: page,
                    ..Default::default()
                })
                .await?;
                progress(&n);
                cursor = next;
            }
        };
    }
    // Memories first: later rows (vectors, history) refer to them.
    copy_pages!(scan_memories, upsert_memories, memories);
    copy_pages!(scan_messages, messages, messages);
    copy_pages!(scan_history, history, history);
    copy_pages!(scan_embeddings, embeddings, embeddings);
    // Unfinished tasks arrive unleased: whichever server starts on the target takes them.
    let mut cursor = None;
    loop {
        let (page, next) = from.scan_tasks(cursor, PAGE).await?;
        if page.is_empty() {
            break;
        }
        n.tasks += page.len();
        for task in page {
            to.write(WriteBatch {
                task: Some(task),
                ..Default::default()
            })
            .await?;
        }
        progress(&n);
        cursor = next;
    }
    Ok(n)
}
