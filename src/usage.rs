//! Pod usage from `metrics.k8s.io/v1beta1` (metrics-server, or the local test cluster's
//! metrics server), read with kube's client like any other resource.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

use crate::quantity::{MilliCpu, QuantityError, parse_usage};

/// `PodMetrics`: one pod's usage over a short window.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct PodMetrics {
    pub metadata: ObjectMeta,
    /// When the usage was measured (end of the window).
    #[serde(default)]
    pub timestamp: Option<Time>,
    /// Length of the window, e.g. `15s`.
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

/// One container's usage.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ContainerMetrics {
    pub name: String,
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

impl ContainerMetrics {
    /// CPU usage in millicores; `Ok(None)` when the server reported none.
    pub fn cpu(&self) -> Result<Option<MilliCpu>, QuantityError> {
        self.usage.get("cpu").map(|q| parse_usage(&q.0)).transpose()
    }
}

impl kube::Resource for PodMetrics {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "PodMetrics".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "metrics.k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1beta1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn reads_what_metrics_server_sends() {
        let m: PodMetrics = serde_json::from_str(
            r#"{"kind":"PodMetrics","apiVersion":"metrics.k8s.io/v1beta1",
                "metadata":{"name":"web-1","namespace":"default"},
                "timestamp":"2026-11-22T03:56:00Z","window":"15s",
                "containers":[{"name":"web","usage":{"cpu":"199933639n","memory":"400Ki"}}]}"#,
        )
        .expect("json");
        assert_eq!(m.containers[0].cpu(), Ok(Some(MilliCpu(200))));
        assert_eq!(
            PodMetrics::url_path(&(), Some("default")),
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"
        );
    }
}
