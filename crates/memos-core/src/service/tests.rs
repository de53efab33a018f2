//! Service tests over real stores: restarts, reconciling, time travel, the embedder.

use serde_json::Map;

use super::edit::strip_correction;
use super::embedding::embedding_text;
use super::*;
use crate::filter::Filter;
use crate::ingest::AddContext;
use crate::store::tests_support::{memory, message};
use crate::store::{ListQuery, WriteBatch};

async fn wait_completed(svc: &MemoryService, task_id: &str) -> Task {
    for _ in 0..200 {
        let t = svc.task("p", task_id).await.unwrap();
        if t.status != TaskStatus::Running {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("task {task_id} never finished");
}

async fn start_lexical(store: Arc<dyn MemoryStore>) -> Arc<MemoryService> {
    MemoryService::start(store, None, None, Config::default())
        .await
        .unwrap()
}

fn lexical(query: &str) -> SearchInput {
    SearchInput {
        user_id: "u".into(),
        query: query.into(),
        ..Default::default()
    }
}

fn running_task(scope: &Scope, memory_ids: Vec<String>) -> Task {
    let ctx = AddContext {
        scope: scope.clone(),
        conversation_id: "c".into(),
        ..Default::default()
    };
    Task {
        id: "t".into(),
        scope: scope.clone(),
        status: TaskStatus::Running,
        payload: serde_json::to_value(ctx).unwrap(),
        memory_ids,
        error: None,
        create_time: 1,
        update_time: 1,
    }
}

#[tokio::test]
async fn a_restart_finishes_accepted_tasks() {
    // The state a crash leaves right after an async add was acknowledged.
    let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
    let scope = Scope::new("p", "u");
    let batch = WriteBatch {
        messages: vec![message(&scope, "c", "I keep bees on my roof.", 5)],
        task: Some(running_task(&scope, vec![])),
        ..Default::default()
    };
    store.write(batch).await.unwrap();
    let svc = start_lexical(store).await;
    let t = wait_completed(&svc, "t").await;
    assert_eq!(t.status, TaskStatus::Completed);
    assert_eq!(t.memory_ids.len(), 2, "the turn and the fact it states");
    let hits = svc.search("p", lexical("bees")).await.unwrap();
    assert!(t.memory_ids.contains(&hits[0].memory.id));
}

#[tokio::test]
async fn issue_13_a_task_that_panics_is_failed_and_the_worker_goes_on() {
    let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
    let scope = Scope::new("p", "u");
    let mut poisoned = running_task(&scope, vec![]);
    poisoned.payload["panic_for_test"] = true.into();
    store
        .write(WriteBatch {
            messages: vec![message(&scope, "c", "I keep bees on my roof.", 5)],
            task: Some(poisoned),
            ..Default::default()
        })
        .await
        .unwrap();
    // Picked up at start, as after a restart; it must not take the worker with it.
    let svc = start_lexical(store).await;
    let t = wait_completed(&svc, "t").await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(t.error.is_some());
    let out = svc
        .add("p", add_input_async("u", "I collect old maps."))
        .await
        .unwrap();
    assert_eq!(
        wait_completed(&svc, &out.task_id).await.status,
        TaskStatus::Completed
    );
    // Failed for good: a second start does not run it again.
    let again = start_lexical(svc.store.clone()).await;
    assert_eq!(
        again.task("p", "t").await.unwrap().status,
        TaskStatus::Failed
    );
}

/// Issue 13: a task that hits a transient failure (a full disk, a lost connection) is
/// retried when its lease runs out, not failed for good; one that keeps failing is failed
/// after a bounded number of tries.
#[tokio::test]
async fn issue_13_transient_task_failures_are_retried_then_given_up() {
    let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
    let scope = Scope::new("p", "u");
    let mut flaky = running_task(&scope, vec![]);
    flaky.payload["fail_transient_for_test"] = 2.into();
    let mut broken = running_task(&scope, vec![]);
    broken.id = "broken".into();
    broken.payload["fail_transient_for_test"] = 1000.into();
    for t in [flaky, broken] {
        store
            .write(WriteBatch {
                messages: vec![message(&scope, "c", "I keep bees on my roof.", 5)],
                task: Some(t),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut cfg = Config::default();
    cfg.store.task_lease_ms = 60;
    let svc = MemoryService::start(store, None, None, cfg).await.unwrap();
    let wait = |id: &'static str| {
        let svc = svc.clone();
        async move {
            for _ in 0..500 {
                let t = svc.task("p", id).await.unwrap();
                if t.status != TaskStatus::Running {
                    return t;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("task {id} never finished");
        }
    };
    let t = wait("t").await;
    assert_eq!(t.status, TaskStatus::Completed, "retried past two failures");
    assert!(!t.memory_ids.is_empty());
    let b = wait("broken").await;
    assert_eq!(b.status, TaskStatus::Failed, "given up after its retries");
}

fn add_input_async(user: &str, text: &str) -> AddInput {
    AddInput {
        user_id: user.into(),
        conversation_id: "c".into(),
        messages: vec![NewMessage {
            role: Role::User,
            content: text.into(),
            chat_time: None,
            name: None,
            message_id: None,
            raw: None,
        }],
        tags: vec![],
        info: Map::new(),
        agent_id: None,
        app_id: None,
        async_mode: true,
        knowledgebase_ids: vec![],
        public: false,
    }
}

#[tokio::test]
async fn a_restart_between_the_two_task_writes_makes_nothing_twice() {
    let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
    let scope = Scope::new("p", "u");
    let m = memory("u", "c", "I keep bees on my roof.");
    let batch = WriteBatch {
        messages: vec![message(&scope, "c", "I keep bees on my roof.", 5)],
        upsert_memories: vec![m.clone()],
        task: Some(running_task(&scope, vec![m.id.clone()])),
        ..Default::default()
    };
    store.write(batch).await.unwrap();
    let svc = start_lexical(store.clone()).await;
    let t = wait_completed(&svc, "t").await;
    assert_eq!(t.memory_ids, vec![m.id.clone()]);
    let all = store
        .list_memories(
            &scope,
            &ListQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.total, 1, "the extraction did not run again");
    let hits = svc.search("p", lexical("bees")).await.unwrap();
    assert_eq!(hits.len(), 1, "the startup sync indexed the memory");
}

#[tokio::test]
async fn a_stale_index_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.store.data_dir = dir.path().to_path_buf();
    cfg.embed.model_dir = Default::default();
    {
        let svc = MemoryService::open(cfg.clone()).await.unwrap();
        svc.add("p", add_input("u", &["The cat is called Miso."], &[]))
            .await
            .unwrap();
    }
    // Lose the index entirely, as if the crash hit before its first commit.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let svc = MemoryService::open(cfg).await.unwrap();
    let hits = svc.search("p", lexical("cat Miso")).await.unwrap();
    assert_eq!(hits.len(), 1);
}

fn add_input(user: &str, texts: &[&str], tags: &[&str]) -> AddInput {
    let messages = texts
        .iter()
        .map(|t| NewMessage {
            role: Role::User,
            content: t.to_string(),
            chat_time: None,
            name: None,
            message_id: None,
            raw: None,
        })
        .collect();
    AddInput {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..AddInput::sync(user, "c", messages)
    }
}

fn said_at(user: &str, text: &str, at: &str) -> AddInput {
    let mut input = add_input(user, &[text], &[]);
    input.messages[0].chat_time = crate::time::parse_str(at);
    input
}

#[tokio::test]
async fn a_date_in_the_query_favours_memories_from_then() {
    let svc = start_lexical(Arc::new(InMemoryStore::new())).await;
    let old = svc
        .add(
            "p",
            said_at("u", "Dinner at the Thai place.", "2023-03-02T19:00:00Z"),
        )
        .await
        .unwrap();
    let recent = svc
        .add(
            "p",
            said_at(
                "u",
                "Dinner at the new Thai place downtown, great curry.",
                "2023-05-03T19:00:00Z",
            ),
        )
        .await
        .unwrap();
    // Monday 2023-05-08: "last week" is May 1-7.
    let asked = |q: &str| SearchInput {
        query_time: crate::time::parse_str("2023-05-08T09:00:00Z"),
        ..lexical(q)
    };
    let hits = svc
        .search("p", asked("dinner at the Thai place"))
        .await
        .unwrap();
    assert_eq!(
        hits[0].memory.id, old.memory_ids[0],
        "the closer wording wins without a date"
    );
    let hits = svc
        .search("p", asked("dinner at the Thai place last week"))
        .await
        .unwrap();
    assert_eq!(hits[0].memory.id, recent.memory_ids[0]);
    let hits = svc
        .search("p", asked("Thai dinner in March"))
        .await
        .unwrap();
    assert_eq!(hits[0].memory.id, old.memory_ids[0]);
    let hits = svc
        .search("p", asked("上周的泰国菜 dinner Thai"))
        .await
        .unwrap();
    assert_eq!(hits[0].memory.id, recent.memory_ids[0], "Chinese dates too");
}

#[tokio::test]
async fn near_copies_make_room_for_other_results() {
    for svc in [
        start_lexical(Arc::new(InMemoryStore::new())).await,
        fake_service(Arc::new(InMemoryStore::new())).await,
    ] {
        let text = "Bees on the roof make honey for the market.";
        let a = svc.add("p", add_input("u", &[text], &[])).await.unwrap();
        let b = svc.add("p", add_input("u", &[text], &[])).await.unwrap();
        let other = svc
            .add("p", add_input("u", &["The neighbour keeps bees too."], &[]))
            .await
            .unwrap();
        svc.embed_pending().await.unwrap();
        let ids = |hits: Vec<SearchHit>| -> Vec<String> {
            hits.into_iter().map(|h| h.memory.id).collect()
        };
        let input = |limit| SearchInput {
            limit: Some(limit),
            ..lexical("bees on the roof honey")
        };
        let top = ids(svc.search("p", input(2)).await.unwrap());
        assert_eq!(top.len(), 2);
        assert!(top[0] == a.memory_ids[0] || top[0] == b.memory_ids[0]);
        assert_eq!(top[1], other.memory_ids[0], "the copy steps aside");
        // With room for all, the copy still comes back, last.
        let all = ids(svc.search("p", input(3)).await.unwrap());
        assert_eq!(all.len(), 3);
        assert_eq!(all[1], other.memory_ids[0]);
    }
}

#[tokio::test]
async fn a_search_reads_past_the_head_of_its_pool_only_when_copies_fill_it() {
    let svc = start_lexical(Arc::new(InMemoryStore::new())).await;
    // More near-copies than the first read takes (2 × limit, at least 12), all ranked above
    // the distinct memories.
    let text = "Bees on the roof make honey for the market.";
    let mut copies = std::collections::HashSet::new();
    for _ in 0..20 {
        let a = svc.add("p", add_input("u", &[text], &[])).await.unwrap();
        copies.insert(a.memory_ids[0].clone());
    }
    for word in [
        "lavender", "clover", "heather", "acacia", "linden", "thyme", "sage",
    ] {
        let t = format!("The bees by the roof visit the {word}.");
        svc.add("p", add_input("u", &[t.as_str()], &[]))
            .await
            .unwrap();
    }
    let search = |conversation: Option<&str>| {
        let input = SearchInput {
            limit: Some(6),
            conversation_id: conversation.map(str::to_string),
            ..lexical("bees on the roof honey")
        };
        let svc = svc.clone();
        async move {
            svc.search("p", input)
                .await
                .unwrap()
                .into_iter()
                .map(|h| (h.memory.id, h.relativity))
                .collect::<Vec<_>>()
        }
    };
    let hits = search(None).await;
    assert_eq!(hits.len(), 6);
    assert!(copies.contains(&hits[0].0));
    assert!(
        hits[1..].iter().all(|(id, _)| !copies.contains(id)),
        "the distinct memories below the first read come up past the copies: {hits:?}"
    );
    // A conversation (here one no memory is in) makes a search read its whole pool: the
    // same answer.
    assert_eq!(search(Some("elsewhere")).await, hits);
}

#[test]
fn feedback_loses_its_correction_words_only() {
    assert_eq!(
        strip_correction("No, that's wrong: I'm vegetarian now."),
        "I'm vegetarian now."
    );
    assert_eq!(strip_correction("不对，我现在吃素。"), "我现在吃素。");
    assert_eq!(
        strip_correction("Nobody told you I moved?"),
        "Nobody told you I moved?"
    );
    assert_eq!(
        strip_correction("Actually I live in Lyon."),
        "I live in Lyon."
    );
}

#[tokio::test]
async fn a_repeated_fact_merges_into_the_first_and_keeps_its_id() {
    let svc = start_lexical(Arc::new(InMemoryStore::new())).await;
    let first = svc
        .add(
            "p",
            said_at("u", "I love spicy food.", "2023-05-01T10:00:00Z"),
        )
        .await
        .unwrap();
    let again = svc
        .add(
            "p",
            said_at(
                "u",
                "Honestly, I really love spicy food!",
                "2023-05-08T10:00:00Z",
            ),
        )
        .await
        .unwrap();
    // [turn, fact] each time; the second fact is the first one, merged.
    assert_eq!(first.memory_ids.len(), 2);
    assert_eq!(again.memory_ids.len(), 2);
    assert_eq!(again.memory_ids[1], first.memory_ids[1]);
    let (fact, history) = svc
        .history("p", Some("u"), &first.memory_ids[1])
        .await
        .unwrap();
    assert_eq!(fact.sources.len(), 2, "sources grow");
    assert!(fact.update_time >= fact.create_time);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, ChangeKind::Merged);
    let profile = svc.profile("p", "u").await.unwrap();
    assert_eq!(profile.len(), 1);
    assert_eq!(profile[0].1.len(), 1, "one fact, not two");
}

#[tokio::test]
async fn a_change_archives_the_old_fact_and_time_travel_still_finds_it() {
    let svc = start_lexical(Arc::new(InMemoryStore::new())).await;
    let before = svc
        .add(
            "p",
            said_at("u", "I live in Beijing.", "2020-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
    let after = svc
        .add(
            "p",
            said_at(
                "u",
                "I moved from Beijing to Shanghai.",
                "2024-01-01T00:00:00Z",
            ),
        )
        .await
        .unwrap();
    let (old_id, new_id) = (&before.memory_ids[1], &after.memory_ids[1]);
    let (old, history) = svc.history("p", Some("u"), old_id).await.unwrap();
    assert_eq!(
        old.status,
        MemoryStatus::Archived,
        "archived, never deleted"
    );
    assert_eq!(history[0].kind, ChangeKind::Superseded);
    assert_eq!(history[0].related_id.as_ref(), Some(new_id));
    assert_eq!(history[0].before.as_deref(), Some(old.value.as_str()));
    let (_, history) = svc.history("p", Some("u"), new_id).await.unwrap();
    assert_eq!(history[0].kind, ChangeKind::Supersedes);
    assert_eq!(history[0].related_id.as_ref(), Some(old_id));

    let profile_hits = |hits: Vec<SearchHit>| -> Vec<String> {
        hits.into_iter()
            .filter(|h| h.memory.memory_type == MemoryType::UserMemory)
            .map(|h| h.memory.id)
            .collect()
    };
    let now = svc
        .search("p", lexical("where does the user live Beijing Shanghai"))
        .await
        .unwrap();
    assert_eq!(profile_hits(now), vec![new_id.clone()]);
    let then = svc
        .search(
            "p",
            SearchInput {
                query_time: crate::time::parse_str("2022-06-01"),
                ..lexical("where does the user live Beijing Shanghai")
            },
        )
        .await
        .unwrap();
    assert_eq!(profile_hits(then), vec![old_id.clone()]);
}

async fn fake_service(store: Arc<dyn MemoryStore>) -> Arc<MemoryService> {
    let embedder: Arc<dyn Embedder> = Arc::new(crate::embed::FakeEmbedder::new(64));
    MemoryService::start(store, None, Some(embedder), Config::default())
        .await
        .unwrap()
}

/// After start, the background embedder looks only at what this service wrote: a
/// memory that appears in the store some other way waits for the next full pass
/// (`embed_pending`, or a restart), and the store is never walked for a few new rows.
#[tokio::test]
async fn the_background_embedder_embeds_what_this_service_wrote() {
    let store = Arc::new(InMemoryStore::new());
    let svc = fake_service(store.clone()).await;
    // Let the start-up pass over the whole store finish first.
    svc.embed_pending().await.unwrap();
    let foreign = memory("u", "c", "written by another server");
    store
        .write(WriteBatch {
            upsert_memories: vec![foreign.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mine = svc
        .add("p", add_input("u", &["green tea in the morning"], &[]))
        .await
        .unwrap()
        .memory_ids;
    let lacking = |ids: Vec<String>| {
        let store = store.clone();
        async move {
            store
                .lacking_embeddings("p", &ids, "fake-hashed-bow")
                .await
                .unwrap()
                .len()
        }
    };
    for _ in 0..500 {
        if lacking(mine.clone()).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(lacking(mine).await, 0, "the add's memories got vectors");
    assert_eq!(lacking(vec![foreign.id.clone()]).await, 1);
    assert_eq!(svc.embed_pending().await.unwrap(), 1);
    assert_eq!(lacking(vec![foreign.id.clone()]).await, 0);
}

/// Counts query embeddings, and makes each slow enough for searches to overlap.
#[derive(Debug)]
struct SlowCounting {
    inner: crate::embed::FakeEmbedder,
    queries: std::sync::atomic::AtomicUsize,
}

impl Embedder for SlowCounting {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.inner.embed_documents(texts)
    }
    fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        self.queries
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(50));
        self.inner.embed_query(text)
    }
    fn calibrate(&self, cosine: f32) -> f32 {
        self.inner.calibrate(cosine)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_searches_for_one_query_embed_it_once() {
    let embedder = Arc::new(SlowCounting {
        inner: crate::embed::FakeEmbedder::new(64),
        queries: Default::default(),
    });
    let store = Arc::new(InMemoryStore::new());
    let svc = MemoryService::start(store, None, Some(embedder.clone()), Config::default())
        .await
        .unwrap();
    svc.add(
        "p",
        add_input("u", &["I prefer green tea in the morning"], &[]),
    )
    .await
    .unwrap();
    let input = SearchInput {
        mode: SearchMode::Hybrid,
        ..dense("what does the user drink")
    };
    let count = || embedder.queries.load(std::sync::atomic::Ordering::SeqCst);
    let (hits, prefs) = tokio::join!(
        svc.search("p", input.clone()),
        svc.search_preferences("p", &input, 5)
    );
    assert!(!hits.unwrap().is_empty());
    assert_eq!(prefs.unwrap().len(), 1, "the stated preference");
    assert_eq!(
        count(),
        1,
        "the second search waited for the first one's vector"
    );
    svc.search("p", input).await.unwrap();
    assert_eq!(count(), 1, "and later searches find it cached");
    svc.search("p", dense("something else")).await.unwrap();
    assert_eq!(count(), 2);
}

fn dense(query: &str) -> SearchInput {
    SearchInput {
        user_id: "u".into(),
        query: query.into(),
        mode: SearchMode::Dense,
        ..Default::default()
    }
}

#[tokio::test]
async fn vectors_follow_adds_in_the_background_and_skip_deleted_memories() {
    let store = Arc::new(InMemoryStore::new());
    let svc = fake_service(store.clone()).await;
    let kept = svc
        .add("p", add_input("u", &["green tea in the morning"], &[]))
        .await
        .unwrap();
    // Lexically searchable as soon as the add returns, vectors or not.
    assert_eq!(
        svc.search("p", lexical("green tea")).await.unwrap().len(),
        1
    );
    // A memory deleted before its vector lands gets none, and no orphan row.
    let gone = svc
        .add("p", add_input("u", &["black coffee at night"], &[]))
        .await
        .unwrap();
    let vector = svc
        .embed_memories(
            &store.get_memories("p", &gone.memory_ids).await.unwrap(),
            true,
        )
        .await
        .unwrap();
    let stale = store.get_memories("p", &gone.memory_ids).await.unwrap();
    svc.delete("p", Some("u"), &gone.memory_ids, false)
        .await
        .unwrap();
    assert_eq!(svc.commit_embeddings(&stale, vector).await.unwrap(), 0);
    svc.embed_pending().await.unwrap();
    let scope = Scope::new("p", "u");
    let stored = store.embeddings(&scope, "fake-hashed-bow").await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, kept.memory_ids[0]);
    let hits = svc.search("p", dense("green tea")).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].memory.id, kept.memory_ids[0]);
}

#[tokio::test]
async fn dense_search_applies_filters_deletes_and_time_inside() {
    dense_search_applies_filters_deletes_and_time_inside_of(Arc::new(InMemoryStore::new())).await;
}

/// The same over PostgreSQL, where the database runs the search (HNSW, SQL filters).
#[tokio::test]
async fn dense_search_in_postgres_applies_filters_deletes_and_time_inside() {
    let Some(url) = crate::store::tests_support::postgres_schema_url().await else {
        return;
    };
    let store = PostgresStore::connect(&url, 4).await.unwrap();
    dense_search_applies_filters_deletes_and_time_inside_of(Arc::new(store)).await;
}

async fn dense_search_applies_filters_deletes_and_time_inside_of(store: Arc<dyn MemoryStore>) {
    let svc = fake_service(store).await;
    let a = svc
        .add(
            "p",
            add_input("u", &["green tea in the morning"], &["drinks"]),
        )
        .await
        .unwrap();
    svc.add("p", add_input("u", &["green tea with lunch"], &["food"]))
        .await
        .unwrap();
    svc.add(
        "p",
        add_input("other", &["green tea for someone else"], &[]),
    )
    .await
    .unwrap();
    svc.embed_pending().await.unwrap();
    let hits = svc.search("p", dense("green tea")).await.unwrap();
    assert_eq!(hits.len(), 2, "only the user's own memories");
    let filter =
        Filter::parse(&serde_json::json!({"and": [{"tags": {"contains": "drinks"}}]})).unwrap();
    let hits = svc
        .search(
            "p",
            SearchInput {
                filter,
                ..dense("green tea")
            },
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].memory.id, a.memory_ids[0]);
    let hits = svc
        .search(
            "p",
            SearchInput {
                query_time: Some(1),
                ..dense("green tea")
            },
        )
        .await
        .unwrap();
    assert!(hits.is_empty(), "nothing existed at t=1");
    svc.delete("p", None, &a.memory_ids, false).await.unwrap();
    let hits = svc.search("p", dense("green tea")).await.unwrap();
    assert_eq!(hits.len(), 1);
    svc.delete_user("p", "u").await.unwrap();
    assert!(
        svc.search("p", dense("green tea"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn memories_stored_before_a_model_get_vectors_at_start() {
    let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
    let lexical = start_lexical(store.clone()).await;
    lexical
        .add(
            "p",
            add_input("u", &["my bicycle is red", "the cat sleeps all day"], &[]),
        )
        .await
        .unwrap();
    drop(lexical);
    let svc = fake_service(store.clone()).await;
    for _ in 0..200 {
        if store
            .missing_embeddings("fake-hashed-bow", None, 10)
            .await
            .unwrap()
            .0
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let hits = svc.search("p", dense("red bicycle")).await.unwrap();
    assert!(hits[0].memory.value.contains("bicycle"), "{hits:?}");
}

#[test]
fn embedding_text_drops_the_date() {
    let mut m = memory("u", "c", "x");
    m.value = "[2023-05-08] Caroline: I went home.".into();
    assert_eq!(embedding_text(&m), "Caroline: I went home.");
    m.value = "no date".into();
    assert_eq!(embedding_text(&m), "no date");
}

/// Issue 11: "current at t" means the same for both retrievers on every store. A fact
/// superseded later is what an as-of search before the change finds, lexically and by
/// vector; a search now finds its successor. (The embedded store's RAM vectors used to hold
/// active memories only, so a dense as-of search there missed it.)
async fn as_of_searches_find_what_was_current_then_of(store: Arc<dyn MemoryStore>) {
    let svc = fake_service(store).await;
    let before = svc
        .add(
            "p",
            said_at("u", "I live in Beijing.", "2020-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
    // Vectors first, so the old fact is archived after it got one, as in a live system.
    svc.embed_pending().await.unwrap();
    let after = svc
        .add(
            "p",
            said_at(
                "u",
                "I moved from Beijing to Shanghai.",
                "2024-01-01T00:00:00Z",
            ),
        )
        .await
        .unwrap();
    svc.embed_pending().await.unwrap();
    let (old_id, new_id) = (&before.memory_ids[1], &after.memory_ids[1]);
    let profile = |hits: Vec<SearchHit>| -> Vec<String> {
        hits.into_iter()
            .filter(|h| h.memory.memory_type == MemoryType::UserMemory)
            .map(|h| h.memory.id)
            .collect()
    };
    let query = "where does the user live Beijing Shanghai";
    for mode in [SearchMode::Lexical, SearchMode::Dense] {
        let input = SearchInput {
            mode,
            ..lexical(query)
        };
        let now = svc.search("p", input.clone()).await.unwrap();
        assert_eq!(profile(now), vec![new_id.clone()], "{mode:?} now");
        let then = svc
            .search(
                "p",
                SearchInput {
                    query_time: crate::time::parse_str("2022-06-01"),
                    ..input
                },
            )
            .await
            .unwrap();
        assert_eq!(profile(then), vec![old_id.clone()], "{mode:?} as of 2022");
    }
}

#[tokio::test]
async fn as_of_searches_find_what_was_current_then_in_memory() {
    as_of_searches_find_what_was_current_then_of(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn as_of_searches_find_what_was_current_then_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    as_of_searches_find_what_was_current_then_of(Arc::new(store)).await;
}

#[tokio::test]
async fn as_of_searches_find_what_was_current_then_in_postgres() {
    let Some(url) = crate::store::tests_support::postgres_schema_url().await else {
        return;
    };
    let store = PostgresStore::connect(&url, 4).await.unwrap();
    as_of_searches_find_what_was_current_then_of(Arc::new(store)).await;
}

/// MemOS's upload limits come with MemOS's codes, checked before anything is stored: one
/// file over 100 MB (50104), files over 300 MB together (50105); an unknown base is 50120.
#[tokio::test]
async fn knowledge_uploads_over_the_limits_are_refused_whole() {
    use crate::error::{Error, InputErrorKind, NotFoundKind};
    let svc = start_lexical(Arc::new(crate::store::InMemoryStore::new())).await;
    let kb = svc.create_knowledgebase("p", "Docs", None).await.unwrap();
    let file = |n: usize| NewFile {
        name: Some("a.txt".into()),
        bytes: vec![b'a'; n],
        url: None,
    };
    let kind = |e: Error| {
        let shown = e.to_string();
        if let Error::InvalidInput { kind, field, .. } = e {
            (kind, field)
        } else {
            panic!("not an input error: {shown}")
        }
    };
    let err = svc
        .add_knowledge_files("p", &kb, vec![file(10), file(MAX_FILE_BYTES + 1)])
        .await
        .unwrap_err();
    assert_eq!(
        kind(err),
        (InputErrorKind::FileTooLarge, "file[1]".to_string())
    );
    let err = svc
        .add_knowledge_files(
            "p",
            &kb,
            vec![
                file(MAX_FILE_BYTES),
                file(MAX_FILE_BYTES),
                file(MAX_FILE_BYTES),
                file(1),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(kind(err).0, InputErrorKind::FilesTooLarge);
    let listed = svc
        .knowledge_files("p", &FileSelect::Base(kb.clone()), None, 1, 100)
        .await
        .unwrap();
    assert_eq!(listed.total, 0, "refused whole: nothing stored");
    let got = svc.add_knowledge_files("p", "kb_nope", vec![file(1)]).await;
    assert!(
        matches!(
            got,
            Err(Error::NotFound {
                kind: NotFoundKind::KnowledgeBase,
                ..
            })
        ),
        "{got:?}"
    );
}
