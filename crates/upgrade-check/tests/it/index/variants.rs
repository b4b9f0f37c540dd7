//! Service variants that real upgrades break: the harness must name the version and the symptom.

use crate::common::Verdict;
use crate::common::{TestContext, assert_no_service_left, scenario_report, verdict};

#[test]
fn bytes_token_breaks_login_on_pyjwt_2() {
    let ctx = TestContext::new();
    ctx.overlay("fixtures/variants/pyjwt-bytes-token");
    ctx.set_matrix(r#"pyjwt = ["1.7.1", "2.8.0"]"#);
    let run = ctx.run(&[]);
    assert_eq!(run.code, 1);
    let report = ctx.report();
    for scenario in ["health", "login", "long-password", "register"] {
        assert_eq!(
            verdict(&report, "baseline", scenario),
            Verdict::Pass,
            "PyJWT 1.7.1 returns bytes"
        );
    }
    assert_eq!(verdict(&report, "pyjwt 2.8.0", "login"), Verdict::Changed);
    assert_eq!(
        verdict(&report, "pyjwt 2.8.0", "register"),
        Verdict::Pass,
        "registering issues no token"
    );
    let login = scenario_report(&report, "pyjwt 2.8.0", "login");
    assert!(
        login.summary.as_deref().unwrap().contains("500"),
        "{login:?}"
    );
    assert!(
        login
            .log_tail
            .as_deref()
            .unwrap()
            .contains("'str' object has no attribute 'decode'"),
        "{login:?}"
    );
    assert_no_service_left(&ctx, &report);
}
