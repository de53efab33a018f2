//! Property tests (issue 11): random sequences of add, update, delete, feedback and search
//! run on the embedded store and on the in-memory store, the reference; after every step
//! both hold the same memories, and no search ever returns a memory that is not current or
//! not its user's.

use std::sync::Arc;

use memos_core::model::{Memory, MemoryStatus, Role};
use memos_core::service::{
    AddInput, FeedbackInput, ListInput, NewMessage, SearchInput, UpdateInput,
};
use memos_core::store::{EmbeddedStore, InMemoryStore, MemoryStore};
use memos_core::{Config, MemoryService};
use proptest::prelude::*;

const TEXTS: [&str; 8] = [
    "I live in Oslo.",
    "I live in Lisbon.",
    "I moved from Oslo to Lisbon.",
    "I love jazz.",
    "I hate jazz.",
    "I keep bees on my roof.",
    "My sister is a pilot.",
    "我喜欢喝茶。",
];
const USERS: [&str; 2] = ["u", "v"];

#[derive(Debug, Clone)]
enum Op {
    Add {
        user: usize,
        text: usize,
    },
    Update {
        user: usize,
        pick: usize,
        text: usize,
    },
    Delete {
        user: usize,
        pick: usize,
        hard: bool,
    },
    Feedback {
        user: usize,
        text: usize,
    },
    Search {
        user: usize,
        text: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let u = 0..USERS.len();
    let t = 0..TEXTS.len();
    prop_oneof![
        3 => (u.clone(), t.clone()).prop_map(|(user, text)| Op::Add { user, text }),
        1 => (u.clone(), any::<usize>(), t.clone())
            .prop_map(|(user, pick, text)| Op::Update { user, pick, text }),
        1 => (u.clone(), any::<usize>(), any::<bool>())
            .prop_map(|(user, pick, hard)| Op::Delete { user, pick, hard }),
        1 => (u.clone(), t.clone()).prop_map(|(user, text)| Op::Feedback { user, text }),
        2 => (u, t).prop_map(|(user, text)| Op::Search { user, text }),
    ]
}

/// A user's memories, as the service lists them.
async fn listed(svc: &MemoryService, user: &str) -> Vec<Memory> {
    svc.list(
        "p",
        ListInput {
            user_id: user.into(),
            page: 1,
            size: 50,
            filter: None,
        },
    )
    .await
    .unwrap()
    .items
}

/// A user's memories as content: (value, status, type), sorted; ids differ between stores.
async fn state(svc: &MemoryService, user: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = listed(svc, user)
        .await
        .into_iter()
        .map(|m| {
            (
                m.value,
                m.status.as_str().to_string(),
                m.memory_type.as_str().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The id in `svc` of the `pick`-th memory (by content) of the user, if any.
async fn pick_id(svc: &MemoryService, user: &str, pick: usize) -> Option<String> {
    let mut items = listed(svc, user).await;
    if items.is_empty() {
        return None;
    }
    items.sort_by(|a, b| (&a.value, &a.key).cmp(&(&b.value, &b.key)));
    Some(items[pick % items.len()].id.clone())
}

fn said(user: &str, text: &str) -> AddInput {
    AddInput {
        user_id: user.into(),
        conversation_id: "c".into(),
        messages: vec![NewMessage {
            role: Role::User,
            content: text.into(),
            chat_time: Some(1_700_000_000_000),
            name: None,
            message_id: None,
            raw: None,
        }],
        tags: vec![],
        info: Default::default(),
        agent_id: None,
        app_id: None,
        async_mode: false,
    }
}

async fn apply(svc: &MemoryService, op: &Op, pick: Option<String>) {
    match op {
        Op::Add { user, text } => {
            svc.add("p", said(USERS[*user], TEXTS[*text]))
                .await
                .unwrap();
        }
        Op::Update { user, text, .. } => {
            if let Some(id) = pick {
                svc.update(
                    "p",
                    UpdateInput {
                        user_id: Some(USERS[*user].into()),
                        memory_id: id,
                        value: Some(TEXTS[*text].into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            }
        }
        Op::Delete { user, hard, .. } => {
            if let Some(id) = pick {
                // A soft-deleted memory may be picked again: deleting it twice is a 404.
                let _ = svc.delete("p", Some(USERS[*user]), &[id], *hard).await;
            }
        }
        Op::Feedback { user, text } => {
            svc.feedback(
                "p",
                FeedbackInput {
                    user_id: USERS[*user].into(),
                    conversation_id: "c".into(),
                    content: TEXTS[*text].into(),
                    time: Some(1_700_000_100_000),
                    agent_id: None,
                    app_id: None,
                },
            )
            .await
            .unwrap();
        }
        Op::Search { user, text } => {
            let hits = svc
                .search(
                    "p",
                    SearchInput {
                        user_id: USERS[*user].into(),
                        query: TEXTS[*text].into(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            for h in hits {
                assert_eq!(
                    h.memory.scope.user_id, USERS[*user],
                    "another user's memory"
                );
                assert_eq!(h.memory.status, MemoryStatus::Activated, "{h:?}");
            }
        }
    }
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let start = |store: Arc<dyn MemoryStore>| async move {
        MemoryService::start(store, None, None, Config::default())
            .await
            .unwrap()
    };
    let reference = start(Arc::new(InMemoryStore::new())).await;
    let embedded = start(Arc::new(EmbeddedStore::open(dir.path()).unwrap())).await;
    for op in &ops {
        let (user, pick) = match op {
            Op::Update { user, pick, .. } | Op::Delete { user, pick, .. } => (*user, Some(*pick)),
            Op::Add { user, .. } | Op::Feedback { user, .. } | Op::Search { user, .. } => {
                (*user, None)
            }
        };
        for svc in [&reference, &embedded] {
            let id = match pick {
                Some(p) => pick_id(svc, USERS[user], p).await,
                None => None,
            };
            apply(svc, op, id).await;
        }
        for u in USERS {
            assert_eq!(
                state(&reference, u).await,
                state(&embedded, u).await,
                "stores differ for {u} after {op:?} (ops: {ops:?})"
            );
        }
    }
}

proptest! {
    // Bounded for CI: each case starts two services and runs up to 14 steps on each.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_embedded_store_behaves_as_the_reference(ops in prop::collection::vec(op(), 1..14)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(ops));
    }
}
