domains = ["d.test"]
listen_socket_path = "/run/oidc.sock"
file { path = "/b.json" }
server_path_prefix = "/instance/1"
experimental { listen_named_pipe_name = "x" }
