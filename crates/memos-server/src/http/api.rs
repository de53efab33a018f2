//! Handlers of `/api/openmem/v1`. Each one converts its wire request, calls the service
//! and wraps the answer in the envelope; no domain logic lives here.

use axum::Json;
use axum::extract::{Path, State};
use memos_core::filter::Filter;
use memos_core::model::MemoryStatus;
use memos_core::service::{FeedbackInput, ListInput, SearchInput, SearchMode, UpdateInput};
use memos_core::{Error, time};
use serde_json::Value;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Body, Project};
use super::openapi::Answer;
use super::wire::*;

/// Most recent messages `get/message` returns by default (MemOS's default).
const DEFAULT_MESSAGE_LIMIT: usize = 6;
/// Page size of `get/memory` by default (MemOS's default).
const DEFAULT_PAGE_SIZE: usize = 10;
/// Preferences `get/memory` lists beside a page.
const DEFAULT_PREFERENCE_LIST: usize = 50;
/// MemOS's default `preference_limit_number`.
const DEFAULT_PREFERENCES: usize = 6;

/// The subject's profile instances for `profile_detail_list`, when it has any.
fn profile_list(profiles: Vec<memos_core::service::Profile>) -> Option<Vec<ProfileDetail>> {
    (!profiles.is_empty()).then(|| profiles.into_iter().map(ProfileDetail::from).collect())
}

fn parse_filter(v: Option<Value>) -> Result<Option<Filter>, Error> {
    v.map_or(Ok(None), |v| Filter::parse(&v))
}

/// `POST add/message`
#[utoipa::path(
    post,
    path = "/api/openmem/v1/add/message",
    tag = "memories",
    request_body = AddMessageRequest,
    responses((status = 200, description = "Accepted (async) or stored and searchable (sync)", body = Answer<AddData>,
        // For clients that follow links (and schemathesis' stateful phase): what an add's
        // answer leads to.
        links(
            ("GetStatus" = (operation_id = "get_status", request_body = json!({"task_id": "$response.body#/data/task_id"}), description = "Follow the add's task")),
            ("GetMemoryById" = (operation_id = "get_memory_by_id", parameters(("memory_id" = "$response.body#/data/memory_ids/0")), description = "A sync add's first memory")),
            ("SearchMemory" = (operation_id = "search_memory", request_body = json!({"user_id": "$request.body#/user_id", "query": "$request.body#/messages/0/content"}), description = "Search the user's memories for what was just said")),
        )), super::openapi::Errors)
)]
pub async fn add_message(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<AddMessageRequest>,
) -> ApiResult<Json<Answer<AddData>>> {
    let out = state.service.add(&project, req.into_input()?).await?;
    Ok(Answer::ok(AddData {
        success: true,
        task_id: out.task_id,
        status: out.status.as_str(),
        refine_task_id: out.refine_task_id,
        memory_ids: out.memory_ids,
    }))
}

/// `POST search/memory`
#[utoipa::path(
    post,
    path = "/api/openmem/v1/search/memory",
    tag = "memories",
    request_body = SearchMemoryRequest,
    responses((status = 200, description = "The ranked memories, preferences and profiles", body = Answer<SearchData>,
        links(
            ("GetMemoryById" = (operation_id = "get_memory_by_id", parameters(("memory_id" = "$response.body#/data/memory_detail_list/0/id")), description = "The first result")),
            ("GetHistory" = (operation_id = "get_history", request_body = json!({"memory_id": "$response.body#/data/memory_detail_list/0/id"}), description = "The first result's history")),
            ("UpdateMemory" = (operation_id = "update_memory", request_body = json!({"memory_id": "$response.body#/data/memory_detail_list/0/id", "tags": ["linked"]}), description = "Tag the first result")),
            ("DeleteMemory" = (operation_id = "delete_memory", request_body = json!({"memory_ids": ["$response.body#/data/memory_detail_list/0/id"]}), description = "Delete the first result")),
        )), super::openapi::Errors)
)]
pub async fn search_memory(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<SearchMemoryRequest>,
) -> ApiResult<Json<Answer<SearchData>>> {
    req.check_sdk_fields()?;
    let query_time = match req.query_time {
        None | Some(Value::Null) => None,
        Some(v) => Some(time::parse_value(&v).ok_or_else(|| {
            Error::invalid(
                "query_time",
                "query_time must be an ISO 8601 time, epoch seconds or milliseconds, or a date in words (3 May 2025 3pm, 2025年5月3日 下午3点)",
            )
        })?),
    };
    let input = SearchInput {
        user_id: subject(req.user_id, req.agent_id.clone())?,
        query: req.query.unwrap_or_default(),
        conversation_id: req.conversation_id.filter(|c| !c.is_empty()),
        limit: req.memory_limit_number,
        filter: parse_filter(req.filter)?,
        query_time,
        mode: SearchMode::Hybrid,
        // One moment for the memories, preferences and tools searched below.
        since: Some(std::time::Instant::now()),
    };
    let preference_limit = req.preference_limit_number.unwrap_or(DEFAULT_PREFERENCES);
    if preference_limit > state.service.config().search.max_limit {
        return Err(Error::invalid(
            "preference_limit_number",
            format!(
                "preference_limit_number must be at most {}",
                state.service.config().search.max_limit
            ),
        )
        .into());
    }
    let tool_limit = req.tool_memory_limit_number.unwrap_or(DEFAULT_PREFERENCES);
    if tool_limit > state.service.config().search.max_limit {
        return Err(Error::invalid(
            "tool_memory_limit_number",
            format!(
                "tool_memory_limit_number must be at most {}",
                state.service.config().search.max_limit
            ),
        )
        .into());
    }
    let include_tools = req.include_tool_memory.unwrap_or(false);
    let tools = async {
        if include_tools && tool_limit > 0 {
            state
                .service
                .search_tools(&project, &input, tool_limit)
                .await
        } else {
            Ok(vec![])
        }
    };
    // All at once: they share the query's embedding, and while one scans another ranks.
    let preferences = async {
        if req.include_preference.unwrap_or(true) && preference_limit > 0 {
            state
                .service
                .search_preferences(&project, &input, preference_limit)
                .await
        } else {
            Ok(vec![])
        }
    };
    let knowledge = kb_select(req.knowledgebase_ids, "knowledgebase_ids")?;
    let limit = input
        .limit
        .unwrap_or(state.service.config().search.default_limit);
    let (hits, kb_hits, preferences, tools, profiles) = tokio::join!(
        state.service.search(&project, input.clone()),
        state.service.search_knowledge(&project, &knowledge, &input),
        preferences,
        tools,
        state.service.profiles(&project, &input.user_id)
    );
    let hits = memos_core::service::merge_hits(hits?, kb_hits?, limit);
    // `relativity` is MemOS's score threshold: results below it are left out.
    let floor = req.relativity.unwrap_or(0.0);
    let preferences: Vec<PreferenceDetail> = preferences?
        .into_iter()
        .filter(|h| h.relativity >= floor)
        .map(PreferenceDetail::from)
        .collect();
    let explain = req.explain.unwrap_or(false);
    let list: Vec<MemoryDetail> = hits
        .into_iter()
        .filter(|h| h.relativity >= floor)
        .map(|h| MemoryDetail::explained(h, explain))
        .collect();
    let tools = tools?;
    Ok(Answer::ok(SearchData {
        memory_detail_list: list,
        preference_note: preference_note(&preferences),
        preference_detail_list: preferences,
        tool_memory_detail_list: include_tools.then(|| {
            tools
                .into_iter()
                .filter(|h| h.relativity >= floor)
                .map(ToolMemoryDetail::from)
                .collect()
        }),
        profile_detail_list: profile_list(profiles?),
        // memos keeps no skill memories yet: asked for, the list is empty.
        skill_detail_list: req.include_skill.unwrap_or(false).then(Vec::new),
    }))
}

/// `POST get/profile`: the user's profile items grouped by topic.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/get/profile",
    tag = "memories",
    request_body = GetProfileRequest,
    responses((status = 200, description = "The profile by topic", body = Answer<ProfileData>), super::openapi::Errors)
)]
pub async fn get_profile(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<GetProfileRequest>,
) -> ApiResult<Json<Answer<ProfileData>>> {
    let user_id = required(req.user_id, "user_id")?;
    let groups = state.service.profile(&project, &user_id).await?;
    let total: usize = groups.iter().map(|(_, g)| g.len()).sum();
    let topics: Vec<ProfileTopic> = groups
        .into_iter()
        .map(|(key, items)| ProfileTopic {
            memory_key: key,
            memory_detail_list: items.into_iter().map(MemoryDetail::from).collect(),
        })
        .collect();
    let profiles: Vec<ProfileDetail> = state
        .service
        .profiles(&project, &user_id)
        .await?
        .into_iter()
        .map(ProfileDetail::from)
        .collect();
    Ok(Answer::ok(ProfileData {
        user_id,
        total,
        profile: topics,
        profile_detail_list: profiles,
    }))
}

/// `POST get/memory`
#[utoipa::path(
    post,
    path = "/api/openmem/v1/get/memory",
    tag = "memories",
    request_body = GetMemoryRequest,
    responses((status = 200, description = "One page of the subject's memories", body = Answer<MemoryPage>), super::openapi::Errors)
)]
pub async fn get_memory(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<GetMemoryRequest>,
) -> ApiResult<Json<Answer<MemoryPage>>> {
    req.check_sdk_fields()?;
    let size = req.size.unwrap_or(DEFAULT_PAGE_SIZE);
    let page = req.page.unwrap_or(1);
    let statuses = req.statuses()?;
    let input = ListInput {
        user_id: subject(req.user_id, req.agent_id.clone())?,
        page,
        size,
        statuses,
        filter: parse_filter(req.filter)?,
    };
    let user_id = input.user_id.clone();
    let out = state.service.list(&project, input).await?;
    let list: Vec<MemoryDetail> = out.items.into_iter().map(MemoryDetail::from).collect();
    // The user's preferences beside the page (MemOS's default), newest first.
    let preferences: Vec<PreferenceDetail> = if req.include_preference.unwrap_or(true) {
        state
            .service
            .preferences(&project, &user_id, DEFAULT_PREFERENCE_LIST)
            .await?
            .into_iter()
            .map(PreferenceDetail::from)
            .collect()
    } else {
        vec![]
    };
    let tools = if req.include_tool_memory.unwrap_or(false) {
        Some(
            state
                .service
                .tool_memories(&project, &user_id, size)
                .await?
                .into_iter()
                .map(ToolMemoryDetail::from)
                .collect(),
        )
    } else {
        None
    };
    Ok(Answer::ok(MemoryPage {
        memory_detail_list: list,
        preference_detail_list: preferences,
        total: out.total,
        size,
        current: page,
        pages: out.total.div_ceil(size),
        profile_detail_list: profile_list(state.service.profiles(&project, &user_id).await?),
        tool_memory_detail_list: tools,
    }))
}

/// `GET get/memory/{memory_id}`
#[utoipa::path(
    get,
    path = "/api/openmem/v1/get/memory/{memory_id}",
    tag = "memories",
    params(("memory_id" = String, Path, description = "The memory's id")),
    responses((status = 200, description = "The memory", body = Answer<MemoryDetail>), super::openapi::Errors)
)]
pub async fn get_memory_by_id(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Answer<MemoryDetail>>> {
    let m = state.service.get(&project, None, &id).await?;
    Ok(Answer::ok(MemoryDetail::from(m)))
}

/// `POST get/message`
#[utoipa::path(
    post,
    path = "/api/openmem/v1/get/message",
    tag = "memories",
    request_body = GetMessageRequest,
    responses((status = 200, description = "The conversation's recent messages", body = Answer<MessageList>), super::openapi::Errors)
)]
pub async fn get_message(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<GetMessageRequest>,
) -> ApiResult<Json<Answer<MessageList>>> {
    let user = required(req.user_id, "user_id")?;
    let conv = required(req.conversation_id, "conversation_id")?;
    let limit = req.message_limit_number.unwrap_or(DEFAULT_MESSAGE_LIMIT);
    let msgs = state
        .service
        .messages(&project, &user, &conv, limit)
        .await?;
    let list: Vec<MessageDetail> = msgs.into_iter().map(MessageDetail::from).collect();
    Ok(Answer::ok(MessageList {
        message_detail_list: list,
    }))
}

/// `POST get/conversations` (our extension): a user's conversations, the one with the
/// latest message first, with their sizes; paged. What `get/message` reads one of.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/get/conversations",
    tag = "memories",
    request_body = GetConversationsRequest,
    responses((status = 200, description = "One page of the user's conversations", body = Answer<ConversationPage>), super::openapi::Errors)
)]
pub async fn get_conversations(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<GetConversationsRequest>,
) -> ApiResult<Json<Answer<ConversationPage>>> {
    let user = required(req.user_id, "user_id")?;
    let size = req.size.unwrap_or(DEFAULT_PAGE_SIZE);
    let page = req.page.unwrap_or(1);
    let out = state
        .service
        .conversations(&project, &user, page, size)
        .await?;
    Ok(Answer::ok(ConversationPage {
        conversation_detail_list: out
            .items
            .into_iter()
            .map(ConversationDetail::from)
            .collect(),
        total: out.total,
        size,
        current: page,
        pages: out.total.div_ceil(size),
    }))
}

/// `POST get/users` (our extension): the project's users (and agents with memory of
/// their own), most recently changed first, with their memory counts; paged.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/get/users",
    tag = "memories",
    request_body = GetUsersRequest,
    responses((status = 200, description = "One page of the project's users", body = Answer<UserPage>), super::openapi::Errors)
)]
pub async fn get_users(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<GetUsersRequest>,
) -> ApiResult<Json<Answer<UserPage>>> {
    let size = req.size.unwrap_or(DEFAULT_PAGE_SIZE);
    let page = req.page.unwrap_or(1);
    let out = state.service.users(&project, page, size).await?;
    let list: Vec<UserDetail> = out.items.into_iter().map(UserDetail::from).collect();
    Ok(Answer::ok(UserPage {
        user_detail_list: list,
        total: out.total,
        size,
        current: page,
        pages: out.total.div_ceil(size),
    }))
}

/// `POST delete/memory`: by ids, by filter and/or memory type (with `user_id`), or a
/// whole user (erased) when `user_id` comes alone.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/delete/memory",
    tag = "memories",
    request_body = DeleteMemoryRequest,
    responses((status = 200, description = "Deleted", body = Answer<DeleteData>), super::openapi::Errors)
)]
pub async fn delete_memory(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<DeleteMemoryRequest>,
) -> ApiResult<Json<Answer<DeleteData>>> {
    let hard = req.hard.unwrap_or(false);
    let deleted = match req.selection()? {
        DeleteSelection::Ids { ids, user_id } => {
            let user = user_id.filter(|u| !u.is_empty());
            state
                .service
                .delete(&project, user.as_deref(), &ids, hard)
                .await?
        }
        DeleteSelection::Matching { user_id, filter } => {
            state
                .service
                .delete_matching(&project, user_id.as_deref(), &filter, hard)
                .await?
        }
        // The privacy path: always erased, chat log and history included.
        DeleteSelection::User(user) => state.service.delete_user(&project, &user).await?,
    };
    Ok(Answer::ok(DeleteData {
        success: true,
        deleted_count: deleted,
        hard,
    }))
}

/// `POST update/memory`: edit a memory's text, headline, tags or status.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/update/memory",
    tag = "memories",
    request_body = UpdateMemoryRequest,
    responses((status = 200, description = "The memory as edited", body = Answer<UpdateData>), super::openapi::Errors)
)]
pub async fn update_memory(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<UpdateMemoryRequest>,
) -> ApiResult<Json<Answer<UpdateData>>> {
    let status = match req.status.as_deref() {
        None => None,
        Some(s) => Some(
            MemoryStatus::parse(s)
                .ok_or_else(|| Error::invalid("status", "status must be activated or archived"))?,
        ),
    };
    let input = UpdateInput {
        user_id: req.user_id.filter(|u| !u.is_empty()),
        memory_id: required(req.memory_id, "memory_id")?,
        value: req.memory_value,
        key: req.memory_key,
        tags: req.tags,
        status,
        note: None,
    };
    let m = state.service.update(&project, input).await?;
    Ok(Answer::ok(UpdateData {
        success: true,
        memory: MemoryDetail::from(m),
    }))
}

/// `POST add/feedback`: a correction in the user's words, applied like an add.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/add/feedback",
    tag = "memories",
    request_body = AddFeedbackRequest,
    responses((status = 200, description = "Applied and searchable", body = Answer<FeedbackData>), super::openapi::Errors)
)]
pub async fn add_feedback(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<AddFeedbackRequest>,
) -> ApiResult<Json<Answer<FeedbackData>>> {
    let time = match req.feedback_time {
        None | Some(Value::Null) => None,
        Some(v) => Some(time::parse_value(&v).ok_or_else(|| {
            Error::invalid(
                "feedback_time",
                "feedback_time must be an ISO 8601 time, epoch seconds or milliseconds, or a date in words (3 May 2025 3pm, 2025年5月3日 下午3点)",
            )
        })?),
    };
    let input = FeedbackInput {
        user_id: required(req.user_id, "user_id")?,
        conversation_id: required(req.conversation_id, "conversation_id")?,
        content: required(req.feedback_content, "feedback_content")?,
        time,
        agent_id: req.agent_id,
        app_id: req.app_id,
        knowledgebase_ids: req.allow_knowledgebase_ids.unwrap_or_default(),
        public: req.allow_public.unwrap_or(false),
    };
    let out = state.service.feedback(&project, input).await?;
    Ok(Answer::ok(FeedbackData {
        success: true,
        task_id: out.task_id,
        status: out.status.as_str(),
        memory_ids: out.memory_ids,
        refine_task_id: out.refine_task_id,
    }))
}

/// `POST get/history`: a memory and every change it went through, oldest first.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/get/history",
    tag = "memories",
    request_body = GetHistoryRequest,
    responses((status = 200, description = "The memory and its history", body = Answer<HistoryData>), super::openapi::Errors)
)]
pub async fn get_history(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<GetHistoryRequest>,
) -> ApiResult<Json<Answer<HistoryData>>> {
    let id = required(req.memory_id, "memory_id")?;
    let user = req.user_id.filter(|u| !u.is_empty());
    let (m, history) = state
        .service
        .history(&project, user.as_deref(), &id)
        .await?;
    let history: Vec<ChangeDetail> = history.into_iter().map(ChangeDetail::from).collect();
    Ok(Answer::ok(HistoryData {
        memory: MemoryDetail::from(m),
        history,
    }))
}

/// `POST extract/memory`: the facts and preferences the messages state, stored nowhere:
/// `{memory: [...], preference: [...]}` (each list only when asked for).
#[utoipa::path(
    post,
    path = "/api/openmem/v1/extract/memory",
    tag = "memories",
    request_body = ExtractMemoryRequest,
    responses((status = 200, description = "What an add would remember", body = Answer<Extracted>), super::openapi::Errors)
)]
pub async fn extract_memory(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<ExtractMemoryRequest>,
) -> ApiResult<Json<Answer<Extracted>>> {
    let (messages, memory, preference) = req.into_parts()?;
    let out = state.service.extract(&project, &messages).await?;
    Ok(Answer::ok(Extracted {
        memory: memory.then(|| out.memories.into_iter().map(Into::into).collect()),
        preference: preference.then(|| out.preferences.into_iter().map(Into::into).collect()),
    }))
}

/// `POST rerank`: the documents ordered by relevance to the query, in MemOS's shape
/// (`{id, model, results: [{index, document: {text}, relevance_score}]}`).
#[utoipa::path(
    post,
    path = "/api/openmem/v1/rerank",
    tag = "memories",
    request_body = RerankRequest,
    responses((status = 200, description = "The documents, most relevant first", body = Answer<Reranked>), super::openapi::Errors)
)]
pub async fn rerank(
    State(state): State<AppState>,
    Project(_project, _turn): Project,
    Body(req): Body<RerankRequest>,
) -> ApiResult<Json<Answer<Reranked>>> {
    let own = state
        .service
        .embedder()
        .map_or("bm25", |e| e.model_id())
        .to_string();
    if let Some(m) = req.model.as_deref()
        && !m.is_empty()
        && !RERANK_MODELS.contains(&m)
        && m != own
    {
        return Err(Error::invalid(
            "model",
            format!(
                "model `{m}` is not served; send {}, {} or {own}",
                RERANK_MODELS[0], RERANK_MODELS[1]
            ),
        )
        .into());
    }
    let query = required(req.query, "query")?;
    let documents = req.documents.ok_or_else(|| Error::required("documents"))?;
    let ranked = state.service.rerank(&query, &documents, req.top_n).await?;
    let results: Vec<RerankResult> = ranked
        .into_iter()
        .map(|r| RerankResult {
            index: r.index,
            document: RerankDocument {
                text: documents[r.index].clone(),
            },
            relevance_score: r.relevance,
        })
        .collect();
    Ok(Answer::ok(Reranked {
        id: format!("rerank-{}", memos_core::model::new_id()),
        model: own.to_string(),
        results,
    }))
}

/// `POST get/status`
#[utoipa::path(
    post,
    path = "/api/openmem/v1/get/status",
    tag = "memories",
    request_body = GetStatusRequest,
    responses((status = 200, description = "The task's state", body = Answer<TaskDetail>), super::openapi::Errors)
)]
pub async fn get_status(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<GetStatusRequest>,
) -> ApiResult<Json<Answer<TaskDetail>>> {
    let task = state
        .service
        .task(&project, &required(req.task_id, "task_id")?)
        .await?;
    Ok(Answer::ok(TaskDetail::from(task)))
}
