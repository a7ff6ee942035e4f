//! Issue 13: every node serves the OpenAPI document of its API port without a key, the same
//! on each node, and every operation in it reaches a handler there: none falls through to
//! the router's "no such API route" or "does not accept that method".

use crate::common::*;

#[test]
fn every_node_serves_the_document_and_each_documented_operation_reaches_a_handler() {
    let c = Cluster::new(2);
    let anonymous = c.caller(1, None, "anonymous@node1");
    let served = anonymous.get("/api/v1/openapi.json");
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(served.header("content-type"), Some("application/json"));
    let doc = served.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let on_node2 = c
        .caller(2, None, "anonymous@node2")
        .get_ok("/api/v1/openapi.json");
    assert_eq!(on_node2, doc, "every node serves the same document");

    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/api/v1/helix-models/{id}/settings"));
    assert!(paths.contains_key("/v1/chat/completions"));
    for (path, item) in paths {
        // Placeholders for the path's parameters (a model id may hold a `/`); without a
        // key nothing is changed.
        let id = match path.starts_with("/api/v1/helix-models/") {
            true => "org/model",
            false => "x1",
        };
        let concrete = path.replace("{id}", id).replace("{key_id}", "k1");
        for method in item.as_object().expect("a path item").keys() {
            let method = method.to_uppercase();
            let answer = anonymous.send_raw(&method, &concrete, Some(b"{}"));
            let routed = answer.status != 405
                && !(answer.status == 404 && answer.text().contains("no such API route"));
            assert!(
                routed,
                "{method} {concrete} did not reach a handler: {} {}",
                answer.status,
                answer.text()
            );
        }
    }
}
