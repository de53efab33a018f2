//! Profile templates and the profile instances bound to a subject (MemOS's attribute
//! memory): a template is a tree of fields (groups nested at most three deep, each field
//! `{value, algorithm_updatable}`); binding it to a user or agent creates that subject's
//! instance, which clients then edit field by field. Editing a template carries its
//! changes to every instance: new fields arrive, changed fields are overwritten, removed
//! fields go, fields left alone keep the instance's values.
//!
//! Both are [`Doc`]s: templates of the project (subject `""`), instances of their subject,
//! so erasing a subject erases its profiles.

use serde_json::{Map, Value, json};

use crate::error::{Error, NotFoundKind, Result};
use crate::model::*;

use super::MemoryService;

/// Document kind of a template.
const TEMPLATE: &str = "profile_template";
/// Document kind of an instance.
const INSTANCE: &str = "profile";
/// How deep groups nest above a field.
const MAX_DEPTH: usize = 3;
/// Fields in one template or instance.
const MAX_FIELDS: usize = 200;
/// Bindings in one call (MemOS's limit).
pub const MAX_BINDINGS: usize = 20;

/// A profile template.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileTemplate {
    /// Its id (`tpl_…`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The field tree.
    pub metadata: Map<String, Value>,
    /// Epoch ms.
    pub create_time: Millis,
    /// Epoch ms.
    pub update_time: Millis,
}

/// A subject's profile instance of one template.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The template it was bound from.
    pub template_id: String,
    /// The template's name.
    pub name: String,
    /// The subject's field tree.
    pub metadata: Map<String, Value>,
    /// Epoch ms.
    pub create_time: Millis,
    /// Epoch ms.
    pub update_time: Millis,
}

/// Whether a node of the tree is a field: an object with a `value` and nothing but
/// `value` and `algorithm_updatable`.
fn is_field(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.contains_key("value") && o.keys().all(|k| k == "value" || k == "algorithm_updatable")
    })
}

/// Checks a field tree, naming the first wrong node by its path under `field`.
fn check_tree(field: &str, tree: &Map<String, Value>) -> Result<()> {
    fn walk(path: &str, node: &Map<String, Value>, depth: usize, fields: &mut usize) -> Result<()> {
        for (k, v) in node {
            let here = format!("{path}.{k}");
            if k.trim().is_empty() || k.contains('.') || k.chars().any(char::is_control) {
                return Err(Error::invalid(
                    &here,
                    format!(
                        "{here}: names in a profile cannot be empty or hold dots or control characters"
                    ),
                ));
            }
            if is_field(v) {
                let f = v.as_object().expect("a field is an object");
                if f.get("algorithm_updatable")
                    .is_some_and(|u| !u.is_boolean())
                {
                    return Err(Error::invalid(
                        format!("{here}.algorithm_updatable"),
                        format!("{here}.algorithm_updatable must be true or false"),
                    ));
                }
                if matches!(f["value"], Value::Object(_) | Value::Array(_)) {
                    return Err(Error::invalid(
                        format!("{here}.value"),
                        format!("{here}.value must be a string, number, boolean or null"),
                    ));
                }
                *fields += 1;
                if *fields > MAX_FIELDS {
                    let field = path.split('.').next().unwrap_or(path);
                    return Err(Error::invalid(
                        field,
                        format!("{field}: a profile holds at most {MAX_FIELDS} fields"),
                    ));
                }
            } else if let Value::Object(group) = v {
                if depth >= MAX_DEPTH {
                    return Err(Error::invalid(
                        &here,
                        format!("{here}: groups nest at most {MAX_DEPTH} deep above a field"),
                    ));
                }
                walk(&here, group, depth + 1, fields)?;
            } else {
                return Err(Error::invalid(
                    &here,
                    format!(
                        "{here} must be a group (an object of entries) or a field {{\"value\": ..., \"algorithm_updatable\": ...}}"
                    ),
                ));
            }
        }
        Ok(())
    }
    walk(field, tree, 0, &mut 0)
}

/// Every field of a tree by its dotted path.
fn fields(tree: &Map<String, Value>) -> Vec<(String, Value)> {
    fn walk(prefix: &str, node: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
        for (k, v) in node {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if is_field(v) {
                out.push((path, v.clone()));
            } else if let Value::Object(g) = v {
                walk(&path, g, out);
            }
        }
    }
    let mut out = Vec::new();
    walk("", tree, &mut out);
    out
}

/// Sets the field at a dotted path, creating its groups.
fn set_field(tree: &mut Map<String, Value>, path: &str, field: Value) {
    let mut node = tree;
    let parts: Vec<&str> = path.split('.').collect();
    for g in &parts[..parts.len() - 1] {
        let entry = node
            .entry(g.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() || is_field(entry) {
            *entry = Value::Object(Map::new());
        }
        node = entry.as_object_mut().expect("a group");
    }
    node.insert(parts[parts.len() - 1].to_string(), field);
}

/// Removes the field at a dotted path and the groups it leaves empty; whether it was there.
fn remove_field(tree: &mut Map<String, Value>, path: &str) -> bool {
    match path.split_once('.') {
        None => tree.get(path).is_some_and(is_field) && tree.remove(path).is_some(),
        Some((g, rest)) => {
            let Some(Value::Object(group)) = tree.get_mut(g) else {
                return false;
            };
            let removed = remove_field(group, rest);
            if removed && group.is_empty() {
                tree.remove(g);
            }
            removed
        }
    }
}

/// An instance after its template changed from `old` to `new`: fields new to the template
/// arrive, fields whose value or setting changed are overwritten, fields removed from it
/// go; the rest, fields the instance added and fields it removed, stay as the instance
/// holds them.
fn carry_template_change(
    instance: &Map<String, Value>,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> Map<String, Value> {
    let old_fields: std::collections::HashMap<String, Value> = fields(old).into_iter().collect();
    let new_fields = fields(new);
    let mut out = instance.clone();
    for path in old_fields.keys() {
        if !new_fields.iter().any(|(p, _)| p == path) {
            remove_field(&mut out, path);
        }
    }
    // New to the template or changed in it: the template's. A field the instance removed
    // itself stays removed while the template leaves it alone.
    for (path, field) in new_fields {
        if old_fields.get(&path) != Some(&field) {
            set_field(&mut out, &path, field);
        }
    }
    out
}

fn template_from(d: Doc) -> Result<ProfileTemplate> {
    let name = d.body["name"].as_str().unwrap_or_default().to_string();
    let metadata = d.body["metadata"]
        .as_object()
        .cloned()
        .ok_or_else(|| Error::Corrupt(format!("profile template {} has no metadata", d.id)))?;
    Ok(ProfileTemplate {
        id: d.id,
        name,
        metadata,
        create_time: d.create_time,
        update_time: d.update_time,
    })
}

fn profile_from(d: Doc) -> Result<Profile> {
    let metadata = d.body["metadata"].as_object().cloned().ok_or_else(|| {
        Error::Corrupt(format!("profile {} of {} has no metadata", d.id, d.user_id))
    })?;
    Ok(Profile {
        template_id: d.id,
        name: d.body["name"].as_str().unwrap_or_default().to_string(),
        metadata,
        create_time: d.create_time,
        update_time: d.update_time,
    })
}

fn template_not_found(id: &str) -> Error {
    Error::not_found(format!("profile template {id}"), NotFoundKind::Record)
}

impl MemoryService {
    fn check_name(name: &str) -> Result<String> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::required("name"));
        }
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "name holds at most 100 characters and no control characters",
            ));
        }
        Ok(name.to_string())
    }

    /// A project's template by id.
    async fn template(&self, project_id: &str, id: &str) -> Result<ProfileTemplate> {
        let found = self
            .store
            .list_docs(DocSelect {
                kind: Some(TEMPLATE),
                project_id: Some(project_id),
                user_id: Some(""),
                id: Some(id),
            })
            .await?;
        found
            .into_iter()
            .next()
            .map(template_from)
            .transpose()?
            .ok_or_else(|| template_not_found(id))
    }

    /// Creates a template (`add/profile_template`); returns its id.
    pub async fn create_profile_template(
        &self,
        project_id: &str,
        name: &str,
        metadata: Map<String, Value>,
    ) -> Result<String> {
        let name = Self::check_name(name)?;
        check_tree("metadata", &metadata)?;
        let id = format!("tpl_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let now = now_millis();
        self.store
            .put_docs(vec![Doc {
                kind: TEMPLATE.into(),
                project_id: project_id.into(),
                user_id: String::new(),
                id: id.clone(),
                body: json!({"name": name, "metadata": metadata}),
                create_time: now,
                update_time: now,
            }])
            .await?;
        Ok(id)
    }

    /// The project's templates, by id.
    pub async fn profile_templates(&self, project_id: &str) -> Result<Vec<ProfileTemplate>> {
        self.store
            .list_docs(DocSelect {
                kind: Some(TEMPLATE),
                project_id: Some(project_id),
                user_id: Some(""),
                id: None,
            })
            .await?
            .into_iter()
            .map(template_from)
            .collect()
    }

    /// Replaces a template's name and tree (`update/profile_template`) and carries the
    /// change to every instance bound to it; returns how many instances changed.
    pub async fn update_profile_template(
        &self,
        project_id: &str,
        id: &str,
        name: Option<&str>,
        metadata: Map<String, Value>,
    ) -> Result<usize> {
        check_tree("metadata", &metadata)?;
        let name = name.map(Self::check_name).transpose()?;
        // Read-modify-write of the template and its instances, as one writer.
        let _order = self.write_lock.lock().await;
        let old = self.template(project_id, id).await?;
        let name = name.unwrap_or(old.name.clone());
        let now = now_millis();
        let instances = self
            .store
            .list_docs(DocSelect {
                kind: Some(INSTANCE),
                project_id: Some(project_id),
                user_id: None,
                id: Some(id),
            })
            .await?;
        let mut docs = vec![Doc {
            kind: TEMPLATE.into(),
            project_id: project_id.into(),
            user_id: String::new(),
            id: id.into(),
            body: json!({"name": name, "metadata": metadata}),
            create_time: old.create_time,
            update_time: now,
        }];
        let n = instances.len();
        for d in instances {
            let p = profile_from(d.clone())?;
            let carried = carry_template_change(&p.metadata, &old.metadata, &metadata);
            docs.push(Doc {
                body: json!({"name": name, "metadata": carried}),
                update_time: now,
                ..d
            });
        }
        self.store.put_docs(docs).await?;
        Ok(n)
    }

    /// Deletes a template and every instance bound to it (`delete/profile_template`);
    /// returns how many instances went.
    pub async fn delete_profile_template(&self, project_id: &str, id: &str) -> Result<usize> {
        let _order = self.write_lock.lock().await;
        self.template(project_id, id).await?;
        let n = self
            .store
            .delete_docs(project_id, INSTANCE, None, Some(id))
            .await?;
        self.store
            .delete_docs(project_id, TEMPLATE, Some(""), Some(id))
            .await?;
        Ok(n)
    }

    /// Binds templates to subjects (`bind/profile_template`), creating each subject's
    /// instance from the template; binding again keeps the instance as it is. All or
    /// nothing: an unknown template binds none.
    pub async fn bind_profile_templates(
        &self,
        project_id: &str,
        bindings: &[(String, String)],
    ) -> Result<usize> {
        if bindings.is_empty() {
            return Err(Error::required("bind_list"));
        }
        if bindings.len() > MAX_BINDINGS {
            return Err(Error::invalid(
                "bind_list",
                format!("bind_list holds at most {MAX_BINDINGS} bindings"),
            ));
        }
        for (subject, _) in bindings {
            self.check_user(subject)?;
        }
        let _order = self.write_lock.lock().await;
        let now = now_millis();
        let mut docs: Vec<Doc> = Vec::new();
        for (subject, template_id) in bindings {
            let t = self.template(project_id, template_id).await?;
            let bound = !self
                .store
                .list_docs(DocSelect {
                    kind: Some(INSTANCE),
                    project_id: Some(project_id),
                    user_id: Some(subject),
                    id: Some(template_id),
                })
                .await?
                .is_empty();
            let twice = docs
                .iter()
                .any(|d| d.user_id == *subject && d.id == *template_id);
            if !bound && !twice {
                docs.push(Doc {
                    kind: INSTANCE.into(),
                    project_id: project_id.into(),
                    user_id: subject.clone(),
                    id: template_id.clone(),
                    body: json!({"name": t.name, "metadata": t.metadata}),
                    create_time: now,
                    update_time: now,
                });
            }
        }
        let n = docs.len();
        self.store.put_docs(docs).await?;
        Ok(n)
    }

    /// A subject's instance of a template, or a 404 that says it is not bound.
    async fn instance(&self, project_id: &str, subject: &str, template_id: &str) -> Result<Doc> {
        self.store
            .list_docs(DocSelect {
                kind: Some(INSTANCE),
                project_id: Some(project_id),
                user_id: Some(subject),
                id: Some(template_id),
            })
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::not_found(
                    format!("profile of template {template_id} for this subject (bind it first)"),
                    NotFoundKind::Record,
                )
            })
    }

    /// Edits a subject's instance (`edit/profile`): `metadata` adds or overwrites fields
    /// (a field with `algorithm_updatable: false` is locked against automatic updates),
    /// `remove_fields` removes fields by dotted path (`Group.Field`) or by a name only one
    /// field has. All or nothing: an unknown path changes nothing.
    pub async fn edit_profile(
        &self,
        project_id: &str,
        subject: &str,
        template_id: &str,
        metadata: Option<Map<String, Value>>,
        remove_fields: &[String],
    ) -> Result<Profile> {
        self.check_user(subject)?;
        if metadata.is_none() && remove_fields.is_empty() {
            return Err(Error::required("metadata or remove_fields"));
        }
        if let Some(m) = &metadata {
            check_tree("metadata", m)?;
        }
        let _order = self.write_lock.lock().await;
        let doc = self.instance(project_id, subject, template_id).await?;
        let mut p = profile_from(doc.clone())?;
        for (path, field) in metadata.as_ref().map(fields).unwrap_or_default() {
            set_field(&mut p.metadata, &path, field);
        }
        for r in remove_fields {
            let path = if r.contains('.') {
                r.clone()
            } else {
                let by_name: Vec<String> = fields(&p.metadata)
                    .into_iter()
                    .map(|(path, _)| path)
                    .filter(|path| path.rsplit('.').next() == Some(r.as_str()))
                    .collect();
                match by_name.as_slice() {
                    [one] => one.clone(),
                    [] => r.clone(),
                    _ => {
                        return Err(Error::invalid(
                            "remove_fields",
                            format!(
                                "`{r}` names {} fields; give its path (Group.Field)",
                                by_name.len()
                            ),
                        ));
                    }
                }
            };
            if !remove_field(&mut p.metadata, &path) {
                return Err(Error::invalid(
                    "remove_fields",
                    format!("the profile has no field `{r}`"),
                ));
            }
        }
        check_tree("metadata", &p.metadata)?;
        let now = now_millis();
        self.store
            .put_docs(vec![Doc {
                body: json!({"name": p.name, "metadata": p.metadata}),
                update_time: now,
                ..doc
            }])
            .await?;
        p.update_time = now;
        Ok(p)
    }

    /// Deletes a subject's instance of a template (`delete/profile`), its values and its
    /// binding; the template and other subjects keep theirs. Whether there was one.
    pub async fn delete_profile(
        &self,
        project_id: &str,
        subject: &str,
        template_id: &str,
    ) -> Result<bool> {
        self.check_user(subject)?;
        let _order = self.write_lock.lock().await;
        Ok(self
            .store
            .delete_docs(project_id, INSTANCE, Some(subject), Some(template_id))
            .await?
            > 0)
    }

    /// Lets the LLM update the fields of the subject's profiles that are open to it
    /// (`algorithm_updatable` not `false`) from `messages`: one call per profile with such
    /// fields. A field locked, removed or edited to locked meanwhile keeps its value.
    pub(super) async fn fill_profiles(
        &self,
        llm: &crate::ingest::llm::LlmExtractor,
        scope: &Scope,
        messages: &[Message],
    ) -> Result<usize> {
        let open = |f: &Value| f.get("algorithm_updatable") != Some(&Value::Bool(false));
        let mut changed = 0;
        for p in self.profiles(&scope.project_id, &scope.user_id).await? {
            let asked: Vec<(String, Value)> = fields(&p.metadata)
                .into_iter()
                .filter(|(_, f)| open(f))
                .map(|(path, f)| (path, f["value"].clone()))
                .collect();
            if asked.is_empty() {
                continue;
            }
            let values = llm
                .fill_profile(&scope.project_id, messages, &asked)
                .await?;
            if values.is_empty() {
                continue;
            }
            let _order = self.write_lock.lock().await;
            let Ok(doc) = self
                .instance(&scope.project_id, &scope.user_id, &p.template_id)
                .await
            else {
                continue;
            };
            let mut now = profile_from(doc.clone())?;
            let current: std::collections::HashMap<String, Value> =
                fields(&now.metadata).into_iter().collect();
            let mut n = 0;
            for (path, value) in values {
                if let Some(f) = current.get(&path).filter(|f| open(f)) {
                    let mut f = f.clone();
                    f["value"] = Value::String(value);
                    set_field(&mut now.metadata, &path, f);
                    n += 1;
                }
            }
            if n > 0 {
                self.store
                    .put_docs(vec![Doc {
                        body: json!({"name": now.name, "metadata": now.metadata}),
                        update_time: now_millis(),
                        ..doc
                    }])
                    .await?;
                changed += n;
            }
        }
        Ok(changed)
    }

    /// A subject's profile instances, by template id.
    pub async fn profiles(&self, project_id: &str, subject: &str) -> Result<Vec<Profile>> {
        self.check_user(subject)?;
        self.store
            .list_docs(DocSelect {
                kind: Some(INSTANCE),
                project_id: Some(project_id),
                user_id: Some(subject),
                id: None,
            })
            .await?
            .into_iter()
            .map(profile_from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_template_change_reaches_instances_without_losing_their_values() {
        let old = tree(json!({"Basic": {
            "Name": {"value": "", "algorithm_updatable": false},
            "Job": {"value": "", "algorithm_updatable": true},
            "Gone": {"value": "x"}},
            "Prefs": {"Contact": {"value": "daytime", "algorithm_updatable": true}}}));
        let new = tree(json!({"Basic": {
            "Name": {"value": "", "algorithm_updatable": false},
            "Job": {"value": "", "algorithm_updatable": false},
            "City": {"value": "", "algorithm_updatable": true}},
            "Prefs": {"Contact": {"value": "daytime", "algorithm_updatable": true}}}));
        let instance = tree(json!({"Basic": {
            "Name": {"value": "Ana", "algorithm_updatable": false},
            "Job": {"value": "pilot", "algorithm_updatable": true},
            "Gone": {"value": "y"}},
            "Prefs": {"Contact": {"value": "evenings", "algorithm_updatable": true}},
            "Own": {"Pet": {"value": "cat"}}}));
        let got = carry_template_change(&instance, &old, &new);
        assert_eq!(
            Value::Object(got),
            json!({"Basic": {
                "Name": {"value": "Ana", "algorithm_updatable": false},
                "Job": {"value": "", "algorithm_updatable": false},
                "City": {"value": "", "algorithm_updatable": true}},
                "Prefs": {"Contact": {"value": "evenings", "algorithm_updatable": true}},
                "Own": {"Pet": {"value": "cat"}}})
        );
    }

    #[test]
    fn trees_are_checked_and_named_by_path() {
        let ok = tree(json!({"a": {"b": {"c": {"f": {"value": 1}}}}}));
        assert!(check_tree("metadata", &ok).is_ok());
        let deep = tree(json!({"a": {"b": {"c": {"d": {"f": {"value": 1}}}}}}));
        let e = check_tree("metadata", &deep).unwrap_err().to_string();
        assert!(e.contains("metadata.a.b.c.d"), "{e}");
        let bad = tree(json!({"a": {"f": 3}}));
        assert!(
            check_tree("metadata", &bad)
                .unwrap_err()
                .to_string()
                .contains("metadata.a.f")
        );
        let flag = tree(json!({"f": {"value": 1, "algorithm_updatable": "yes"}}));
        assert!(check_tree("metadata", &flag).is_err());
        let dotted = tree(json!({"a.b": {"value": 1}}));
        assert!(check_tree("metadata", &dotted).is_err());
    }

    #[test]
    fn fields_are_set_and_removed_by_path() {
        let mut t = tree(json!({"g": {"f": {"value": 1}, "h": {"value": 2}}}));
        set_field(&mut t, "g.k.x", json!({"value": 3}));
        assert!(remove_field(&mut t, "g.f"));
        assert!(!remove_field(&mut t, "g.nope"));
        assert!(remove_field(&mut t, "g.k.x"));
        assert_eq!(Value::Object(t), json!({"g": {"h": {"value": 2}}}));
    }
}
