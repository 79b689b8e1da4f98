//! A real CNCF distribution registry on 127.0.0.1 with a free port, and its request log: the
//! registry's access log (Apache combined format on stdout) parsed into time, method, path and
//! status, so tests can assert on exactly which requests the operator sent (and the bench on when).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::process::ManagedProcess;
use super::tls::ServingCert;
use super::{TestEnvError, free_port, write_file};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How a test registry is set up.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Basic authentication from this htpasswd file (bcrypt entries, e.g. written by `htpasswd -B`).
    pub htpasswd: Option<PathBuf>,
    /// Bearer token authentication: tokens from `realm`, issued by `issuer` for `service`, signed by a
    /// key whose certificate bundle is `root_cert_bundle`.
    pub token_auth: Option<TokenAuth>,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<ServingCert>,
    /// Listen on this port instead of a free one (to bring a stopped registry back at the same
    /// address).
    pub port: Option<u16>,
    /// Send notifications of every event to this endpoint.
    pub notifications: Option<NotificationEndpoint>,
}

/// One `notifications.endpoints` entry of the registry's configuration.
#[derive(Debug, Clone)]
pub struct NotificationEndpoint {
    /// Where the envelopes are POSTed, e.g. `http://127.0.0.1:8443/notifications/distribution`.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` with every envelope, if set.
    pub bearer_token: Option<String>,
    /// Leave `pull` events out (`ignore.actions: [pull]`), as the operator's docs advise.
    pub ignore_pulls: bool,
}

impl NotificationEndpoint {
    /// The `notifications:` section of a registry configuration.
    pub fn config(&self) -> String {
        let mut section = format!(
            "notifications:\n  endpoints:\n    - name: imagestream-operator\n      url: {}\n      timeout: 2s\n      threshold: 3\n      backoff: 1s\n",
            self.url
        );
        if let Some(token) = &self.bearer_token {
            section.push_str(&format!(
                "      headers:\n        Authorization: [\"Bearer {token}\"]\n"
            ));
        }
        section.push_str("      ignore:\n        mediatypes: [application/octet-stream]\n");
        if self.ignore_pulls {
            section.push_str("        actions: [pull]\n");
        }
        section
    }
}

/// The registry's `auth: token` settings.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// The URL clients get tokens from (sent in the `WWW-Authenticate` challenge).
    pub realm: String,
    /// The `service` of the challenge.
    pub service: String,
    /// The `iss` the registry expects in tokens.
    pub issuer: String,
    /// PEM certificates whose keys may sign tokens.
    pub root_cert_bundle: PathBuf,
}

/// One line of the registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRequest {
    /// `GET`, `HEAD`, `PUT`, …
    pub method: String,
    /// The request URI, with its query string.
    pub path: String,
    /// The HTTP status the registry answered.
    pub status: u16,
    /// The client's `User-Agent`.
    pub user_agent: String,
    /// When the registry logged the request, to the second; `None` when the time field does not
    /// parse.
    pub time: Option<SystemTime>,
}

/// A running distribution registry.
pub struct Registry {
    process: ManagedProcess,
    host: String,
    scheme: &'static str,
    /// The binary and config file, to restart it.
    command: (PathBuf, PathBuf),
    /// Every log file of this registry, one per start, oldest first.
    logs: Vec<PathBuf>,
}

impl Registry {
    /// Starts a registry with its storage and log under `dir`, and waits until it answers.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        options: &RegistryOptions,
    ) -> Result<Self, TestEnvError> {
        std::fs::create_dir_all(dir).map_err(|source| TestEnvError::Io {
            what: format!("create {}", dir.display()),
            source,
        })?;
        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {host}\n  secret: testenv-{port}\n",
            storage = dir.join("storage").display(),
        );
        if let Some(tls) = &options.tls {
            write_file(&dir.join("tls.crt"), &tls.cert_pem)?;
            write_file(&dir.join("tls.key"), &tls.key_pem)?;
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("tls.crt").display(),
                dir.join("tls.key").display()
            ));
        }
        if let Some(htpasswd) = &options.htpasswd {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: testenv\n    path: {}\n",
                htpasswd.display()
            ));
        } else if let Some(token) = &options.token_auth {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                token.realm,
                token.service,
                token.issuer,
                token.root_cert_bundle.display()
            ));
        }
        if let Some(endpoint) = &options.notifications {
            config.push_str(&endpoint.config());
        }
        let config_path = dir.join("config.yml");
        write_file(&config_path, &config)?;
        let mut cmd = Command::new(binary);
        cmd.arg("serve").arg(&config_path);
        let process = ManagedProcess::spawn("registry", cmd, &dir.join("registry.log")).map_err(
            |source| TestEnvError::Spawn {
                program: binary.to_owned(),
                source,
            },
        )?;
        let mut registry = Self {
            process,
            command: (binary.to_owned(), config_path.clone()),
            logs: vec![dir.join("registry.log")],
            host,
            scheme: if options.tls.is_some() {
                "https"
            } else {
                "http"
            },
        };
        registry.wait_listening().await?;
        Ok(registry)
    }

    async fn wait_listening(&mut self) -> Result<(), TestEnvError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.process.exited() {
                return Err(TestEnvError::Exited {
                    program: "registry".into(),
                    status: status.to_string(),
                    log_tail: self.process.log_tail(20),
                });
            }
            if tokio::net::TcpStream::connect(&self.host).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestEnvError::NotReady {
                    program: "registry".into(),
                    waited: READY_TIMEOUT,
                    last: format!("nothing listens on {}", self.host),
                    log_tail: self.process.log_tail(20),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the registry process; its storage stays, and [`Registry::restart`] brings it back.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts the registry again with the same address, storage and configuration.
    pub async fn restart(&mut self) -> Result<(), TestEnvError> {
        let (binary, config) = self.command.clone();
        let mut cmd = Command::new(&binary);
        cmd.arg("serve").arg(&config);
        let log = self.logs[0].with_extension(format!("{}.log", self.logs.len()));
        self.process =
            ManagedProcess::spawn("registry", cmd, &log).map_err(|source| TestEnvError::Spawn {
                program: binary.clone(),
                source,
            })?;
        self.logs.push(log);
        self.wait_listening().await
    }

    /// `127.0.0.1:<port>`: the registry host as it appears in image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://127.0.0.1:<port>` or `https://…`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// Every request the registry has logged so far, oldest first.
    pub fn requests(&self) -> Vec<RegistryRequest> {
        self.logs
            .iter()
            .flat_map(|path| {
                let log = std::fs::read_to_string(path).unwrap_or_default();
                log.lines()
                    .filter_map(parse_access_log_line)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The logged requests for one repository (`/v2/<repository>/…`), oldest first.
    pub fn requests_for(&self, repository: &str) -> Vec<RegistryRequest> {
        let prefix = format!("/v2/{repository}/");
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(&prefix))
            .collect()
    }
}

/// Writes an htpasswd file with a bcrypt entry per `(user, password)`, for
/// [`RegistryOptions::htpasswd`], using `htpasswd -Bbn` from apache2-utils (`make provision`).
pub fn write_htpasswd(path: &Path, users: &[(&str, &str)]) -> Result<(), TestEnvError> {
    let mut contents = String::new();
    for (user, password) in users {
        let output = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .map_err(|source| TestEnvError::Spawn {
                program: PathBuf::from("htpasswd"),
                source,
            })?;
        if !output.status.success() {
            return Err(TestEnvError::Exited {
                program: "htpasswd".into(),
                status: output.status.to_string(),
                log_tail: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        // `-n` prints the entry followed by an empty line.
        contents.push_str(String::from_utf8_lossy(&output.stdout).trim_end());
        contents.push('\n');
    }
    write_file(path, &contents)
}

/// Parses one access-log line:
/// `127.0.0.1 - - [24/Nov/2026:06:32:54 +0000] "HEAD /v2/foo/manifests/latest HTTP/1.1" 404 96 "" "curl/7.88.1"`.
/// Returns `None` for the registry's other (logfmt) log lines.
pub fn parse_access_log_line(line: &str) -> Option<RegistryRequest> {
    let (head, rest) = line.split_once("] \"")?;
    let time = head
        .rsplit_once('[')
        .and_then(|(_, field)| parse_access_log_time(field));
    let (request, rest) = rest.split_once('"')?;
    let mut parts = request.split(' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    parts.next().filter(|proto| proto.starts_with("HTTP/"))?;
    let mut fields = rest.trim_start().splitn(3, ' ');
    let status = fields.next()?.parse().ok()?;
    let _size = fields.next()?;
    let quoted = fields.next().unwrap_or("");
    let user_agent = quoted
        .rsplit_once(" \"")
        .map(|(_, ua)| ua.trim_end_matches('"').to_owned())
        .unwrap_or_default();
    Some(RegistryRequest {
        method,
        path,
        status,
        user_agent,
        time,
    })
}

/// Parses the access log's time field, `02/Jan/2006:15:04:05 -0700` (the brackets removed).
fn parse_access_log_time(field: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (date, offset) = field.split_once(' ')?;
    let mut date = date.split('/');
    let day: i64 = date.next()?.parse().ok()?;
    let month_name = date.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as i64 + 1;
    let mut clock = date.next()?.split(':');
    let year: i64 = clock.next()?.parse().ok()?;
    let hour: i64 = clock.next()?.parse().ok()?;
    let minute: i64 = clock.next()?.parse().ok()?;
    let second: i64 = clock.next()?.parse().ok()?;
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let offset_hours: i64 = offset.get(1..3)?.parse().ok()?;
    let offset_minutes: i64 = offset.get(3..5)?.parse().ok()?;
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let utc = local - sign * (offset_hours * 3600 + offset_minutes * 60);
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(utc).ok()?))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_lines_parse_into_method_path_status_and_agent() {
        let line = r#"127.0.0.1 - - [24/Nov/2026:06:32:54 +0000] "HEAD /v2/team/app/manifests/v1 HTTP/1.1" 200 1024 "" "imagestream-operator/0.1""#;
        assert_eq!(
            parse_access_log_line(line),
            Some(RegistryRequest {
                method: "HEAD".into(),
                path: "/v2/team/app/manifests/v1".into(),
                status: 200,
                user_agent: "imagestream-operator/0.1".into(),
                time: Some(humantime::parse_rfc3339("2026-11-24T06:32:54Z").unwrap()),
            })
        );
    }

    #[test]
    fn access_log_times_parse_with_their_utc_offset() {
        let cases = [
            ("02/Jan/2006:15:04:05 -0700", "2006-01-02T22:04:05Z"),
            ("29/Feb/2024:23:59:59 +0000", "2024-02-29T23:59:59Z"),
            ("01/Mar/2024:00:30:00 +0130", "2024-02-29T23:00:00Z"),
            ("31/Dec/1999:23:59:59 +0000", "1999-12-31T23:59:59Z"),
        ];
        for (field, expected) in cases {
            assert_eq!(
                parse_access_log_time(field),
                Some(humantime::parse_rfc3339(expected).unwrap()),
                "{field}"
            );
        }
        assert_eq!(parse_access_log_time("02/Foo/2006:15:04:05 -0700"), None);
        assert_eq!(parse_access_log_time("02/Jan/2006:15:04:05"), None);
    }

    #[test]
    fn a_line_with_an_unreadable_time_is_still_a_request() {
        let line = r#"127.0.0.1 - - [yesterday] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1""#;
        let request = parse_access_log_line(line).unwrap();
        assert_eq!(request.path, "/v2/");
        assert_eq!(request.time, None);
    }

    #[test]
    fn logfmt_lines_are_not_requests() {
        let line = r#"time="2026-11-24T06:32:54Z" level=info msg="response completed" http.request.method=GET http.request.uri=/v2/"#;
        assert_eq!(parse_access_log_line(line), None);
    }

    #[test]
    fn a_request_without_user_agent_keeps_an_empty_agent() {
        let line = r#"127.0.0.1 - - [24/Nov/2026:06:32:54 +0000] "GET /v2/ HTTP/1.1" 401 87 "" """#;
        let request = parse_access_log_line(line).unwrap();
        assert_eq!(request.status, 401);
        assert_eq!(request.user_agent, "");
    }
}
