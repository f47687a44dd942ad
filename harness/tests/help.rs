//! `labcheck --help` and every subcommand's help, as a person reads them:
//! a doc comment that lands on the wrong item, or an option that loses its
//! text, shows up as a reviewable diff.

use clap::CommandFactory;
use labcheck::cli::Cli;

fn help_of(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_labcheck"))
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .expect("run labcheck --help");
    assert!(output.status.success(), "{args:?} --help failed");
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

#[test]
fn the_top_level_help() {
    insta::assert_snapshot!(help_of(&[]));
}

#[test]
fn every_subcommand_has_help_of_its_own() {
    for command in Cli::command().get_subcommands() {
        let name = command.get_name();
        if name == "help" {
            continue;
        }
        let help = help_of(&[name]);
        assert!(
            command.get_about().is_some(),
            "`{name}` has no description in `labcheck --help`"
        );
        insta::assert_snapshot!(format!("help_{name}"), help);
    }
}
