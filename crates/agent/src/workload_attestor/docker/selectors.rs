//! The selector values of a container, from the Engine API's `GET /containers/<id>/json`.
//!
//! SPIRE v1.13's: `label:<key>:<value>` for each label, `env:<VAR>=<value>` for each environment
//! entry as written, `image_id:<Config.Image>` (the image as the container was created from it,
//! e.g. `envoyproxy/envoy:contrib-v1.29.1`). Ours besides, which SPIRE entries never select and so
//! never change what they match: `container_name:<name>` (without Docker's leading `/`),
//! `env:<VAR>:<value>`, and `image_config_digest:<Image>` (the image ID, `sha256:` of its config).

use bollard::models::ContainerInspectResponse;

/// The selector values, labels and environment sorted by key then as written.
pub fn selector_values(container: &ContainerInspectResponse) -> Vec<String> {
    let mut values = Vec::new();
    if let Some(config) = &container.config {
        if let Some(labels) = &config.labels {
            let mut labels: Vec<(&String, &String)> = labels.iter().collect();
            labels.sort();
            values.extend(labels.into_iter().map(|(k, v)| format!("label:{k}:{v}")));
        }
        for entry in config.env.iter().flatten() {
            values.push(format!("env:{entry}"));
            if let Some((key, value)) = entry.split_once('=') {
                values.push(format!("env:{key}:{value}"));
            }
        }
        if let Some(image) = config.image.as_deref().filter(|i| !i.is_empty()) {
            values.push(format!("image_id:{image}"));
        }
    }
    if let Some(digest) = container.image.as_deref().filter(|i| !i.is_empty()) {
        values.push(format!("image_config_digest:{digest}"));
    }
    if let Some(name) = container.name.as_deref().map(|n| n.trim_start_matches('/')).filter(|n| !n.is_empty()) {
        values.push(format!("container_name:{name}"));
    }
    values
}
