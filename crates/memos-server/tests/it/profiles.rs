//! Profile templates and profile instances (issue 12: MemOS's `bind/profile_template`,
//! `edit/profile`, `delete/profile` and the template calls), on both stores.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

fn template() -> Value {
    json!({
        "Basic Info": {
            "Name": {"value": "", "algorithm_updatable": false},
            "Occupation": {"value": "", "algorithm_updatable": true}
        },
        "Service Preferences": {
            "Contact Time": {"value": "weekday daytime", "algorithm_updatable": true}
        }
    })
}

async fn create(s: &TestServer) -> String {
    let (st, v) = s
        .post(
            "add/profile_template",
            json!({"name": "Support user", "metadata": template()}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["data"]["profile_template_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn profiles(s: &TestServer, user: &str) -> Vec<Value> {
    let (st, v) = s.post("get/profile", json!({"user_id": user})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["data"]["profile_detail_list"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_bound_template_is_a_profile_the_client_edits_field_by_field() {
    let s = TestServer::new().await;
    let t = create(&s).await;
    let (st, v) = s
        .post(
            "bind/profile_template",
            json!({"bind_list": [{"user_id": "u", "profile_template_id": t},
                                 {"agent_id": "helper", "profile_template_id": t}]}),
        )
        .await;
    assert_eq!(
        (st, &v["data"]["bound"]),
        (StatusCode::OK, &json!(2)),
        "{v}"
    );
    let mine = profiles(&s, "u").await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["name"], "Support user");
    assert_eq!(mine[0]["metadata"], template());

    // Set a field and lock it; add one of the instance's own.
    let (st, v) = s
        .post(
            "edit/profile",
            json!({"user_id": "u", "profile_template_id": t, "metadata": {
                "Basic Info": {"Name": {"value": "Ana", "algorithm_updatable": false}},
                "Travel": {"Seat": {"value": "aisle", "algorithm_updatable": true}}}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let m = &v["data"]["profile"]["metadata"];
    assert_eq!(m["Basic Info"]["Name"]["value"], "Ana");
    assert_eq!(m["Basic Info"]["Occupation"]["value"], "", "others stay");
    assert_eq!(m["Travel"]["Seat"]["value"], "aisle");
    // Remove by name (one field has it) and by path.
    let (st, v) = s
        .post(
            "edit/profile",
            json!({"user_id": "u", "profile_template_id": t,
                   "remove_fields": ["Seat", "Service Preferences.Contact Time"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let m = &v["data"]["profile"]["metadata"];
    assert!(
        m.get("Travel").is_none() && m.get("Service Preferences").is_none(),
        "{m}"
    );
    // The agent's instance is its own.
    let (_, v) = s
        .post(
            "search/memory",
            json!({"agent_id": "helper", "query": "anything"}),
        )
        .await;
    assert_eq!(
        v["data"]["profile_detail_list"][0]["metadata"],
        template(),
        "{v}"
    );

    // The profile comes back beside memories, in search and in get/memory.
    s.add(
        "u",
        "c",
        json!([{"role": "user", "content": "I work as a nurse."}]),
    )
    .await;
    let (_, v) = s
        .post("search/memory", json!({"user_id": "u", "query": "job"}))
        .await;
    assert_eq!(
        v["data"]["profile_detail_list"][0]["metadata"]["Basic Info"]["Name"]["value"],
        "Ana"
    );
    let (_, v) = s.post("get/memory", json!({"user_id": "u"})).await;
    assert_eq!(
        v["data"]["profile_detail_list"].as_array().unwrap().len(),
        1
    );
    let (_, v) = s.post("get/memory", json!({"user_id": "nobody"})).await;
    assert!(v["data"].get("profile_detail_list").is_none(), "{v}");

    // A template change reaches the instance without losing what it holds.
    let mut changed = template();
    changed["Basic Info"]["City"] = json!({"value": "", "algorithm_updatable": true});
    changed["Basic Info"]
        .as_object_mut()
        .unwrap()
        .remove("Occupation");
    let (st, v) = s
        .post(
            "update/profile_template",
            json!({"profile_template_id": t, "metadata": changed}),
        )
        .await;
    assert_eq!(
        (st, &v["data"]["updated_instances"]),
        (StatusCode::OK, &json!(2)),
        "{v}"
    );
    let m = profiles(&s, "u").await[0]["metadata"].clone();
    assert_eq!(m["Basic Info"]["Name"]["value"], "Ana");
    assert!(m["Basic Info"].get("Occupation").is_none(), "{m}");
    assert_eq!(m["Basic Info"]["City"]["value"], "");
    assert!(
        m.get("Service Preferences").is_none(),
        "a field the instance removed stays removed while the template leaves it alone: {m}"
    );

    // delete/profile: this subject's instance only.
    let (st, v) = s
        .post(
            "delete/profile",
            json!({"user_id": "u", "profile_template_id": t}),
        )
        .await;
    assert_eq!(
        (st, &v["data"]["deleted"]),
        (StatusCode::OK, &json!(true)),
        "{v}"
    );
    assert!(profiles(&s, "u").await.is_empty());
    // delete/profile_template: the template and every instance left.
    let (_, v) = s
        .post("delete/profile_template", json!({"profile_template_id": t}))
        .await;
    assert_eq!(v["data"]["deleted_instances"], 1, "{v}");
    let (_, v) = s.post("get/profile_template", json!({})).await;
    assert_eq!(v["data"]["profile_template_list"], json!([]), "{v}");
}

#[tokio::test]
async fn profiles_refuse_what_they_cannot_hold_and_stay_in_their_project() {
    let s = TestServer::new().await;
    let t = create(&s).await;
    for (body, field) in [
        (json!({"metadata": template()}), "name"),
        (json!({"name": "x"}), "metadata"),
        (json!({"name": "x", "metadata": [1]}), "metadata"),
        (
            json!({"name": "x", "metadata": {"g": {"f": 3}}}),
            "metadata.g.f",
        ),
        (
            json!({"name": "x", "metadata": {"a": {"b": {"c": {"d": {"f": {"value": 1}}}}}}}),
            "metadata.a.b.c.d",
        ),
        (
            json!({"name": "x", "metadata": {"f": {"value": 1, "algorithm_updatable": "yes"}}}),
            "metadata.f.algorithm_updatable",
        ),
        (json!({"name": "x", "metadata": {}, "owner": "me"}), "owner"),
    ] {
        let got = s.post("add/profile_template", body.clone()).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{body}: {}", got.1);
        assert!(
            got.1["message"].as_str().unwrap().contains(field),
            "{body}: {}",
            got.1
        );
    }
    // Binding an unknown template binds nothing, not even the good one beside it.
    let got = s
        .post(
            "bind/profile_template",
            json!({"bind_list": [{"user_id": "u", "profile_template_id": t},
                                 {"user_id": "v", "profile_template_id": "tpl_nope"}]}),
        )
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, 40001, "tpl_nope");
    assert!(profiles(&s, "u").await.is_empty());
    assert_error(
        &s.post(
            "bind/profile_template",
            json!({"bind_list": [{"user_id": "u", "agent_id": "a", "profile_template_id": t}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40000,
        "bind_list[0]",
    );
    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"user_id": format!("u{i}"), "profile_template_id": t}))
        .collect();
    assert_error(
        &s.post("bind/profile_template", json!({"bind_list": too_many}))
            .await,
        StatusCode::BAD_REQUEST,
        40000,
        "bind_list",
    );
    // Editing a profile that was never bound says so.
    assert_error(
        &s.post(
            "edit/profile",
            json!({"user_id": "u", "profile_template_id": t, "metadata": {"f": {"value": 1}}}),
        )
        .await,
        StatusCode::NOT_FOUND,
        40001,
        "bind it first",
    );
    s.post(
        "bind/profile_template",
        json!({"bind_list": [{"user_id": "u", "profile_template_id": t}]}),
    )
    .await;
    // An unknown field to remove changes nothing, even beside a good edit.
    let got = s
        .post(
            "edit/profile",
            json!({"user_id": "u", "profile_template_id": t,
                   "metadata": {"Basic Info": {"Name": {"value": "Bo"}}},
                   "remove_fields": ["Nickname"]}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, 40000, "Nickname");
    assert_eq!(
        profiles(&s, "u").await[0]["metadata"]["Basic Info"]["Name"]["value"],
        ""
    );

    // Another project sees none of it and cannot bind it.
    let other = s.other_key.clone();
    let (_, v) = s.post_as(&other, "get/profile_template", json!({})).await;
    assert_eq!(v["data"]["profile_template_list"], json!([]), "{v}");
    let got = s
        .post_as(
            &other,
            "bind/profile_template",
            json!({"bind_list": [{"user_id": "u", "profile_template_id": t}]}),
        )
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, 40001, "profile template");
}

/// Erasing a user erases their profiles, even when the profile is all they have.
#[tokio::test]
async fn erasing_a_user_erases_their_profiles() {
    let s = TestServer::new().await;
    let t = create(&s).await;
    s.post(
        "bind/profile_template",
        json!({"bind_list": [{"user_id": "only_profile", "profile_template_id": t}]}),
    )
    .await;
    let (st, v) = s
        .post("delete/memory", json!({"user_id": "only_profile"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(profiles(&s, "only_profile").await.is_empty());
    // The template stays.
    let (_, v) = s
        .post("get/profile_template", json!({"profile_template_id": t}))
        .await;
    assert_eq!(
        v["data"]["profile_template_list"][0]["name"],
        "Support user"
    );
}
