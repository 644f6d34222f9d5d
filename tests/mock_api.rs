//! The in-place resize path against a mock API server that follows the upstream API
//! (Kubernetes ≥ 1.33), since the local cluster (1.20) has no `pods/resize`. Every expected
//! request is checked (method, URL, patch type, body) and answered; the test fails on any
//! unexpected or missing call (tower-test mock + a short timeout).

use std::time::Duration;

use burst_scaler::controller::actuate::{ActuateError, Actuator, InPlaceResize, resize_supported};
use burst_scaler::engine::{ContainerChange, CpuResources};
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{Handle, pair};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn mock() -> (Client, ApiHandle) {
    let (svc, handle) = pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// Expects one request, checks it, answers with `status` and `body`.
async fn expect(
    handle: &mut ApiHandle,
    method: Method,
    path_and_query: &str,
    content_type: Option<&str>,
    body: Option<Value>,
    status: StatusCode,
    reply: Value,
) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("timed out waiting for the request")
        .expect("the client made no request");
    assert_eq!(req.method(), method);
    assert_eq!(
        req.uri().path_and_query().map(|p| p.as_str()),
        Some(path_and_query)
    );
    if let Some(ct) = content_type {
        assert_eq!(
            req.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some(ct)
        );
    }
    let got = req.into_body().collect_bytes().await.expect("body");
    if let Some(want) = body {
        let got: Value = serde_json::from_slice(&got).expect("json body");
        assert_eq!(got, want);
    }
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&reply).expect("reply")))
            .expect("response"),
    );
}

fn change() -> Vec<ContainerChange> {
    vec![ContainerChange {
        container: "web".into(),
        from: CpuResources::new(250, 500),
        to: CpuResources::new(400, 800),
    }]
}

fn pod_json() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "default"}})
}

#[tokio::test]
async fn resize_is_a_strategic_merge_patch_of_the_resize_subresource() {
    let (client, mut handle) = mock();
    let actuator = InPlaceResize { client };
    let call = tokio::spawn(async move { actuator.resize("default", "web-1", &change()).await });
    expect(
        &mut handle,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/web-1/resize?&fieldManager=burst-scaler",
        Some("application/strategic-merge-patch+json"),
        Some(json!({"spec": {"containers": [{"name": "web",
            "resources": {"requests": {"cpu": "400m"}, "limits": {"cpu": "800m"}}}]}})),
        StatusCode::OK,
        pod_json(),
    )
    .await;
    call.await.expect("join").expect("resize ok");
}

#[tokio::test]
async fn a_server_without_the_subresource_is_reported_as_unsupported() {
    let (client, mut handle) = mock();
    let actuator = InPlaceResize { client };
    let call = tokio::spawn(async move { actuator.resize("default", "web-1", &change()).await });
    expect(
        &mut handle,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/web-1/resize?&fieldManager=burst-scaler",
        None,
        None,
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
               "message": "the server could not find the requested resource (patch pods web-1/resize)"}),
    )
    .await;
    let err = call.await.expect("join").expect_err("unsupported");
    assert!(matches!(err, ActuateError::Unsupported), "{err}");
}

#[tokio::test]
async fn capability_detection_reads_the_core_api_resources() {
    for (resources, want) in [
        (
            json!([{"name": "pods", "namespaced": true, "kind": "Pod", "verbs": ["get"], "singularName": ""},
                {"name": "pods/resize", "namespaced": true, "kind": "Pod", "verbs": ["get", "patch", "update"], "singularName": ""}]),
            true,
        ),
        (
            json!([{"name": "pods", "namespaced": true, "kind": "Pod", "verbs": ["get"], "singularName": ""}]),
            false,
        ),
    ] {
        let (client, mut handle) = mock();
        let call = tokio::spawn(async move { resize_supported(&client).await });
        expect(
            &mut handle,
            Method::GET,
            "/api/v1",
            None,
            None,
            StatusCode::OK,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": resources}),
        )
        .await;
        assert_eq!(call.await.expect("join").expect("ok"), want);
    }
}

#[tokio::test]
async fn originals_are_recorded_in_the_annotation_before_the_first_change() {
    let (client, mut handle) = mock();
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": {"containers": [{"name": "web", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m"}}}]}
    }))
    .expect("pod");
    let now = jiff::Timestamp::from_second(1_767_225_600).expect("time");
    let call = tokio::spawn(async move {
        burst_scaler::controller::actuate::record_change(&client, &pod, now).await
    });
    expect(
        &mut handle,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/web-1?",
        Some("application/merge-patch+json"),
        Some(json!({"metadata": {"annotations": {"burstscaler.dev/original-resources":
            r#"{"containers":{"web":{"request":250,"limit":500}},"lastChange":"2026-01-01T00:00:00Z"}"#}}})),
        StatusCode::OK,
        pod_json(),
    )
    .await;
    call.await.expect("join").expect("annotated");
}
