//! The resolver: from the token's principal to the VM and its network, through Azure Resource
//! Manager's REST API as SPIRE's Azure SDK clients call it (`resources` list filtered by the
//! principal, `virtualMachines` get, `networkInterfaces` get), for the `vm-name`,
//! `network-security-group`, `virtual-network` and `virtual-network-subnet` selectors.
//!
//! Credentials: a tenant's app (`app_id`/`app_secret`) gets a client-credentials token from Azure
//! AD; a tenant without one uses the server's own identity (SPIRE's `DefaultAzureCredential`): the
//! `AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET` environment, else the managed identity of the VM the
//! server runs on, whose subscription IMDS tells at configuration time.

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::catalog::nodeattestor::cloud_http;
use spire_attestation::azure_msi::{InstanceMetadata, TokenResponse, query_escape, token_path};

/// ARM API versions asked.
const RESOURCES_API: &str = "2021-04-01";
const COMPUTE_API: &str = "2023-03-01";
const NETWORK_API: &str = "2023-05-01";

/// How the resolver authenticates to ARM.
#[derive(Debug, Clone)]
pub enum Credential {
    /// An app's client credentials at Azure AD.
    ClientSecret {
        /// `<authority>/<tenant>/oauth2/v2.0/token`.
        token_url: String,
        /// The app ID.
        client_id: String,
        /// Its secret.
        client_secret: String,
        /// `<ARM>/.default`.
        scope: String,
    },
    /// The managed identity of the server's VM, from IMDS.
    ManagedIdentity {
        /// IMDS's `host[:port]`.
        imds_host: String,
        /// ARM's resource ID.
        resource: String,
    },
}

impl Credential {
    async fn token(&self) -> Result<String, String> {
        match self {
            Self::ClientSecret { token_url, client_id, client_secret, scope } => {
                let body = cloud_http::form(&[
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                    ("grant_type", "client_credentials"),
                    ("scope", scope),
                ]);
                let response = cloud_http::send(
                    hyper::Method::POST,
                    token_url,
                    &[("content-type", "application/x-www-form-urlencoded")],
                    Some(body.into_bytes()),
                )
                .await
                .map_err(|e| format!("ClientSecretCredential: {e}"))?;
                if response.status != 200 {
                    return Err(format!(
                        "ClientSecretCredential authentication failed: POST {token_url}: {}: {}",
                        response.status,
                        response.body_start()
                    ));
                }
                let answer = TokenResponse::from_json(&response.body).map_err(|e| e.to_string())?;
                Ok(answer.access_token)
            }
            Self::ManagedIdentity { imds_host, resource } => {
                let url = format!("http://{imds_host}{}", token_path(resource));
                let response = cloud_http::get(&url, &[("metadata", "true")])
                    .await
                    .map_err(|e| format!("ManagedIdentityCredential: {e}"))?;
                if response.status != 200 {
                    return Err(format!("ManagedIdentityCredential: {}: {}", response.status, response.body_start()));
                }
                Ok(TokenResponse::from_json(&response.body).map_err(|e| e.to_string())?.access_token)
            }
        }
    }
}

/// IMDS's instance metadata of the server's VM (SPIRE's `azure.FetchInstanceMetadata`).
pub async fn fetch_instance_metadata(imds_host: &str) -> Result<InstanceMetadata, String> {
    let url = format!("http://{imds_host}{}", spire_attestation::azure_msi::INSTANCE_PATH);
    let response = cloud_http::get(&url, &[("metadata", "true")]).await.map_err(|e| format!("Get {url:?}: {e}"))?;
    if response.status != 200 {
        return Err(format!("unexpected status code {}: {}", response.status, response.body_start()));
    }
    let metadata =
        InstanceMetadata::from_json(&response.body).map_err(|e| format!("unable to decode response: {e}"))?;
    if metadata.compute.name.is_empty() {
        return Err("response missing instance name".into());
    }
    if metadata.compute.subscription_id.is_empty() {
        return Err("response missing instance subscription id".into());
    }
    if metadata.compute.resource_group_name.is_empty() {
        return Err("response missing instance resource group name".into());
    }
    Ok(metadata)
}

/// An ARM client for one subscription.
#[derive(Debug)]
pub struct ArmClient {
    endpoint: String,
    subscription_id: String,
    credential: Credential,
    token: Mutex<Option<String>>,
}

/// The `value`/`nextLink` page of a list.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceList {
    /// The resources.
    pub value: Vec<GenericResource>,
    /// The next page's URL.
    pub next_link: Option<String>,
}

/// A listed resource.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GenericResource {
    /// Its ID.
    pub id: Option<String>,
}

/// A reference to a sub-resource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SubResource {
    /// Its ID.
    pub id: Option<String>,
}

/// What the resolver reads of a `VirtualMachine`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VirtualMachine {
    /// `properties`.
    pub properties: VmProperties,
}

/// `properties` of a VM.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VmProperties {
    /// `networkProfile`.
    pub network_profile: Option<NetworkProfile>,
}

/// `networkProfile`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NetworkProfile {
    /// `networkInterfaces`.
    pub network_interfaces: Option<Vec<SubResource>>,
}

/// What the resolver reads of a network `Interface`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NetworkInterface {
    /// `properties`.
    pub properties: InterfaceProperties,
}

/// `properties` of an interface.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InterfaceProperties {
    /// `networkSecurityGroup`.
    pub network_security_group: Option<SubResource>,
    /// `ipConfigurations`.
    pub ip_configurations: Option<Vec<IpConfiguration>>,
}

/// One IP configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IpConfiguration {
    /// `properties`.
    pub properties: Option<IpConfigurationProperties>,
}

/// `properties` of an IP configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IpConfigurationProperties {
    /// `subnet`.
    pub subnet: Option<SubResource>,
}

/// Go's `status.Status.Error()` text of an Internal status, as SPIRE nests its client's errors.
fn internal(message: String) -> String {
    format!("rpc error: code = Internal desc = {message}")
}

impl ArmClient {
    /// A client of `subscription_id` at `endpoint` (ending in `/`).
    pub fn new(endpoint: String, subscription_id: String, credential: Credential) -> Self {
        Self { endpoint, subscription_id, credential, token: Mutex::new(None) }
    }

    /// The subscription.
    pub fn subscription_id(&self) -> &str {
        &self.subscription_id
    }

    async fn get_json(&self, url: &str) -> Result<Vec<u8>, String> {
        let token = {
            let mut held = self.token.lock().await;
            match held.as_ref() {
                Some(t) => t.clone(),
                None => {
                    let t = self.credential.token().await?;
                    *held = Some(t.clone());
                    t
                }
            }
        };
        let auth = format!("Bearer {token}");
        let response = cloud_http::get(url, &[("authorization", &auth), ("accept", "application/json")])
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if response.status == 401 {
            // The token may have expired: get another at the next call.
            *self.token.lock().await = None;
        }
        if response.status != 200 {
            return Err(format!(
                "GET {url}\n--------------------------------------------------------------------------------\nRESPONSE {}: {}",
                response.status,
                response.body_start()
            ));
        }
        Ok(response.body.to_vec())
    }

    /// The resource ID of the VM whose identity is `principal_id` (SPIRE's
    /// `GetVirtualMachineResourceID`; its errors are Internal statuses, nested as text).
    pub async fn virtual_machine_resource_id(&self, principal_id: &str) -> Result<String, String> {
        let filter =
            format!("resourceType eq 'Microsoft.Compute/virtualMachines' and identity/principalId eq '{principal_id}'");
        let mut next = Some(format!(
            "{}subscriptions/{}/resources?%24filter={}&api-version={RESOURCES_API}",
            self.endpoint,
            query_escape(&self.subscription_id),
            query_escape(&filter)
        ));
        let mut values = Vec::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 100 {
                break;
            }
            let body = self
                .get_json(&url)
                .await
                .map_err(|e| internal(format!("unable to list virtual machine by principal: {e}")))?;
            let page: ResourceList = serde_json::from_slice(&body)
                .map_err(|e| internal(format!("unable to list virtual machine by principal: {e}")))?;
            values.extend(page.value);
            next = page.next_link.filter(|l| !l.is_empty());
        }
        match values.as_slice() {
            [] => Err(internal(format!("principal {principal_id:?} not found"))),
            [one] => match one.id.as_deref() {
                Some(id) if !id.is_empty() => Ok(id.to_owned()),
                _ => Err(internal("virtual machine resource missing ID".into())),
            },
            _ => Err(internal(format!("expected one result for principal {principal_id:?} at most"))),
        }
    }

    /// A VM.
    pub async fn virtual_machine(&self, resource_group: &str, name: &str) -> Result<VirtualMachine, String> {
        let url = format!(
            "{}subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}?api-version={COMPUTE_API}",
            self.endpoint,
            query_escape(&self.subscription_id),
            query_escape(resource_group),
            query_escape(name)
        );
        let body = self.get_json(&url).await.map_err(|e| internal(format!("unable to get virtual machine: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| internal(format!("unable to get virtual machine: {e}")))
    }

    /// A network interface.
    pub async fn network_interface(&self, resource_group: &str, name: &str) -> Result<NetworkInterface, String> {
        let url = format!(
            "{}subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{}?api-version={NETWORK_API}",
            self.endpoint,
            query_escape(&self.subscription_id),
            query_escape(resource_group),
            query_escape(name)
        );
        let body = self.get_json(&url).await.map_err(|e| internal(format!("unable to get network interface: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| internal(format!("unable to get network interface: {e}")))
    }
}
