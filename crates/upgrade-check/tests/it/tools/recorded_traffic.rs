//! Scenarios from real traffic: curl drives the auth service through
//! mitmproxy (a real recorder, from the package index), whose HAR dump
//! `upgrade-check import har` turns into a scenario, and through
//! `upgrade-check record`'s own proxy. Each snapshot answers as the
//! hand-written login scenario's for the same steps; bcrypt 5.0.0 is caught
//! through the recording.

use crate::common::Verdict;
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TestContext, shared_cache, uv, verdict};

/// mitmproxy's release that records (its `hardump` option writes HAR 1.2).
const MITMPROXY: &str = "mitmproxy==11.0.2";

/// The Postman runner, from the npm registry.
const NEWMAN: &str = "newman@6.2.1";

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `port` answers HTTP, or panics after a minute.
fn wait_for(port: u16, child: &mut Child) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "it exited before listening"
        );
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {port}");
}

/// `curl` through the proxy: the response body.
fn curl(port: u16, args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["--silent", "--show-error"])
        .args(
            args.iter()
                .map(|arg| arg.replace("{base}", &format!("http://127.0.0.1:{port}"))),
        )
        .output()
        .unwrap();
    assert!(output.status.success(), "curl {args:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// curl, as a developer drives the service: carol registers with
/// `password`, logs in, and reads her profile with the token she got.
fn login_flow(port: u16, password: &str) {
    let credentials = serde_json::json!({ "username": "carol", "password": password }).to_string();
    let json = [
        "--header",
        "Content-Type: application/json",
        "--data",
        &credentials,
    ];
    curl(port, &[&["{base}/api/auth/register"][..], &json].concat());
    let login = curl(port, &[&["{base}/api/auth/login"][..], &json].concat());
    let token: serde_json::Value = serde_json::from_str(&login).unwrap();
    let bearer = format!(
        "Authorization: Bearer {}",
        token["access_token"].as_str().unwrap()
    );
    curl(port, &["{base}/api/auth/me", "--header", &bearer]);
}

/// The proxy's port, from the line `record` prints once it listens.
fn proxy_port(first: &str) -> u16 {
    let url = first
        .strip_prefix("recording: send requests to ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{first}"));
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// Ctrl-C, as a person stops a recorder.
fn interrupt(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
}

/// `upgrade-check record NAME` running, its proxy listening.
struct Recorder {
    child: Child,
    port: u16,
    said: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Recorder {
    /// Starts the recording; returns once the baseline is built, the
    /// service healthy and the proxy's URL printed.
    fn start(ctx: &TestContext, name: &str) -> Recorder {
        let mut child = ctx
            .command(&["record", name])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (lines, said) = std::sync::mpsc::channel();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let reader = std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let first = said.recv_timeout(Duration::from_secs(180)).unwrap();
        let port = proxy_port(&first);
        Recorder {
            child,
            port,
            said,
            reader,
        }
    }

    /// Ctrl-C; every line it printed after its first, to its end.
    fn stop(mut self) -> Vec<String> {
        interrupt(&self.child);
        assert!(self.child.wait().unwrap().success());
        self.reader.join().unwrap();
        self.said.try_iter().collect()
    }
}

/// A snapshot's steps without their numbered titles: what was sent and answered.
fn exchanges(snapshot: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(snapshot).unwrap();
    let body = text.splitn(3, "---\n").nth(2).unwrap().to_owned();
    body.split("\n# ")
        .map(|step| {
            step.trim_start_matches("# ")
                .split_once('\n')
                .map_or("", |(_, rest)| rest)
                .trim()
                .to_owned()
        })
        .collect()
}

/// The auth service as a developer runs it, in the baseline's environment
/// (built by the harness), on a free port: the child and its port.
fn service_on_the_baseline(ctx: &TestContext) -> (Child, u16) {
    let accepted = ctx.run(&["--accept", "--no-noise-check"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let environment = ctx.report().cells[0]
        .environment
        .as_ref()
        .unwrap()
        .id
        .as_str()
        .to_owned();
    let python = shared_cache()
        .join("envs")
        .join(environment)
        .join("venv/bin/python");
    let port = free_port();
    let mut service = Command::new(python)
        .args(["-m", "app"])
        .current_dir(ctx.path("fixtures/python-service"))
        .env("PORT", port.to_string())
        .env("DATABASE_PATH", ctx.path("by-hand.sqlite3"))
        .env("BCRYPT_ROUNDS", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(port, &mut service);
    (service, port)
}

/// The imported (or recorded) scenario `name` accepted: its snapshot
/// answers as the hand-written login scenario's register, good password
/// and me-with-the-token steps; then bcrypt 5.0.0, which refuses the
/// recording's passphrase of more than 72 bytes, is caught through it.
fn answers_as_login_and_catches_bcrypt_5(ctx: &TestContext, name: &str) {
    let accepted = ctx.run(&["--accept", "--no-noise-check"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let recorded = exchanges(&ctx.path(&format!("snapshots/{name}.snap")));
    let written = exchanges(&ctx.path("snapshots/login.snap"));
    assert_eq!(
        recorded,
        [&written[0], &written[1], &written[4]].map(String::clone)
    );
    ctx.set_matrix(r#"bcrypt = ["5.0.0"]"#);
    let run = ctx.run(&["--no-bisect", "--no-noise-check"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        verdict(&ctx.report(), "bcrypt 5.0.0", name),
        Verdict::Changed
    );
}

#[test]
fn a_har_recorded_by_mitmproxy_becomes_a_scenario_that_catches_bcrypt_5() {
    let ctx = TestContext::new();
    let (mut service, service_port) = service_on_the_baseline(&ctx);
    let proxy_port = free_port();
    let har = ctx.path("session.har");
    let mut proxy = Command::new(uv())
        .args(["tool", "run", "--from", MITMPROXY, "mitmdump", "--quiet"])
        .arg("--mode")
        .arg(format!("reverse:http://127.0.0.1:{service_port}"))
        .args(["--listen-host", "127.0.0.1", "--listen-port"])
        .arg(proxy_port.to_string())
        .arg("--set")
        .arg(format!("hardump={}", har.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(proxy_port, &mut proxy);

    // A user with a long passphrase registers, logs in and reads their profile.
    login_flow(proxy_port, &"correct horse battery staple ".repeat(4));

    // mitmdump writes the HAR as it stops.
    interrupt(&proxy);
    assert!(proxy.wait().unwrap().success() || har.is_file());
    service.kill().unwrap();
    service.wait().unwrap();
    assert!(har.is_file(), "mitmdump wrote its HAR");

    let imported = ctx.run(&[
        "import",
        "har",
        har.to_str().unwrap(),
        "--name",
        "recorded-login",
    ]);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    crate::common::assert_readme_sample(
        "upgrade-check import har session.har --name recorded-login",
        &imported.stdout,
    );
    assert!(
        imported.stdout.starts_with(&format!(
            "wrote {}: 3 steps, the requests to http://127.0.0.1:",
            ctx.path("scenarios/recorded-login.toml").display()
        )),
        "{}",
        imported.stdout
    );
    assert!(
        imported.stdout.contains(
            "`access_token` is captured from step 2's answer (/access_token) and sent back"
        ),
        "{}",
        imported.stdout
    );
    let scenario = std::fs::read_to_string(ctx.path("scenarios/recorded-login.toml")).unwrap();
    assert!(
        scenario.contains("headers = { Authorization = \"Bearer {{access_token}}\" }")
            && scenario.contains("password = \"{{password}}\"")
            && !scenario.contains("Content-Type"),
        "{scenario}"
    );

    answers_as_login_and_catches_bcrypt_5(&ctx, "recorded-login");
}

#[test]
fn a_postman_collection_newman_runs_green_becomes_a_scenario_that_catches_bcrypt_5() {
    let ctx = TestContext::new();
    let collection = crate::common::workspace_root()
        .join("fixtures/postman/auth-service.postman_collection.json");
    // The real Postman runner, from the npm registry, runs it green.
    let (mut service, port) = service_on_the_baseline(&ctx);
    let newman = Command::new("npx")
        .args(["--yes", NEWMAN, "run"])
        .arg(&collection)
        .arg("--env-var")
        .arg(format!("baseUrl=http://127.0.0.1:{port}"))
        .args(["--reporters", "cli", "--bail"])
        .output()
        .unwrap();
    service.kill().unwrap();
    service.wait().unwrap();
    assert!(
        newman.status.success(),
        "newman: {}\n{}",
        String::from_utf8_lossy(&newman.stdout),
        String::from_utf8_lossy(&newman.stderr)
    );

    let imported = ctx.run(&["import", "postman", collection.to_str().unwrap()]);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    assert!(
        imported.stdout.starts_with(&format!(
            "wrote {}: 3 steps",
            ctx.path("scenarios/auth-flow.toml").display()
        )) && imported.stdout.contains(
            "item `log in`: 3 test-script line(s) not translated (the snapshot checks the answer instead), first: `pm.test(\"a token is returned\", function () {`"
        ),
        "{}",
        imported.stdout
    );
    let scenario = std::fs::read_to_string(ctx.path("scenarios/auth-flow.toml")).unwrap();
    assert!(
        scenario.contains("capture = { token = { json = \"/access_token\" } }")
            && scenario.contains("headers = { Authorization = \"Bearer {{token}}\" }")
            && scenario.contains("[vars]\nusername = \"carol\""),
        "{scenario}"
    );
    answers_as_login_and_catches_bcrypt_5(&ctx, "auth-flow");
}

#[test]
fn a_login_flow_curl_sends_through_record_becomes_the_login_scenario() {
    let ctx = TestContext::new();
    let recorder = Recorder::start(&ctx, "curl-login");
    let port = recorder.port;
    login_flow(port, "s3cret-passphrase");
    let rest = recorder.stop();
    assert!(
        rest.iter()
            .any(|line| line.starts_with("stopped (interrupt); wrote")
                && line.ends_with(": 3 steps")),
        "{rest:?}"
    );
    // Replayed once on the baseline from a fresh start: the snapshot to review.
    let shown = rest.join("\n");
    crate::common::assert_readme_sample("What `record` printed after curl registered", &shown);
    assert!(
        shown.contains("replayed on the baseline; pending snapshot ")
            && shown.contains("# 1. POST /api/auth/register")
            && shown.contains("\"password\": \"[secret:password]\"")
            && !shown.contains("s3cret-passphrase"),
        "{shown}"
    );
    let scenario = std::fs::read_to_string(ctx.path("scenarios/curl-login.toml")).unwrap();
    assert!(
        scenario.contains("authorization = \"Bearer {{access_token}}\"")
            && scenario.contains("password = \"{{password}}\"")
            && !scenario.contains("user-agent"),
        "{scenario}"
    );
    // Nothing of the recording is left running.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the proxy stopped"
    );

    // Accepted as the output says; it answers as the hand-written scenario's steps.
    let accepted = ctx.run(&["accept", "curl-login"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let recorded = exchanges(&ctx.path("snapshots/curl-login.snap"));
    let written = exchanges(&ctx.path("snapshots/login.snap"));
    assert_eq!(
        recorded,
        [&written[0], &written[1], &written[4]].map(String::clone)
    );

    // `--idle`: the recording stops by itself once requests stop coming.
    // `--accept`: what the baseline answers to it is accepted at once.
    let mut idle = ctx.command(&["record", "health-only", "--idle", "2s", "--accept"]);
    let mut child = idle
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    let port = proxy_port(&first);
    curl(port, &["{base}/health"]);
    assert!(child.wait().unwrap().success(), "stopped when idle");
    let rest: Vec<String> = stdout.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|line| line.starts_with("stopped (idle); wrote")),
        "{rest:?}"
    );
    assert!(
        rest.iter()
            .any(|line| line.starts_with("replayed on the baseline; accepted snapshot ")),
        "{rest:?}"
    );
    assert!(ctx.path("snapshots/health-only.snap").is_file());
    assert!(!ctx.path("snapshots/health-only.snap.new").exists());

    // The proxy listens on loopback only; nothing is started otherwise.
    let refused = ctx.run(&["record", "elsewhere", "--listen", "0.0.0.0:8080"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("loopback only"),
        "{}",
        refused.stderr
    );
    // Nor over an existing scenario.
    let again = ctx.run(&["record", "curl-login"]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("never overwrites"),
        "{}",
        again.stderr
    );
}

/// A developer drives a FastAPI service (`fixtures/variants/fastapi-auth`)
/// with curl through `record`: a sign-up missing its password first (422),
/// then a sign-up, OAuth2's form login, a wrong password and the profile
/// with the token. The scenario written replays green without an edit:
/// nothing is captured from the 422's error list, the form fields stay
/// fields, the password is a secret; and pydantic 1, whose 422 differs, is
/// caught through the mistyped request.
#[test]
fn a_fastapi_session_curl_sends_through_record_replays_green_as_written() {
    let ctx = TestContext::from_workspace("fixtures/variants/fastapi-auth", Path::to_path_buf);
    // No scenario yet: a check says what to do; `record` makes the folder.
    let nothing = ctx.run(&[]);
    assert_eq!(nothing.code, 2, "{}", nothing.stderr);
    assert!(
        nothing.stderr.contains(
            "scenarios: no folder of scenarios yet: write one, or record one with `upgrade-check record NAME`"
        ),
        "{}",
        nothing.stderr
    );
    let recorder = Recorder::start(&ctx, "accounts");
    let json = ["--header", "Content-Type: application/json", "--data"];
    let mistyped = curl(
        recorder.port,
        &[&["{base}/users"][..], &json, &[r#"{"username":"alice"}"#]].concat(),
    );
    assert!(mistyped.contains("Field required"), "{mistyped}");
    let sign_up =
        r#"{"username":"alice","password":"correct horse battery","full_name":"Alice Liddell"}"#;
    curl(
        recorder.port,
        &[&["{base}/users"][..], &json, &[sign_up]].concat(),
    );
    let login = |password: &str| {
        curl(
            recorder.port,
            &[
                "{base}/token",
                "--data",
                "username=alice",
                "--data",
                &format!("password={password}"),
            ],
        )
    };
    let token: serde_json::Value = serde_json::from_str(&login("correct horse battery")).unwrap();
    login("wrong-password");
    let bearer = format!(
        "Authorization: Bearer {}",
        token["access_token"].as_str().unwrap()
    );
    let me = curl(recorder.port, &["{base}/users/me", "--header", &bearer]);
    assert!(me.contains("Alice Liddell"), "{me}");
    let said = recorder.stop().join("\n");

    assert!(
        said.contains("scenarios/accounts.toml: 5 steps")
            && said.contains("`access_token` is captured from step 3's answer (/access_token)")
            && said.contains("snapshots/accounts.snap.new:")
            && !said.contains("does NOT match")
            && !said.contains("`loc")
            && !said.contains("correct horse battery"),
        "{said}"
    );
    let scenario = std::fs::read_to_string(ctx.path("scenarios/accounts.toml")).unwrap();
    assert!(
        scenario.contains("password = \"correct horse battery\"")
            && scenario.contains("body = \"username=alice&password={{password}}\"")
            && scenario.contains("body = \"username=alice&password={{password_2}}\"")
            && scenario.contains("authorization = \"Bearer {{access_token}}\"")
            && scenario.matches("capture").count() == 1
            && !scenario.contains("{{loc"),
        "{scenario}"
    );
    // In its [secrets] table alone.
    assert_eq!(scenario.matches("correct horse battery").count(), 1);

    // Run before it is reviewed: nothing to compare with yet, and said so.
    let unreviewed = ctx.run(&[]);
    assert_eq!(unreviewed.code, 1, "{}", unreviewed.stderr);
    assert!(
        unreviewed.stdout.starts_with(
            "✗ accounts has no accepted snapshot yet: review what the baseline answered"
        ) && !unreviewed.stdout.contains("does not match"),
        "{}",
        unreviewed.stdout
    );
    let accepted = ctx.run(&["accept", "accounts"]);
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let green = ctx.run(&[]);
    green.assert_green();

    ctx.set_matrix(r#"pydantic = ["1.10.19"]"#);
    let run = ctx.run(&["--no-bisect"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with(
            "✗ pydantic 1.10.19 breaks accounts: step `POST /users`: the body differs"
        ),
        "{}",
        run.stdout
    );
}
