//! Field helpers every request shares: required ids, the call's subject (a user or an
//! agent), SDK fields taken only at values that change nothing, `null` told from absent.

use memos_core::Error;
use memos_core::model::agent_subject;
use serde::Deserialize;

/// The subject of a read or a delete, as the scope's user id: a user, or an agent (MemOS's
/// agent memory, kept apart from every user's). Exactly one of the two.
pub fn subject(user_id: Option<String>, agent_id: Option<String>) -> Result<String, Error> {
    let blank = |s: &String| s.trim().is_empty();
    match (
        user_id.filter(|u| !blank(u)),
        agent_id.filter(|a| !blank(a)),
    ) {
        (Some(u), None) => Ok(u),
        (None, Some(a)) => Ok(agent_subject(&a)),
        (Some(_), Some(_)) => Err(Error::invalid(
            "agent_id",
            "give user_id or agent_id as the subject, not both",
        )),
        (None, None) => Err(Error::required("user_id or agent_id")),
    }
}

/// Takes a required string field, or names it in a 40002 error.
pub fn required(v: Option<String>, field: &str) -> Result<String, Error> {
    v.filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::required(field))
}

/// MemOS SDK fields that memos accepts only at the value that changes nothing: a field
/// whose value would change what a call stores or returns is refused rather than dropped.
pub fn only_default<T: PartialEq + std::fmt::Debug>(
    field: &str,
    value: &Option<T>,
    accepted: &[T],
    why: &str,
) -> Result<(), Error> {
    match value {
        Some(v) if !accepted.contains(v) => Err(Error::invalid(
            field,
            format!("{field} = {v:?} is not supported: {why}"),
        )),
        _ => Ok(()),
    }
}

/// A list field the SDK sends empty or null by default; a non-empty one is refused.
pub(super) fn none_listed(
    field: &str,
    value: &Option<Vec<String>>,
    why: &str,
) -> Result<(), Error> {
    match value {
        Some(v) if !v.is_empty() => Err(Error::invalid(
            field,
            format!("{field} is not supported yet: {why}"),
        )),
        _ => Ok(()),
    }
}

/// A `user_id` as a client sends it: never the internal scope id of an agent subject
/// ([`memos_core::model::AGENT_SUBJECT`]), which would read an agent's memory as a user.
pub(super) fn plain_user<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let v = Option::<String>::deserialize(d)?;
    if v.as_deref()
        .is_some_and(|u| u.chars().any(char::is_control))
    {
        return Err(serde::de::Error::custom(
            "user_id cannot contain control characters",
        ));
    }
    Ok(v)
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`, via
/// `#[serde(default)]`), where the two must not mean the same.
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
