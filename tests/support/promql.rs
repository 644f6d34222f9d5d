//! What the project's PromQL (rules, alerts, dashboard) refers to, checked against the metrics
//! the code registers.

use std::collections::BTreeMap;

/// Every metric the controller and the node agent register, with its label names (from the
/// registries themselves: `Metrics::new()` and `AgentMetrics::new()`).
pub fn registered() -> BTreeMap<String, Vec<String>> {
    let c = burst_scaler::controller::metrics::Metrics::new().expect("controller metrics");
    let a = burst_scaler::agent::metrics::AgentMetrics::new().expect("agent metrics");
    c.descriptions()
        .into_iter()
        .chain(a.descriptions())
        .collect()
}

/// Labels a series may carry besides its own: the node agent's are labelled with `node` by
/// the scrape (the chart's PodMonitor), and every series with the scrape's `job`/`instance`.
pub fn target_labels(metric: &str) -> Vec<&'static str> {
    let mut l = vec!["job", "instance"];
    if metric.starts_with("burst_scaler_agent_") {
        l.push("node");
    }
    l
}

/// The metric names an expression selects (identifiers starting with `burst_scaler_`, not
/// recorded series, which contain `:`), each with the label names of its `{...}` matchers.
pub fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' {
            // Skip string literals (label values, legend formats).
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if !ident(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        if !word.starts_with("burst_scaler_") || word.contains(':') {
            continue;
        }
        let mut labels = vec![];
        if chars.get(i) == Some(&'{') {
            i += 1;
            let mut name = String::new();
            while i < chars.len() && chars[i] != '}' {
                match chars[i] {
                    '"' => {
                        labels.push(std::mem::take(&mut name));
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            if chars[i] == '\\' {
                                i += 1;
                            }
                            i += 1;
                        }
                    }
                    c if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                    _ => {}
                }
                i += 1;
            }
        }
        out.push((word, labels));
    }
    out
}

/// The registered metric a selected name belongs to (a histogram's `_bucket`, `_sum` and
/// `_count` belong to the histogram), if any.
pub fn family<'a>(
    registered: &'a BTreeMap<String, Vec<String>>,
    name: &str,
) -> Option<(&'a String, &'a Vec<String>)> {
    registered.get_key_value(name).or_else(|| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .and_then(|base| registered.get_key_value(base))
    })
}

/// Problems of `expr`: names no registered metric has, and matchers on labels the metric
/// does not carry.
pub fn check(registered: &BTreeMap<String, Vec<String>>, expr: &str) -> Vec<String> {
    let mut problems = vec![];
    for (name, labels) in selectors(expr) {
        let Some((base, own)) = family(registered, &name) else {
            problems.push(format!(
                "{name}: no such metric is registered (in {expr:?})"
            ));
            continue;
        };
        for l in labels {
            let histogram_le = l == "le" && name.ends_with("_bucket");
            if !own.contains(&l) && !target_labels(base).contains(&l.as_str()) && !histogram_le {
                problems.push(format!("{name}: no label {l:?} (has {own:?}; in {expr:?})"));
            }
        }
    }
    problems
}
