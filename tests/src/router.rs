//! CloudFront's routing in front of the three functions and the upload service, reproduced with nginx for the
//! `aws-functions` registry.
//!
//! The routing table is read from infra/template.yaml itself (the distribution's `CacheBehaviors` in order, then its
//! `DefaultCacheBehavior`), not copied, so the tests always route the way a deployment does. Each CloudFront path
//! pattern becomes an nginx regex location in the same order; nginx, like CloudFront, takes the first regex that
//! matches and falls back to `location /`, the default behaviour. As with the template's origin request policy
//! (AllViewerExceptHostHeader), every viewer header except `Host` reaches the function: nginx sends the function's
//! own address as `Host`, which is what a function URL behind CloudFront sees.
//!
//! nginx writes one access-log line per request, naming the function that served it and the `Location` it answered
//! with; [`RoutedRequest`] reads them back, which lets a test prove that blob downloads were answered with a redirect
//! to a presigned URL, not with bytes.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

/// The template the routing is read from.
pub fn template_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
}

/// One cache behaviour: requests whose path matches `pattern` go to the origin (function) `function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub pattern: String,
    pub function: String,
}

/// The distribution's routing: behaviours in CloudFront's order, the default's function, and each origin's read
/// timeout in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTable {
    pub routes: Vec<Route>,
    pub default: String,
    pub read_timeouts: HashMap<String, u64>,
    /// The header every origin gets from CloudFront (`OriginCustomHeaders`): the origin secret the functions check.
    pub origin_header: Option<String>,
}

/// CloudFront's default origin read timeout, for origins that do not set one.
const DEFAULT_READ_TIMEOUT: u64 = 30;

/// The template's `UploadService` parameter: what takes blob uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadService {
    /// The upload service (the blobs binary as a container, without Lambda's request cap), the default.
    Container,
    /// The blobs function, with Lambda's cap.
    Lambda,
}

impl UploadService {
    /// The template's conditions as this value makes them.
    fn condition(self, name: &str) -> Result<bool, String> {
        match name {
            "UploadsOnContainer" => Ok(self == UploadService::Container),
            other => Err(format!("unknown condition {other}")),
        }
    }
}

impl RoutingTable {
    /// The routing of infra/template.yaml deployed with `uploads`.
    pub fn from_template(uploads: UploadService) -> RoutingTable {
        let path = template_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        RoutingTable::parse(&text, uploads).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Reads the distribution's `Origins`, `DefaultCacheBehavior` and `CacheBehaviors` out of the template's YAML.
    /// A line scanner rather than a YAML parser: the template's CloudFormation tags (`!Ref`, `!GetAtt`) are not
    /// plain YAML, and these blocks are simple `key: value` lists.
    pub fn parse(template: &str, uploads: UploadService) -> Result<RoutingTable, String> {
        // `!If [Condition, a, b]`, the one intrinsic a TargetOriginId uses.
        let resolve = |value: String| -> Result<String, String> {
            let Some(arguments) = value.strip_prefix("!If [").and_then(|rest| rest.strip_suffix(']')) else {
                return Ok(value);
            };
            match arguments.split(',').map(str::trim).collect::<Vec<_>>().as_slice() {
                [condition, when_true, when_false] => {
                    Ok(if uploads.condition(condition)? { when_true.to_string() } else { when_false.to_string() })
                }
                _ => Err(format!("cannot read {value}")),
            }
        };
        let lines: Vec<&str> = template.lines().collect();
        let block = |key: &str| -> Result<Vec<&str>, String> {
            let start = lines.iter().position(|l| l.trim() == key).ok_or_else(|| format!("no `{key}` block"))?;
            let indent = indentation(lines[start]);
            Ok(lines[start + 1..]
                .iter()
                .copied()
                .take_while(|l| l.trim().is_empty() || indentation(l) > indent)
                .filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
                .collect())
        };

        let mut routes: Vec<Route> = Vec::new();
        for line in block("CacheBehaviors:")? {
            if let Some(pattern) = value_of(line, "- PathPattern:") {
                routes.push(Route { pattern, function: String::new() });
            } else if let Some(function) = value_of(line, "TargetOriginId:") {
                let route = routes.last_mut().ok_or("TargetOriginId before the first PathPattern")?;
                route.function = resolve(function)?;
            }
        }
        if let Some(route) = routes.iter().find(|r| r.function.is_empty()) {
            return Err(format!("behaviour {} has no TargetOriginId", route.pattern));
        }
        let default = block("DefaultCacheBehavior:")?
            .iter()
            .find_map(|l| value_of(l, "TargetOriginId:"))
            .ok_or("DefaultCacheBehavior has no TargetOriginId")?;

        let mut read_timeouts = HashMap::new();
        let mut origin = None;
        let mut origin_headers = Vec::new();
        for line in block("Origins:")? {
            if let Some(header) = value_of(line, "- HeaderName:") {
                origin_headers.push(header);
            } else if let Some(id) = value_of(line, "- Id:") {
                read_timeouts.insert(id.clone(), DEFAULT_READ_TIMEOUT);
                origin = Some(id);
            } else if let (Some(id), Some(timeout)) = (&origin, value_of(line, "OriginReadTimeout:")) {
                let seconds = timeout.parse().map_err(|_| format!("OriginReadTimeout {timeout} of {id}"))?;
                read_timeouts.insert(id.clone(), seconds);
            }
        }
        for function in routes.iter().map(|r| &r.function).chain([&default]) {
            if !read_timeouts.contains_key(function) {
                return Err(format!("behaviour targets {function}, which is not an origin"));
            }
        }
        origin_headers.dedup();
        if origin_headers.len() > 1 {
            return Err(format!("the origins get different custom headers: {origin_headers:?}"));
        }
        Ok(RoutingTable { routes, default, read_timeouts, origin_header: origin_headers.pop() })
    }

    /// Every function the table routes to.
    pub fn functions(&self) -> Vec<String> {
        let mut functions: Vec<String> = self.routes.iter().map(|r| r.function.clone()).chain([self.default.clone()]).collect();
        functions.sort();
        functions.dedup();
        functions
    }

    /// The function CloudFront would send `path` to.
    pub fn function_for(&self, path: &str) -> &str {
        self.routes.iter().find(|r| glob_matches(&r.pattern, path)).map_or(&self.default, |r| &r.function)
    }

    /// An nginx configuration that listens on `127.0.0.1:listen` and routes like the distribution to the functions
    /// at `ports`, keeping its pid, temp files and access log in `dir`. Bodies stream both ways (docker sends each
    /// layer as one chunked PATCH), without any size limit of nginx's own. Every request gets the origin header with
    /// `origin_secret`, as CloudFront adds it.
    pub fn nginx_config(&self, dir: &Path, listen: u16, ports: &HashMap<String, u16>, origin_secret: &str) -> String {
        let d = dir.display();
        let mut config = format!(
            "# Generated by berth-tests from infra/template.yaml (CloudFront cache behaviours, same order).\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log stderr notice;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
             \x20   log_format berth '$berth_function\\t$request_method\\t$request_uri\\t$status\\t$sent_http_location\\t$http_user_agent';\n\
             \x20   access_log {d}/access.log berth;\n\
             \x20   client_body_temp_path {d}/client_body;\n\
             \x20   proxy_temp_path {d}/proxy;\n\
             \x20   fastcgi_temp_path {d}/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/uwsgi;\n\
             \x20   scgi_temp_path {d}/scgi;\n\
             \x20   client_max_body_size 0;\n\
             \x20   proxy_http_version 1.1;\n\
             \x20   proxy_request_buffering off;\n\
             \x20   proxy_buffering off;\n\
             \x20   proxy_redirect off;\n\
             \x20   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             \x20   # The template's ViewerHost CloudFront Function: the host the client asked for, for the token realm.\n\
             \x20   proxy_set_header X-Forwarded-Host $http_host;\n\
             {origin}\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{listen};\n",
            origin = self.origin_header.as_ref().map_or_else(String::new, |header| format!("    proxy_set_header {header} {origin_secret};\n")),
        );
        let location = |config: &mut String, matcher: &str, function: &str| {
            let port = ports.get(function).unwrap_or_else(|| panic!("no port for function {function}"));
            let timeout = self.read_timeouts[function];
            let _ = write!(
                config,
                "        location {matcher} {{\n\
                 \x20           set $berth_function {function};\n\
                 \x20           proxy_read_timeout {timeout}s;\n\
                 \x20           proxy_pass http://127.0.0.1:{port};\n\
                 \x20       }}\n"
            );
        };
        for route in &self.routes {
            let matcher = format!("~ \"{}\"", glob_to_regex(&route.pattern));
            location(&mut config, &matcher, &route.function);
        }
        location(&mut config, "/", &self.default);
        config.push_str("    }\n}\n");
        config
    }
}

/// A CloudFront path pattern as an anchored regex: `*` is any run of characters (`/` included), `?` one character,
/// everything else literal.
pub fn glob_to_regex(pattern: &str) -> String {
    let mut regex = String::from("^");
    for c in pattern.chars() {
        match c {
            '*' => regex.push_str(".*"),
            '?' => regex.push('.'),
            c if c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '~' | '%' | '@' | ':' | '=' | ',') => regex.push(c),
            c => {
                regex.push('\\');
                regex.push(c);
            }
        }
    }
    regex.push('$');
    regex
}

/// Whether `path` matches a CloudFront path pattern.
pub fn glob_matches(pattern: &str, path: &str) -> bool {
    fn matches(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| matches(rest, &s[i..])),
            Some((b'?', rest)) => !s.is_empty() && matches(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && matches(rest, &s[1..]),
        }
    }
    matches(pattern.as_bytes(), path.as_bytes())
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The value after `key` on `line`, without a trailing comment or quotes.
fn value_of(line: &str, key: &str) -> Option<String> {
    let value = line.trim().strip_prefix(key)?;
    let value = value.split(" #").next().unwrap_or_default().trim();
    Some(value.trim_matches(|c| c == '"' || c == '\'').to_owned())
}

/// One line of nginx's access log: which function served which request, and how it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedRequest {
    pub function: String,
    pub method: String,
    /// The path as the client sent it, without the query string.
    pub path: String,
    pub query: String,
    pub status: u16,
    /// The `Location` the response carried (a redirect's target), or empty.
    pub location: String,
    pub user_agent: String,
}

impl RoutedRequest {
    /// Parses the `berth` log format of [`RoutingTable::nginx_config`].
    pub fn parse(line: &str) -> Option<RoutedRequest> {
        let mut fields = line.split('\t');
        let function = fields.next()?.to_owned();
        let method = fields.next()?.to_owned();
        let uri = fields.next()?;
        let status = fields.next()?.parse().ok()?;
        let location = Some(fields.next()?).filter(|l| *l != "-").unwrap_or_default().to_owned();
        let user_agent = fields.next()?.to_owned();
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        Some(RoutedRequest { function, method, path: path.to_owned(), query: query.to_owned(), status, location, user_agent })
    }
}

impl std::fmt::Display for RoutedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let query = if self.query.is_empty() { String::new() } else { format!("?{}", self.query) };
        write!(f, "{} {}{query} -> {} {} ({})", self.method, self.path, self.function, self.status, self.user_agent)?;
        if !self.location.is_empty() {
            write!(f, " Location: {}", self.location)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routing table in the template's header comment, which documents the behaviours: `order pattern function`.
    fn documented_table(template: &str) -> Vec<(String, String)> {
        template
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| {
                let words: Vec<&str> = l.trim_start_matches('#').split_whitespace().collect();
                match words.as_slice() {
                    [order, pattern, function, ..] if order.parse::<u32>().is_ok() => Some((pattern.to_string(), function.to_string())),
                    ["-", "default", "(*)", function, ..] => Some(("*".into(), function.to_string())),
                    _ => None,
                }
            })
            .collect()
    }

    #[test]
    fn the_template_routes_blob_paths_first_and_matches_its_documentation() {
        let template = std::fs::read_to_string(template_path()).expect("read template");
        let table = RoutingTable::parse(&template, UploadService::Container).expect("routing table");
        assert_eq!(table.routes[0].pattern, "/v2/*/blobs/uploads*", "{table:?}");
        assert_eq!(table.routes[0].function, "uploads");
        assert_eq!(table.routes[1].pattern, "/v2/*/blobs/*", "{table:?}");
        assert_eq!(table.functions(), ["blobs", "manifests", "token", "uploads"]);
        let on_lambda = RoutingTable::parse(&template, UploadService::Lambda).expect("routing table");
        assert_eq!(on_lambda.routes[0].function, "blobs");
        assert_eq!(on_lambda.functions(), ["blobs", "manifests", "token"]);
        let parsed: Vec<(String, String)> =
            table.routes.iter().map(|r| (r.pattern.clone(), r.function.clone())).chain([("*".into(), table.default.clone())]).collect();
        assert_eq!(
            parsed,
            documented_table(&template),
            "the CacheBehaviors of infra/template.yaml differ from the table in its header comment"
        );
    }

    #[test]
    fn paths_go_where_cloudfront_sends_them() {
        let table = RoutingTable::from_template(UploadService::Container);
        for (path, function) in [
            ("/v2/", "token"),
            ("/token", "token"),
            ("/v2/app/blobs/sha256:00", "blobs"),
            ("/v2/team/app/blobs/uploads/", "uploads"),
            ("/v2/team/app/blobs/uploads/abc", "uploads"),
            ("/v2/team/app/manifests/v1", "manifests"),
            // A repository with a `blobs` component: its manifests go to the blobs function (see the template).
            ("/v2/team/blobs/app/manifests/v1", "blobs"),
            ("/v2/team/app/tags/list", "manifests"),
            ("/v2/_catalog", "manifests"),
            ("/v2/team/app/referrers/sha256:00", "manifests"),
            ("/berth/repositories", "manifests"),
        ] {
            assert_eq!(table.function_for(path), function, "{path}");
        }
    }

    #[test]
    fn nginx_accepts_the_generated_configuration() {
        let table = RoutingTable::from_template(UploadService::Container);
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = table.functions().into_iter().zip(40001..).collect::<HashMap<_, _>>();
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, table.nginx_config(dir.path(), 40000, &ports, "secret")).expect("write config");
        let out = std::process::Command::new("nginx")
            .arg("-t")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config)
            .args(["-e", "stderr"])
            .output()
            .expect("run nginx (Debian package nginx; tests/run installs it)");
        assert!(
            out.status.success(),
            "nginx -t: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&config).unwrap_or_default()
        );
    }

    #[test]
    fn globs_become_anchored_regexes() {
        assert_eq!(glob_to_regex("/v2/*/blobs/*"), "^/v2/.*/blobs/.*$");
        assert_eq!(glob_to_regex("/v2/_catalog"), "^/v2/_catalog$");
        assert_eq!(glob_to_regex("/a.b?c"), "^/a\\.b.c$");
        assert!(glob_matches("/v2/*/blobs/*", "/v2/a/b/blobs/"));
        assert!(!glob_matches("/v2/*/tags/list", "/v2/a/tags/list/x"));
    }

    #[test]
    fn access_log_lines_parse() {
        let line = "blobs\tGET\t/v2/a/blobs/sha256:00?x=1\t307\thttp://s3/b/k?X-Amz-Signature=1\tskopeo/1.9";
        let request = RoutedRequest::parse(line).expect("parses");
        assert_eq!(
            (request.function.as_str(), request.path.as_str(), request.query.as_str(), request.status),
            ("blobs", "/v2/a/blobs/sha256:00", "x=1", 307)
        );
        assert_eq!(request.location, "http://s3/b/k?X-Amz-Signature=1");
        assert_eq!(request.user_agent, "skopeo/1.9");
        // What nginx writes for a request no location handled (a TLS handshake on the plain port).
        let probe = RoutedRequest::parse("\t-\t-\t400\t-\t-").expect("parses");
        assert_eq!((probe.function.as_str(), probe.status, probe.location.as_str()), ("", 400, ""));
    }
}
