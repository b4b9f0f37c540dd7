//! report.html in a real headless Chromium: click a failing square, see its diff.
//!
//! Drives Debian's chromium through chromedriver's WebDriver HTTP API.
//! `cargo xtask test` installs both as root; elsewhere: `apt-get install chromium chromium-driver`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::TestContext;
use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(program: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .find(|path| std::path::Path::new(path).exists())
        .map(|path| (*path).to_owned())
        .unwrap_or_else(|| panic!("{program} not found ({candidates:?}); install Debian's chromium and chromium-driver"))
}

async fn start_driver() -> Driver {
    let binary = find(
        "chromedriver",
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = upgrade_check_core::util::client_builder()
        .no_proxy()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client.get(format!("{}/status", driver.url)).send().await;
        if let Ok(response) = ready
            && let Ok(status) = response.json::<Value>().await
            && status["value"]["ready"] == true
        {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut request = client
        .request(method, &url)
        .timeout(Duration::from_secs(60));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer: Value = request.send().await.unwrap().json().await.unwrap();
    assert!(answer["value"]["error"].is_null(), "{url}: {answer}");
    answer["value"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn clicking_a_failing_square_shows_its_diff() {
    // A real report: the baseline and bcrypt 5.0.0, which breaks long-password.
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["5.0.0"]"#);
    let run = tokio::task::block_in_place(|| ctx.run(&[]));
    assert_eq!(run.code, 1);
    let page = ctx.path("state/report/report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    for loads in ["<link", "<script src", "<img", "url(", "@import", "fetch("] {
        assert!(
            !html.contains(loads),
            "the page loads nothing from elsewhere: found {loads}"
        );
    }

    let driver = start_driver().await;
    let client = upgrade_check_core::util::client_builder()
        .no_proxy()
        .build()
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let chromium = find(
        "chromium",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let session = call(
        &client,
        reqwest::Method::POST,
        format!("{}/session", driver.url),
        Some(json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1400,1000",
                     format!("--user-data-dir={}", profile.path().display())]
        }}}})),
    )
    .await;
    let id = session["sessionId"].as_str().unwrap().to_owned();
    let browser = Session {
        client: client.clone(),
        url: format!("{}/session/{id}", driver.url),
    };
    browser.open(&page).await;
    // The first failure is open from the start, under the run's details and a legend.
    let opened = browser.text("#diff").await;
    assert!(opened.contains("+< 500 Internal Server Error"), "{opened}");
    let run_details = browser.text("#run").await;
    assert!(
        run_details.contains("Python 3.")
            && run_details.contains("reproduce\ncargo xtask upgrade-check"),
        "{run_details}"
    );
    assert!(browser.text("#legend").await.contains("build-failed"));
    browser
        .click("button.square.changed[data-cell='bcrypt 5.0.0'][data-scenario='long-password']")
        .await;
    let text = browser.text("#diff").await;
    assert!(text.contains("+< 500 Internal Server Error"), "{text}");
    let versions = browser.text("#versions").await;
    assert!(versions.contains("bcrypt 3.2.0 → 5.0.0"), "{versions}");

    // A picture of what a reviewer sees, for the README.
    let screenshot = browser
        .call(reqwest::Method::GET, "/screenshot", None)
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(screenshot.as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let target = std::env::var_os("UPGRADE_CHECK_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png"));
    std::fs::write(&target, png).unwrap();

    // The same report, with hostile text wherever a service or a scenario can
    // put text: the page shows it as text, and no script of theirs runs.
    let hostile = "{{data}}{{title}}</script><script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">";
    let mut report = crate::common::report_at(&ctx.path("state/report/report.json"));
    for cell in &mut report.cells {
        for scenario in &mut cell.scenarios {
            if scenario.verdict == crate::common::Verdict::Changed {
                scenario.summary = Some(hostile.to_owned());
                scenario.log_tail = Some(hostile.to_owned());
                scenario.diff = Some(format!("+< {hostile}"));
            }
        }
    }
    report.cells[1].scenarios[0].scenario = hostile.to_owned();
    let hostile_page = ctx.path("hostile.html");
    std::fs::write(
        &hostile_page,
        upgrade_check_core::render::html::render(&report).unwrap(),
    )
    .unwrap();
    browser.open(&hostile_page).await;
    browser.click("button.square.changed").await;
    assert_eq!(
        browser.text("#log").await,
        hostile,
        "hostile text is shown as text"
    );
    let ran = browser
        .call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "return [typeof window.pwned, document.querySelectorAll('img').length, document.getElementById('headline').textContent];", "args": []})),
        )
        .await;
    assert_eq!(ran[0], "undefined", "no hostile script ran: {ran}");
    assert_eq!(ran[1], 0, "no hostile element was made: {ran}");
    assert_eq!(
        ran[2],
        upgrade_check_core::render::headline::headline(&report),
        "the headline is text"
    );
    browser.call(reqwest::Method::DELETE, "", None).await;
}

/// One WebDriver session: open a file, click an element, read its text.
struct Session {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    url: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        call(&self.client, method, format!("{}{path}", self.url), body).await
    }

    async fn open(&self, page: &std::path::Path) {
        let url = json!({"url": format!("file://{}", page.display())});
        self.call(reqwest::Method::POST, "/url", Some(url)).await;
    }

    async fn element(&self, selector: &str) -> String {
        let body = json!({"using": "css selector", "value": selector});
        self.call(reqwest::Method::POST, "/element", Some(body))
            .await[ELEMENT]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn click(&self, selector: &str) {
        let element = self.element(selector).await;
        let path = format!("/element/{element}/click");
        self.call(reqwest::Method::POST, &path, Some(json!({})))
            .await;
    }

    async fn text(&self, selector: &str) -> String {
        let element = self.element(selector).await;
        let path = format!("/element/{element}/text");
        let text = self.call(reqwest::Method::GET, &path, None).await;
        text.as_str().unwrap().to_owned()
    }
}
