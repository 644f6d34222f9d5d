//! Apply (I/O): change pods. Behind a small trait so that a node-level actuator (for clusters
//! without in-place resize, or for sub-second reaction) can replace the API one.

use std::future::Future;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::build::{OriginalCpu, OriginalResources, container_cpu, original_of};
use crate::api::ORIGINAL_RESOURCES_ANNOTATION;
use crate::engine::{ContainerChange, CpuResources};
use crate::quantity::MilliCpu;

/// Field manager of every write burst-scaler makes.
pub const FIELD_MANAGER: &str = "burst-scaler";

#[derive(Debug, thiserror::Error)]
pub enum ActuateError {
    #[error(
        "the API server has no pods/resize subresource (in-place resize needs Kubernetes ≥ 1.33)"
    )]
    Unsupported,
    #[error("pod {0} is gone")]
    Gone(String),
    #[error("this replica no longer holds the leader Lease")]
    NotLeader,
    #[error("{0}")]
    BadPod(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Something that can set a running pod's CPU.
pub trait Actuator: Send + Sync {
    /// Sets the containers' CPU to `changes[i].to`.
    fn resize(
        &self,
        namespace: &str,
        pod: &str,
        changes: &[ContainerChange],
    ) -> impl Future<Output = Result<(), ActuateError>> + Send;
}

/// In-place resize through the `pods/resize` subresource (Kubernetes ≥ 1.33).
#[derive(Clone)]
pub struct InPlaceResize {
    pub client: Client,
}

/// The strategic-merge patch body of a resize: containers merged by name.
pub fn resize_body(changes: &[ContainerChange]) -> serde_json::Value {
    let q = |m: Option<MilliCpu>| m.map(|m| json!(m.to_string()));
    let containers: Vec<_> = changes
        .iter()
        .map(|c| {
            let mut resources = serde_json::Map::new();
            if let Some(r) = q(c.to.request) {
                resources.insert("requests".into(), json!({"cpu": r}));
            }
            if let Some(l) = q(c.to.limit) {
                resources.insert("limits".into(), json!({"cpu": l}));
            }
            json!({"name": c.container, "resources": resources})
        })
        .collect();
    json!({"spec": {"containers": containers}})
}

impl Actuator for InPlaceResize {
    async fn resize(
        &self,
        namespace: &str,
        pod: &str,
        changes: &[ContainerChange],
    ) -> Result<(), ActuateError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match api
            .patch_subresource("resize", pod, &pp, &Patch::Strategic(resize_body(changes)))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 && s.message.contains("resize") => {
                Err(ActuateError::Unsupported)
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                Err(ActuateError::Gone(format!("{namespace}/{pod}")))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether the API server serves `pods/resize`.
pub async fn resize_supported(client: &Client) -> Result<bool, kube::Error> {
    let list = client.list_core_api_resources("v1").await?;
    Ok(list.resources.iter().any(|r| r.name == "pods/resize"))
}

/// Records the pod's original CPU (first change only) and the time of this change, in the
/// annotation, before the pod is changed: a crash after the resize still leaves the originals.
pub async fn record_change(client: &Client, pod: &Pod, now: Timestamp) -> Result<(), ActuateError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut orig = original_of(pod)
        .map_err(ActuateError::BadPod)?
        .unwrap_or_default();
    if orig.containers.is_empty() {
        orig.containers = container_cpu(pod)
            .map_err(ActuateError::BadPod)?
            .into_iter()
            .map(|(n, c)| (n, OriginalCpu::from(c)))
            .collect();
    }
    orig.last_change = Some(now);
    annotate(client, &ns, &name, Some(&orig)).await
}

/// Sets (or, with `None`, removes) the annotation.
pub async fn annotate(
    client: &Client,
    ns: &str,
    name: &str,
    value: Option<&OriginalResources>,
) -> Result<(), ActuateError> {
    let v = match value {
        Some(o) => json!(serde_json::to_string(o).unwrap_or_default()),
        None => serde_json::Value::Null,
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {ORIGINAL_RESOURCES_ANNOTATION: v}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// The changes that bring `pod` back to the resources recorded in its annotation.
pub fn restore_changes(pod: &Pod) -> Result<Vec<ContainerChange>, String> {
    let Some(orig) = original_of(pod)? else {
        return Ok(vec![]);
    };
    let current = container_cpu(pod)?;
    Ok(current
        .into_iter()
        .filter_map(|(name, cur)| {
            let o: CpuResources = (*orig.containers.get(&name)?).into();
            (o != cur).then_some(ContainerChange {
                container: name,
                from: cur,
                to: o,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_body_merges_containers_by_name() {
        let body = resize_body(&[ContainerChange {
            container: "web".into(),
            from: CpuResources::new(250, 500),
            to: CpuResources::new(400, 800),
        }]);
        assert_eq!(
            body,
            json!({"spec": {"containers": [{"name": "web",
                "resources": {"requests": {"cpu": "400m"}, "limits": {"cpu": "800m"}}}]}})
        );
    }

    #[test]
    fn restore_brings_back_the_recorded_resources() {
        let orig = OriginalResources {
            containers: [(
                "web".to_string(),
                OriginalCpu {
                    request: Some(250),
                    limit: Some(500),
                },
            )]
            .into(),
            last_change: None,
        };
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "n", "annotations": {
                ORIGINAL_RESOURCES_ANNOTATION: serde_json::to_string(&orig).expect("json")}},
            "spec": {"containers": [{"name": "web", "resources": {"requests": {"cpu": "400m"}, "limits": {"cpu": "800m"}}}]}
        }))
        .expect("pod");
        let ch = restore_changes(&pod).expect("changes");
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].to, CpuResources::new(250, 500));
    }
}
