//! Checks of what a store keeps beside memories: the chat log, tasks and their leases, keys,
//! write-order scans, revisions, vectors and documents.

use serde_json::json;

use super::{running, task};
use crate::model::*;
use crate::store::tests_support::{memory, memory_in, message};
use crate::store::{Embedding, Lease, MemoryStore, StoredVector, WriteBatch};

/// Messages come back in chat order by their own times, the newest `limit` of them; a
/// subject's conversations are summed up latest first.
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
    // Conversations summed up, the latest first; another project's are not counted.
    store
        .write(WriteBatch {
            messages: vec![
                message(&scope, "b", "later", 50),
                message(&scope, "a", "early", 5),
                message(&Scope::new("q", "u"), "z", "elsewhere", 99),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let page = store.list_conversations(&scope, 2, 0).await.unwrap();
    assert_eq!(page.total, 3);
    let summary = |id: &str, messages, first, last| ConversationSummary {
        conversation_id: id.into(),
        messages,
        first_chat_time: first,
        last_chat_time: last,
    };
    assert_eq!(
        page.items,
        [summary("b", 1, 50, 50), summary("c", 4, 10, 40)]
    );
    let rest = store.list_conversations(&scope, 2, 2).await.unwrap();
    assert_eq!(rest.items, [summary("a", 1, 5, 5)]);
}

/// Running tasks are listed until they complete; tasks are counted by state across projects.
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
    let other = task(&Scope::new("q", "v"), TaskStatus::Failed);
    store
        .write(WriteBatch {
            task: Some(other),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut counts = store.task_counts().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        vec![(TaskStatus::Failed, 1), (TaskStatus::Running, 1)]
    );
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
    let mut counts = store.task_counts().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        vec![(TaskStatus::Completed, 1), (TaskStatus::Failed, 1)]
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
