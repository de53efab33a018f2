//! The conformance suite every [`MemoryStore`] backend must pass.
//!
//! Each check is a plain async function over `&dyn MemoryStore`; the
//! [`store_conformance!`](crate::store_conformance) macro turns them into one `#[tokio::test]`
//! each for a backend, so a new backend gets the whole suite with one line:
//!
//! ```ignore
//! memos_core::store_conformance!(make_store());
//! ```
//!
//! The checks live by what they hold a store to: [`memories`] (writes, reads, scoping, lists,
//! filters, deletes, history) and [`records`] (the chat log, tasks, keys, scans, vectors,
//! documents).

mod memories;
mod records;

pub use memories::*;
pub use records::*;

use serde_json::json;

use super::MemoryStore;
use crate::model::*;

/// A task in `status` for `scope`, made now.
fn task(scope: &Scope, status: TaskStatus) -> Task {
    let now = now_millis();
    Task {
        id: uuid::Uuid::new_v4().to_string(),
        scope: scope.clone(),
        status,
        payload: json!({"tags": ["x"]}),
        memory_ids: vec![],
        error: None,
        create_time: now,
        update_time: now,
    }
}

/// Every stored task still running, through the trait's own scan.
async fn running(store: &dyn MemoryStore) -> Vec<Task> {
    let (mut out, mut after) = (Vec::new(), None);
    loop {
        let (page, next) = store.scan_tasks(after, 100).await.unwrap();
        out.extend(page.into_iter().filter(|t| t.status == TaskStatus::Running));
        match next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// Expands to one test per conformance check. `$make` must evaluate to a tuple of
/// `(impl Deref<Target = dyn MemoryStore>, guard)`; the guard (a temp dir, a server handle)
/// lives until the test ends.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@tests $make;
            write_and_read_back, scopes_are_isolated, upsert_replaces_in_place, deletes_remove,
            list_is_newest_first_and_paged, filters_agree_with_reference, messages_are_in_chat_order,
            tasks_round_trip, delete_user_is_confined, keys_round_trip, scan_visits_everything_once,
            revision_grows_with_every_write, embeddings_follow_their_memories,
            history_is_kept_in_order_and_goes_with_its_memory, a_new_text_drops_the_old_vector,
            soft_deleted_memories_are_kept_but_not_listed, a_task_goes_to_one_worker_at_a_time,
            users_are_summed_up_per_project, docs_are_kept_per_subject_and_erased_with_it,
            a_batch_lands_only_if_what_it_expects_still_holds);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _guard) = $make;
                $crate::store::conformance::$name(&*store).await;
            }
        )*
    };
}

#[cfg(test)]
mod in_memory {
    crate::store_conformance!((std::sync::Arc::new(crate::store::InMemoryStore::new()), ()));
}

#[cfg(test)]
mod embedded {
    crate::store_conformance!({
        let dir = tempfile::tempdir().unwrap();
        (
            std::sync::Arc::new(crate::store::EmbeddedStore::open(dir.path()).unwrap()),
            dir,
        )
    });
}
