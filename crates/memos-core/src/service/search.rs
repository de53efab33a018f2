//! Searches: hybrid ranking of a user's memories, the preference channel, and the profile.

use std::collections::{HashMap, HashSet};

use crate::dates;
use crate::error::{Error, InputErrorKind, Result};
use crate::filter::{Condition, Filter, Logic};
use crate::ingest::fast;
use crate::model::*;
use crate::search::{TimeRange, fusion};
use crate::store::ListQuery;

use super::MemoryService;
use super::embedding::embedding_text;
use super::input::{MAX_PAGE_SIZE, SearchHit, SearchInput, SearchMode};

impl MemoryService {
    /// The memories most relevant to a query, best first.
    pub async fn search(&self, project_id: &str, input: SearchInput) -> Result<Vec<SearchHit>> {
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
        // "last week", "in May", "上个月": the retrievers run once more inside that window, so
        // memories from then both enter the pool and, found twice, rank higher.
        let window = if s.date_weight > 0.0 {
            dates::find(&input.query, reference)
        } else {
            None
        };
        let mut ranges = vec![(1.0, time)];
        if let Some(w) = &window {
            ranges.push((s.date_weight, time.within(w.start, w.end)));
        }
        let mut lists = Vec::new();
        for (weight, range) in ranges {
            // Both retrievers at once: over PostgreSQL the database runs the BM25 query
            // while this process embeds the query.
            let lexical = async {
                if input.mode == SearchMode::Dense {
                    return Ok(None);
                }
                self.lexical_candidates(&scope, &input.query, input.filter.as_ref(), range, pool)
                    .await
                    .map(Some)
            };
            let dense = async {
                if input.mode == SearchMode::Lexical || self.embedder.is_none() {
                    return Ok(None);
                }
                self.dense_candidates(&scope, &input, range, pool)
                    .await
                    .map(Some)
            };
            let (bm25, dense) = tokio::join!(lexical, dense);
            if let Some(bm25) = bm25? {
                lists.push((weight * s.lexical_weight, bm25));
            }
            if let Some(dense) = dense? {
                lists.push((weight * s.dense_weight, dense));
            }
        }
        let fused = if s.fusion == crate::config::Fusion::Rrf {
            fusion::fuse(&lists)
        } else {
            fusion::fuse_scores(&lists)
        };
        let ids: Vec<String> = fused.iter().map(|c| c.id.clone()).collect();
        let mut by_id: HashMap<String, Memory> = self
            .store
            .get_memories(project_id, &ids)
            .await?
            .into_iter()
            .map(|m| (m.id.clone(), m))
            .collect();
        let tools = names_type(input.filter.as_ref(), MemoryType::ToolTrajectoryMemory);
        let mut ranked: Vec<(f32, f32, Memory)> = fused
            .into_iter()
            .filter_map(|c| {
                // The index is derived data: trust only what the store confirms for this user.
                let m = by_id.remove(&c.id).filter(|m| m.scope == scope)?;
                // Tool trajectories have a channel of their own (`search_tools`).
                if m.memory_type == MemoryType::ToolTrajectoryMemory && !tools {
                    return None;
                }
                let boost = match &input.conversation_id {
                    Some(conv) if *conv == m.conversation_id => s.conversation_boost,
                    _ => 1.0,
                };
                Some((c.score * boost, (c.relativity * boost).clamp(0.0, 1.0), m))
            })
            .collect();
        // Stable: equal keys keep the fused order.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let ranked = self.suppress_duplicates(ranked, limit);
        let working = self
            .working_set(&scope, input.conversation_id.as_deref())
            .await?;
        Ok(ranked
            .into_iter()
            .map(|(_, relativity, m)| SearchHit {
                memory_type: if working.contains(&m.id) {
                    MemoryType::WorkingMemory
                } else {
                    m.memory_type
                },
                relativity,
                memory: m,
            })
            .collect())
    }

    /// Keeps the top `limit` of `ranked`, moving any item nearly identical to a better one
    /// below the rest (maximal marginal relevance with a similarity floor: only near-copies
    /// pay, so ordinary results keep their order). Similarity is the overlap of the word
    /// sets: vector cosines cannot tell a copy from a paraphrase (e5 puts most related
    /// sentences above 0.9), and suppressing paraphrases cost recall on LoCoMo.
    pub(super) fn suppress_duplicates(
        &self,
        ranked: Vec<(f32, f32, Memory)>,
        limit: usize,
    ) -> Vec<(f32, f32, Memory)> {
        let threshold = self.config.search.duplicate_similarity;
        if threshold > 1.0 || ranked.len() <= 1 {
            return ranked.into_iter().take(limit).collect();
        }
        let words = |m: &Memory| -> HashSet<String> {
            crate::text::terms(&embedding_text(m)).into_iter().collect()
        };
        let similarity = |a: &HashSet<String>, b: &HashSet<String>| {
            let union = a.union(b).count();
            if union == 0 {
                1.0
            } else {
                a.intersection(b).count() as f32 / union as f32
            }
        };
        let mut kept: Vec<((f32, f32, Memory), HashSet<String>)> = Vec::with_capacity(limit);
        let mut copies = Vec::new();
        for item in ranked {
            if kept.len() == limit {
                break;
            }
            let w = words(&item.2);
            if kept.iter().any(|(_, k)| similarity(k, &w) >= threshold) {
                copies.push(item);
            } else {
                kept.push((item, w));
            }
        }
        let mut out: Vec<(f32, f32, Memory)> = kept.into_iter().map(|(i, _)| i).collect();
        let room = limit - out.len();
        out.extend(copies.into_iter().take(room));
        out
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
        let hits = self
            .search(
                project_id,
                SearchInput {
                    filter: Some(filter),
                    limit: Some(limit.clamp(1, self.config.search.max_limit)),
                    ..input.clone()
                },
            )
            .await?;
        Ok(hits
            .into_iter()
            .filter(|h| h.memory.tags.iter().any(|t| t == fast::PREFERENCE_TAG))
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
        let filter = Some(Filter::only(Condition::MemoryType(MemoryType::UserMemory)));
        let mut groups: Vec<(String, Vec<Memory>)> = Vec::new();
        let mut page = 0;
        loop {
            let q = ListQuery {
                filter: filter.clone(),
                limit: MAX_PAGE_SIZE,
                offset: page * MAX_PAGE_SIZE,
                ..Default::default()
            };
            let items = self.store.list_memories(&scope, &q).await?.items;
            let done = items.len() < MAX_PAGE_SIZE || page >= PROFILE_PAGES;
            for m in items {
                if m.status != MemoryStatus::Activated {
                    continue;
                }
                match groups.iter_mut().find(|(k, _)| *k == m.key) {
                    Some((_, g)) => g.push(m),
                    None => groups.push((m.key.clone(), vec![m])),
                }
            }
            if done {
                break;
            }
            page += 1;
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

/// Pages of [`MAX_PAGE_SIZE`] a profile reads at most (2,500 items).
pub(super) const PROFILE_PAGES: usize = 50;

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
