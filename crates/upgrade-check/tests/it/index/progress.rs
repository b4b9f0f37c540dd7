//! Progress while cells build and run: a live display on a terminal, plain
//! lines in a log.

use std::io::Read;
use std::process::Stdio;

use crate::common::TestContext;
use nix::pty::{Winsize, openpty};

#[test]
fn a_terminal_gets_a_live_display_and_a_log_gets_plain_lines() {
    let ctx = TestContext::new();
    ctx.set_matrix(r#"bcrypt = ["4.1.2"]"#);

    let size = Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).unwrap();
    let mut command = ctx.command(&[]);
    command
        .env("TERM", "xterm-256color")
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave));
    let mut harness = command.spawn().unwrap();
    drop(command);
    let mut terminal = std::fs::File::from(pty.master);
    let mut screen = Vec::new();
    // The read ends with EIO once the harness, the last holder of the other side, exits.
    let _ = terminal.read_to_end(&mut screen);
    assert!(harness.wait().unwrap().success());
    let screen = String::from_utf8_lossy(&screen);
    assert!(
        screen.contains("cells done · ") && screen.contains(" running"),
        "the plan's bar: {screen}"
    );
    assert!(
        screen.contains("bcrypt 4.1.2: ") && screen.contains("\x1b[2K"),
        "a cell's own line, redrawn in place: {screen}"
    );
    assert!(screen.contains("(2/2 cells done)"), "{screen}");

    let logged = ctx.run(&[]);
    assert_eq!(logged.code, 0);
    assert!(!logged.stderr.contains('\x1b'), "{}", logged.stderr);
    assert!(
        logged.stderr.contains("] bcrypt 4.1.2: ") && logged.stderr.contains("(2/2 cells done)"),
        "{}",
        logged.stderr
    );
}
