//! Searches: hybrid ranking of a user's memories, the preference channel, and the profile.

use std::collections::{HashMap, HashSet};

use crate::dates;
use crate::error::{Error, InputErrorKind, Result};
use crate::filter::{Condition, Filter, Logic};
use crate::ingest::fast;
use crate::model::*;
use crate::search::{Candidate, TimeRange, fusion};
use crate::store::ListQuery;

use super::MemoryService;
use super::embedding::embedding_text;
use super::input::{SearchHit, SearchInput, SearchMode};

/// What each retrieved list said of each candidate. `kinds[i]` tells list `i`'s retriever
/// (dense or not) and its pass: 0 the query, 1 inside the query's date window, 2 the
/// context of a dialogue-shaped query. Cheap next to the search itself (a few hundred
/// entries), so every search keeps it and the wire decides whether to show it.
fn explain_lists(
    lists: &[(f32, Vec<crate::search::Candidate>)],
    kinds: &[(bool, u8)],
    window: Option<&dates::Window>,
) -> HashMap<String, super::input::Explain> {
    let mut why: HashMap<String, super::input::Explain> = HashMap::new();
    for ((_, list), &(dense, pass)) in lists.iter().zip(kinds) {
        for (rank, c) in list.iter().enumerate() {
            let e = why.entry(c.id.clone()).or_default();
            e.date_window = window.map(|w| (w.start, w.end));
            let signal = super::input::Signal {
                rank: rank + 1,
                score: c.score,
                relativity: c.relativity,
            };
            match (dense, pass) {
                (_, 1) => e.in_window = true,
                (_, 2) => e.in_context = true,
                (false, _) => e.lexical = Some(signal),
                (true, _) => e.dense = Some(signal),
            }
        }
    }
    why
}

/// Preferences of a user weighed for a query by topic (the newest).
const PREFERENCES_CONSIDERED: usize = 200;
/// What a topic the query calls for adds to a preference's score (relevance is 0..1).
const TOPIC_LIFT: f32 = 0.6;
/// What a wish about the assistant adds for any query: it shapes every answer.
const ASSISTANT_LIFT: f32 = 0.4;

/// Most supersessions followed from an outdated turn to the fact current now.
const MAX_SUPERSEDED_HOPS: usize = 4;

/// Fewest fused candidates a search reads from the store at first.
const FIRST_READ: usize = 12;

/// Whether a search's list may hold `m`: tool trajectories have a channel of their own
/// (`search_tools`), unless the filter asks for them by name.
fn listed(m: &Memory, input: &SearchInput) -> bool {
    m.memory_type != MemoryType::ToolTrajectoryMemory
        || names_type(input.filter.as_ref(), MemoryType::ToolTrajectoryMemory)
}

/// What the request's conversation lifts its memories by (the ranking and `explain` alike).
fn conversation_boost(s: &crate::config::SearchConfig, input: &SearchInput, m: &Memory) -> f32 {
    match &input.conversation_id {
        Some(conv) if *conv == m.conversation_id => s.conversation_boost,
        _ => 1.0,
    }
}

impl MemoryService {
    /// The memories most relevant to a query, best first.
    pub async fn search(&self, project_id: &str, input: SearchInput) -> Result<Vec<SearchHit>> {
        // Every write acknowledged before the request began is in the answer, whichever
        // server took it.
        let began = input.since.unwrap_or_else(std::time::Instant::now);
        self.check_user(&input.user_id)?;
        if let Some(c) = &input.conversation_id {
            self.check_id("conversation_id", c, InputErrorKind::ConversationIdTooLong)?;
        }
        if input.query.trim().is_empty() {
            return Err(Error::required("query"));
        }
        let qlen = input.query.chars().count();
        if qlen > self.config.limits.max_query_chars {
            return Err(Error::input(
                "query",
                format!(
                    "query holds {qlen} characters; at most {} are allowed",
                    self.config.limits.max_query_chars
                ),
                InputErrorKind::TooLarge,
            ));
        }
        let s = &self.config.search;
        let limit = input.limit.unwrap_or(s.default_limit);
        if limit == 0 || limit > s.max_limit {
            return Err(Error::invalid(
                "memory_limit_number",
                format!("memory_limit_number must be between 1 and {}", s.max_limit),
            ));
        }
        let scope = Scope::new(project_id, input.user_id.clone());
        // Retrieve a deeper pool than asked so the conversation boost can lift items into it.
        let pool = (limit * 4).max(40);
        let reference = input.query_time.unwrap_or_else(now_millis);
        let time = TimeRange::until(input.query_time);
        // A dialogue pasted in whole: its last line asks; the lines before are context, run
        // through the retrievers too when `search.context_weight` says so (a long query
        // searched whole drowns the question: BM25's LoCoMo message recall@10 fell from 0.78
        // to 0.04 with ten turns before each question).
        let (question, context) = crate::text::split_dialogue(&input.query);
        // "last week", "in May", "上个月": the retrievers run once more inside that window, so
        // memories from then both enter the pool and, found twice, rank higher.
        let window = if s.date_weight > 0.0 {
            dates::find(question, reference)
        } else {
            None
        };
        // Passes: (weight, time range, text, what it is: 0 the query, 1 inside the date
        // window, 2 the dialogue's context).
        let mut passes = vec![(1.0, time, question, 0)];
        if let Some(w) = &window {
            passes.push((s.date_weight, time.within(w.start, w.end), question, 1));
        }
        if let Some(c) = context.filter(|_| s.context_weight > 0.0) {
            let c = crate::text::tail_by_tokens(c, s.dense_query_tokens);
            passes.push((s.context_weight, time, c, 2));
        }
        let mut lists = Vec::new();
        // Per list: (dense?, which pass), for the explanation.
        let mut kinds = Vec::new();
        // How many of the fused list are read first (below).
        let first_read = (limit * 2).max(FIRST_READ);
        let dense_runs = input.mode != SearchMode::Lexical && self.embedder.is_some();
        // Memories read so far: the reads below take only what is not here yet.
        let mut memories = HashMap::new();
        for (weight, range, text, pass) in passes {
            // Both retrievers at once, the dense one polled first: it hands the query to
            // the embedding thread, and the BM25 search (tantivy's runs on this thread, half
            // a millisecond at 100k memories; PostgreSQL's in the database) runs meanwhile
            // instead of before it.
            let lexical = async {
                if input.mode == SearchMode::Dense {
                    return Ok::<_, Error>(None);
                }
                let terms = crate::text::tail_by_tokens(text, s.lexical_query_tokens);
                let bm25 = self
                    .lexical_candidates(&scope, terms, input.filter.as_ref(), range, pool, began)
                    .await?;
                // While the query embeds (2-3 ms of a 5 ms search at 100k memories), the
                // memories BM25 ranks first are read: most of them head the fused list too
                // (of BM25's first 20, 19.8 were among the 20 read first on `bench load`'s
                // data, 19.4 among the 50 read first on LoCoMo's questions), so their reads
                // leave the critical path.
                let early = if pass == 0 && dense_runs {
                    let ids: Vec<String> =
                        bm25.iter().take(first_read).map(|c| c.id.clone()).collect();
                    self.store.get_memories(&scope.project_id, &ids).await?
                } else {
                    Vec::new()
                };
                Ok(Some((bm25, early)))
            };
            let dense = async {
                if !dense_runs {
                    return Ok(None);
                }
                self.dense_candidates(&scope, text, input.filter.as_ref(), range, pool, began)
                    .await
                    .map(Some)
            };
            let (dense, bm25) = tokio::join!(dense, lexical);
            if let Some((bm25, early)) = bm25? {
                memories.extend(early.into_iter().map(|m| (m.id.clone(), m)));
                lists.push((weight * s.lexical_weight, bm25));
                kinds.push((false, pass));
            }
            if let Some(dense) = dense? {
                lists.push((weight * s.dense_weight, dense));
                kinds.push((true, pass));
            }
        }
        let mut why = explain_lists(&lists, &kinds, window.as_ref());
        let fused = if s.fusion == crate::config::Fusion::Rrf {
            fusion::fuse(&lists)
        } else {
            fusion::fuse_scores(&lists)
        };
        // Without a conversation to lift its memories the fused order is final, but for
        // what the store drops (another user's, tool trajectories) and near-copies moved
        // down: the best `2 × limit` are read first, and twice as many again only while
        // those leave fewer than `limit`. (A read is about 15 µs a memory and the pool holds
        // up to 80: a millisecond of a 7 ms search at 100k memories.) The answer is the same
        // as from reading the whole pool, since nothing below the head can move into the
        // top.
        let mut read = match input.conversation_id {
            Some(_) => fused.len(),
            None => first_read.min(fused.len()),
        };
        let ranked = loop {
            let (head, unread) = fused.split_at(read);
            let ranked = self
                .ranked_head(&scope, head, unread, &input, &mut memories, &mut why)
                .await?;
            let (ranked, full) = self.suppress_duplicates(ranked, limit);
            if full || unread.is_empty() {
                break ranked;
            }
            // Twice as deep each time: a head short of a result or two (near-copies, a
            // memory dropped) usually fills from the next few, where reading the whole
            // rest of the pool cost about 1.3 ms at 100k memories.
            read = (read * 2).min(fused.len());
        };
        let working = self
            .working_set(&scope, input.conversation_id.as_deref())
            .await?;
        Ok(ranked
            .into_iter()
            .map(|(fused, relativity, m)| SearchHit {
                memory_type: if working.contains(&m.id) {
                    MemoryType::WorkingMemory
                } else {
                    m.memory_type
                },
                relativity,
                explain: why.remove(&m.id).map(|mut e| {
                    e.fused = fused;
                    e.boost = conversation_boost(s, &input, &m);
                    Box::new(e)
                }),
                memory: m,
            })
            .collect())
    }

    /// `head`'s memories, boosted, ranked, and each outdated turn's replacement placed
    /// above it. Memories not in `memories` yet are read from the store into it. `unread`
    /// is the rest of the fused list (its scores count for a replacement found there).
    async fn ranked_head(
        &self,
        scope: &Scope,
        head: &[Candidate],
        unread: &[Candidate],
        input: &SearchInput,
        memories: &mut HashMap<String, Memory>,
        why: &mut HashMap<String, super::input::Explain>,
    ) -> Result<Vec<(f32, f32, Memory)>> {
        let s = &self.config.search;
        let ids: Vec<String> = head
            .iter()
            .filter(|c| !memories.contains_key(&c.id))
            .map(|c| c.id.clone())
            .collect();
        for m in self.store.get_memories(&scope.project_id, &ids).await? {
            memories.insert(m.id.clone(), m);
        }
        let mut ranked: Vec<(f32, f32, Memory)> = head
            .iter()
            .filter_map(|c| {
                // The index is derived data: trust only what the store confirms for this user.
                let m = memories.get(&c.id).filter(|m| m.scope == *scope)?;
                if !listed(m, input) {
                    return None;
                }
                let m = m.clone();
                let boost = conversation_boost(s, input, &m);
                Some((c.score * boost, (c.relativity * boost).clamp(0.0, 1.0), m))
            })
            .collect();
        // Stable: equal keys keep the fused order.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.outdated_below_replacements(scope, ranked, unread, input, why)
            .await
    }

    /// The current fact before the turn that stated an old one: a verbatim turn whose fact
    /// was superseded (an add marked it [`ChangeKind::Outdated`] and lowered its confidence)
    /// may match a query best, yet what replaced it is the answer. Each such turn in
    /// `ranked` gets its replacement (followed to the one current at the search's time)
    /// right above it, brought in when the retrievers missed it. A search as of a time
    /// before the change sees the turn as it was. Only flagged turns cost a read.
    async fn outdated_below_replacements(
        &self,
        scope: &Scope,
        mut ranked: Vec<(f32, f32, Memory)>,
        unread: &[Candidate],
        input: &SearchInput,
        why: &mut HashMap<String, super::input::Explain>,
    ) -> Result<Vec<(f32, f32, Memory)>> {
        if !self.config.search.current_fact_first {
            return Ok(ranked);
        }
        let flagged: Vec<String> = ranked
            .iter()
            .filter(|(_, _, m)| {
                m.memory_type == MemoryType::LongTermMemory
                    && m.confidence <= super::add::OUTDATED_CONFIDENCE
            })
            .map(|(_, _, m)| m.id.clone())
            .collect();
        let at = input.query_time;
        for turn in flagged {
            let history = self.store.history(&scope.project_id, &turn).await?;
            let Some(mut next) = history
                .iter()
                .rev()
                .find(|c| c.kind == ChangeKind::Outdated && at.is_none_or(|t| c.time <= t))
                .and_then(|c| c.related_id.clone())
            else {
                continue;
            };
            // The replacement may itself have been superseded since: follow the chain.
            let mut current = None;
            for _ in 0..MAX_SUPERSEDED_HOPS {
                let Some(r) = self
                    .store
                    .get_memories(&scope.project_id, std::slice::from_ref(&next))
                    .await?
                    .into_iter()
                    .find(|r| r.scope == *scope)
                else {
                    break;
                };
                if crate::search::current_at(r.status, r.update_time, at) {
                    current = Some(r);
                    break;
                }
                let later = self.store.history(&scope.project_id, &r.id).await?;
                match later
                    .iter()
                    .rev()
                    .find(|c| c.kind == ChangeKind::Superseded)
                    .and_then(|c| c.related_id.clone())
                {
                    Some(id) => next = id,
                    None => break,
                }
            }
            let Some(replacement) = current else { continue };
            if input
                .filter
                .as_ref()
                .is_some_and(|f| !f.matches(&replacement))
                || at.is_some_and(|t| replacement.create_time > t)
            {
                continue;
            }
            let Some(t_pos) = ranked.iter().position(|x| x.2.id == turn) else {
                continue;
            };
            let (score, relativity) = (ranked[t_pos].0, ranked[t_pos].1);
            let entry = match ranked.iter().position(|x| x.2.id == replacement.id) {
                Some(r_pos) if r_pos < t_pos => continue,
                Some(r_pos) => {
                    let (s, r, m) = ranked.remove(r_pos);
                    (s.max(score), r.max(relativity), m)
                }
                // Retrieved but not read: what reading it would have ranked it by.
                None => match unread.iter().find(|c| c.id == replacement.id) {
                    Some(c) if listed(&replacement, input) => (
                        c.score.max(score),
                        c.relativity.max(relativity),
                        replacement,
                    ),
                    _ => (score, relativity, replacement),
                },
            };
            why.entry(turn.clone()).or_default().outdated_by = Some(entry.2.id.clone());
            why.entry(entry.2.id.clone()).or_default().replaces = Some(turn.clone());
            ranked.insert(t_pos, entry);
        }
        Ok(ranked)
    }

    /// Keeps the top `limit` of `ranked`, moving any item nearly identical to a better one
    /// below the rest (maximal marginal relevance with a similarity floor: only near-copies
    /// pay, so ordinary results keep their order). Also says whether `limit` items that are
    /// no copies were found: then nothing further down `ranked` could change the answer. Similarity is the overlap of the word
    /// sets: vector cosines cannot tell a copy from a paraphrase (e5 puts most related
    /// sentences above 0.9), and suppressing paraphrases cost recall on LoCoMo.
    pub(super) fn suppress_duplicates(
        &self,
        ranked: Vec<(f32, f32, Memory)>,
        limit: usize,
    ) -> (Vec<(f32, f32, Memory)>, bool) {
        let threshold = self.config.search.duplicate_similarity;
        if threshold > 1.0 || ranked.len() <= 1 {
            let full = ranked.len() >= limit;
            return (ranked.into_iter().take(limit).collect(), full);
        }
        // Each memory's distinct terms, sorted: two sets' overlap is then one merge of
        // string comparisons, where hashed sets hashed every term of both for each pair.
        let words = |m: &Memory| -> Vec<String> {
            let mut w = crate::text::terms(&embedding_text(m));
            w.sort_unstable();
            w.dedup();
            w
        };
        let mut kept: Vec<((f32, f32, Memory), Vec<String>)> = Vec::with_capacity(limit);
        let mut copies = Vec::new();
        for item in ranked {
            if kept.len() == limit {
                break;
            }
            let w = words(&item.2);
            if kept.iter().any(|(_, k)| jaccard(k, &w) >= threshold) {
                copies.push(item);
            } else {
                kept.push((item, w));
            }
        }
        let full = kept.len() == limit;
        let mut out: Vec<(f32, f32, Memory)> = kept.into_iter().map(|(i, _)| i).collect();
        let room = limit - out.len();
        out.extend(copies.into_iter().take(room));
        (out, full)
    }

    /// The agent's tool trajectories most relevant to a query (MemOS's tool memory), ranked
    /// like [`Self::search`], with the same filter and `query_time`.
    pub async fn search_tools(
        &self,
        project_id: &str,
        input: &SearchInput,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        let hits = self
            .search(
                project_id,
                SearchInput {
                    filter: Some(narrowed(
                        input.filter.as_ref(),
                        Condition::MemoryType(MemoryType::ToolTrajectoryMemory),
                    )),
                    limit: Some(limit.clamp(1, self.config.search.max_limit)),
                    ..input.clone()
                },
            )
            .await?;
        Ok(hits
            .into_iter()
            .filter(|h| h.memory.memory_type == MemoryType::ToolTrajectoryMemory)
            .collect())
    }

    /// The user's stated preferences most relevant to a query (profile items tagged
    /// [`fast::PREFERENCE_TAG`]), ranked like [`Self::search`], with the same filter and
    /// `query_time`.
    pub async fn search_preferences(
        &self,
        project_id: &str,
        input: &SearchInput,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        // Tags compare lower-cased, as a parsed `contains` condition does.
        let filter = narrowed(
            input.filter.as_ref(),
            Condition::TagContains(fast::PREFERENCE_TAG.to_lowercase()),
        );
        let limit = limit.clamp(1, self.config.search.max_limit);
        let hits: Vec<SearchHit> = self
            .search(
                project_id,
                SearchInput {
                    filter: Some(filter.clone()),
                    limit: Some(limit),
                    ..input.clone()
                },
            )
            .await?
            .into_iter()
            .filter(|h| h.memory.tags.iter().any(|t| t == fast::PREFERENCE_TAG))
            .collect();
        self.preferences_that_matter(project_id, input, &filter, hits, limit)
            .await
    }

    /// Preferences ranked by how much they should shape the answer, not only by the words
    /// they share with the query: "what should I eat in Rome?" needs the dietary ones, a
    /// trip the travel ones, any answer the wishes about the assistant. Each of the user's
    /// current preferences (a few dozen at most, newest first) scores its match with the
    /// query plus a lift when its topic is one the query calls for.
    async fn preferences_that_matter(
        &self,
        project_id: &str,
        input: &SearchInput,
        filter: &Filter,
        hits: Vec<SearchHit>,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        use crate::ingest::facts::{Topic, query_needs};
        let needs = query_needs(crate::text::split_dialogue(&input.query).0);
        let mut scored: Vec<(f32, SearchHit)> =
            hits.into_iter().map(|h| (h.relativity, h)).collect();
        let reference = input.query_time;
        // The hits were read for this request: only the preferences they miss are read.
        let read: Vec<&Memory> = scored.iter().map(|(_, h)| &h.memory).collect();
        let known: Vec<Memory> = self
            .preferences_as_of(
                project_id,
                &input.user_id,
                PREFERENCES_CONSIDERED,
                input.since.unwrap_or_else(std::time::Instant::now),
                &read,
            )
            .await?
            .into_iter()
            .filter(|m| filter.matches(m))
            .filter(|m| reference.is_none_or(|t| m.create_time <= t))
            .collect();
        let lift = |m: &Memory| -> f32 {
            match Topic::of_preference_key(&m.key) {
                Some(Topic::Assistant) => ASSISTANT_LIFT,
                Some(t) => needs
                    .iter()
                    .find(|(n, _)| *n == t)
                    .map_or(0.0, |(_, w)| TOPIC_LIFT * w),
                None => 0.0,
            }
        };
        for (score, hit) in scored.iter_mut() {
            *score += lift(&hit.memory);
        }
        for m in known {
            if scored.iter().any(|(_, h)| h.memory.id == m.id) {
                continue;
            }
            let l = lift(&m);
            if l > 0.0 {
                scored.push((
                    l,
                    SearchHit {
                        memory_type: m.memory_type,
                        relativity: l.min(1.0),
                        explain: None,
                        memory: m,
                    },
                ));
            }
        }
        // Stable: equal scores keep the retrievers' order, then the newest first.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(scored
            .into_iter()
            .take(limit)
            .map(|(score, mut h)| {
                h.relativity = h.relativity.max(score.min(1.0));
                h
            })
            .collect())
    }

    /// A user's profile: every active `UserMemory` item, grouped by headline (topic), the
    /// biggest group first, newest items first within a group.
    pub async fn profile(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Vec<(String, Vec<Memory>)>> {
        self.check_user(user_id)?;
        let scope = Scope::new(project_id, user_id);
        // One read of the newest current items: paging through them cost a count and an
        // ever longer offset scan per page, seconds for a user of 100k memories.
        let q = ListQuery {
            filter: Some(Filter::only(Condition::MemoryType(MemoryType::UserMemory))),
            limit: PROFILE_ITEMS,
            statuses: Some(vec![MemoryStatus::Activated]),
            ..Default::default()
        };
        let mut groups: Vec<(String, Vec<Memory>)> = Vec::new();
        for m in self.store.list_memories(&scope, &q).await?.items {
            match groups.iter_mut().find(|(k, _)| *k == m.key) {
                Some((_, g)) => g.push(m),
                None => groups.push((m.key.clone(), vec![m])),
            }
        }
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        Ok(groups)
    }

    /// Ids of the newest memories of a conversation: what shows as `WorkingMemory`.
    pub(super) async fn working_set(
        &self,
        scope: &Scope,
        conversation_id: Option<&str>,
    ) -> Result<HashSet<String>> {
        let Some(conv) = conversation_id else {
            return Ok(HashSet::new());
        };
        let n = self.config.search.working_memory_size;
        if n == 0 {
            return Ok(HashSet::new());
        }
        let q = ListQuery {
            conversation_id: Some(conv.to_string()),
            limit: n,
            ..Default::default()
        };
        Ok(self
            .store
            .list_memories(scope, &q)
            .await?
            .items
            .into_iter()
            .map(|m| m.id)
            .collect())
    }
}

/// Most profile items (the newest) a profile reads.
pub(super) const PROFILE_ITEMS: usize = 2_500;

/// The Jaccard similarity of two sorted sets without repeats (1 for two empty sets).
fn jaccard(a: &[String], b: &[String]) -> f32 {
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - common;
    if union == 0 {
        1.0
    } else {
        common as f32 / union as f32
    }
}

/// `filter` and `also`: one more `and` condition. An `or` filter cannot take one, so it
/// stays as it is and the caller keeps only what `also` would have let through.
fn narrowed(filter: Option<&Filter>, also: Condition) -> Filter {
    match filter {
        None => Filter::only(also),
        Some(f) if f.logic == Logic::And => {
            let mut f = f.clone();
            f.conditions.push(also);
            f
        }
        Some(f) => f.clone(),
    }
}

/// Whether a filter asks for memories of type `t` by name.
pub(super) fn names_type(filter: Option<&Filter>, t: MemoryType) -> bool {
    filter.is_some_and(|f| f.conditions.contains(&Condition::MemoryType(t)))
}
