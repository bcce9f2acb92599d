//! SPIRE's `systemd` workload attestor: the systemd unit a process runs in, as systemd itself says.
//!
//! The caller's PID is asked of systemd's manager over the system D-Bus
//! (`org.freedesktop.systemd1.Manager.GetUnitByPID`), then the unit object's `Id` and `FragmentPath`
//! properties (interface `org.freedesktop.systemd1.Unit`) become `id:<unit>` and
//! `fragment_path:<path>`, in that order, as SPIRE returns them.
//!
//! As SPIRE's, a PID systemd puts in no unit, or a bus that cannot be reached, fails this attestor
//! (with SPIRE's messages); the host logs that and keeps the other attestors' selectors. The plugin
//! takes no configuration ([`check_config`]).
//!
//! The bus is the system bus: `unix:path=/var/run/dbus/system_bus_socket`, or the address in the
//! standard `DBUS_SYSTEM_BUS_ADDRESS` variable, which zbus honours as libdbus and godbus (SPIRE's
//! library) do. One connection is kept and reopened once it closes, as SPIRE keeps one.

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use spire_config::{ConfigError, PluginConfig};
use tokio::sync::Mutex;
use zbus::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::{AttestError, WorkloadAttestor};
use crate::peer::Process;

/// The plugin name, hence the selector type.
pub const PLUGIN_NAME: &str = "systemd";

/// systemd's well-known bus name.
const SYSTEMD_BUS_NAME: &str = "org.freedesktop.systemd1";
/// The manager object.
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
/// The manager interface, which has `GetUnitByPID`.
const MANAGER_INTERFACE: &str = "org.freedesktop.systemd1.Manager";
/// The interface of every unit object, which has `Id` and `FragmentPath`.
const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";
/// The standard interface the properties are read through.
const PROPERTIES_INTERFACE: &str = "org.freedesktop.DBus.Properties";

/// Checks the plugin's data: none, or an empty block. SPIRE's plugin has no configuration
/// interface, so SPIRE v1.13.3 refuses any key with "no supported configuration interface found";
/// so do we, naming the key.
pub fn check_config(plugin: &PluginConfig) -> Result<(), ConfigError> {
    spire_config::plugin_data::expect_no_data(plugin).map_err(|e| {
        let message = format!("{}.plugin_data: no supported configuration interface found ({e})", plugin.path());
        ConfigError::invalid(message, plugin.pos.line)
    })
}

/// Why the systemd attestor could not attest a process; messages are SPIRE's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SystemdError {
    /// The PID does not fit D-Bus's `u` (never for a real caller).
    #[error("invalid value for PID: {0} is out of range")]
    InvalidPid(i32),
    /// The bus could not be reached.
    #[error("failed to open dbus connection: {}", dbus_message(.0))]
    Connect(#[source] zbus::Error),
    /// systemd has no unit for the PID (or could not be asked).
    #[error("failed to get unit by pid {pid}: {}", dbus_message(.error))]
    UnitByPid {
        /// The PID asked about.
        pid: u32,
        /// The D-Bus error.
        #[source]
        error: zbus::Error,
    },
    /// A unit property could not be read.
    #[error("error getting value for {property}: {}", dbus_message(.error))]
    Property {
        /// `Id` or `FragmentPath`.
        property: &'static str,
        /// The D-Bus error.
        #[source]
        error: zbus::Error,
    },
    /// A unit property is not a string.
    #[error("Returned value for {property} was not a string: {value}")]
    NotAString {
        /// `Id` or `FragmentPath`.
        property: &'static str,
        /// What was returned instead.
        value: String,
    },
}

/// A D-Bus error as godbus words it: a method error is its description (`PID 7 does not belong to
/// any loaded unit.`), or its name when it has none; anything else as zbus says it.
fn dbus_message(error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, description, _) => {
            description.clone().unwrap_or_else(|| name.as_str().to_owned())
        }
        zbus::Error::FDO(fdo) => match zbus::DBusError::description(fdo.as_ref()) {
            Some(description) => description.to_owned(),
            None => fdo.to_string(),
        },
        other => other.to_string(),
    }
}

/// The unit systemd puts a process in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInfo {
    /// The unit's name (`nginx.service`).
    pub id: String,
    /// The unit file it was loaded from; empty for a unit with none (a scope).
    pub fragment_path: String,
}

impl UnitInfo {
    /// The selector values, in SPIRE's order.
    pub fn selector_values(&self) -> Vec<String> {
        vec![format!("id:{}", self.id), format!("fragment_path:{}", self.fragment_path)]
    }
}

/// The systemd workload attestor.
#[derive(Debug)]
pub struct SystemdAttestor {
    /// The bus address; `None` for the system bus.
    address: Option<String>,
    connection: Mutex<Option<Connection>>,
}

impl Default for SystemdAttestor {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemdAttestor {
    /// An attestor asking systemd over the system bus. Does not connect yet.
    pub fn new() -> Self {
        Self { address: None, connection: Mutex::new(None) }
    }

    /// An attestor asking over the bus at `address` (`unix:path=...`) instead of the system bus.
    pub fn with_address(address: impl Into<String>) -> Self {
        Self { address: Some(address.into()), connection: Mutex::new(None) }
    }

    /// The open connection, or a new one if there is none or it closed.
    async fn connection(&self) -> Result<Connection, SystemdError> {
        let mut cached = self.connection.lock().await;
        if let Some(connection) = cached.as_ref().filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        let connection = match &self.address {
            None => Connection::system().await,
            Some(address) => async { zbus::connection::Builder::address(address.as_str())?.build().await }.await,
        }
        .map_err(SystemdError::Connect)?;
        *cached = Some(connection.clone());
        Ok(connection)
    }

    /// The unit of `pid`, as systemd says.
    pub async fn unit_info(&self, pid: i32) -> Result<UnitInfo, SystemdError> {
        let pid = u32::try_from(pid).map_err(|_| SystemdError::InvalidPid(pid))?;
        let connection = self.connection().await?;
        let unit: OwnedObjectPath = connection
            .call_method(Some(SYSTEMD_BUS_NAME), MANAGER_PATH, Some(MANAGER_INTERFACE), "GetUnitByPID", &pid)
            .await
            .and_then(|reply| reply.body().deserialize())
            .map_err(|error| SystemdError::UnitByPid { pid, error })?;
        let id = string_property(&connection, &unit, "Id").await?;
        let fragment_path = string_property(&connection, &unit, "FragmentPath").await?;
        Ok(UnitInfo { id, fragment_path })
    }
}

/// A string property of the unit at `unit`.
async fn string_property(
    connection: &Connection,
    unit: &OwnedObjectPath,
    property: &'static str,
) -> Result<String, SystemdError> {
    let value: OwnedValue = connection
        .call_method(Some(SYSTEMD_BUS_NAME), unit, Some(PROPERTIES_INTERFACE), "Get", &(UNIT_INTERFACE, property))
        .await
        .and_then(|reply| reply.body().deserialize())
        .map_err(|error| SystemdError::Property { property, error })?;
    let shown = value.to_string();
    String::try_from(value).map_err(|_| SystemdError::NotAString { property, value: shown })
}

#[async_trait]
impl WorkloadAttestor for SystemdAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn attest(&self, process: Process<'_>) -> Result<Vec<String>, AttestError> {
        let unit = self.unit_info(process.pid()).await.map_err(AttestError::plugin)?;
        Ok(unit.selector_values())
    }
}
