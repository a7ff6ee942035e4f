use std::collections::BTreeSet;

use serde_json::Value;

use super::document_json;

/// Routes whose one pattern the document shows as several paths: a model id may contain
/// `/`, so `{*id}` catches the model and its sub-resources, which the document lists apart.
const SPLIT: &[(&str, &str, &[&str])] = &[
    (
        "GET",
        super::models::MODEL_ROUTE,
        &[
            "/api/v1/helix-models/{id}",
            "/api/v1/helix-models/{id}/settings",
            "/api/v1/helix-models/{id}/token-source",
        ],
    ),
    (
        "PUT",
        super::models::MODEL_ROUTE,
        &[
            "/api/v1/helix-models/{id}",
            "/api/v1/helix-models/{id}/settings",
        ],
    ),
    (
        "DELETE",
        super::models::MODEL_ROUTE,
        &["/api/v1/helix-models/{id}"],
    ),
];

/// Routes served but deliberately left out of the document, each with why: the dashboard's
/// static files are a page for people, not an API (it is a client of the documented routes).
const NOT_DOCUMENTED: &[(&str, &str)] = &[
    ("GET", crate::ui::ENTRY_PATH),
    ("GET", crate::ui::INDEX_PATH),
    ("GET", crate::ui::FILES_PATH),
];

fn document() -> Value {
    serde_json::from_str(document_json()).expect("the document is JSON")
}

/// (METHOD, path) of every route the node serves, as the document should show them.
fn routed() -> BTreeSet<(String, String)> {
    let api = super::super::routes();
    let gateway = crate::gateway::routes();
    let mut routed = BTreeSet::new();
    for (method, path) in api.table().iter().chain(gateway.table()) {
        let method = method.as_str();
        if NOT_DOCUMENTED.contains(&(method, path)) {
            continue;
        }
        match SPLIT.iter().find(|(m, p, _)| *m == method && p == path) {
            Some((_, _, shown)) => {
                routed.extend(shown.iter().map(|s| (method.into(), s.to_string())))
            }
            None => {
                routed.insert((method.to_string(), path.to_string()));
            }
        }
    }
    routed
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    documented
}

#[test]
fn every_route_is_in_the_document_and_nothing_else() {
    let doc = document();
    let routed = routed();
    let documented = documented(&doc);
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}; documented but not routed: \
         {extra:?}. See src/api/openapi.rs for how to add a route."
    );
}

fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                found.push(r);
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_every_reference_resolves() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} resolves to nothing");
    }
}

#[test]
fn every_operation_declares_its_path_parameters_and_errors() {
    let doc = document();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let names: BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .map(|rest| rest.split('}').next().expect("a closing brace"))
            .collect();
        for (method, op) in item.as_object().expect("a path item") {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, names, "{method} {path}: path parameters");
            let public = op["security"] == serde_json::json!([{}]);
            let statuses = op["responses"].as_object().expect("responses");
            if !public {
                assert!(statuses.contains_key("401"), "{method} {path}: no 401");
            }
            if op.get("requestBody").is_some() {
                assert!(statuses.contains_key("400"), "{method} {path}: no 400");
                assert!(statuses.contains_key("413"), "{method} {path}: no 413");
            }
        }
    }
}

#[test]
fn operation_ids_are_unique() {
    let doc = document();
    let mut seen = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let id = op["operationId"].as_str().expect("an operationId");
            assert!(
                seen.insert(id.to_string()),
                "{method} {path}: operationId {id} is taken"
            );
        }
    }
}
