//! The scan policy on every kind of submission that can hold the case.

use rstest::rstest;
use tempfile::TempDir;

use super::printable;
use crate::grade::submission::test_archives::{
    files, load_default, submit, Dir, Item, Pack, Symlink, COW, F, SLOTS, VM1,
};
use crate::grade::submission::{load, Limits};

#[test]
fn printable_escapes_and_cuts() {
    assert_eq!(printable("tab\there"), "tab\\u{9}here");
    assert_eq!(printable(&"x".repeat(81)), format!("{}…", "x".repeat(80)));
    assert_eq!(printable(&"x".repeat(80)), "x".repeat(80));
}

#[rstest]
fn every_kind_and_layout_gives_the_same_files(
    #[values(Pack::Directory, Pack::Zip, Pack::TarGz, Pack::Tgz)] pack: Pack,
    #[values("", "./", "alice-lab2/")] prefix: &str,
) {
    let temp = TempDir::new().unwrap();
    let cow = format!("{prefix}clone/cow.sh");
    let vm1 = format!("{prefix}socket/vm1.qemu");
    let readme = format!("{prefix}README.md");
    let clone_dir = format!("{prefix}clone/");
    let items = [
        Dir(&clone_dir),
        F(&cow, COW),
        F(&vm1, VM1),
        F(&readme, b"notes\n"),
    ];
    let source = submit(temp.path(), "alice", pack, &items);
    let loaded = load_default(&source);
    assert_eq!(loaded.student, "alice");
    assert_eq!(
        loaded.files,
        files(&[
            ("clone/cow.sh", std::str::from_utf8(COW).unwrap()),
            ("socket/vm1.qemu", std::str::from_utf8(VM1).unwrap())
        ])
    );
    assert_eq!(
        loaded.problems,
        ["1 other file(s) ignored: only the lab's files are read"]
    );
}

#[rstest]
#[case::to_a_file_outside(Symlink("clone/cow.sh", "/etc/shadow"))]
#[case::to_another_students_file(Symlink("clone/cow.sh", "../../bob/clone/cow.sh"))]
fn a_symlinked_slot_is_not_read(
    #[values(Pack::Directory, Pack::Zip, Pack::TarGz)] pack: Pack,
    #[case] link: Item,
) {
    let temp = TempDir::new().unwrap();
    submit(
        temp.path(),
        "bob",
        Pack::Directory,
        &[F("clone/cow.sh", b"bob's\n")],
    );
    let source = submit(
        temp.path(),
        "alice",
        pack,
        &[link, F("socket/vm1.qemu", VM1)],
    );
    let loaded = load_default(&source);
    assert_eq!(loaded.files.keys().collect::<Vec<_>>(), ["socket/vm1.qemu"]);
    assert_eq!(
        loaded.problems,
        ["clone/cow.sh is a symbolic link: not read"]
    );
}

/// `../clone/cow.sh` or `/clone/cow.sh` must not fill `clone/cow.sh`,
/// as a careless normalisation (stripping `..` or `/`) would make it.
#[rstest]
fn escaping_and_absolute_archive_paths_are_not_read(#[values(Pack::Zip, Pack::TarGz)] pack: Pack) {
    let temp = TempDir::new().unwrap();
    let items = [
        F("../clone/cow.sh", b"escaped\n"),
        F("/clone/full.sh", b"absolute\n"),
        F("work/../../clone/vm2.qemu", b"escaped\n"),
        F("socket/vm1.qemu", VM1),
    ];
    let source = submit(temp.path(), "alice", pack, &items);
    let loaded = load_default(&source);
    assert_eq!(loaded.files.keys().collect::<Vec<_>>(), ["socket/vm1.qemu"]);
    assert_eq!(
        loaded.problems,
        [
            "archive entries not read, their paths being absolute or holding `..`: \
          `../clone/cow.sh`, `/clone/full.sh`, `work/../../clone/vm2.qemu`"
        ]
    );
}

#[test]
fn many_unsafe_paths_are_named_up_to_five() {
    let temp = TempDir::new().unwrap();
    let names: Vec<String> = (1..=7).map(|n| format!("../{n}")).collect();
    let items: Vec<Item> = names.iter().map(|name| F(name, b"")).collect();
    let source = submit(temp.path(), "alice", Pack::TarGz, &items);
    assert_eq!(
        load_default(&source).problems,
        [
            "archive entries not read, their paths being absolute or holding `..`: \
          `../1`, `../2`, `../3`, `../4`, `../5` and 2 more"
        ]
    );
}

#[rstest]
fn a_file_is_read_up_to_its_limit_and_not_past_it(
    #[values(Pack::Directory, Pack::Zip, Pack::TarGz)] pack: Pack,
) {
    let temp = TempDir::new().unwrap();
    let at_limit = vec![b'#'; 64 * 1024];
    let past_limit = vec![b'#'; 64 * 1024 + 1];
    let items = [
        F("clone/cow.sh", &at_limit),
        F("clone/full.sh", &past_limit),
    ];
    let source = submit(temp.path(), "alice", pack, &items);
    let loaded = load_default(&source);
    assert_eq!(loaded.files["clone/cow.sh"].len(), 64 * 1024);
    assert_eq!(loaded.files.len(), 1);
    assert_eq!(
        loaded.problems,
        ["clone/full.sh is larger than 64 KiB: not read"]
    );
}

#[rstest]
fn text_must_be_utf8_and_odd_names_are_just_other_files(
    #[values(Pack::Directory, Pack::Zip, Pack::TarGz)] pack: Pack,
) {
    let temp = TempDir::new().unwrap();
    let items = [
        F("clone/cow.sh", b"qemu-img \xff\xfe\n"),
        F("clone/full.sh", "échappé ✓\n".as_bytes()),
        F("clone/=cmd|' \x1b[31m.sh", b"x"),
    ];
    let source = submit(temp.path(), "alice", pack, &items);
    let loaded = load_default(&source);
    assert_eq!(loaded.files, files(&[("clone/full.sh", "échappé ✓\n")]));
    assert_eq!(
        loaded.problems,
        [
            "clone/cow.sh is not UTF-8 text: not read",
            "1 other file(s) ignored: only the lab's files are read"
        ]
    );
}

#[rstest]
fn the_root_with_the_most_lab_files_is_read(
    #[values(Pack::Directory, Pack::Zip, Pack::TarGz)] pack: Pack,
) {
    let temp = TempDir::new().unwrap();
    let items = [
        F("old/clone/cow.sh", b"old\n"),
        F("new/clone/cow.sh", COW),
        F("new/socket/vm1.qemu", VM1),
    ];
    let source = submit(temp.path(), "alice", pack, &items);
    let loaded = load_default(&source);
    assert_eq!(
        loaded.files.keys().collect::<Vec<_>>(),
        ["clone/cow.sh", "socket/vm1.qemu"]
    );
    assert_eq!(loaded.files["clone/cow.sh"].as_bytes(), COW);
    assert_eq!(
        loaded.problems,
        ["lab files were found in more than one place: read `new/`, ignored `old/`"]
    );
}

#[test]
fn many_roots_are_named_up_to_five() {
    let temp = TempDir::new().unwrap();
    let names: Vec<String> = (1..=8).map(|n| format!("copy{n}/clone/cow.sh")).collect();
    let mut items: Vec<Item> = names.iter().map(|name| F(name, COW)).collect();
    items.push(F("copy9/clone/full.sh", b"\n"));
    items.push(F("copy9/clone/cow.sh", COW));
    let source = submit(temp.path(), "alice", Pack::Zip, &items);
    let loaded = load_default(&source);
    assert_eq!(
        loaded.files.keys().collect::<Vec<_>>(),
        ["clone/cow.sh", "clone/full.sh"]
    );
    assert_eq!(
        loaded.problems,
        [
            "lab files were found in more than one place: read `copy9/`, ignored \
          `copy1/`, `copy2/`, `copy3/`, `copy4/`, `copy5/` and 3 more"
        ]
    );
}

#[test]
fn a_slot_twice_in_a_tar_keeps_the_first() {
    let temp = TempDir::new().unwrap();
    let items = [F("clone/cow.sh", COW), F("clone/cow.sh", b"second\n")];
    let source = submit(temp.path(), "alice", Pack::TarGz, &items);
    let loaded = load_default(&source);
    assert_eq!(loaded.files["clone/cow.sh"].as_bytes(), COW);
    assert_eq!(
        loaded.problems,
        ["clone/cow.sh appears more than once: only the first one was read"]
    );
}

/// A directory's own entries (`clone/` and the like) count too.
#[rstest]
#[case::directory(Pack::Directory, 5)]
#[case::zip(Pack::Zip, 2)]
#[case::tar_gz(Pack::TarGz, 2)]
fn scanning_stops_at_the_entry_limit(#[case] pack: Pack, #[case] max_entries: usize) {
    let temp = TempDir::new().unwrap();
    let items = [
        F("clone/cow.sh", COW),
        F("socket/vm1.qemu", VM1),
        F("tap/setup.sh", b""),
        F("tap/vm1.qemu", b""),
    ];
    let source = submit(temp.path(), "alice", pack, &items);
    let limits = Limits {
        max_entries,
        ..Limits::default()
    };
    let loaded = load(&source, SLOTS, &limits).unwrap();
    assert_eq!(
        loaded.files.keys().collect::<Vec<_>>(),
        ["clone/cow.sh", "socket/vm1.qemu"]
    );
    assert_eq!(
        loaded.problems,
        [format!("the submission has more than {max_entries} entries: only the first {max_entries} were looked at")]
    );
}

/// A directory or zip counts the slot files read; a `.tar.gz` its whole
/// decompressed stream, headers included (512 bytes before each file).
#[rstest]
#[case::directory(Pack::Directory, 2500, &["clone/cow.sh", "clone/full.sh"])]
#[case::zip(Pack::Zip, 2500, &["clone/cow.sh", "clone/full.sh"])]
#[case::tar_gz(Pack::TarGz, 3500, &["clone/cow.sh", "clone/full.sh"])]
#[case::tar_gz_cut_in_a_header(Pack::TarGz, 2000, &["clone/cow.sh"])]
#[case::tar_gz_cut_in_a_file(Pack::TarGz, 2500, &["clone/cow.sh"])]
fn reading_stops_at_the_total_limit(
    #[case] pack: Pack,
    #[case] max_total_bytes: u64,
    #[case] expected: &[&str],
) {
    let temp = TempDir::new().unwrap();
    let kib = vec![b'#'; 1024];
    let items = [
        F("clone/cow.sh", &kib),
        F("clone/full.sh", &kib),
        F("tap/setup.sh", &kib),
    ];
    let source = submit(temp.path(), "alice", pack, &items);
    let limits = Limits {
        max_total_bytes,
        ..Limits::default()
    };
    let loaded = load(&source, SLOTS, &limits).unwrap();
    assert_eq!(loaded.files.keys().collect::<Vec<_>>(), expected);
    assert_eq!(
        loaded.problems,
        [format!(
            "the submission holds more than {max_total_bytes} bytes of data: reading stopped there"
        )]
    );
}
