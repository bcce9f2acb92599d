//! Configuration, the legacy matchers, the selectors of an inspected container, and the attestor
//! over a proc root of fixtures (no daemon: a process outside any container never reaches it).

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerConfig, ContainerInspectResponse};
use spire_config::PluginConfig;

use super::*;

const CID: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";

fn plugin(data: &str) -> PluginConfig {
    PluginConfig::built_in("WorkloadAttestor", "docker", data).unwrap()
}

fn refused(data: &str) -> String {
    DockerConfig::from_plugin(&plugin(data)).unwrap_err().to_string()
}

#[test]
fn config_defaults_are_spire_s() {
    let config = DockerConfig::from_plugin(&plugin("")).unwrap();
    assert_eq!(config, DockerConfig::default());
    assert_eq!(config.docker_socket_path, "unix:///var/run/docker.sock");
    assert_eq!(config.docker_version, None);
    assert!(config.use_new_container_locator);
    assert!(config.finder().is_none());
}

#[test]
fn config_keys() {
    let config = DockerConfig::from_plugin(&plugin(
        r#"docker_socket_path = "unix:///run/d.sock"
           docker_version = "1.41"
           use_new_container_locator = false
           verbose_container_locator_logs = true
           container_id_cgroup_matchers = ["/docker/<id>", "/my.slice/*/<id>/*"]"#,
    ))
    .unwrap();
    assert_eq!(config.docker_socket_path, "unix:///run/d.sock");
    assert_eq!(config.docker_version, Some((1, 41)));
    assert!(!config.use_new_container_locator && config.verbose_container_locator_logs);
    assert_eq!(config.finder().unwrap().find(&format!("/docker/{CID}")).as_deref(), Some(CID));
}

#[test]
fn config_refusals() {
    assert!(refused("docker_sock = \"x\"").contains("unknown configuration key \"docker_sock\""));
    assert!(
        refused("container_id_cgroup_matchers = [\"/docker/<id>\"]")
            .contains("the new container locator and custom cgroup matchers cannot both be used")
    );
    let ambiguous = "use_new_container_locator = false\ncontainer_id_cgroup_matchers = [\"/a/b/<id>\", \"/*/b/<id>\"]";
    assert!(refused(ambiguous).contains("dockerfinder: patterns must not be ambiguous"), "{}", refused(ambiguous));
    let no_id = "use_new_container_locator = false\ncontainer_id_cgroup_matchers = [\"/docker/*\"]";
    assert!(refused(no_id).contains("must contain the container id token \"<id>\" exactly once"));
    assert!(refused("docker_version = \"latest\"").contains("is not an API version"));
    assert!(refused("docker_socket_path = \"/var/run/docker.sock\"").contains("unable to parse docker host"));
    assert!(refused("experimental { sigstore {} }").contains("experimental.sigstore: Sigstore"));
    for (template, reason) in [
        ("unix:///run/user/podman.sock", "template must contain exactly one %d UID placeholder"),
        ("unix:///run/user/%d/%d.sock", "template must contain exactly one %d UID placeholder"),
        ("unix:///run/user/%s/podman.sock", "template only supports escaped %% or the %d UID placeholder"),
        ("unix:///run/user/%d/podman.sock%", "trailing % at end of template"),
    ] {
        let message = refused(&format!("podman_socket_path_template = \"{template}\""));
        assert!(message.contains(&format!("invalid podman_socket_path_template: {reason}")), "{template}: {message}");
    }
}

#[test]
fn podman_keys_and_sockets_as_spire_1_15() {
    let defaults = DockerConfig::default();
    assert_eq!(defaults.podman_socket_path, "unix:///run/podman/podman.sock");
    assert_eq!(defaults.podman_socket_for(1000), "unix:///run/user/1000/podman/podman.sock");
    let config = DockerConfig::from_plugin(&plugin(
        r#"podman_socket_path = "unix:///custom/podman.sock"
           podman_socket_path_template = "unix:///var/run/user/%d/100%%/podman.sock""#,
    ))
    .unwrap();
    assert_eq!(config.podman_socket_for(1001), "unix:///var/run/user/1001/100%/podman.sock");
    let rootless = format!("/user.slice/user-1001.slice/user@1001.service/user.slice/libpod-{CID}.scope");
    let rootful = format!("/machine.slice/libpod-{CID}.scope/container");
    let cgroupfs = format!("/libpod_parent/libpod-{CID}");
    let huge_uid = format!("/user.slice/user-99999999999.slice/libpod-{CID}.scope");
    for (paths, expected) in [
        (vec![rootless.as_str()], Some("unix:///var/run/user/1001/100%/podman.sock")),
        (vec!["/", rootful.as_str()], Some("unix:///custom/podman.sock")),
        (vec![cgroupfs.as_str()], Some("unix:///custom/podman.sock")),
        (vec![huge_uid.as_str()], Some("unix:///custom/podman.sock")),
        (vec!["/docker/abc", "/system.slice/docker-abc.scope"], None),
        (vec!["/user.slice/user-1000.slice/session-2.scope"], None),
    ] {
        assert_eq!(podman_socket(&config, paths.iter().copied()).as_deref(), expected, "{paths:?}");
    }
}

/// A Podman container is asked about on Podman's socket, never Docker's.
#[tokio::test]
async fn podman_containers_are_routed_to_podman_sockets() {
    let root = proc_root(42, &format!("0::/user.slice/user-1001.slice/user@1001.service/libpod-{CID}.scope\n"), None);
    let config = DockerConfig {
        podman_socket_path_template: "unix:///no/such/user/%d/podman.sock".into(),
        ..DockerConfig::default()
    };
    let a = attestor(root.path(), config);
    let container = a.container(Process::from_pid(42)).unwrap();
    assert_eq!(container.id, CID);
    assert_eq!(container.podman_socket.as_deref(), Some("unix:///no/such/user/1001/podman.sock"));
    let err = a.attest(Process::from_pid(42)).await.unwrap_err().to_string();
    assert!(err.contains("docker client for unix:///no/such/user/1001/podman.sock"), "{err}");

    // The legacy locator: one reading of the cgroups gives both.
    let legacy = DockerConfig {
        use_new_container_locator: false,
        container_id_cgroup_matchers: vec!["/user.slice/*/*/<id>".into()],
        ..DockerConfig::default()
    };
    let root = proc_root(
        43,
        &format!("0::/user.slice/user-7.slice/user@7.service/{CID}\n1:name=x:/machine/libpod-x/{CID}\n"),
        None,
    );
    let container = attestor(root.path(), legacy).container(Process::from_pid(43)).unwrap();
    assert_eq!(container.id, CID);
    assert_eq!(container.podman_socket.as_deref(), Some("unix:///run/podman/podman.sock"));
}

#[test]
fn legacy_matchers_as_spire() {
    let finder = ContainerIdFinder::new(&["/docker/<id>".into(), "/my.slice/*/<id>/*".into()]).unwrap();
    assert_eq!(finder.find("/docker/abc").as_deref(), Some("abc"));
    assert_eq!(finder.find("/my.slice/x/abc/y").as_deref(), Some("abc"));
    assert_eq!(finder.find("/docker/abc/more"), None);
    assert_eq!(finder.find("/system.slice/docker-abc.scope"), None);
    assert_eq!(finder.container_id(["/", "/docker/abc", "/docker/abc"]).unwrap(), "abc");
    assert_eq!(finder.container_id(["/", "/user.slice"]).unwrap(), "");
    assert!(finder.container_id(["/docker/abc", "/docker/def"]).unwrap_err().contains("multiple container IDs"));
    assert!(finder.container_id(["/docker/"]).unwrap_err().contains("a pattern matched, but no container id"));
    assert!(ContainerIdFinder::new(&[]).is_err());
    assert!(ContainerIdFinder::new(&["/a/<id>".into(), "/a/<id>".into()]).is_err());
    assert!(ContainerIdFinder::new(&["/docker/<id>/<id>".into()]).is_err());
}

#[test]
fn selectors_as_spire_plus_ours() {
    let container = ContainerInspectResponse {
        name: Some("/web-1".into()),
        image: Some("sha256:0123".into()),
        config: Some(ContainerConfig {
            labels: Some(HashMap::from([("app".into(), "a".into()), ("com.example.tier".into(), "x:y".into())])),
            env: Some(vec!["PATH=/bin".into(), "EMPTY=".into(), "WEIRD".into()]),
            image: Some("envoyproxy/envoy:contrib-v1.29.1".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        selectors::selector_values(&container),
        [
            "label:app:a",
            "label:com.example.tier:x:y",
            "env:PATH=/bin",
            "env:PATH:/bin",
            "env:EMPTY=",
            "env:EMPTY:",
            "env:WEIRD",
            "image_id:envoyproxy/envoy:contrib-v1.29.1",
            "image_config_digest:sha256:0123",
            "container_name:web-1",
        ]
    );
    assert!(selectors::selector_values(&ContainerInspectResponse::default()).is_empty());
}

/// A proc root with one process whose `cgroup` (and optionally `mountinfo`) are given.
fn proc_root(pid: i32, cgroup: &str, mountinfo: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(pid.to_string());
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("cgroup"), cgroup).unwrap();
    if let Some(m) = mountinfo {
        std::fs::write(p.join("mountinfo"), m).unwrap();
    }
    dir
}

fn attestor(root: &Path, config: DockerConfig) -> DockerAttestor {
    // A socket that does not exist: any call to the daemon fails.
    let config = DockerConfig { docker_socket_path: "unix:///no/such/docker.sock".into(), ..config };
    DockerAttestor::with_proc_root(config, ProcRoot::new(root))
}

#[tokio::test]
async fn container_ids_from_proc_files() {
    let v1 = format!("12:memory:/docker/{CID}\n1:name=systemd:/docker/{CID}\n");
    let v2_systemd = format!("0::/system.slice/docker-{CID}.scope\n");
    let namespaced = "30 25 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n";
    for (name, cgroup, mountinfo) in [("v1", v1.as_str(), None), ("v2 systemd", v2_systemd.as_str(), Some(namespaced))]
    {
        let root = proc_root(42, cgroup, mountinfo);
        let a = attestor(root.path(), DockerConfig::default());
        assert_eq!(a.container_id(Process::from_pid(42)).unwrap(), CID, "{name}");
    }
    let legacy = DockerConfig {
        use_new_container_locator: false,
        container_id_cgroup_matchers: vec!["/docker/<id>".into()],
        ..DockerConfig::default()
    };
    let root = proc_root(42, &v1, None);
    assert_eq!(attestor(root.path(), legacy.clone()).container_id(Process::from_pid(42)).unwrap(), CID);
    let root = proc_root(42, &v2_systemd, None);
    assert_eq!(attestor(root.path(), legacy).container_id(Process::from_pid(42)).unwrap(), "");
}

/// A host process gets no docker selectors and no error; a container process whose daemon cannot
/// be reached fails (the other attestors still run).
#[tokio::test]
async fn host_process_no_selectors_container_needs_the_daemon() {
    let root = proc_root(7, "0::/user.slice/user-0.slice/session-1.scope\n", None);
    let a = attestor(root.path(), DockerConfig::default());
    assert!(a.attest(Process::from_pid(7)).await.unwrap().is_empty());
    let missing = attestor(root.path(), DockerConfig::default());
    assert!(missing.attest(Process::from_pid(8)).await.unwrap().is_empty(), "no such process: no container");

    let root = proc_root(9, &format!("0::/docker/{CID}\n"), None);
    let a = attestor(root.path(), DockerConfig::default());
    let err = a.attest(Process::from_pid(9)).await.unwrap_err().to_string();
    assert!(err.contains("docker client"), "{err}");
    assert_eq!(a.name(), "docker");
}
