//! Handlers of profile templates and profile instances (MemOS's attribute memory):
//! `add/`, `update/`, `delete/`, `get/profile_template`, `bind/profile_template`,
//! `edit/profile`, `delete/profile`.

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Body, Project};
use super::openapi::Answer;
use super::wire::*;

/// `POST add/profile_template`: a new template; answers its id.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/add/profile_template",
    tag = "profiles",
    request_body = AddProfileTemplateRequest,
    responses((status = 200, description = "The new template", body = Answer<CreatedTemplate>), super::openapi::Errors)
)]
pub async fn add_profile_template(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<AddProfileTemplateRequest>,
) -> ApiResult<Json<Answer<CreatedTemplate>>> {
    let name = required(req.name, "name")?;
    let metadata =
        tree(req.metadata, "metadata")?.ok_or_else(|| memos_core::Error::required("metadata"))?;
    let id = state
        .service
        .create_profile_template(&project, &name, metadata)
        .await?;
    Ok(Answer::ok(CreatedTemplate {
        profile_template_id: id,
    }))
}

/// `POST update/profile_template`: the whole template anew, carried to every instance.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/update/profile_template",
    tag = "profiles",
    request_body = UpdateProfileTemplateRequest,
    responses((status = 200, description = "Updated, and carried to every bound profile", body = Answer<UpdatedTemplate>), super::openapi::Errors)
)]
pub async fn update_profile_template(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<UpdateProfileTemplateRequest>,
) -> ApiResult<Json<Answer<UpdatedTemplate>>> {
    let id = required(req.profile_template_id, "profile_template_id")?;
    let metadata =
        tree(req.metadata, "metadata")?.ok_or_else(|| memos_core::Error::required("metadata"))?;
    let n = state
        .service
        .update_profile_template(&project, &id, req.name.as_deref(), metadata)
        .await?;
    Ok(Answer::ok(UpdatedTemplate {
        success: true,
        profile_template_id: id,
        updated_instances: n,
    }))
}

/// `POST delete/profile_template`: the template and every instance of it.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/delete/profile_template",
    tag = "profiles",
    request_body = ProfileTemplateIdRequest,
    responses((status = 200, description = "Deleted with its profiles", body = Answer<DeletedTemplate>), super::openapi::Errors)
)]
pub async fn delete_profile_template(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<ProfileTemplateIdRequest>,
) -> ApiResult<Json<Answer<DeletedTemplate>>> {
    let id = required(req.profile_template_id, "profile_template_id")?;
    let n = state.service.delete_profile_template(&project, &id).await?;
    Ok(Answer::ok(DeletedTemplate {
        success: true,
        profile_template_id: id,
        deleted_instances: n,
    }))
}

/// `POST get/profile_template` (our extension): the project's templates, or one.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/get/profile_template",
    tag = "profiles",
    request_body = ProfileTemplateIdRequest,
    responses((status = 200, description = "The templates", body = Answer<TemplateList>), super::openapi::Errors)
)]
pub async fn get_profile_template(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<ProfileTemplateIdRequest>,
) -> ApiResult<Json<Answer<TemplateList>>> {
    let mut all = state.service.profile_templates(&project).await?;
    if let Some(id) = req.profile_template_id {
        all.retain(|t| t.id == id);
        if all.is_empty() {
            return Err(memos_core::Error::not_found(
                format!("profile template {id}"),
                memos_core::error::NotFoundKind::Record,
            )
            .into());
        }
    }
    let list: Vec<ProfileTemplateDetail> =
        all.into_iter().map(ProfileTemplateDetail::from).collect();
    Ok(Answer::ok(TemplateList {
        profile_template_list: list,
    }))
}

/// `POST bind/profile_template`: creates each subject's instance of a template.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/bind/profile_template",
    tag = "profiles",
    request_body = BindProfileTemplateRequest,
    responses((status = 200, description = "Bound", body = Answer<Bound>), super::openapi::Errors)
)]
pub async fn bind_profile_template(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<BindProfileTemplateRequest>,
) -> ApiResult<Json<Answer<Bound>>> {
    let bindings = req.bindings()?;
    let n = state
        .service
        .bind_profile_templates(&project, &bindings)
        .await?;
    Ok(Answer::ok(Bound {
        success: true,
        bound: n,
    }))
}

/// `POST edit/profile`: adds, overwrites, locks or removes fields of one instance.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/edit/profile",
    tag = "profiles",
    request_body = EditProfileRequest,
    responses((status = 200, description = "The profile as edited", body = Answer<EditedProfile>), super::openapi::Errors)
)]
pub async fn edit_profile(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<EditProfileRequest>,
) -> ApiResult<Json<Answer<EditedProfile>>> {
    let subject = subject(req.user_id, req.agent_id)?;
    let id = required(req.profile_template_id, "profile_template_id")?;
    let metadata = tree(req.metadata, "metadata")?;
    let profile = state
        .service
        .edit_profile(
            &project,
            &subject,
            &id,
            metadata,
            &req.remove_fields.unwrap_or_default(),
        )
        .await?;
    Ok(Answer::ok(EditedProfile {
        success: true,
        profile: ProfileDetail::from(profile),
    }))
}

/// `POST delete/profile`: one subject's instance, its values and binding.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/delete/profile",
    tag = "profiles",
    request_body = DeleteProfileRequest,
    responses((status = 200, description = "Deleted (or there was none)", body = Answer<DeletedProfile>), super::openapi::Errors)
)]
pub async fn delete_profile(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<DeleteProfileRequest>,
) -> ApiResult<Json<Answer<DeletedProfile>>> {
    let subject = subject(req.user_id, req.agent_id)?;
    let id = required(req.profile_template_id, "profile_template_id")?;
    let deleted = state
        .service
        .delete_profile(&project, &subject, &id)
        .await?;
    Ok(Answer::ok(DeletedProfile {
        success: true,
        deleted,
    }))
}
