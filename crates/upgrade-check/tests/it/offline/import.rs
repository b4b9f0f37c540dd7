//! `upgrade-check import har` on files a browser could have written, and
//! on files it could not have: what is kept, what is left out and said,
//! and bad input refused with its line.

use crate::common::TestContext;

fn entry(method: &str, url: &str, mime: &str, answer: &str) -> serde_json::Value {
    serde_json::json!({
        "startedDateTime": "2026-12-01T10:00:00.000Z",
        "time": 3,
        "request": {
            "method": method, "url": url, "httpVersion": "HTTP/1.1",
            "headers": [{"name": "Accept", "value": "*/*"}],
            "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0
        },
        "response": {
            "status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
            "headers": [{"name": "Content-Type", "value": mime}], "cookies": [],
            "content": {"size": answer.len(), "mimeType": mime, "text": answer},
            "redirectURL": "", "headersSize": -1, "bodySize": answer.len()
        },
        "cache": {}, "timings": {"send": 0, "wait": 3, "receive": 0}
    })
}

fn har(entries: Vec<serde_json::Value>) -> String {
    serde_json::json!({
        "log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": entries}
    })
    .to_string()
}

#[test]
fn a_browser_session_keeps_the_service_and_lists_what_it_left_out() {
    let ctx = TestContext::new();
    let file = ctx.path("browser.har");
    std::fs::write(
        &file,
        har(vec![
            entry(
                "GET",
                "http://127.0.0.1:5000/health",
                "application/json",
                r#"{"status": "ok"}"#,
            ),
            entry(
                "GET",
                "http://127.0.0.1:5000/static/app.js",
                "text/javascript",
                "x()",
            ),
            entry("GET", "https://fonts.example/inter.woff2", "font/woff2", ""),
            entry(
                "GET",
                "http://127.0.0.1:5000/api/auth/me",
                "application/json",
                "{}",
            ),
        ]),
    )
    .unwrap();
    let run = ctx.run(&["import", "har", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("2 steps, the requests to http://127.0.0.1:5000")
            && run.stdout.contains("left out (2):")
            && run
                .stdout
                .contains("GET http://127.0.0.1:5000/static/app.js: a static file")
            && run.stdout.contains(
                "GET https://fonts.example/inter.woff2: another origin than http://127.0.0.1:5000"
            ),
        "{}",
        run.stdout
    );
    let scenario = std::fs::read_to_string(ctx.path("scenarios/browser.toml")).unwrap();
    assert!(scenario.contains("name = \"GET /health\""), "{scenario}");

    // Never over an existing scenario.
    let again = ctx.run(&["import", "har", file.to_str().unwrap()]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("scenarios/browser.toml")
            && again.stderr.contains("never overwrites"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_file_that_is_not_a_har_or_holds_no_request_to_a_service_is_refused() {
    let ctx = TestContext::new();
    let broken = ctx.path("broken.har");
    std::fs::write(
        &broken,
        "{\n  \"log\": {\n    \"entries\": [\n      {\"request\": 3}\n",
    )
    .unwrap();
    let run = ctx.run(&["import", "har", broken.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("broken.har:4:") && run.stderr.contains("not a HAR file"),
        "{}",
        run.stderr
    );
    let assets = ctx.path("assets.har");
    std::fs::write(
        &assets,
        har(vec![entry(
            "GET",
            "http://127.0.0.1:5000/logo.png",
            "image/png",
            "",
        )]),
    )
    .unwrap();
    let run = ctx.run(&["import", "har", assets.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no request to a service"),
        "{}",
        run.stderr
    );
    assert!(!ctx.path("scenarios/assets.toml").exists());
}

#[test]
fn a_postman_collection_says_what_it_cannot_translate_and_refuses_what_it_cannot_read() {
    let ctx = TestContext::new();
    let collection = ctx.path("uploads.postman_collection.json");
    std::fs::write(
        &collection,
        serde_json::json!({
            "info": {
                "name": "uploads",
                "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
            },
            "item": [{
                "name": "upload a file",
                "event": [{"listen": "prerequest", "script": {"exec": ["pm.variables.set('n', Date.now());"]}}],
                "request": {
                    "method": "POST",
                    "header": [{"key": "X-Tenant", "value": "{{tenant}}"}],
                    "body": {"mode": "formdata", "formdata": [{"key": "file", "type": "file", "src": "a.txt"}]},
                    "url": "{{baseUrl}}/api/files"
                }
            }]
        })
        .to_string(),
    )
    .unwrap();
    let run = ctx.run(&["import", "postman", collection.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for said in [
        "item `upload a file`: its `formdata` body is not translated (raw bodies are); left out",
        "item `upload a file`: its `prerequest` script is not translated (1 lines)",
        "`{{tenant}}` has no value in the collection or the environment: it is empty under [vars]; give it one",
    ] {
        assert!(run.stdout.contains(said), "{said} in {}", run.stdout);
    }
    assert!(ctx.path("scenarios/uploads.toml").is_file());
    // An environment file gives the variable its value.
    std::fs::remove_file(ctx.path("scenarios/uploads.toml")).unwrap();
    let environment = ctx.path("staging.postman_environment.json");
    std::fs::write(
        &environment,
        r#"{"name": "staging", "values": [{"key": "tenant", "value": "acme", "enabled": true}]}"#,
    )
    .unwrap();
    let run = ctx.run(&[
        "import",
        "postman",
        collection.to_str().unwrap(),
        "--environment",
        environment.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("has no value"), "{}", run.stdout);
    let scenario = std::fs::read_to_string(ctx.path("scenarios/uploads.toml")).unwrap();
    assert!(scenario.contains("[vars]\ntenant = \"acme\""), "{scenario}");

    let old = ctx.path("v1.json");
    std::fs::write(&old, r#"{"info": {"name": "x", "schema": "https://schema.getpostman.com/json/collection/v1.0.0/collection.json"}}"#).unwrap();
    let run = ctx.run(&["import", "postman", old.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("v1.json") && run.stderr.contains("export the collection as v2.1"),
        "{}",
        run.stderr
    );
    let broken = ctx.path("broken.json");
    std::fs::write(&broken, "{\n  \"info\": {\n    \"name\": 3,\n").unwrap();
    let run = ctx.run(&["import", "postman", broken.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("broken.json:3:") && run.stderr.contains("not a Postman collection"),
        "{}",
        run.stderr
    );
}

#[test]
fn init_writes_nothing_through_a_folder_a_symlink_leads_outside() {
    let repository = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(repository.path().join("requirements.txt"), "flask==2.2.5\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), repository.path().join("scenarios")).unwrap();
    let output = std::process::Command::new(crate::common::binary())
        .arg("init")
        .current_dir(repository.path())
        .env_remove("CI")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("scenarios/health.toml") && stderr.contains("leads outside"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(!repository.path().join("upgrade-check.toml").exists());
}

#[test]
fn a_har_file_too_large_to_read_is_refused_naming_it() {
    let ctx = TestContext::new();
    let file = ctx.path("huge.har");
    // 300 MiB, sparse: the harness reads no more than its cap of it.
    std::fs::File::create(&file)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let run = ctx.run(&["import", "har", &file.to_string_lossy()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("huge.har") && run.stderr.contains("the file is 300 MiB"),
        "{}",
        run.stderr
    );
    assert!(!ctx.path("scenarios/huge.toml").exists());
}

/// `record --listen` on an address another process holds says which, before
/// the baseline is built.
#[test]
fn record_on_a_busy_address_names_it_before_anything_runs() {
    let ctx = TestContext::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let run = ctx.run(&["record", "busy", "--listen", &address]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "cannot listen on {address}: Address already in use"
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("resolving"), "{}", run.stderr);
    drop(busy);
}
