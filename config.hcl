# popgate configuration: the documented example.
#
# popgate reads ./config.hcl when started without -config, so this file is
# also the quick-start configuration: it works on a fresh machine with a POP3
# server on 127.0.0.1:110. Blocks that need files or services of your own are
# commented out; remove the leading "# " to use them. Every block and
# attribute is described in docs/CONFIG.md. Check a change with:
#
#   popgate validate -config config.hcl
#
# Sizes are strings such as "100", "512KiB", "10MB", "50MiB" or "1GiB";
# durations are strings such as "500ms", "30s", "10m" or "1h".

# Where popgate keeps what it generates: the self-signed certificate used when
# no certificate or ACME is configured, and ACME accounts and certificates.
state_dir = "./popgate-state"

# How long a shutdown (SIGINT, SIGTERM) waits for open sessions.
shutdown_timeout = "30s"

log {
  level  = "info" # trace | debug | info | warn | error
  format = "text" # text | json
}

# Plain POP3 with STLS (RFC 2595) on port 1110. require_tls = false lets
# clients that never send STLS log in without TLS; set it to true (the
# default for starttls) once every client can do TLS.
listener "pop3" {
  address     = "127.0.0.1:1110"
  tls         = "starttls"  # none | starttls | implicit
  require_tls = false
  connect     = "on-accept" # on-accept | after-auth
  backend     = "local"

  # Names for the self-signed certificate (used when the tls block below
  # configures no certificate and no ACME).
  # server_name     = ["localhost", "127.0.0.1"]
  # tls_min_version = "1.2" # 1.2 | 1.3

  # Accept a HAProxy PROXY header (v1 or v2) from these addresses only.
  # proxy_protocol  = true
  # trusted_proxies = ["127.0.0.1/32"]

  # Filters applied on this listener, in this order; without this
  # attribute every filter below applies, in file order.
  # filters = ["audit", "clamav"]

  # Override top-level limits for this listener only.
  # limits {
  #   max_sessions = 100
  # }
}

# POP3 over TLS (POP3S, RFC 8314) on port 1995.
listener "pop3s" {
  address = "127.0.0.1:1995"
  tls     = "implicit"
  backend = "local"
}

# The POP3 server popgate stands in front of.
backend "local" {
  address         = "127.0.0.1:110"
  tls             = "none" # none | starttls | implicit
  connect_timeout = "10s"

  # When tls is starttls or implicit:
  # ca_file              = "/etc/ssl/certs/backend-ca.pem"
  # server_name          = "pop.internal.example.com"
  # insecure_skip_verify = false

  # With connect = "after-auth": how popgate logs in (user | apop |
  # sasl-plain), how it tells the backend who the client is (none |
  # xclient | proxy-v1 | proxy-v2), and an optional master login
  # (sasl-plain only).
  # login           = "user"
  # forward_client  = "xclient"
  # read_timeout    = "60s"
  # master_user     = "popgate"
  # master_password = "secret"
}

# A pool of interchangeable servers (one mail store) instead of one
# address: each session picks a server by balance (user | source |
# least-conn | first; default user after authentication, least-conn on
# accept) and fails over to the next within connect_timeout. A server is
# skipped for down_backoff after fail_threshold failures in a row.
# backend "mail" {
#   servers               = ["10.0.0.5:110", "10.0.0.6:110"]
#   balance               = "user"
#   health_check_interval = "10s"  # connect, greeting, QUIT; never logs in
#   fail_threshold        = 3
#   down_backoff          = "30s"
# }

# Limits for every listener (a listener's own limits block overrides them).
# limits {
#   max_sessions        = 10000
#   max_sessions_per_ip = 50
#   max_line            = 255   # octets incl. CRLF, 255..8192 (RFC 2449)
#   max_errors          = 5
#   max_auth_tries      = 3
#   prelogin_timeout    = "60s"
#   idle_timeout        = "10m" # RFC 1939 asks for at least 10 minutes
#   write_timeout       = "60s"
#   backend_timeout     = "60s"
#   pipeline_depth      = 128
#   max_sessions_per_user = 10  # top-level only; across the cluster with one
# }

# Routing picks the backend by login name on listeners with
# connect = "after-auth". The route map file is consulted first (exact
# names), then route blocks in order; the first match wins; otherwise the
# listener's backend serves.
# backend "legacy" {
#   address = "10.0.0.5:110"
# }
# route {
#   user    = "*@legacy.example.com"
#   backend = "legacy"
# }
# route_map {
#   file = "/etc/popgate/routes" # lines of "USER BACKEND"
# }

# An external auth and routing service speaking nginx's mail auth_http
# protocol (an existing nginx mail auth service works unchanged). An
# after-auth listener uses it with auth = "directory"; its Auth-Server names
# a backend block's address, an address in allowed_backends, or a backend
# block's name. Only with verifies_password = true may a master_user
# backend act for the logins it accepts.
# auth_http "directory" {
#   url               = "http://127.0.0.1:9000/auth"
#   timeout           = "5s"
#   headers           = { "X-Auth-Key" = "secret" }
#   cache_ttl         = "30s"      # unset: no caching; only OK answers are kept
#   allowed_backends  = ["10.0.0.0/8:110"]
#   verifies_password = false
# }

# Certificates for TLS listeners. Several certificate blocks may be given
# (chosen by SNI); acme obtains certificates from an ACME CA instead. With
# neither, popgate makes a self-signed certificate under state_dir.
# tls {
#   certificate {
#     cert_file = "/etc/popgate/pop.example.com.crt"
#     key_file  = "/etc/popgate/pop.example.com.key"
#   }
#   acme {
#     domains       = ["pop.example.com"]
#     email         = "postmaster@example.com"
#     directory     = "https://acme-v02.api.letsencrypt.org/directory"
#     ca_file       = ""
#     storage       = "/var/lib/popgate"
#     http_port     = 80
#     tls_alpn_port = 443
#     listen_host   = ""
#     profile       = ""
#   }
# }

# Audit trail: one JSON line per mailbox access. "-" is standard output.
# filter "audit" {
#   path  = "/var/log/popgate/audit.jsonl"
#   chain = true # hash-chain records; check with "popgate audit verify FILE"
# }

# APOP and CRAM-MD5 answered by popgate from a secrets file of
# "user:password" lines (chmod 600), on after-auth listeners.
# filter "apop" {
#   secrets_file   = "/etc/popgate/apop.secrets"
#   timestamp_host = "pop.example.com"
# }

# Login name rewriting before the backend login.
# filter "rewrite" {
#   strip_domain = false
#   add_domain   = "example.com"
#   lowercase    = true
#   map_file     = ""
# }

# Virus scanning with clamd.
# filter "clamav" {
#   address      = "tcp://127.0.0.1:3310" # or unix:///run/clamav/clamd.ctl
#   on_infected  = "replace"              # replace | reject
#   on_error     = "reject"               # reject | pass
#   max_size     = "25MiB"
#   timeout      = "60s"
#   spool_dir    = ""                     # "" = the system temporary directory
#   spool_memory = "1MiB"
#   add_header   = false
#
#   max_concurrent_scans = 10    # clamd's MaxThreads; beyond it wait up to scan_wait, then on_error
#   scan_wait            = "10s"
#   keep_replaced        = false # true: a DELE of a message found infected is refused with -ERR
# }

# Command policy.
# filter "policy" {
#   deny             = ["DELE"]
#   max_message_size = "50MiB"
# }

# The budget every filter's spooling shares (messages held while clamd
# scans them), in memory and on disk.
# spool {
#   memory = "256MiB"
#   disk   = "4GiB"
#   dir    = ""      # "" = the system temporary directory
# }

# Several instances behind a load balancer share the login throttle,
# max_sessions_per_user and the ACME certificates through one Redis
# (docs/CLUSTER.md). Never put a password in the URL: use password_file.
# cluster {
#   redis         = "unix:///run/redis/redis-server.sock" # or redis://host:port/db; rediss:// for TLS
#   password_file = "/etc/popgate/redis.pass"
#   instance      = "pg1"                                 # default: the hostname
# }

# Prometheus metrics on http://127.0.0.1:9110/metrics.
# metrics {
#   address = "127.0.0.1:9110"
# }
