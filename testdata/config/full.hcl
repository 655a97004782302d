# Every block and attribute popgate knows, all set. config/config_test.go
# checks that this file validates without a diagnostic and decodes to the
# values written here. Paths are relative to the repository root, where the
# tests that read it run.

state_dir        = "testdata/config/state"
shutdown_timeout = "45s"

log {
  level  = "debug"
  format = "json"
}

limits {
  max_sessions        = 5000
  max_sessions_per_ip = 20
  max_line            = 1024
  max_errors          = 4
  max_auth_tries      = 2
  prelogin_timeout    = "30s"
  idle_timeout        = "15m"
  write_timeout       = "45s"
  backend_timeout     = "90s"
  pipeline_depth      = 64
}

listener "pop3" {
  address         = "127.0.0.1:1110"
  tls             = "starttls"
  require_tls     = true
  connect         = "after-auth"
  backend         = "local"
  proxy_protocol  = true
  trusted_proxies = ["127.0.0.1/32", "::1", "10.1.2.3/8"]
  filters         = ["audit", "apop", "rewrite", "clamav", "policy"]
  server_name     = ["pop.example.com", "127.0.0.1"]
  tls_min_version = "1.3"

  limits {
    max_sessions        = 100
    max_sessions_per_ip = 0
    max_line            = 8192
    max_errors          = 10
    max_auth_tries      = 5
    prelogin_timeout    = "2m"
    idle_timeout        = "30m"
    write_timeout       = "2m"
    backend_timeout     = "2m"
    pipeline_depth      = 1
  }
}

listener "pop3s" {
  address = "[::1]:1995"
  tls     = "implicit"
  connect = "after-auth"
  backend = "dovecot"
}

backend "local" {
  address         = "127.0.0.1:110"
  tls             = "none"
  login           = "user"
  forward_client  = "xclient"
  connect_timeout = "5s"
  read_timeout    = "30s"
}

backend "dovecot" {
  address              = "localhost:995"
  tls                  = "implicit"
  ca_file              = "testdata/config/ca.pem"
  server_name          = "mail.internal.example.com"
  insecure_skip_verify = false
  login                = "sasl-plain"
  forward_client       = "proxy-v2"
  connect_timeout      = "3s"
  read_timeout         = "2m"
  master_user          = "popgate"
  master_password      = "not-a-real-password"
}

backend "legacy" {
  address        = "192.0.2.10:110"
  tls            = "starttls"
  server_name    = "legacy.example.com"
  login          = "apop"
  forward_client = "proxy-v1"
}

route {
  user    = "*@legacy.example.com"
  backend = "legacy"
}

route {
  user    = "[a-m]*"
  backend = "local"
}

route_map {
  file = "testdata/config/routes"
}

tls {
  certificate {
    cert_file = "testdata/config/cert.pem"
    key_file  = "testdata/config/key.pem"
  }
  certificate {
    cert_file = "testdata/config/cert.pem"
    key_file  = "testdata/config/key.pem"
  }
  acme {
    domains       = ["pop.example.com", "pop3.example.com"]
    email         = "postmaster@example.com"
    directory     = "https://127.0.0.1:14000/dir"
    ca_file       = "testdata/config/ca.pem"
    storage       = "testdata/config/state/acme"
    http_port     = 5002
    tls_alpn_port = 5001
    listen_host   = "127.0.0.1"
    profile       = "default"
  }
}

filter "audit" {
  path  = "testdata/config/audit.jsonl"
  chain = true
}

filter "apop" {
  secrets_file   = "testdata/config/apop.secrets"
  timestamp_host = "pop.example.com"
}

filter "rewrite" {
  strip_domain = true
  add_domain   = "example.com"
  lowercase    = true
  map_file     = "testdata/config/rewrite.map"
}

filter "clamav" {
  address      = "unix:///run/clamav/clamd.ctl"
  on_infected  = "reject"
  on_error     = "pass"
  max_size     = "50MiB"
  timeout      = "2m"
  spool_dir    = "testdata/config"
  spool_memory = "512KiB"
  add_header   = true

  max_concurrent_scans = 4
  scan_wait            = "30s"
  keep_replaced        = true
}

filter "policy" {
  deny             = ["DELE", "top"]
  max_message_size = "100MB"
}

filter "policy" {
  name = "no-dele"
  deny = ["DELE"]
}

metrics {
  address = "127.0.0.1:9110"
}

admin {
  socket  = "testdata/config/state/admin.sock"
  address = "127.0.0.1:9111"
  token   = "an-admin-token-of-32-characters!"
}

spool {
  memory = "64MiB"
  disk   = "1GiB"
  dir    = "testdata"
}
