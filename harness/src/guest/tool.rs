//! Running one of the guest build's short tools (mkfs.fat, syslinux, mtools,
//! `qemu-img convert`, `busybox --list-full`) through the process door, with
//! a deadline, its failure worded once.

use std::process::Command;
use std::time::Duration;

use super::GuestError;
use crate::process::{run_blocking, ShellExit};
use crate::time::Deadline;

/// Each tool works on a 64 MiB image or less in well under a second; a
/// minute means it hangs (an unexpected prompt, a broken tool), not that it
/// is slow.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `command` and returns what it printed (stdout and stderr); an error
/// naming `label` when it cannot start (with `missing`, the hint for a tool
/// that is not installed) or does not exit 0.
pub(super) fn run_tool(
    label: &str,
    command: &mut Command,
    missing: &str,
) -> Result<String, GuestError> {
    let output =
        run_blocking(command, Deadline::after(TOOL_TIMEOUT)).map_err(|e| GuestError::Tool {
            tool: label.to_string(),
            reason: format!("{e}{missing}"),
        })?;
    if output.exit != ShellExit::Exited(0) {
        return Err(GuestError::Tool {
            tool: label.to_string(),
            reason: format!("{:?}: {}", output.exit, output.text().trim()),
        });
    }
    Ok(output.text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_tool_is_named_with_its_exit_and_output() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo broken >&2; exit 2"]);
        let error = run_tool("sh -c", &mut command, "").expect_err("exit 2 fails");
        assert_eq!(
            error.to_string(),
            GuestError::Tool {
                tool: "sh -c".into(),
                reason: "Exited(2): broken".into()
            }
            .to_string()
        );
    }

    #[test]
    fn a_missing_tool_gets_its_hint() {
        let mut command = Command::new("/nonexistent/qemu-img");
        let error =
            run_tool("qemu-img", &mut command, " (install qemu-utils)").expect_err("not there");
        assert!(
            error.to_string().contains("(install qemu-utils)"),
            "{error}"
        );
    }
}
