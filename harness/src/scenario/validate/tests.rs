//! The validator's rules, each shown on a small lab: where each problem is
//! reported, what its help suggests, and the defaults a valid step gets.

use std::path::Path;

use rstest::rstest;

use super::is_name;
use crate::scenario::model::{Action, Check, FieldExpect, Lab};
use crate::scenario::parse;

/// A valid lab of one step (lines 1 to 12); cases append from line 13.
const BASE: &str =
    "[lab]\nid = \"t\"\ntitle = \"T\"\nhandout = \"H\"\n\n[vm.vm1]\nqemu = \"qemu-system-x86_64\"\n\n\
                    [[step]]\nname = \"ok\"\nhost = \"true\"\n\n";

fn problems(text: &str) -> Vec<String> {
    match parse(Path::new("t.toml"), text) {
        Ok(lab) => panic!("accepted: {lab:?}"),
        Err(error) => error.located_messages(),
    }
}

fn lab(tail: &str) -> Lab {
    parse(Path::new("t.toml"), &format!("{BASE}{tail}"))
        .unwrap_or_else(|error| panic!("{}", error.located_messages().join("\n")))
}

#[test]
fn base_is_valid() {
    assert_eq!(lab("").steps.len(), 1);
}

#[rstest]
#[case::no_action("[[step]]\nname = \"a\"\n", "13:1: this step has no action")]
#[case::two_actions(
    "[[step]]\nname = \"a\"\nhost = \"ls\"\nreboot = \"vm1\"\n",
    "16:10: a step has one action, but this one has `host` and `reboot`"
)]
#[case::run_without_on("[[step]]\nname = \"a\"\nrun = \"ls\"\n", "15:7: `run` needs `on`")]
#[case::interact_without_on(
    "[[step]]\nname = \"a\"\ninteract = [{ send = \"x\" }]\n",
    "15:12: `interact` needs `on`"
)]
#[case::on_with_boot(
    "[[step]]\nname = \"a\"\non = \"vm1\"\nboot = \"vm1\"\n",
    "15:6: `on` does not apply to `boot`"
)]
#[case::unknown_vm(
    "[[step]]\nname = \"a\"\nreboot = \"vm9\"\n",
    "15:10: unknown VM `vm9`"
)]
#[case::unknown_vm_in_on(
    "[[step]]\nname = \"a\"\non = \"vm9\"\nrun = \"ls\"\n",
    "15:6: unknown VM `vm9`"
)]
#[case::no_name("[[step]]\nhost = \"ls\"\n", "13:1: [[step]] has no `name`")]
#[case::blank_name("[[step]]\nname = \" \"\nhost = \"ls\"\n", "14:8: `name` is empty")]
#[case::duplicate_name(
    "[[step]]\nname = \"ok\"\nhost = \"ls\"\n",
    "14:8: two steps are named `ok`"
)]
#[case::cleanup_reuses_a_step_name(
    "[[cleanup]]\nname = \"ok\"\nhost = \"ls\"\n",
    "14:8: two steps are named `ok`"
)]
#[case::cleanup_no_name("[[cleanup]]\nhost = \"ls\"\n", "13:1: [[cleanup]] has no `name`")]
#[case::blank_command("[[step]]\nname = \"a\"\nhost = \"\"\n", "15:8: `host` is empty")]
#[case::bad_regex_in_expect(
    "[[step]]\nname = \"a\"\nhost = \"ls\"\nexpect = { matches = \"a(\" }\n",
    "16:22: invalid regex: unclosed group"
)]
#[case::bad_regex_in_interact(
    "[[step]]\nname = \"a\"\non = \"vm1\"\ninteract = [{ expect = \"[\" }]\n",
    "16:24: invalid regex: unclosed character class"
)]
#[case::duration_without_unit(
    "[[step]]\nname = \"a\"\nboot = \"vm1\"\ntimeout = \"30\"\n",
    "16:11: `30` is not a duration"
)]
#[case::zero_duration(
    "[[step]]\nname = \"a\"\nboot = \"vm1\"\ntimeout = \"0s\"\n",
    "16:11: a timeout of zero can never be met"
)]
#[case::same_as_unsaved(
    "[[step]]\nname = \"a\"\ncheck = { digest = \"d\", same-as = \"x\" }\n",
    "15:35: no earlier step saves a digest named `x`"
)]
#[case::saved_twice(
    "[[step]]\nname = \"a\"\ncheck = { digest = \"d\", save = \"x\" }\n\
     [[step]]\nname = \"b\"\ncheck = { digest = \"d\", save = \"x\" }\n",
    "18:32: a digest named `x` is already saved"
)]
#[case::exit_too_large(
    "[[step]]\nname = \"a\"\nhost = \"ls\"\nexpect = { exit = 256 }\n",
    "16:19: exit status 256 is out of range"
)]
#[case::exit_negative(
    "[[step]]\nname = \"a\"\nhost = \"ls\"\nexpect = { exit = -1 }\n",
    "16:19: exit status -1 is out of range"
)]
#[case::erratum_without_observed(
    "[[step]]\nname = \"a\"\nhost = \"ls\"\nerratum = { reason = \"r\" }\n",
    "16:11: the erratum has no `observed`"
)]
#[case::erratum_without_reason(
    "[[step]]\nname = \"a\"\nhost = \"ls\"\nerratum = { observed = { exit = 1 } }\n",
    "16:11: `erratum` has no `reason`"
)]
#[case::erratum_observed_empty(
    "[[step]]\nname = \"a\"\nhost = \"ls\"\nerratum = { reason = \"r\", observed = {} }\n",
    "16:38: `observed` is empty"
)]
#[case::check_of_nothing(
    "[[step]]\nname = \"a\"\ncheck = {}\n",
    "15:9: a check needs `qemu-img-info`, `file`, `digest`, `no-links`, `running`, `traffic`, `subnet`, `socket-link` or `bridged-taps`"
)]
#[case::check_of_two_things(
    "[[step]]\nname = \"a\"\ncheck = { file = \"f\", digest = \"f\" }\n",
    "15:32: a check tests one thing, but this one has `file` and `digest`"
)]
#[case::check_option_of_another_kind(
    "[[step]]\nname = \"a\"\ncheck = { digest = \"f\", save = \"s\", exists = true }\n",
    "15:46: `exists` does not apply to a `digest` check"
)]
#[case::qemu_img_info_without_field(
    "[[step]]\nname = \"a\"\ncheck = { qemu-img-info = \"i\", absent = true }\n",
    "15:9: the `qemu-img-info` check has no `field`"
)]
#[case::qemu_img_info_without_expectation(
    "[[step]]\nname = \"a\"\ncheck = { qemu-img-info = \"i\", field = \"f\" }\n",
    "15:9: a `qemu-img-info` check needs `equals = …` or `absent = true`"
)]
#[case::qemu_img_info_absent_false(
    "[[step]]\nname = \"a\"\ncheck = { qemu-img-info = \"i\", field = \"f\", absent = false }\n",
    "15:54: `absent = false` checks nothing"
)]
#[case::qemu_img_info_equals_and_absent(
    "[[step]]\nname = \"a\"\ncheck = { qemu-img-info = \"i\", field = \"f\", equals = 1, absent = true }\n",
    "15:66: give `equals` or `absent = true`, not both"
)]
#[case::digest_without_mode(
    "[[step]]\nname = \"a\"\ncheck = { digest = \"d\" }\n",
    "15:9: a `digest` check needs `save = \"name\"` or `same-as = \"name\"`"
)]
#[case::digest_with_both_modes(
    "[[step]]\nname = \"a\"\ncheck = { digest = \"d\", save = \"x\", same-as = \"x\" }\n",
    "15:47: a digest check either saves or compares, not both"
)]
#[case::boot_nothing("[[step]]\nname = \"a\"\nboot = []\n", "15:8: `boot` names no VM")]
#[case::boot_twice(
    "[[step]]\nname = \"a\"\nboot = [\"vm1\", \"vm1\"]\n",
    "15:16: `vm1` is booted twice in one step"
)]
#[case::interact_nothing(
    "[[step]]\nname = \"a\"\non = \"vm1\"\ninteract = []\n",
    "16:12: `interact` is empty"
)]
#[case::interaction_of_nothing(
    "[[step]]\nname = \"a\"\non = \"vm1\"\ninteract = [{}]\n",
    "16:13: an interaction needs `send` or `expect`"
)]
#[case::interaction_of_two(
    "[[step]]\nname = \"a\"\non = \"vm1\"\ninteract = [{ send = \"x\", expect = \"y\" }]\n",
    "16:36: an interaction either sends or expects, not both"
)]
#[case::image_form(
    "[images]\n\"d.qcow2\" = \"guest:hd\"\n",
    "14:13: `guest:hd` is not a guest form"
)]
#[case::image_path(
    "[images]\n\"a/d.qcow2\" = \"guest:disk\"\n",
    "14:1: `a/d.qcow2` is not a file name"
)]
#[case::vm_name(
    "[vm.Vm2]\nqemu = \"qemu-system-x86_64\"\n",
    "13:5: `Vm2` is not a valid VM name"
)]
#[case::vm_without_qemu("[vm.vm2]\n", "13:1: [vm.vm2] has no `qemu`")]
#[case::vm_blank_qemu("[vm.vm2]\nqemu = \"\"\n", "14:8: `qemu` is empty")]
#[case::unknown_key(
    "[[step]]\nname = \"a\"\nhots = \"ls\"\n",
    "15:1: unknown field `hots`"
)]
#[case::wrong_type(
    "[[step]]\nname = 1\nhost = \"ls\"\n",
    "14:8: invalid type: integer `1`, expected a string"
)]
fn each_rule_reports_its_problem_where_it_is(#[case] tail: &str, #[case] expected: &str) {
    let problems = problems(&format!("{BASE}{tail}"));
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let expected = format!("t.toml:{expected}");
    assert!(
        problems[0].starts_with(&expected),
        "expected {expected}, got {problems:#?}"
    );
}

#[rstest]
#[case::id_chars(
    "[lab]\nid = \"My Lab\"\ntitle = \"T\"\nhandout = \"H\"\n",
    "2:6: `My Lab` is not a valid lab id"
)]
#[case::id_leading_dash(
    "[lab]\nid = \"-x\"\ntitle = \"T\"\nhandout = \"H\"\n",
    "2:6: `-x` is not a valid lab id"
)]
#[case::no_title("[lab]\nid = \"x\"\nhandout = \"H\"\n", "1:1: [lab] has no `title`")]
#[case::no_handout("[lab]\nid = \"x\"\ntitle = \"T\"\n", "1:1: [lab] has no `handout`")]
#[case::no_lab("", "1:1: the lab file has no [lab] table")]
fn header_rules(#[case] header: &str, #[case] expected: &str) {
    let text = format!("{header}\n[[step]]\nname = \"a\"\nhost = \"ls\"\n");
    let problems = problems(&text);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with(&format!("t.toml:{expected}")),
        "{problems:#?}"
    );
}

#[test]
fn every_extra_action_and_check_kind_is_reported() {
    let problems = problems(&format!(
        "{BASE}[[step]]\nname = \"a\"\nhost = \"ls\"\nboot = \"vm1\"\nreboot = \"vm1\"\n\
         [[step]]\nname = \"b\"\ncheck = {{ file = \"f\", digest = \"f\", qemu-img-info = \"f\" }}\n"
    ));
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

#[test]
fn an_image_with_a_bad_name_and_form_has_two_problems() {
    let problems = problems(&format!("{BASE}[images]\n\"a/b\" = \"guest:cd\"\n"));
    assert_eq!(
        problems,
        [
            "t.toml:14:1: `a/b` is not a file name",
            "t.toml:14:9: `guest:cd` is not a guest form"
        ]
    );
}

#[test]
fn a_lab_needs_a_step() {
    let problems = problems("[lab]\nid = \"x\"\ntitle = \"T\"\nhandout = \"H\"\n");
    assert_eq!(problems, ["t.toml:1:1: the lab has no steps"]);
}

#[test]
fn all_problems_are_found_in_one_pass() {
    let problems = problems(&format!(
        "{BASE}[images]\n\"x\" = \"guest:cd\"\n\n[[step]]\nname = \"ok\"\nreboot = \"vm2\"\ntimeout = \"1h\"\n\
         \n[[cleanup]]\nhost = \"ls\"\nexpect = {{ exit = 999 }}\n"
    ));
    assert_eq!(
        problems,
        [
            "t.toml:14:7: `guest:cd` is not a guest form",
            "t.toml:17:8: two steps are named `ok`",
            "t.toml:18:10: unknown VM `vm2`",
            "t.toml:19:11: `1h` is not a duration",
            "t.toml:21:1: [[cleanup]] has no `name`",
            "t.toml:23:19: exit status 999 is out of range",
        ]
    );
}

#[rstest]
#[case::host("host = \"ls\"", Some(0))]
#[case::run("on = \"vm1\"\nrun = \"ls\"", Some(0))]
#[case::run_with_other_expectations(
    "on = \"vm1\"\nrun = \"ls\"\nexpect = { output = \"x\" }",
    Some(0)
)]
#[case::run_expecting_failure("on = \"vm1\"\nrun = \"ls\"\nexpect = { exit = 2 }", Some(2))]
#[case::interact("on = \"vm1\"\ninteract = [{ send = \"x\" }]", None)]
#[case::boot("boot = \"vm1\"", None)]
#[case::reboot("reboot = \"vm1\"", None)]
#[case::poweroff("poweroff = \"vm1\"", None)]
#[case::check("check = { file = \"f\" }", None)]
fn default_exit_status(#[case] action: &str, #[case] exit: Option<i32>) {
    let lab = lab(&format!("[[step]]\nname = \"a\"\n{action}\n"));
    assert_eq!(lab.steps[1].expect.exit, exit);
}

#[test]
fn erratum_observed_has_no_default_exit() {
    let lab = lab("[[step]]\nname = \"a\"\nhost = \"ls\"\nerratum = { reason = \"r\", observed = { output = \"no\" } }\n");
    let erratum = lab.steps[1].erratum.as_ref().expect("erratum");
    assert_eq!(erratum.observed.exit, None);
    assert_eq!(erratum.fix, None);
}

#[rstest]
#[case::missing("check = { file = \"f\" }", true)]
#[case::given("check = { file = \"f\", exists = false }", false)]
fn file_check_exists_defaults_to_true(#[case] check: &str, #[case] expected: bool) {
    let lab = lab(&format!("[[step]]\nname = \"a\"\n{check}\n"));
    assert!(
        matches!(lab.steps[1].action, Action::Check(Check::File { exists, .. }) if exists == expected)
    );
}

#[rstest]
#[case::string("equals = \"vm1.qcow2\"", FieldExpect::Equals(serde_json::json!("vm1.qcow2")))]
#[case::number("equals = 1073741824", FieldExpect::Equals(serde_json::json!(1_073_741_824)))]
#[case::boolean("equals = false", FieldExpect::Equals(serde_json::json!(false)))]
#[case::table("equals = { a = [1, 2] }", FieldExpect::Equals(serde_json::json!({ "a": [1, 2] })))]
#[case::absent("absent = true", FieldExpect::Absent)]
fn qemu_img_info_expectations(#[case] expectation: &str, #[case] expected: FieldExpect) {
    let lab = lab(&format!(
        "[[step]]\nname = \"a\"\ncheck = {{ qemu-img-info = \"i\", field = \"f\", {expectation} }}\n"
    ));
    let Action::Check(Check::QemuImgInfo { expect, .. }) = &lab.steps[1].action else {
        panic!("not a qemu-img-info check");
    };
    assert_eq!(*expect, expected);
}

#[test]
fn locations_are_table_headers() {
    let lab = lab("  [[step]]\n  name = \"a\"\n  boot = \"vm1\"\n");
    assert_eq!(
        (lab.vms[0].location.line, lab.vms[0].location.column),
        (6, 1)
    );
    assert_eq!(
        (lab.steps[1].location.line, lab.steps[1].location.column),
        (13, 3)
    );
    assert_eq!(lab.steps[1].location.file, Path::new("t.toml"));
}

#[rstest]
#[case::misspelt_vm(
    "[[step]]\nname = \"a\"\nreboot = \"mv1\"\n",
    Some("did you mean `vm1`?")
)]
#[case::far_from_any_vm(
    "[[step]]\nname = \"a\"\nreboot = \"router\"\n",
    Some("the lab declares vm1")
)]
#[case::misspelt_key(
    "[[step]]\nnmae = \"a\"\nhost = \"ls\"\n",
    Some("did you mean `name`?")
)]
#[case::misspelt_form(
    "[images]\n\"d\" = \"guest:dsik\"\n",
    Some("did you mean `guest:disk`?")
)]
#[case::saved_later(
    "[[step]]\nname = \"a\"\ncheck = { digest = \"d\", same-as = \"x\" }\n[[step]]\nname = \"b\"\ncheck = { digest = \"d\", save = \"x\" }\n",
    Some("it is saved at line 18, after this step; save it before comparing")
)]
#[case::regex_escapes(
    "[[step]]\nname = \"a\"\nhost = \"ls\"\nexpect = { matches = \"\\\\d+(\" }\n",
    Some("after TOML unescaping, the pattern is `\\d+(`")
)]
#[case::regex_as_written(
    "[[step]]\nname = \"a\"\nhost = \"ls\"\nexpect = { matches = \"(\" }\n",
    None
)]
#[case::no_action(
    "[[step]]\nname = \"a\"\n",
    Some(
        "add one of `host`, `run` (with `on`), `interact` (with `on`), `boot`, `reboot`, \
         `poweroff`, `stop`, `check`, `probe`, `wait`, `not-checked` or (in [[grade]]) `slot`"
    )
)]
#[case::on_where_not_used(
    "[[step]]\nname = \"a\"\non = \"vm1\"\nwait = \"x\"\n",
    Some("`on` goes with `run`, `interact`, `probe` and `slot` only; remove it")
)]
#[case::far_from_any_form(
    "[images]\n\"d\" = \"floppy\"\n",
    Some(
        "use `guest:iso` (bootable ISO), `guest:disk` (bootable qcow2 disk) \
         or `guest:direct` (the ISO's guest, booted directly)"
    )
)]
#[case::far_from_any_visibility(
    "[slot.\"a.sh\"]\ndefault = \"true\"\n\
     [[grade]]\nid = \"c\"\nname = \"c\"\npoints = 1\nvisibility = \"public\"\n\
     check = { file = \"f\" }\n",
    Some("use `visible` (the default), `hidden` or `after_due_date`")
)]
fn help_suggests_the_fix(#[case] tail: &str, #[case] help: Option<&str>) {
    let error = parse(Path::new("t.toml"), &format!("{BASE}{tail}")).expect_err("invalid");
    assert_eq!(error.problems().len(), 1);
    assert_eq!(error.problems()[0].help(), help);
}

#[rstest]
#[case("clone-cow", true)]
#[case("0day", true)]
#[case("-x", false)]
#[case("Vm1", false)]
#[case("vm_1", false)]
#[case("", false)]
fn names(#[case] name: &str, #[case] valid: bool) {
    assert_eq!(is_name(name), valid);
}

#[test]
fn an_unknown_network_is_answered_with_every_network() {
    let text = "[lab]\nid = \"t\"\ntitle = \"T\"\nhandout = \"H\"\nnetwork = \"bridge\"\n\n\
                [[step]]\nname = \"a\"\nhost = \"ls\"\n";
    let error = parse(Path::new("t.toml"), text).expect_err("invalid");
    assert_eq!(
        error.problems()[0].help(),
        Some("use `host` (the default) or `namespace` (a private network namespace for the lab)")
    );
}
