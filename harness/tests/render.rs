//! The JUnit and Markdown renderers on recorded reports (no VM), and the
//! recorded reports against the schema `docs/report-schema.md` documents.
//!
//! `fixtures/reports/passing.json` is a real run of the six labs;
//! `broken.json` a run of the socket lab with one expected console line
//! changed (`10.0.0.2` → `10.0.0.3` in the first ping's dialogue), so its
//! ping step times out with a console tail and the steps after it skip.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use labcheck::report::{junit, markdown, ErratumReport, Outcome, Report, StepReport};
use rstest::rstest;
use serde_json::Value;

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn recorded_json(name: &str) -> Value {
    let path = repo_file(&format!("fixtures/reports/{name}.json"));
    let text = std::fs::read_to_string(&path).expect("read a recorded report");
    serde_json::from_str(&text).expect("a recorded report is JSON")
}

fn recorded(name: &str) -> Report {
    serde_json::from_value(recorded_json(name)).expect("a recorded report fits the model")
}

#[rstest]
#[case("passing")]
#[case("broken")]
fn junit_snapshot(#[case] name: &str) {
    insta::assert_snapshot!(format!("junit_{name}"), junit(&recorded(name)));
}

#[rstest]
#[case("passing")]
#[case("broken")]
fn markdown_snapshot(#[case] name: &str) {
    insta::assert_snapshot!(format!("markdown_{name}"), markdown(&recorded(name)));
}

/// The one failed step of broken.json.
fn broken_step(report: &Report) -> &StepReport {
    let failed: Vec<&StepReport> = report.labs[0]
        .steps
        .iter()
        .filter(|s| s.outcome == Outcome::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "broken.json has one failed step");
    failed[0]
}

/// What a reader needs to see of the failed step: its name, what was
/// expected, what was observed, and the console's last lines.
fn evidence(step: &StepReport) -> Vec<&str> {
    let mut lines = vec![step.name.as_str()];
    lines.extend(step.expected.iter().map(String::as_str));
    lines.extend(step.mismatches.iter().map(String::as_str));
    lines.extend(step.console_tail.iter().map(String::as_str));
    lines
}

#[test]
fn broken_junit_shows_the_evidence_in_the_failed_testcase() {
    let report = recorded("broken");
    let step = broken_step(&report);
    assert!(
        !step.console_tail.is_empty(),
        "the fixture has a console tail"
    );
    let xml = junit(&report);
    let start = xml
        .find(&format!("name=\"{}\"", step.name))
        .expect("a testcase for the failed step");
    let case = &xml[start..start + xml[start..].find("</testcase>").expect("closed")];
    assert!(case.contains("<failure message="), "{case}");
    let text = unescape(case);
    for line in evidence(step) {
        assert!(text.contains(line), "JUnit lacks {line:?}:\n{text}");
    }
}

#[test]
fn broken_markdown_shows_the_evidence() {
    let report = recorded("broken");
    let step = broken_step(&report);
    let text = markdown(&report);
    for line in evidence(step) {
        assert!(text.contains(line), "Markdown lacks {line:?}:\n{text}");
    }
}

#[test]
fn broken_terminal_shows_the_evidence() {
    use labcheck::events::Event;
    use labcheck::report::TerminalReporter;
    let report = recorded("broken");
    let step = broken_step(&report);
    let mut terminal = TerminalReporter::new(Vec::new());
    terminal
        .event(&Event::StepFinished {
            lab: report.labs[0].id.clone(),
            index: 0,
            step: Box::new(step.clone()),
        })
        .expect("written");
    terminal.summary(&report).expect("written");
    let text = String::from_utf8(terminal.into_inner()).expect("utf-8");
    for line in evidence(step) {
        assert!(text.contains(line), "the terminal lacks {line:?}:\n{text}");
    }
}

/// The JSON report as `labcheck run` writes it, for the broken run: the
/// model's serialization is a rendering too, and a change to it is a diff.
#[test]
fn json_snapshot() {
    insta::assert_json_snapshot!("json_broken", recorded("broken"));
}

/// broken.json with its failed step turned into an error and a passed step
/// given an erratum that no longer reproduces: states no recorded run shows.
#[test]
fn an_error_and_a_stale_erratum_render_as_such() {
    let mut report = recorded("broken");
    let steps = &mut report.labs[0].steps;
    let failed = steps
        .iter()
        .position(|s| s.outcome == Outcome::Failed)
        .expect("a failed step");
    steps[failed].outcome = Outcome::Error;
    let passed = steps
        .iter_mut()
        .find(|s| s.outcome == Outcome::Passed)
        .expect("a passed step");
    passed.erratum = Some(ErratumReport {
        reason: "the handout's typo".into(),
        reproduced: false,
        fix: None,
        fix_exit: None,
        fix_output: String::new(),
    });
    let stale = "erratum no longer reproduces: the handout's command works as printed \
                 (the handout's typo)";
    let xml = junit(&report);
    assert!(xml.contains("failures=\"0\" errors=\"1\""), "{xml}");
    assert!(
        xml.contains("<error message=\"timed out after 50.0s"),
        "{xml}"
    );
    assert!(unescape(&xml).contains(&format!("<system-out>{stale}</system-out>")));
    let text = markdown(&report);
    assert!(text.contains("#### E Ping VM2 from VM1"), "{text}");
    assert!(
        text.contains("no longer reproduces, the handout's command works as printed"),
        "{text}"
    );
}

#[test]
fn markdown_stays_within_a_pull_request_comment() {
    let mut report = recorded("broken");
    let step = report.labs[0]
        .steps
        .iter_mut()
        .find(|s| s.outcome == Outcome::Failed)
        .expect("a failed step");
    step.output = "x".repeat(5_000) + &"\nline".repeat(500);
    report.labs = vec![report.labs[0].clone(); 100];
    let text = markdown(&report);
    // GitHub's limit for a comment, in characters; a step summary takes 1 MiB.
    assert!(text.chars().count() < 65_536, "{} characters", text.len());
    assert!(text.contains("section(s) left out"), "{text}");
    assert_eq!(text.matches("| socket | ✗ failed |").count(), 100);
}

/// The entities the JUnit renderer writes, decoded.
fn unescape(xml: &str) -> String {
    xml.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#10;", "\n")
        .replace("&amp;", "&")
}

#[rstest]
#[case("passing")]
#[case("broken")]
fn junit_is_well_formed_xml(#[case] name: &str) {
    let xml = junit(&recorded(name));
    assert_eq!(well_formed(&xml), Ok(()), "{xml}");
}

#[rstest]
#[case::crossed("<a><b></a></b>")]
#[case::unclosed("<a><b></b>")]
#[case::raw_ampersand("<a>x & y</a>")]
#[case::unknown_entity("<a>&nbsp;</a>")]
#[case::unquoted_attribute("<a x=1/>")]
#[case::lt_in_attribute("<a x=\"<\"/>")]
#[case::repeated_attribute("<a x=\"1\" x=\"2\"/>")]
#[case::two_roots("<a/><b/>")]
#[case::text_outside_root("<a/>x")]
#[case::control_character("<a>\u{1b}[0m</a>")]
fn the_xml_check_rejects_malformed_documents(#[case] xml: &str) {
    assert!(well_formed(xml).is_err(), "accepted {xml:?}");
}

#[rstest]
#[case("<?xml version=\"1.0\"?>\n<a x=\"&quot;1&#10;\">t &amp; &#x41;<b/></a>\n")]
#[case("<a><b y='2'>text > more</b></a>")]
fn the_xml_check_accepts_well_formed_documents(#[case] xml: &str) {
    assert_eq!(well_formed(xml), Ok(()));
}

/// A minimal XML 1.0 well-formedness check (no crate in the lock file reads
/// XML): one root, tags that nest, quoted attributes without `<` and without
/// repeats, known entities only, no characters XML forbids. Comments,
/// CDATA and DOCTYPE are rejected: the renderer writes none.
fn well_formed(xml: &str) -> Result<(), String> {
    if let Some(c) = xml
        .chars()
        .find(|&c| c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!("forbidden character {c:?}"));
    }
    let mut rest = xml;
    if rest.starts_with("<?xml") {
        let end = rest.find("?>").ok_or("unterminated declaration")?;
        rest = &rest[end + 2..];
    }
    let mut open: Vec<&str> = Vec::new();
    let mut roots = 0;
    while !rest.is_empty() {
        let lt = rest.find('<').unwrap_or(rest.len());
        let text = &rest[..lt];
        check_references(text)?;
        if open.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        rest = &rest[lt..];
        if rest.is_empty() {
            break;
        }
        let end = tag_end(rest).ok_or("unterminated tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if open.pop() != Some(name.trim_end()) {
                return Err(format!("</{name}> closes nothing open"));
            }
            continue;
        }
        let (body, closes_itself) = match tag.strip_suffix('/') {
            Some(body) => (body, true),
            None => (tag, false),
        };
        let name = element(body)?;
        if open.is_empty() {
            roots += 1;
        }
        if !closes_itself {
            open.push(name);
        }
    }
    match (roots, open.last()) {
        (1, None) => Ok(()),
        (_, Some(name)) => Err(format!("<{name}> is never closed")),
        (n, None) => Err(format!("{n} root elements")),
    }
}

/// Index of the `>` ending the tag `text` starts with, outside quotes.
fn tag_end(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Checks an element's name and attributes; returns its name.
fn element(body: &str) -> Result<&str, String> {
    let name_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
    let name = &body[..name_end];
    if !is_name(name) {
        return Err(format!("bad element name {name:?}"));
    }
    let mut seen = BTreeSet::new();
    let mut rest = body[name_end..].trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or(format!("attribute without value in {body:?}"))?;
        let attribute = rest[..eq].trim();
        if !is_name(attribute) || !seen.insert(attribute) {
            return Err(format!("bad or repeated attribute {attribute:?}"));
        }
        let value = rest[eq + 1..].trim_start();
        let quote = value
            .chars()
            .next()
            .filter(|c| matches!(c, '"' | '\''))
            .ok_or(format!("unquoted value of {attribute}"))?;
        let close = value[1..].find(quote).ok_or("unterminated value")? + 1;
        let text = &value[1..close];
        if text.contains('<') {
            return Err(format!("`<` in the value of {attribute}"));
        }
        check_references(text)?;
        rest = value[close + 1..].trim_start();
    }
    Ok(name)
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
}

/// Every `&` in `text` starts a known entity or a character reference.
fn check_references(text: &str) -> Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let after = &text[i + 1..];
        let semi = after.find(';').ok_or("`&` without `;`")?;
        let reference = &after[..semi];
        let known = matches!(reference, "amp" | "lt" | "gt" | "quot" | "apos")
            || reference
                .strip_prefix("#x")
                .is_some_and(|hex| u32::from_str_radix(hex, 16).is_ok())
            || reference
                .strip_prefix('#')
                .is_some_and(|dec| dec.parse::<u32>().is_ok());
        if !known {
            return Err(format!("unknown reference &{reference};"));
        }
    }
    Ok(())
}

// ---- The documented schema -------------------------------------------------

/// A value's type as the schema document's *Type* column gives it.
#[derive(Debug)]
enum Type {
    String,
    Integer,
    Boolean,
    OneOf(Vec<String>),
    Object(String),
    ArrayOf(Box<Type>),
}

#[derive(Debug)]
struct Field {
    ty: Type,
    required: bool,
}

/// Object name → key → field, read from the doc's `### `Name`` sections.
type Schema = BTreeMap<String, BTreeMap<String, Field>>;

fn documented_schema() -> Schema {
    let path = repo_file("docs/report-schema.md");
    let text = std::fs::read_to_string(&path).expect("read docs/report-schema.md");
    let mut schema = Schema::new();
    let mut object = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            let name = name.trim().trim_matches('`').to_string();
            schema.entry(name.clone()).or_default();
            object = Some(name);
        } else if line.starts_with("| `") {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, key, ty, required, _meaning, _] = cells[..] else {
                panic!("a field row has four cells: {line}");
            };
            let object = object
                .as_ref()
                .expect("a field row under an object heading");
            let field = Field {
                ty: parse_type(ty),
                required: required == "yes",
            };
            schema
                .get_mut(object)
                .expect("heading seen")
                .insert(key.trim_matches('`').to_string(), field);
        }
    }
    schema
}

fn parse_type(text: &str) -> Type {
    match text {
        "string" => Type::String,
        "integer" => Type::Integer,
        "boolean" => Type::Boolean,
        _ => {
            if let Some(values) = text.strip_prefix("one of ") {
                Type::OneOf(
                    values
                        .split(',')
                        .map(|v| v.trim().trim_matches('`').to_string())
                        .collect(),
                )
            } else if let Some(item) = text.strip_prefix("array of ") {
                Type::ArrayOf(Box::new(parse_type(item)))
            } else if text.starts_with('`') && text.ends_with('`') {
                Type::Object(text.trim_matches('`').to_string())
            } else {
                panic!("unknown type {text:?} in the schema document")
            }
        }
    }
}

/// Walks a report, noting each problem with its JSON path and each
/// (object, key) it met.
struct Validator<'a> {
    schema: &'a Schema,
    problems: Vec<String>,
    seen: BTreeSet<(String, String)>,
}

impl Validator<'_> {
    fn value(&mut self, path: &str, ty: &Type, value: &Value) {
        let fits = match (ty, value) {
            (Type::String, Value::String(_)) => true,
            (Type::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Type::Boolean, Value::Bool(_)) => true,
            (Type::OneOf(values), Value::String(s)) => values.contains(s),
            (Type::Object(name), Value::Object(_)) => {
                self.object(path, name, value);
                true
            }
            (Type::ArrayOf(item), Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    self.value(&format!("{path}[{i}]"), item, v);
                }
                true
            }
            _ => false,
        };
        if !fits {
            self.problems.push(format!(
                "{path}: {value} is not of the documented type {ty:?}"
            ));
        }
    }

    fn object(&mut self, path: &str, name: &str, value: &Value) {
        let Some(fields) = self.schema.get(name) else {
            self.problems
                .push(format!("{path}: object `{name}` is not documented"));
            return;
        };
        let Value::Object(map) = value else {
            return;
        };
        for (key, v) in map {
            match fields.get(key) {
                Some(field) => {
                    self.seen.insert((name.to_string(), key.clone()));
                    self.value(&format!("{path}.{key}"), &field.ty, v);
                }
                None => self
                    .problems
                    .push(format!("{path}.{key}: not documented in `{name}`")),
            }
        }
        for (key, field) in fields {
            if field.required && !map.contains_key(key) {
                self.problems
                    .push(format!("{path}.{key}: documented as required, missing"));
            }
        }
    }
}

fn validate<'s>(schema: &'s Schema, report: &Value) -> Validator<'s> {
    let mut validator = Validator {
        schema,
        problems: Vec::new(),
        seen: BTreeSet::new(),
    };
    validator.object("report", "Report", report);
    validator
}

#[test]
fn recorded_reports_match_the_documented_schema() {
    let schema = documented_schema();
    let mut seen = BTreeSet::new();
    for name in ["passing", "broken"] {
        let report = recorded_json(name);
        assert_eq!(report["schema"], labcheck::report::SCHEMA_VERSION);
        let validator = validate(&schema, &report);
        assert_eq!(validator.problems, Vec::<String>::new(), "{name}.json");
        seen.extend(validator.seen);
    }
    // A documented key no recorded report holds has likely disappeared.
    let unseen: Vec<String> = schema
        .iter()
        .flat_map(|(object, fields)| fields.keys().map(move |key| (object, key)))
        .filter(|(object, key)| !seen.contains(&((*object).clone(), (*key).clone())))
        .map(|(object, key)| format!("{object}.{key}"))
        .collect();
    assert_eq!(unseen, Vec::<String>::new(), "documented, never recorded");
}

#[test]
fn the_schema_check_finds_undocumented_missing_and_mistyped_keys() {
    let schema = documented_schema();
    let mut report = recorded_json("broken");
    report["labs"][0]["surprise"] = Value::Bool(true);
    report["labs"][0]
        .as_object_mut()
        .expect("a lab object")
        .remove("outcome");
    report["labs"][0]["steps"][0]["outcome"] = Value::from("maybe");
    report["environment"]["qemu"] = Value::from(7);
    let problems = validate(&schema, &report).problems;
    assert_eq!(
        problems,
        [
            "report.environment.qemu: 7 is not of the documented type String",
            "report.labs[0].steps[0].outcome: \"maybe\" is not of the documented type \
             OneOf([\"passed\", \"failed\", \"erratum\", \"skipped\", \"error\", \"not_checked\"])",
            "report.labs[0].surprise: not documented in `LabReport`",
            "report.labs[0].outcome: documented as required, missing",
        ]
    );
}
