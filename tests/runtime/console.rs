//! process.terminal with --console-socket: the pty master arrives over SCM_RIGHTS.

use crate::*;
use berth_tests::console::ConsoleSocket;

#[test]
fn terminal_via_console_socket() {
    let (mut b, rt, id) = setup!("console");
    b.terminal(true);
    b.sh("test -t 0 && echo tty-yes; tty; read x; echo got:$x");
    let sock = ConsoleSocket::listen(&rt.scratch().join("console.sock"));
    rt.create_with(&id, &b, &["--console-socket", &sock.path_str()], |_| {}).ok();
    let mut m = sock.master(Duration::from_secs(10)).expect("pty master over the console socket");
    // runc sends "/dev/ptmx"; others the slave's /dev/pts/N: any non-empty name.
    assert!(!m.name.is_empty(), "the console message carries a name: {:?}", m.name);
    rt.start(&id).ok();
    let seen = m.read_until("tty-yes", Duration::from_secs(10));
    assert!(seen.contains("tty-yes"), "the container sees a terminal on stdin: {seen:?}");
    m.write_all(b"hello\n");
    let seen = m.read_until("got:hello", Duration::from_secs(10));
    assert!(seen.contains("got:hello"), "input written to the master reaches the container: {seen:?}");
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    rt.delete(&id).ok();
}

#[test]
fn terminal_without_console_socket_fails() {
    let (mut b, rt, id) = setup!("console_missing");
    b.terminal(true);
    b.args(&["true"]);
    rt.create(&id, &b).fails_mentioning(&["console"]);
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn no_terminal_no_tty() {
    let out = sh_output("no_tty", |_| {}, "test -t 0 && echo tty=yes || echo tty=no");
    assert_eq!(field(&out, "tty"), Some("no"));
}
