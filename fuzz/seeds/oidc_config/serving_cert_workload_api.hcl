log_level = "debug"
domains = ["mypublicdomain.test"]
serving_cert_file {
 cert_file_path = "/cert.pem"
 key_file_path = "/key.pem"
 addr = "127.0.0.1:8443"
 file_sync_interval = "30s"
}
workload_api {
    socket_path = "/tmp/spire-agent/public/api.sock"
    trust_domain = "domain.test"
    poll_interval = "5s"
}
health_checks { bind_port = 8008 }
jwt_issuer = "https://issuer.example"
set_key_use = true
