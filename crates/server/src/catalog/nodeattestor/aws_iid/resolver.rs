//! The AWS lookups: the instance through EC2 `DescribeInstances`, its instance profile's roles
//! through IAM `GetInstanceProfile`, and the selectors SPIRE's resolver derives from them.
//!
//! Clients are made per account and region the first time a document names them, and kept: with
//! the configured static credentials or the SDK's default chain, then, with `assume_role`, the
//! credentials of `arn:<partition>:iam::<account>:role/<assume_role>` through STS. Endpoints are
//! the SDK's, so `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_EC2`, `_IAM`, `_STS`) redirects them, as
//! the tests do to moto. Each call has SPIRE's five-second limit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::Region;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::types::{DeviceType, Filter, Instance};
use spire_attestation::aws_iid::InstanceIdentityDocument;
use tokio::sync::Mutex;

use super::error::AttestError;

/// SPIRE's limit on each AWS call.
pub const AWS_TIMEOUT: Duration = Duration::from_secs(5);

/// SPIRE's bound on how far apart the root volume and the primary network interface may have been
/// attached.
pub const MAX_SECONDS_BETWEEN_DEVICE_ATTACHMENTS: i64 = 60;

/// How clients authenticate.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Static credentials, else the default chain.
    pub credentials: Option<(String, String)>,
    /// `assume_role`.
    pub assume_role: Option<String>,
    /// `partition`, for the role ARN.
    pub partition: String,
    /// `test_only_aws_endpoint_url`: every service at this URL (moto).
    pub endpoint_url: Option<String>,
}

/// The EC2 and IAM clients of one account and region.
#[derive(Debug, Clone)]
pub struct Clients {
    ec2: aws_sdk_ec2::Client,
    iam: aws_sdk_iam::Client,
}

/// Clients by `<account>@<region>`.
#[derive(Debug)]
pub struct ClientCache {
    session: Session,
    clients: Mutex<HashMap<String, Clients>>,
}

impl ClientCache {
    /// No clients yet.
    pub fn new(session: Session) -> Self {
        Self { session, clients: Mutex::new(HashMap::new()) }
    }

    /// The clients for a document's account and region, made on first use.
    pub async fn get(&self, region: &str, account_id: &str) -> Result<Clients, AttestError> {
        let mut clients = self.clients.lock().await;
        let key = format!("{account_id}@{region}");
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let made = with_timeout(self.make(region, account_id)).await.map_err(AttestError::Client)?;
        clients.insert(key, made.clone());
        Ok(made)
    }

    async fn make(&self, region: &str, account_id: &str) -> Result<Clients, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if !region.is_empty() {
            loader = loader.region(Region::new(region.to_owned()));
        }
        if let Some(url) = &self.session.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((id, secret)) = &self.session.credentials {
            loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "spire-aws-iid",
            ));
        }
        let mut config = loader.load().await;
        if let Some(role) = &self.session.assume_role {
            let arn = format!("arn:{}:iam::{account_id}:role/{role}", self.session.partition);
            let mut builder = aws_config::sts::AssumeRoleProvider::builder(arn).configure(&config);
            if !region.is_empty() {
                builder = builder.region(Region::new(region.to_owned()));
            }
            let provider = builder.build().await;
            config = config
                .into_builder()
                .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(provider))
                .build();
        }
        Ok(Clients { ec2: aws_sdk_ec2::Client::new(&config), iam: aws_sdk_iam::Client::new(&config) })
    }
}

async fn with_timeout<T>(f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(AWS_TIMEOUT, f).await.unwrap_or_else(|_| Err("context deadline exceeded".into()))
}

/// An SDK error in the Go SDK's shape: `operation error <Service>: <Operation>, ...`.
fn sdk_error<E, R>(service: &str, operation: &str, e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            format!(
                "operation error {service}: {operation}, api error {}: {}",
                err.code().unwrap_or("Unknown"),
                err.message().unwrap_or_default()
            )
        }
        other => format!("operation error {service}: {operation}, {}", DisplayErrorContext(other)),
    }
}

impl Clients {
    /// DescribeInstances for the instance, pending or running (SPIRE's filter).
    pub async fn describe_instance(&self, instance_id: &str) -> Result<DescribeInstancesOutput, AttestError> {
        let filter = Filter::builder().name("instance-state-name").values("pending").values("running").build();
        let call = async {
            self.ec2
                .describe_instances()
                .instance_ids(instance_id)
                .filters(filter)
                .send()
                .await
                .map_err(|e| sdk_error("EC2", "DescribeInstances", &e))
        };
        with_timeout(call).await.map_err(AttestError::DescribeInstance)
    }

    /// The role ARNs of an instance profile.
    pub async fn instance_profile_roles(&self, profile_name: &str) -> Result<Vec<String>, AttestError> {
        let call = async {
            self.iam
                .get_instance_profile()
                .instance_profile_name(profile_name)
                .send()
                .await
                .map_err(|e| sdk_error("IAM", "GetInstanceProfile", &e))
        };
        let out = with_timeout(call).await.map_err(AttestError::GetInstanceProfile)?;
        Ok(out.instance_profile().map(|p| p.roles().iter().map(|r| r.arn().to_owned()).collect()).unwrap_or_default())
    }
}

/// The first instance of the first reservation, as SPIRE reads the answer.
pub fn first_instance(out: &DescribeInstancesOutput) -> Result<&Instance, AttestError> {
    let reservation = out.reservations().first().ok_or(AttestError::NoInstance("reservations"))?;
    reservation.instances().first().ok_or(AttestError::NoInstance("instances"))
}

/// The instance's tags, for the agent path template.
pub fn tags(instance: &Instance) -> BTreeMap<String, String> {
    instance.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect()
}

/// SPIRE's anti-tampering check: unless the root device is an instance store, the root volume
/// must have been attached within a minute of the primary network interface (a volume swapped in
/// later could carry another machine's state).
pub fn check_block_device(instance: &Instance) -> Result<(), String> {
    let iface = instance
        .network_interfaces()
        .iter()
        .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0))
        .ok_or("the EC2 instance network interface with device index 0 is inaccessible")?;
    let iface_attached = iface.attachment().and_then(|a| a.attach_time()).map_or(0, |t| t.secs());
    if instance.root_device_type() == Some(&DeviceType::InstanceStore) {
        return Ok(());
    }
    let root_name = instance.root_device_name().unwrap_or_default();
    let root =
        instance.block_device_mappings().iter().find(|m| m.device_name() == Some(root_name)).ok_or_else(|| {
            format!(
                "failed to locate the root device block mapping with name {}",
                spire_cli::flags::go_quote(root_name)
            )
        })?;
    let root_attached = root.ebs().and_then(|e| e.attach_time()).map_or(0, |t| t.secs());
    let disparity = (iface_attached - root_attached).abs();
    if disparity > MAX_SECONDS_BETWEEN_DEVICE_ATTACHMENTS {
        return Err(format!(
            "failed checking the disparity device attach times, root BlockDeviceMapping and NetworkInterface[0] attach times differ by {disparity} seconds"
        ));
    }
    Ok(())
}

/// The instance profile name in its ARN (`arn:aws:iam::<account>:instance-profile/<path>/<name>`).
pub fn profile_name_from_arn(arn: &str) -> Result<String, AttestError> {
    let rest = arn.strip_prefix("arn:").ok_or_else(|| AttestError::ProfileArn("arn: invalid prefix".into()))?;
    let sections: Vec<&str> = rest.splitn(5, ':').collect();
    if sections.len() < 5 {
        return Err(AttestError::ProfileArn("arn: not enough sections".into()));
    }
    let resource = sections[4];
    let after = ["instance-profile/", "instance-profile:"]
        .iter()
        .filter_map(|p| resource.find(p).map(|at| (at, &resource[at + p.len()..])))
        .min_by_key(|(at, _)| *at)
        .map(|(_, rest)| rest.split('\n').next().unwrap_or_default())
        .filter(|rest| !rest.is_empty())
        .ok_or(AttestError::NotInstanceProfile)?;
    Ok(after.rsplit('/').next().unwrap_or_default().to_owned())
}

/// SPIRE's selector values: per instance its tags, security groups and (unless disabled) its
/// instance profile's roles, then the document's image, instance, region and zone; sorted, once
/// each.
pub async fn resolve_selectors(
    out: &DescribeInstancesOutput,
    doc: &InstanceIdentityDocument,
    clients: &Clients,
    disable_instance_profile_selectors: bool,
) -> Result<Vec<String>, AttestError> {
    let mut set = BTreeSet::new();
    for instance in out.reservations().iter().flat_map(|r| r.instances()) {
        set.extend(instance_selectors(instance));
        let arn = instance.iam_instance_profile().and_then(|p| p.arn());
        if let (false, Some(arn)) = (disable_instance_profile_selectors, arn) {
            let name = profile_name_from_arn(arn)?;
            for role in clients.instance_profile_roles(&name).await? {
                set.insert(format!("iamrole:{role}"));
            }
        }
    }
    set.extend(document_selectors(doc));
    Ok(set.into_iter().collect())
}

/// `tag:<key>:<value>`, `sg:id:<id>`, `sg:name:<name>` of one instance.
pub fn instance_selectors(instance: &Instance) -> Vec<String> {
    let mut out = Vec::new();
    for t in instance.tags() {
        out.push(format!("tag:{}:{}", t.key().unwrap_or_default(), t.value().unwrap_or_default()));
    }
    for sg in instance.security_groups() {
        out.push(format!("sg:id:{}", sg.group_id().unwrap_or_default()));
        out.push(format!("sg:name:{}", sg.group_name().unwrap_or_default()));
    }
    out
}

/// `image:id:`, `instance:id:`, `region:`, `az:` from the document.
pub fn document_selectors(doc: &InstanceIdentityDocument) -> [String; 4] {
    [
        format!("image:id:{}", doc.image_id),
        format!("instance:id:{}", doc.instance_id),
        format!("region:{}", doc.region),
        format!("az:{}", doc.availability_zone),
    ]
}

/// Clients shared by the attestor.
pub type SharedCache = Arc<ClientCache>;

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::primitives::DateTime;
    use aws_sdk_ec2::types::{
        EbsInstanceBlockDevice, GroupIdentifier, InstanceBlockDeviceMapping, InstanceNetworkInterface,
        InstanceNetworkInterfaceAttachment, Tag,
    };

    fn instance(iface_at: i64, root_at: i64, root_type: DeviceType) -> Instance {
        Instance::builder()
            .tags(Tag::builder().key("app").value("webserver").build())
            .security_groups(GroupIdentifier::builder().group_id("sg-1").group_name("web").build())
            .network_interfaces(
                InstanceNetworkInterface::builder()
                    .attachment(
                        InstanceNetworkInterfaceAttachment::builder()
                            .device_index(0)
                            .attach_time(DateTime::from_secs(iface_at))
                            .build(),
                    )
                    .build(),
            )
            .root_device_type(root_type)
            .root_device_name("/dev/xvda")
            .block_device_mappings(
                InstanceBlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(EbsInstanceBlockDevice::builder().attach_time(DateTime::from_secs(root_at)).build())
                    .build(),
            )
            .build()
    }

    #[test]
    fn block_device_check() {
        check_block_device(&instance(1000, 1030, DeviceType::Ebs)).unwrap();
        let err = check_block_device(&instance(1000, 1100, DeviceType::Ebs)).unwrap_err();
        assert_eq!(
            err,
            "failed checking the disparity device attach times, root BlockDeviceMapping and NetworkInterface[0] attach times differ by 100 seconds"
        );
        check_block_device(&instance(1000, 9000, DeviceType::InstanceStore)).unwrap();
        assert_eq!(
            check_block_device(&Instance::builder().build()).unwrap_err(),
            "the EC2 instance network interface with device index 0 is inaccessible"
        );
    }

    #[test]
    fn selectors_of_an_instance() {
        let i = instance(0, 0, DeviceType::Ebs);
        assert_eq!(instance_selectors(&i), ["tag:app:webserver", "sg:id:sg-1", "sg:name:web"]);
        assert_eq!(tags(&i), [("app".to_owned(), "webserver".to_owned())].into());
    }

    #[test]
    fn instance_profile_names() {
        assert_eq!(profile_name_from_arn("arn:aws:iam::123456789012:instance-profile/web").unwrap(), "web");
        assert_eq!(profile_name_from_arn("arn:aws:iam::123456789012:instance-profile/a/b/web").unwrap(), "web");
        assert_eq!(profile_name_from_arn("arn:aws:iam::1:role/x").unwrap_err(), AttestError::NotInstanceProfile);
        assert_eq!(profile_name_from_arn("nope").unwrap_err().to_string(), "failed to parse arn: invalid prefix");
        assert_eq!(
            profile_name_from_arn("arn:aws:iam").unwrap_err().to_string(),
            "failed to parse arn: not enough sections"
        );
    }
}
