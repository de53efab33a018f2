//! The conformance suite every [`MemoryStore`] backend must pass.
//!
//! Each check is a plain async function over `&dyn MemoryStore`; the
//! [`store_conformance!`](crate::store_conformance) macro turns them into one `#[tokio::test]`
//! each for a backend, so a new backend gets the whole suite with one line:
//!
//! ```ignore
//! memos_core::store_conformance!(make_store());
//! ```

use serde_json::json;

use super::tests_support::{memory, memory_in, message};
use super::{Embedding, Lease, ListQuery, MemoryStore, StoredVector, WriteBatch};
use crate::filter::Filter;
use crate::model::*;

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
            users_are_summed_up_per_project, docs_are_kept_per_subject_and_erased_with_it);
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

/// Everything written comes back equal, field for field.
pub async fn write_and_read_back(store: &dyn MemoryStore) {
    let scope = Scope::new("p", "alice");
    let mut m = memory("alice", "c1", "I love spicy food but not oily hotpot.");
    m.info.insert("scene".into(), json!("chat"));
    m.agent_id = Some("agent".into());
    m.reasoning = Some("said so twice".into());
    m.tags = vec!["food".into(), "辣".into()];
    m.sources = vec![Source {
        message_id: "m1".into(),
        conversation_id: "c1".into(),
        role: Role::User,
        name: Some("Alice".into()),
        chat_time: 1_700_000_000_000,
    }];
    m.memory_time = None;
    let msg = message(&scope, "c1", "我喜欢吃辣", 1_700_000_000_000);
    let t = task(&scope, TaskStatus::Completed);
    store
        .write(WriteBatch {
            messages: vec![msg.clone()],
            upsert_memories: vec![m.clone()],
            task: Some(t.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .get_memories("p", std::slice::from_ref(&m.id))
            .await
            .unwrap(),
        vec![m.clone()]
    );
    assert_eq!(
        store.list_messages(&scope, "c1", 10).await.unwrap(),
        vec![msg.clone()]
    );
    assert_eq!(store.get_task("p", &t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(store.task_messages("t").await.unwrap(), vec![msg]);
    assert!(store.user_exists(&scope).await.unwrap());
    assert!(!store.user_exists(&Scope::new("p", "bob")).await.unwrap());
}

/// Nothing of one project or user is visible through another.
pub async fn scopes_are_isolated(store: &dyn MemoryStore) {
    let a = memory_in("p1", "alice", "c", "secret of project one");
    let b = memory_in("p2", "alice", "c", "secret of project two");
    let c = memory_in("p1", "bob", "c", "bob's note");
    store
        .write(WriteBatch {
            upsert_memories: vec![a.clone(), b.clone(), c.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .get_memories("p2", std::slice::from_ref(&a.id))
            .await
            .unwrap(),
        vec![]
    );
    let all = ListQuery {
        limit: 100,
        ..Default::default()
    };
    let page = store
        .list_memories(&Scope::new("p1", "alice"), &all)
        .await
        .unwrap();
    assert_eq!(page.items, vec![a.clone()]);
    let page = store
        .list_memories(&Scope::new("p2", "alice"), &all)
        .await
        .unwrap();
    assert_eq!(page.items, vec![b]);
    let t = task(&Scope::new("p1", "alice"), TaskStatus::Running);
    store
        .write(WriteBatch {
            task: Some(t.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.get_task("p2", &t.id).await.unwrap(), None);
}

/// Upserting an existing id replaces the record and keeps its place.
pub async fn upsert_replaces_in_place(store: &dyn MemoryStore) {
    let m = memory("u", "c", "first version");
    store
        .write(WriteBatch {
            upsert_memories: vec![m.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut m2 = m.clone();
    m2.value = "second version".into();
    m2.status = MemoryStatus::Archived;
    m2.update_time += 5;
    store
        .write(WriteBatch {
            upsert_memories: vec![m2.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .get_memories("p", std::slice::from_ref(&m.id))
            .await
            .unwrap(),
        vec![m2]
    );
    let (all, _) = store.scan_memories(None, 100).await.unwrap();
    assert_eq!(all.iter().filter(|x| x.id == m.id).count(), 1);

    // Twice in one batch: the later version wins, as if written one after the other.
    let mut m3 = m.clone();
    m3.value = "third version".into();
    let mut m4 = m.clone();
    m4.value = "fourth version".into();
    store
        .write(WriteBatch {
            upsert_memories: vec![m3, m4.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .get_memories("p", std::slice::from_ref(&m.id))
            .await
            .unwrap(),
        vec![m4]
    );
}

/// Deleted memories are gone; unknown ids are ignored.
pub async fn deletes_remove(store: &dyn MemoryStore) {
    let (a, b) = (memory("u", "c", "keep me"), memory("u", "c", "drop me"));
    store
        .write(WriteBatch {
            upsert_memories: vec![a.clone(), b.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .write(WriteBatch {
            delete_memories: vec![b.id.clone(), "no-such-id".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .get_memories("p", &[a.id.clone(), b.id.clone()])
            .await
            .unwrap(),
        vec![a]
    );
}

/// Listing is newest first, paged, with the full total.
pub async fn list_is_newest_first_and_paged(store: &dyn MemoryStore) {
    let mut ms = Vec::new();
    for i in 0..7 {
        let mut m = memory("u", "c", &format!("memory number {i}"));
        m.create_time = 1_000 + i;
        ms.push(m);
    }
    store
        .write(WriteBatch {
            upsert_memories: ms.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let scope = Scope::new("p", "u");
    let page = store
        .list_memories(
            &scope,
            &ListQuery {
                offset: 2,
                limit: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 7);
    let got: Vec<i64> = page.items.iter().map(|m| m.create_time).collect();
    assert_eq!(got, [1_004, 1_003, 1_002]);
    let q = ListQuery {
        conversation_id: Some("other".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_memories(&scope, &q).await.unwrap().total, 0);
}

/// Every filter condition selects exactly what [`Filter::matches`] selects.
pub async fn filters_agree_with_reference(store: &dyn MemoryStore) {
    let mut ms = Vec::new();
    for i in 0..12i64 {
        let mut m = memory("u", "c", &format!("item {i}"));
        m.agent_id = (i % 3 == 0).then(|| "a1".to_string());
        m.app_id = (i % 4 == 0).then(|| "app".to_string());
        m.tags = if i % 2 == 0 {
            vec!["Food".into(), "旅行".into()]
        } else {
            vec!["work".into()]
        };
        m.memory_type = if i % 5 == 0 {
            MemoryType::UserMemory
        } else {
            MemoryType::LongTermMemory
        };
        m.create_time = 1_735_689_600_000 + i * 86_400_000; // from 2025-01-01, one a day
        m.update_time = m.create_time + 1;
        m.memory_time = (i % 6 != 0).then_some(m.create_time - 5);
        m.info.insert(
            "scene".into(),
            json!(if i % 2 == 0 { "chat" } else { "work" }),
        );
        m.info.insert("biz_id".into(), json!(i));
        m.info.insert("flag".into(), json!(i % 3 == 1));
        m.info.insert("ratio".into(), json!(i as f64 / 2.0));
        ms.push(m);
    }
    store
        .write(WriteBatch {
            upsert_memories: ms.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let filters = [
        json!({"and": [{"agent_id": "a1"}]}),
        json!({"or": [{"agent_id": "a1"}, {"app_id": "app"}]}),
        json!({"and": [{"tags": {"contains": "food"}}, {"app_id": "app"}]}),
        json!({"and": [{"tags": {"contains": "旅行"}}]}),
        json!({"and": [{"create_time": {"gte": "2025-01-03", "lte": "2025-01-06"}}]}),
        json!({"and": [{"create_time": {"gt": "2025-01-03"}}, {"update_time": {"lt": 1_736_000_000_000i64}}]}),
        json!({"and": [{"memory_time": {"gte": 0}}]}),
        json!({"and": [{"scene": "chat"}, {"info.biz_id": 4}]}),
        json!({"or": [{"info": {"flag": true}}, {"info.ratio": 1.5}]}),
        json!({"and": [{"memory_type": "UserMemory"}]}),
        json!({"and": [{"info.missing": "x"}]}),
    ];
    let scope = Scope::new("p", "u");
    for f in filters {
        let parsed = Filter::parse(&f).unwrap().unwrap();
        let mut want: Vec<String> = ms
            .iter()
            .filter(|m| parsed.matches(m))
            .map(|m| m.id.clone())
            .collect();
        let q = ListQuery {
            filter: Some(parsed),
            limit: 100,
            ..Default::default()
        };
        let mut got: Vec<String> = store
            .list_memories(&scope, &q)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|m| m.id)
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "filter {f}");
    }
}

/// Messages come back in chat order by their own times, the newest `limit` of them.
pub async fn messages_are_in_chat_order(store: &dyn MemoryStore) {
    let scope = Scope::new("p", "u");
    // Imported out of order: times decide, not arrival.
    let times = [30, 10, 20, 40];
    let msgs: Vec<Message> = times
        .iter()
        .map(|t| message(&scope, "c", &format!("at {t}"), *t))
        .collect();
    store
        .write(WriteBatch {
            messages: msgs,
            ..Default::default()
        })
        .await
        .unwrap();
    let got: Vec<i64> = store
        .list_messages(&scope, "c", 3)
        .await
        .unwrap()
        .iter()
        .map(|m| m.chat_time)
        .collect();
    assert_eq!(got, [20, 30, 40]);
    assert!(
        store
            .list_messages(&Scope::new("p", "other"), "c", 3)
            .await
            .unwrap()
            .is_empty()
    );
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

/// Running tasks are listed until they complete.
pub async fn tasks_round_trip(store: &dyn MemoryStore) {
    let scope = Scope::new("p", "u");
    let mut t = task(&scope, TaskStatus::Running);
    store
        .write(WriteBatch {
            task: Some(t.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running(store).await, vec![t.clone()]);
    t.status = TaskStatus::Completed;
    t.memory_ids = vec!["m1".into()];
    store
        .write(WriteBatch {
            task: Some(t.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(running(store).await.is_empty());
    assert_eq!(store.get_task("p", &t.id).await.unwrap(), Some(t));
}

/// Deleting a user removes their memories, messages and tasks, and nobody else's.
pub async fn delete_user_is_confined(store: &dyn MemoryStore) {
    let alice = Scope::new("p", "alice");
    let (a, b) = (
        memory("alice", "c", "alice one"),
        memory("bob", "c", "bob one"),
    );
    let other_project = memory_in("q", "alice", "c", "same user id, other project");
    store
        .write(WriteBatch {
            messages: vec![message(&alice, "c", "hello", 1)],
            upsert_memories: vec![a.clone(), b.clone(), other_project.clone()],
            task: Some(task(&alice, TaskStatus::Running)),
            ..Default::default()
        })
        .await
        .unwrap();
    let (n, _) = store.delete_user(&alice).await.unwrap();
    assert_eq!(n, 1);
    assert!(!store.user_exists(&alice).await.unwrap());
    assert!(running(store).await.is_empty());
    assert_eq!(
        store
            .get_memories("p", std::slice::from_ref(&b.id))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .get_memories("q", std::slice::from_ref(&other_project.id))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Keys are found by hash, unique, and revocation sticks.
pub async fn keys_round_trip(store: &dyn MemoryStore) {
    let key = ApiKey {
        id: "k1".into(),
        project_id: "p".into(),
        hash: "h1".into(),
        prefix: "mk_ab".into(),
        label: "ci".into(),
        create_time: 1,
        revoked_time: None,
    };
    store.insert_key(key.clone()).await.unwrap();
    assert!(
        store
            .insert_key(ApiKey {
                id: "k2".into(),
                ..key.clone()
            })
            .await
            .is_err(),
        "duplicate hash"
    );
    assert_eq!(store.find_key("h1").await.unwrap(), Some(key.clone()));
    assert_eq!(store.find_key("nope").await.unwrap(), None);
    assert!(store.revoke_key("k1", 7).await.unwrap());
    assert!(!store.revoke_key("missing", 7).await.unwrap());
    assert_eq!(
        store.find_key("h1").await.unwrap().unwrap().revoked_time,
        Some(7)
    );
    assert_eq!(store.list_keys().await.unwrap().len(), 1);
}

/// Scanning pages through every memory exactly once.
pub async fn scan_visits_everything_once(store: &dyn MemoryStore) {
    let ms: Vec<Memory> = (0..25)
        .map(|i| memory_in(&format!("p{}", i % 3), "u", "c", &format!("m {i}")))
        .collect();
    store
        .write(WriteBatch {
            upsert_memories: ms.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store.scan_memories(cursor, 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.into_iter().map(|m| m.id));
        cursor = next;
    }
    let mut want: Vec<String> = ms.into_iter().map(|m| m.id).collect();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);
}

/// Each write, including a user deletion, produces a higher revision.
pub async fn revision_grows_with_every_write(store: &dyn MemoryStore) {
    let r0 = store.revision().await.unwrap();
    let r1 = store.write(WriteBatch::default()).await.unwrap();
    let (_, r2) = store.delete_user(&Scope::new("p", "nobody")).await.unwrap();
    assert!(r0 < r1 && r1 < r2, "{r0} {r1} {r2}");
    assert_eq!(store.revision().await.unwrap(), r2);
}

/// Vectors round-trip exactly, stay in their scope and model, and go with their memory.
pub async fn embeddings_follow_their_memories(store: &dyn MemoryStore) {
    let alice = Scope::new("p", "alice");
    let (a, b) = (memory("alice", "c", "one"), memory("alice", "c", "two"));
    let other = memory_in("q", "alice", "c", "other project");
    let emb = |m: &Memory, model: &str, v: Vec<f32>| Embedding {
        memory_id: m.id.clone(),
        scope: m.scope.clone(),
        model: model.into(),
        vector: v,
    };
    let va = vec![0.25, -1.5, 3.0e-8, f32::MIN_POSITIVE];
    store
        .write(WriteBatch {
            upsert_memories: vec![a.clone(), b.clone(), other.clone()],
            embeddings: vec![
                emb(&a, "m1", va.clone()),
                emb(&other, "m1", vec![1.0; 4]),
                emb(&a, "m2", vec![0.0; 4]),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let time = a.memory_time.unwrap();
    assert_eq!(
        store.embeddings(&alice, "m1").await.unwrap(),
        vec![StoredVector {
            id: a.id.clone(),
            time,
            archived_at: None,
            vector: va
        }]
    );
    let (missing, _) = store.missing_embeddings("m1", None, 10).await.unwrap();
    let missing: Vec<String> = missing.into_iter().map(|m| m.id).collect();
    assert_eq!(missing, vec![b.id.clone()]);
    // All three lack an m3 vector: two pages, in write order, then nothing after the cursor.
    let (first, cursor) = store.missing_embeddings("m3", None, 2).await.unwrap();
    assert_eq!(first.len(), 2, "the limit holds");
    let (rest, last) = store.missing_embeddings("m3", cursor, 2).await.unwrap();
    let mut all: Vec<String> = first.iter().chain(&rest).map(|m| m.id.clone()).collect();
    assert_eq!(all.len(), 3, "the cursor neither skips nor repeats");
    all.sort();
    let mut want = vec![a.id.clone(), b.id.clone(), other.id.clone()];
    want.sort();
    assert_eq!(all, want);
    assert!(
        store
            .missing_embeddings("m3", last, 2)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    let lacking = |project: &'static str, ids: Vec<String>, model: &'static str| async move {
        let mut got: Vec<String> = store
            .lacking_embeddings(project, &ids, model)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        got.sort();
        got
    };
    let ab = vec![
        a.id.clone(),
        b.id.clone(),
        other.id.clone(),
        "unknown".to_string(),
    ];
    assert_eq!(lacking("p", ab.clone(), "m1").await, vec![b.id.clone()]);
    let mut both = vec![a.id.clone(), b.id.clone()];
    both.sort();
    assert_eq!(lacking("p", ab.clone(), "m3").await, both, "per model");
    assert_eq!(
        lacking("q", ab.clone(), "m3").await,
        vec![other.id.clone()],
        "per project"
    );
    assert!(lacking("p", vec![], "m1").await.is_empty());
    let mut archived = b.clone();
    archived.status = MemoryStatus::Archived;
    archived.update_time += 5;
    store
        .write(WriteBatch {
            upsert_memories: vec![archived.clone()],
            embeddings: vec![emb(&b, "m1", vec![2.0; 4])],
            ..Default::default()
        })
        .await
        .unwrap();
    // Archived vectors are served with their archive time: an as-of search needs them.
    let served = store.embeddings(&alice, "m1").await.unwrap();
    assert_eq!(served.len(), 2);
    let b_row = served.iter().find(|v| v.id == b.id).unwrap();
    assert_eq!(b_row.archived_at, Some(archived.update_time));
    assert_eq!(
        lacking("p", vec![b.id.clone()], "m3").await,
        vec![b.id.clone()],
        "archived memories need a vector too"
    );
    let mut gone = b.clone();
    gone.status = MemoryStatus::Deleted;
    store
        .write(WriteBatch {
            upsert_memories: vec![gone],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store.embeddings(&alice, "m1").await.unwrap().len(),
        1,
        "deleted memories' vectors are not served"
    );
    assert!(
        lacking("p", vec![b.id.clone()], "m3").await.is_empty(),
        "deleted memories need no vector"
    );
    store
        .write(WriteBatch {
            delete_memories: vec![a.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(store.embeddings(&alice, "m1").await.unwrap().is_empty());
    assert!(store.embeddings(&alice, "m2").await.unwrap().is_empty());
    store.delete_user(&Scope::new("q", "alice")).await.unwrap();
    assert!(
        store
            .embeddings(&Scope::new("q", "alice"), "m1")
            .await
            .unwrap()
            .is_empty()
    );
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

/// History entries come back oldest first, only to their project, and a hard delete (of the
/// memory or of the user) removes them.
pub async fn history_is_kept_in_order_and_goes_with_its_memory(store: &dyn MemoryStore) {
    let a = memory("alice", "c", "I live in Beijing.");
    let b = memory("alice", "c", "I moved to Shanghai.");
    let change = |m: &Memory, kind, related: &Memory, t| MemoryChange {
        memory_id: m.id.clone(),
        scope: m.scope.clone(),
        time: t,
        kind,
        related_id: Some(related.id.clone()),
        before: Some(m.value.clone()),
        note: "moved".into(),
    };
    store
        .write(WriteBatch {
            upsert_memories: vec![a.clone(), b.clone()],
            history: vec![
                change(&a, ChangeKind::Superseded, &b, 10),
                change(&b, ChangeKind::Supersedes, &a, 10),
                change(&a, ChangeKind::Updated, &a, 20),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let h = store.history("p", &a.id).await.unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0], change(&a, ChangeKind::Superseded, &b, 10));
    assert_eq!(h[1].kind, ChangeKind::Updated);
    assert!(store.history("other", &a.id).await.unwrap().is_empty());
    store
        .write(WriteBatch {
            delete_memories: vec![a.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(store.history("p", &a.id).await.unwrap().is_empty());
    assert_eq!(store.history("p", &b.id).await.unwrap().len(), 1);
    store.delete_user(&b.scope).await.unwrap();
    assert!(store.history("p", &b.id).await.unwrap().is_empty());
}

/// Rewriting a memory's text drops its vector (it described the old text); other changes
/// keep it.
pub async fn a_new_text_drops_the_old_vector(store: &dyn MemoryStore) {
    let mut m = memory("alice", "c", "I live in Beijing.");
    let vector = |m: &Memory| Embedding {
        memory_id: m.id.clone(),
        scope: m.scope.clone(),
        model: "m".into(),
        vector: vec![1.0, 0.0],
    };
    store
        .write(WriteBatch {
            upsert_memories: vec![m.clone()],
            embeddings: vec![vector(&m)],
            ..Default::default()
        })
        .await
        .unwrap();
    m.tags.push("home".into());
    store
        .write(WriteBatch {
            upsert_memories: vec![m.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.embeddings(&m.scope, "m").await.unwrap().len(), 1);
    m.value = "I live in Shanghai.".into();
    store
        .write(WriteBatch {
            upsert_memories: vec![m.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(store.embeddings(&m.scope, "m").await.unwrap().is_empty());
    assert_eq!(
        store
            .missing_embeddings("m", None, 10)
            .await
            .unwrap()
            .0
            .len(),
        1
    );
}

/// A soft-deleted memory stays readable by id (for its history) but is never listed.
pub async fn soft_deleted_memories_are_kept_but_not_listed(store: &dyn MemoryStore) {
    let kept = memory("alice", "c", "kept");
    let mut gone = memory("alice", "c", "gone");
    gone.status = MemoryStatus::Deleted;
    store
        .write(WriteBatch {
            upsert_memories: vec![kept.clone(), gone.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let q = ListQuery {
        limit: 10,
        ..Default::default()
    };
    let page = store.list_memories(&kept.scope, &q).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].id, kept.id);
    let got = store.get_memories("p", &[gone.id.clone()]).await.unwrap();
    assert_eq!(got[0].status, MemoryStatus::Deleted);
}

/// Leases: a running task goes to one claimant until its lease runs out; a worker that lost
/// its task can neither renew it nor write it (nor anything in the same batch); a new task
/// starts held by its writer.
pub async fn a_task_goes_to_one_worker_at_a_time(store: &dyn MemoryStore) {
    let scope = Scope::new("p", "u");
    let lease = |owner: &str, until: Millis| Lease {
        owner: owner.into(),
        until,
    };
    let mut t = task(&scope, TaskStatus::Running);
    store
        .write(WriteBatch {
            task: Some(t.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let claimed = store.claim_tasks(&lease("a", 100), 10, 10).await.unwrap();
    assert_eq!(claimed, vec![t.clone()]);
    assert!(
        store
            .claim_tasks(&lease("b", 200), 50, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.renew_task(&t.id, &lease("b", 200)).await.unwrap());
    assert!(store.renew_task(&t.id, &lease("a", 150)).await.unwrap());
    assert!(
        store
            .claim_tasks(&lease("b", 300), 120, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // a stops renewing; b takes over after the lease ran out.
    let taken = store.claim_tasks(&lease("b", 400), 160, 10).await.unwrap();
    assert_eq!(taken, vec![t.clone()]);
    let late = memory("u", "c", "written by the worker that lost its task");
    t.memory_ids = vec![late.id.clone()];
    let lost = store
        .write(WriteBatch {
            upsert_memories: vec![late.clone()],
            task: Some(t.clone()),
            lease: Some(lease("a", 500)),
            ..Default::default()
        })
        .await;
    assert!(lost.is_err(), "a write under a lost lease must fail");
    assert!(
        store
            .get_memories("p", std::slice::from_ref(&late.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.renew_task(&t.id, &lease("a", 500)).await.unwrap());

    t.status = TaskStatus::Completed;
    t.memory_ids = vec![];
    store
        .write(WriteBatch {
            task: Some(t.clone()),
            lease: Some(lease("b", 500)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.get_task("p", &t.id).await.unwrap(), Some(t.clone()));
    assert!(
        store
            .claim_tasks(&lease("c", i64::MAX), i64::MAX - 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.renew_task(&t.id, &lease("b", 600)).await.unwrap());

    // A task written under a lease is its writer's from the start.
    let fresh = task(&scope, TaskStatus::Running);
    store
        .write(WriteBatch {
            task: Some(fresh.clone()),
            lease: Some(lease("d", 1_000)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        store
            .claim_tasks(&lease("e", 2_000), 999, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim_tasks(&lease("e", 2_000), 1_001, 10)
            .await
            .unwrap(),
        vec![fresh]
    );
}

/// A project's users come with their counts and last change, most recent first, paged;
/// soft-deleted memories and other projects do not count.
pub async fn users_are_summed_up_per_project(store: &dyn MemoryStore) {
    let mut ms = Vec::new();
    for (user, n, t) in [("ann", 3, 5_000), ("bob", 1, 9_000), ("cy", 2, 5_000)] {
        for i in 0..n {
            let mut m = memory(user, "c", &format!("{user} memory {i}"));
            m.update_time = t - i;
            ms.push(m);
        }
    }
    let mut deleted = memory("dee", "c", "gone");
    deleted.status = MemoryStatus::Deleted;
    ms.push(deleted);
    let mut gone_too = memory("bob", "c", "deleted, and newer than the rest");
    gone_too.status = MemoryStatus::Deleted;
    gone_too.update_time = 99_000;
    ms.push(gone_too);
    ms.push(memory_in("q", "zed", "c", "another project"));
    store
        .write(WriteBatch {
            upsert_memories: ms,
            ..Default::default()
        })
        .await
        .unwrap();
    let all = store.list_users("p", 10, 0).await.unwrap();
    assert_eq!(all.total, 3);
    let got: Vec<(&str, usize, Millis)> = all
        .items
        .iter()
        .map(|u| (u.user_id.as_str(), u.memories, u.last_update))
        .collect();
    assert_eq!(
        got,
        [("bob", 1, 9_000), ("ann", 3, 5_000), ("cy", 2, 5_000)]
    );
    let page = store.list_users("p", 1, 2).await.unwrap();
    assert_eq!((page.total, page.items[0].user_id.as_str()), (3, "cy"));
    assert_eq!(store.list_users("nobody", 10, 0).await.unwrap().total, 0);
}

/// Documents are replaced in place (their creation time kept), selected by kind, project,
/// subject and id, deleted by selection, and erased with their subject.
pub async fn docs_are_kept_per_subject_and_erased_with_it(store: &dyn MemoryStore) {
    let doc = |project: &str, user: &str, id: &str, v: i64| Doc {
        kind: "profile".into(),
        project_id: project.into(),
        user_id: user.into(),
        id: id.into(),
        body: json!({"城市": {"value": v}}),
        create_time: v,
        update_time: v,
    };
    store
        .put_docs(vec![
            doc("p", "u", "t1", 1),
            doc("p", "u", "t2", 1),
            doc("p", "v", "t1", 1),
            doc("q", "u", "t1", 1),
        ])
        .await
        .unwrap();
    store.put_docs(vec![doc("p", "u", "t1", 7)]).await.unwrap();
    let select = |user: Option<&'static str>| DocSelect {
        kind: Some("profile"),
        project_id: Some("p"),
        user_id: user,
        id: None,
    };
    let mine = store.list_docs(select(Some("u"))).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(
        (
            mine[0].id.as_str(),
            mine[0].create_time,
            mine[0].update_time
        ),
        ("t1", 1, 7)
    );
    assert_eq!(mine[0].body, json!({"城市": {"value": 7}}));
    assert_eq!(store.list_docs(select(None)).await.unwrap().len(), 3);
    assert_eq!(
        store.list_docs(DocSelect::default()).await.unwrap().len(),
        4
    );
    // By id across the project's subjects: never another project's.
    assert_eq!(
        store
            .delete_docs("p", "profile", None, Some("t1"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store.list_docs(DocSelect::default()).await.unwrap().len(),
        2
    );
    store.delete_user(&Scope::new("p", "u")).await.unwrap();
    let left = store.list_docs(DocSelect::default()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].project_id, "q");
}
