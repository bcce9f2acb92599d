log_level = "debug"
domains = ["mypublicdomain.test"]
acme {
    cache_dir = "/some/path"
    email = "email@domain.test"
    tos_accepted = true
}
server_api {
    address = "unix:///tmp/spire-server/private/api.sock"
}
