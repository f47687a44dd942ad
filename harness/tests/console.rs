//! The console engine against a real shell on a pty: Debian's dash as `sh`,
//! or the shell command in `LABCHECK_TEST_SHELL` (say `busybox sh -i`, the
//! guest's shell).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use labcheck::console::pty::LocalShell;
use labcheck::console::{CommandOutput, Console, ConsoleError};
use labcheck::time::Deadline;
use regex::Regex;
use rstest::rstest;
use tempfile::TempDir;
use tokio::io::AsyncReadExt;

const GENEROUS: Duration = Duration::from_secs(10);

/// A shell on a pty behind a started console. Dropping it kills the shell
/// (even when a test panics) and removes the transcript's directory.
struct ShellConsole {
    console: Console,
    shell: LocalShell,
    transcript: PathBuf,
    _dir: TempDir,
}

async fn shell_console() -> ShellConsole {
    let dir = tempfile::tempdir().expect("temp dir");
    let transcript = dir.path().join("console.log");
    let command = std::env::var("LABCHECK_TEST_SHELL").unwrap_or_else(|_| "sh -i".to_owned());
    let mut words = command.split_whitespace();
    let program = words.next().expect("LABCHECK_TEST_SHELL names a program");
    let args: Vec<&str> = words.collect();
    let (shell, pty) = LocalShell::spawn(program, &args).expect("spawn the shell on a pty");
    let mut console = Console::start(pty, &transcript).expect("start console");
    console
        .wait_for_shell(Deadline::after(GENEROUS))
        .await
        .expect("shell set up");
    ShellConsole {
        console,
        shell,
        transcript,
        _dir: dir,
    }
}

async fn run_ok(console: &mut Console, command: &str) -> CommandOutput {
    console
        .run(command, Deadline::after(GENEROUS))
        .await
        .unwrap_or_else(|error| panic!("{command}: {error}"))
}

#[rstest]
#[case::success("true", "", 0)]
#[case::failure("false", "", 1)]
#[case::chosen_status("(exit 42)", "", 42)]
#[case::killed_by_sigint("sh -c 'kill -INT $$'", "", 130)]
#[case::no_final_newline("printf abc", "abc", 0)]
#[case::multi_line("printf 'a\\nb\\n\\nc\\n'", "a\nb\n\nc\n", 0)]
#[case::ansi_stripped("printf '\\033[1;31mred\\033[0m \\033[2Jok\\r\\n'", "red ok\n", 0)]
#[case::stderr_included("echo oops >&2; (exit 3)", "oops\n", 3)]
#[case::trailing_comment("echo hi # a comment", "hi\n", 0)]
#[case::background_job("sleep 0 &", "", 0)]
#[tokio::test]
async fn runs_a_command(#[case] command: &str, #[case] output: &str, #[case] exit: i32) {
    let mut shell = shell_console().await;
    let got = run_ok(&mut shell.console, command).await;
    assert_eq!((got.output.as_str(), got.exit), (output, exit));
}

#[tokio::test]
async fn command_not_found_exits_127() {
    let mut shell = shell_console().await;
    let got = run_ok(&mut shell.console, "no-such-command-lc").await;
    assert_eq!(got.exit, 127);
    // dash says `sh: <line>: no-such-command-lc: not found`.
    assert!(
        got.output.ends_with(": no-such-command-lc: not found\n"),
        "{got:?}"
    );
}

#[tokio::test]
async fn each_reply_belongs_to_its_own_command() {
    let mut shell = shell_console().await;
    // Output that imitates the markers of other frames does not end a frame.
    let fake = "echo LC\\B00000000; echo LC\\E00000000:0";
    let got = run_ok(&mut shell.console, fake).await;
    assert_eq!(got.output, "LCB00000000\nLCE00000000:0\n");
    for n in 0..20 {
        let got = run_ok(&mut shell.console, &format!("echo {n}")).await;
        assert_eq!(got.output, format!("{n}\n"));
    }
}

#[tokio::test]
async fn typed_ahead_marker_is_not_swallowed_by_a_stdin_reader() {
    let mut shell = shell_console().await;
    let error = shell
        .console
        .run(
            "read -r line; echo \"got [$line]\"",
            Deadline::after(Duration::from_millis(500)),
        )
        .await
        .expect_err("nothing was typed for read");
    assert!(matches!(error, ConsoleError::Timeout { .. }), "{error}");
    let after = run_ok(&mut shell.console, "echo still here").await;
    assert_eq!(after.output, "still here\n");
    let transcript = std::fs::read_to_string(&shell.transcript).expect("transcript");
    assert!(
        !transcript.contains("got ["),
        "read consumed typed text:\n{transcript}"
    );
}

#[tokio::test]
async fn stdin_reader_times_out_and_console_stays_usable() {
    let mut shell = shell_console().await;
    let error = shell
        .console
        .run("cat", Deadline::after(Duration::from_secs(1)))
        .await
        .expect_err("cat waits for input forever");
    assert!(
        matches!(&error, ConsoleError::Timeout { expected, .. } if expected == "cat"),
        "{error}"
    );
    let after = run_ok(&mut shell.console, "echo 1; false").await;
    assert_eq!((after.output.as_str(), after.exit), ("1\n", 1));
}

#[tokio::test]
async fn command_that_never_returns_hits_its_deadline() {
    let mut shell = shell_console().await;
    run_ok(&mut shell.console, "echo before the sleep").await;
    let started = Instant::now();
    let error = shell
        .console
        .run("sleep 1000", Deadline::after(Duration::from_secs(1)))
        .await
        .expect_err("sleep outlives its deadline");
    let ConsoleError::Timeout {
        expected,
        waited,
        tail,
    } = &error
    else {
        panic!("not a timeout: {error}");
    };
    assert_eq!(expected, "sleep 1000");
    assert!(
        *waited >= Duration::from_secs(1) && *waited < Duration::from_secs(2),
        "{waited:?}"
    );
    // The tail reads as a terminal would have shown it: each command as
    // typed, its output, a status that was not 0; no frame marker.
    assert_eq!(
        tail[tail.len() - 3..],
        [
            "# echo before the sleep",
            "before the sleep",
            "# sleep 1000"
        ],
        "{tail:?}"
    );
    assert!(
        !tail
            .iter()
            .any(|line| line.contains("LCB") || line.contains("LCE")),
        "{tail:?}"
    );
    let message = error.to_string();
    assert!(
        message
            .starts_with("timed out after 1.0s waiting for sleep 1000; last lines on the console:"),
        "{message}"
    );
    assert!(message.contains("\n  | before the sleep\n"), "{message}");
    // Ctrl-C got the shell back quickly.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let after = run_ok(&mut shell.console, "echo awake").await;
    assert_eq!(after.output, "awake\n");
}

#[tokio::test]
async fn closed_console_fails_fast() {
    let mut shell = shell_console().await;
    let started = Instant::now();
    let error = shell
        .console
        .run("exit 0", Deadline::after(Duration::from_secs(30)))
        .await
        .expect_err("the shell is gone");
    assert!(
        matches!(&error, ConsoleError::Closed { expected, .. } if expected == "exit 0"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let error = shell
        .console
        .run(
            "echo anyone there",
            Deadline::after(Duration::from_secs(30)),
        )
        .await
        .expect_err("still gone");
    assert!(matches!(error, ConsoleError::Closed { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn transcript_holds_the_raw_bytes() {
    let mut shell = shell_console().await;
    let got = run_ok(&mut shell.console, "printf '\\033[2J\\033[6nraw\\r\\n'").await;
    assert_eq!(got.output, "raw\n");
    let transcript = std::fs::read(&shell.transcript).expect("transcript");
    // The pty turns the printed `\r\n` into `\r\r\n`, as SeaBIOS prints it.
    let raw = b"\x1b[2J\x1b[6nraw\r\r\n";
    assert!(
        transcript.windows(raw.len()).any(|w| w == raw),
        "{}",
        String::from_utf8_lossy(&transcript)
    );
}

#[tokio::test]
async fn expect_finds_a_pattern_and_moves_past_it() {
    let mut shell = shell_console().await;
    let deadline = Deadline::after(GENEROUS);
    shell
        .console
        .send_line("echo first; echo second", deadline)
        .await
        .expect("typed");
    let second = Regex::new(r"sec\w+").expect("regex");
    let found = shell
        .console
        .expect(&second, deadline)
        .await
        .expect("second");
    assert_eq!(
        (found.before.as_str(), found.matched.as_str()),
        ("first\n", "second")
    );
    // The cursor is past "second": it is not found again.
    let error = shell
        .console
        .expect(&second, Deadline::after(Duration::from_millis(200)))
        .await
        .expect_err("already consumed");
    assert!(
        matches!(&error, ConsoleError::Timeout { expected, .. } if expected == "output matching /sec\\w+/"),
        "{error}"
    );
}

#[tokio::test]
async fn wait_for_shell_retypes_setup_until_deadline() {
    let (guest, host) = tokio::io::duplex(1 << 16);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut console = Console::start(host, &dir.path().join("console.log")).expect("start");
    let (mut guest_reads, _guest_writes) = tokio::io::split(guest);
    let error = console
        .wait_for_shell(Deadline::after(Duration::from_millis(1200)))
        .await
        .expect_err("nobody answers");
    let message = error.to_string();
    assert!(
        message.starts_with(
            "timed out after 1.2s waiting for a shell on the console (setup marker LCREADY"
        ),
        "{message}"
    );
    assert!(
        message.ends_with("; the console printed nothing"),
        "{message}"
    );
    let mut typed = vec![0; 1 << 16];
    let n = guest_reads.read(&mut typed).await.expect("typed setup");
    let setup_lines = String::from_utf8_lossy(&typed[..n])
        .matches("stty -echo")
        .count();
    assert_eq!(setup_lines, 3, "typed at 0, 0.5 and 1.0 s");
}

#[tokio::test]
async fn stream_end_fails_a_waiter_at_once() {
    let (guest, host) = tokio::io::duplex(1 << 16);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut console = Console::start(host, &dir.path().join("console.log")).expect("start");
    let pattern = Regex::new("never").expect("regex");
    let waiter = console.expect(&pattern, Deadline::after(Duration::from_secs(30)));
    let started = Instant::now();
    let (result, ()) = tokio::join!(waiter, async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(guest);
    });
    let error = result.expect_err("the stream ended");
    assert!(
        matches!(&error, ConsoleError::Closed { reason, .. } if reason == "end of stream"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn console_and_its_futures_can_move_between_threads() {
    fn assert_send<T: Send>(_: &T) {}
    let (_guest, host) = tokio::io::duplex(64);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut console = Console::start(host, &dir.path().join("console.log")).expect("start");
    let deadline = Deadline::after(GENEROUS);
    assert_send(&console.run("true", deadline));
    assert_send(&console.wait_for_shell(deadline));
    let pattern = Regex::new("x").expect("regex");
    assert_send(&console.expect(&pattern, deadline));
    assert_send(&console);
}

/// Round trip of `run("echo N")`: prints the median (run with
/// `--nocapture` to see it) and fails if it is far off the 2 ms target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout, reason = "the benchmark's figure is its output")]
async fn round_trip_median() {
    let mut shell = shell_console().await;
    let mut times = Vec::with_capacity(200);
    for n in 0..200 {
        let started = Instant::now();
        let got = run_ok(&mut shell.console, &format!("echo {n}")).await;
        times.push(started.elapsed());
        assert_eq!(got.output, format!("{n}\n"));
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "run(\"echo N\") x200 on a local sh: median {:.3} ms, min {:.3} ms, max {:.3} ms",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    assert!(median < Duration::from_millis(20), "median {median:?}");
    shell.shell.kill().await.expect("kill shell");
}
