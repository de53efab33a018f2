//! Profile templates and profile instances (MemOS's attribute memory): requests and
//! answers.

use memos_core::Error;
use memos_core::service::{Profile, ProfileTemplate};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{plain_user, subject};

/// A field tree as sent: an object, or a 40000 naming `field`.
pub fn tree(v: Option<Value>, field: &str) -> Result<Option<Map<String, Value>>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(Error::invalid(
            field,
            format!("{field} must be an object of groups and fields"),
        )),
    }
}

/// `add/profile_template` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddProfileTemplateRequest {
    /// The template's name.
    #[serde(default)]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub name: Option<String>,
    /// The field tree.
    #[serde(default)]
    #[schema(required = true, value_type = Object)]
    pub metadata: Option<Value>,
}

/// `update/profile_template` request: the whole template as it should be.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileTemplateRequest {
    /// Which template.
    #[serde(default)]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub profile_template_id: Option<String>,
    /// A new name; the old one when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The whole field tree.
    #[serde(default)]
    #[schema(required = true, value_type = Object)]
    pub metadata: Option<Value>,
}

/// `delete/profile_template` and `get/profile_template` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileTemplateIdRequest {
    /// Which template (`get/profile_template`: all when absent).
    #[serde(default)]
    pub profile_template_id: Option<String>,
}

/// One binding of `bind/profile_template`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// The user, or
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// the agent.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The template to bind.
    #[serde(default)]
    pub profile_template_id: Option<String>,
}

/// `bind/profile_template` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindProfileTemplateRequest {
    /// The bindings, at most 20.
    #[serde(default)]
    #[schema(required = true, value_type = Vec<Binding>, min_items = 1)]
    pub bind_list: Option<Vec<Binding>>,
}

impl BindProfileTemplateRequest {
    /// (subject, template id) pairs, each checked and named by its place in the list.
    pub fn bindings(self) -> Result<Vec<(String, String)>, Error> {
        let list = self.bind_list.ok_or_else(|| Error::required("bind_list"))?;
        list.into_iter()
            .enumerate()
            .map(|(i, b)| {
                let subject = subject(b.user_id, b.agent_id).map_err(|e| {
                    Error::invalid(format!("bind_list[{i}]"), format!("bind_list[{i}]: {e}"))
                })?;
                let template = b
                    .profile_template_id
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| {
                        Error::required(format!("bind_list[{i}].profile_template_id"))
                    })?;
                Ok((subject, template))
            })
            .collect()
    }
}

/// `edit/profile` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditProfileRequest {
    /// The user, or
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// the agent.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Which of the subject's profiles.
    #[serde(default)]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub profile_template_id: Option<String>,
    /// Fields to add or overwrite, as a tree.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Fields to remove, by path (`Group.Field`) or by a name one field has.
    #[serde(default)]
    pub remove_fields: Option<Vec<String>>,
}

/// `delete/profile` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteProfileRequest {
    /// The user, or
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// the agent.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Which of the subject's profiles.
    #[serde(default)]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub profile_template_id: Option<String>,
}

/// A template in answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileTemplateDetail {
    /// Its id.
    pub profile_template_id: String,
    /// Its name.
    pub name: String,
    /// The field tree.
    pub metadata: Map<String, Value>,
    /// Epoch ms.
    pub create_time: i64,
    /// Epoch ms.
    pub update_time: i64,
}

impl From<ProfileTemplate> for ProfileTemplateDetail {
    fn from(t: ProfileTemplate) -> Self {
        Self {
            profile_template_id: t.id,
            name: t.name,
            metadata: t.metadata,
            create_time: t.create_time,
            update_time: t.update_time,
        }
    }
}

/// A subject's profile instance in `profile_detail_list`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileDetail {
    /// The template it was bound from.
    pub profile_template_id: String,
    /// The template's name.
    pub name: String,
    /// The subject's fields.
    pub metadata: Map<String, Value>,
    /// Epoch ms.
    pub create_time: i64,
    /// Epoch ms.
    pub update_time: i64,
}

impl From<Profile> for ProfileDetail {
    fn from(p: Profile) -> Self {
        Self {
            profile_template_id: p.template_id,
            name: p.name,
            metadata: p.metadata,
            create_time: p.create_time,
            update_time: p.update_time,
        }
    }
}

/// `add/profile_template`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedTemplate {
    /// The new template's id.
    pub profile_template_id: String,
}

/// `update/profile_template`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpdatedTemplate {
    /// Always true on success.
    pub success: bool,
    /// The template.
    pub profile_template_id: String,
    /// How many bound profiles took the change.
    pub updated_instances: usize,
}

/// `delete/profile_template`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedTemplate {
    /// Always true on success.
    pub success: bool,
    /// The template.
    pub profile_template_id: String,
    /// How many bound profiles went with it.
    pub deleted_instances: usize,
}

/// `get/profile_template`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    /// The project's templates (or the one asked for).
    pub profile_template_list: Vec<ProfileTemplateDetail>,
}

/// `bind/profile_template`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bound {
    /// Always true on success.
    pub success: bool,
    /// How many subjects are bound now.
    pub bound: usize,
}

/// `edit/profile`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EditedProfile {
    /// Always true on success.
    pub success: bool,
    /// The profile as it is now.
    pub profile: ProfileDetail,
}

/// `delete/profile`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedProfile {
    /// Always true on success.
    pub success: bool,
    /// Whether there was a profile to delete.
    pub deleted: bool,
}
