//! Checks of memories themselves: writes, reads, scoping, lists, filters, deletes, history.

use serde_json::json;

use super::{running, task};
use crate::error::Error;
use crate::filter::Filter;
use crate::model::*;
use crate::store::tests_support::{memory, memory_in, message};
use crate::store::{Expect, ListQuery, MemoryStore, WriteBatch};

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
        json!({"or": [{"tags": {"contains": "WORK"}}, {"memory_type": "UserMemory"}]}),
        json!({"and": [{"tags": {"contains": "nobody has this"}}]}),
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

/// A soft-deleted memory stays readable by id (for its history) but is never listed,
/// unless its state is asked for by name.
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
    // Asked for by state (the dashboard's view of what was removed), each state alone.
    let mut old = memory("alice", "c", "old");
    old.status = MemoryStatus::Archived;
    store
        .write(WriteBatch {
            upsert_memories: vec![old.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    for (states, want) in [
        (vec![MemoryStatus::Deleted], vec![&gone.id]),
        (vec![MemoryStatus::Archived], vec![&old.id]),
        (vec![MemoryStatus::Activated], vec![&kept.id]),
        (vec![], vec![]),
    ] {
        let q = ListQuery {
            limit: 10,
            statuses: Some(states.clone()),
            ..Default::default()
        };
        let page = store.list_memories(&kept.scope, &q).await.unwrap();
        let ids: Vec<&String> = page.items.iter().map(|m| &m.id).collect();
        assert_eq!((ids, page.total), (want.clone(), want.len()), "{states:?}");
    }
    let q = ListQuery {
        limit: 10,
        statuses: Some(vec![MemoryStatus::Deleted, MemoryStatus::Archived]),
        ..Default::default()
    };
    assert_eq!(store.list_memories(&kept.scope, &q).await.unwrap().total, 2);
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

/// A batch lands only if what it was computed from still holds, checked by the store inside
/// its own write (so on a shared database an erase by another server counts too): a memory
/// changed, erased or of another project since it was read, or a task gone with its user,
/// makes the whole batch fail and write nothing.
pub async fn a_batch_lands_only_if_what_it_expects_still_holds(store: &dyn MemoryStore) {
    let a = memory("alice", "c", "I live in Beijing.");
    let scope = a.scope.clone();
    let project = scope.project_id.clone();
    let write = |upsert: Vec<Memory>, expect: Expect| WriteBatch {
        upsert_memories: upsert,
        expect,
        ..Default::default()
    };
    store
        .write(write(vec![a.clone()], Expect::default()))
        .await
        .unwrap();
    let as_read = Expect {
        project: project.clone(),
        memories: vec![(a.id.clone(), a.update_time, a.status)],
        ..Default::default()
    };
    // Still as read: the merge lands.
    let mut merged = a.clone();
    merged.value = "I live in Beijing, near the park.".into();
    merged.update_time += 1;
    store
        .write(write(vec![merged.clone()], as_read.clone()))
        .await
        .unwrap();
    // The same reading is stale now: nothing of the batch is written.
    let fresh = memory("alice", "c", "I work as a nurse.");
    let err = store
        .write(write(vec![a.clone(), fresh.clone()], as_read.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    let ids = [a.id.clone(), fresh.id.clone()];
    assert_eq!(
        store.get_memories(&project, &ids).await.unwrap(),
        vec![merged.clone()]
    );
    // A reading of the right id in another project does not count.
    let elsewhere = Expect {
        project: "q".into(),
        memories: vec![(merged.id.clone(), merged.update_time, merged.status)],
        ..Default::default()
    };
    let err = store
        .write(write(vec![fresh.clone()], elsewhere))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    // A task's writes land while it runs and never once its user is erased.
    let t = task(&scope, TaskStatus::Running);
    store
        .write(WriteBatch {
            task: Some(t.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let on_task = || Expect::task(&project, &t.id);
    store
        .write(write(vec![fresh.clone()], on_task()))
        .await
        .unwrap();
    store.delete_user(&scope).await.unwrap();
    let late = memory("alice", "c", "I have a cat.");
    let mut done = t.clone();
    done.status = TaskStatus::Completed;
    let err = store
        .write(WriteBatch {
            task: Some(done),
            ..write(vec![late.clone(), merged.clone()], on_task())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let ids = [late.id.clone(), merged.id.clone(), fresh.id.clone()];
    assert!(store.get_memories(&project, &ids).await.unwrap().is_empty());
    assert!(store.get_task(&project, &t.id).await.unwrap().is_none());

    // An import keeps its ids: a batch expecting them absent fails when any project holds
    // one (as a memory or a message), writing nothing, and lands when none does.
    let bob = Scope::new("other-project", "bob");
    let theirs = crate::model::Memory {
        scope: bob.clone(),
        ..memory("bob", "c", "Their memory.")
    };
    let said = message(&bob, "c", "Their message.", 1);
    store
        .write(WriteBatch {
            upsert_memories: vec![theirs.clone()],
            messages: vec![said.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut imported = theirs.clone();
    imported.scope = scope.clone();
    imported.value = "Imported over theirs.".into();
    let fresh_import = memory("alice", "c", "Imported.");
    for taken in [theirs.id.clone(), said.id.clone()] {
        let err = store
            .write(write(
                vec![imported.clone(), fresh_import.clone()],
                Expect {
                    project: project.clone(),
                    absent: vec![fresh_import.id.clone(), taken],
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    }
    assert_eq!(
        store
            .get_memories("other-project", std::slice::from_ref(&theirs.id))
            .await
            .unwrap(),
        vec![theirs]
    );
    assert!(
        store
            .get_memories(&project, std::slice::from_ref(&fresh_import.id))
            .await
            .unwrap()
            .is_empty()
    );
    let absent = Expect {
        project: project.clone(),
        absent: vec![fresh_import.id.clone()],
        ..Default::default()
    };
    store
        .write(write(vec![fresh_import.clone()], absent))
        .await
        .unwrap();
}
