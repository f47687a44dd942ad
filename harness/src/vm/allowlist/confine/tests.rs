use tempfile::TempDir;

use super::*;
use crate::process::run_shell;
use crate::vm::allowlist::image_paths;

fn parse(text: &str) -> CommandLine {
    CommandLine::parse(text).expect("a command line the parser reads")
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(20))
}

/// Runs `qemu-img ARGS` in `dir`, as a student's cow.sh would.
async fn qemu_img(dir: &Path, args: &str) {
    let output = run_shell(
        &format!("qemu-img {args}"),
        dir,
        &Enclosure::host(),
        deadline(),
    )
    .await
    .expect("qemu-img starts");
    assert_eq!(output.exit, ShellExit::Exited(0), "{}", output.text());
}

async fn confine(dir: &TempDir, provided: &[PathBuf], text: &str) -> Vec<String> {
    confine_images(dir.path(), provided, &parse(text), deadline())
        .await
        .expect("the images can be judged")
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn temp_dir() -> TempDir {
    TempDir::new().expect("a temp dir")
}

/// A one-line refusal list whose only entry contains `part`.
fn assert_refused(refusals: &[String], part: &str) {
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0].contains(part),
        "{:?} lacks {part:?}",
        refusals[0]
    );
}

#[tokio::test]
async fn accepts_the_handouts_copy_on_write_clone() {
    let dir = temp_dir();
    qemu_img(dir.path(), "create -f qcow2 vm1.qcow2 1M").await;
    qemu_img(
        dir.path(),
        "create -f qcow2 -F qcow2 -b vm1.qcow2 vm2.qcow2",
    )
    .await;
    std::fs::write(dir.path().join("a.iso"), b"not really").expect("writes");
    let line = "qemu-system-x86_64 -hda vm2.qcow2 -cdrom a.iso -drive file=vm1.qcow2,format=qcow2";
    assert_eq!(confine(&dir, &[], line).await, Vec::<String>::new());
}

/// A name a shell would split, expand and run, and that starts with a dash:
/// qemu-img gets it as one file name, and nothing in it runs.
#[tokio::test]
async fn a_hostile_image_name_reaches_qemu_img_as_one_file_name() {
    let dir = temp_dir();
    qemu_img(dir.path(), "create -f qcow2 vm1.qcow2 1M").await;
    let name = "-U 'x' \"$(touch pwned)\" `touch pwned`; vm 1.qcow2";
    std::fs::rename(dir.path().join("vm1.qcow2"), dir.path().join(name)).expect("mv");
    let option = shlex::try_quote(&format!("file={name}"))
        .expect("no NUL")
        .into_owned();
    let line = format!("qemu-system-x86_64 -drive {option}");
    assert_eq!(image_paths(&parse(&line)), [name]);
    assert_eq!(confine(&dir, &[], &line).await, Vec::<String>::new());
    assert!(!dir.path().join("pwned").exists(), "the name ran");
}

#[tokio::test]
async fn follows_relative_backing_files_from_the_images_own_dir() {
    let dir = temp_dir();
    std::fs::create_dir(dir.path().join("clones")).expect("mkdir");
    qemu_img(dir.path(), "create -f qcow2 base.qcow2 1M").await;
    qemu_img(
        dir.path(),
        "create -f qcow2 -F qcow2 -b ../base.qcow2 clones/vm2.qcow2",
    )
    .await;
    let line = "qemu-system-x86_64 -hda clones/vm2.qcow2";
    assert_eq!(confine(&dir, &[], line).await, Vec::<String>::new());
    // The same chain with its base gone: the backing name was judged
    // relative to clones/, not to the work dir.
    std::fs::remove_file(dir.path().join("base.qcow2")).expect("rm");
    std::fs::write(dir.path().join("clones/base.qcow2"), b"decoy").expect("writes");
    assert_refused(
        &confine(&dir, &[], line).await,
        "`clones/../base.qcow2` does not exist",
    );
}

/// What a student's cow.sh can do: a backing file outside the work dir.
#[tokio::test]
async fn refuses_a_backing_file_outside_the_work_dir() {
    let dir = temp_dir();
    // qemu-img 7.2 needs a size with -u (no backing file to take it from).
    qemu_img(
        dir.path(),
        "create -f qcow2 -F raw -b /etc/passwd -u vm2.qcow2 1M",
    )
    .await;
    let refused = confine(&dir, &[], "qemu-system-x86_64 -hda vm2.qcow2").await;
    assert_eq!(
        refused,
        ["-hda vm2.qcow2: `/etc/passwd` leads to /etc/passwd, outside your work dir"]
    );
}

#[tokio::test]
async fn refuses_a_symlink_out_of_the_work_dir() {
    let dir = temp_dir();
    std::os::unix::fs::symlink("/etc/shadow", dir.path().join("disk.img")).expect("ln -s");
    let refused = confine(
        &dir,
        &[],
        "qemu-system-x86_64 -drive file=disk.img,format=raw",
    )
    .await;
    assert_refused(
        &refused,
        "`disk.img` leads to /etc/shadow, outside your work dir",
    );
}

#[tokio::test]
async fn refuses_a_symlinked_dir_out_of_the_work_dir() {
    let dir = temp_dir();
    let outside = temp_dir();
    qemu_img(outside.path(), "create -f qcow2 vm1.qcow2 1M").await;
    std::os::unix::fs::symlink(outside.path(), dir.path().join("images")).expect("ln -s");
    let refused = confine(&dir, &[], "qemu-system-x86_64 -hda images/vm1.qcow2").await;
    assert_refused(&refused, "outside your work dir");
}

#[tokio::test]
async fn refuses_a_hard_link() {
    let dir = temp_dir();
    let outside = temp_dir();
    std::fs::write(outside.path().join("secret"), b"secret").expect("writes");
    std::fs::hard_link(outside.path().join("secret"), dir.path().join("disk.img")).expect("ln");
    let refused = confine(&dir, &[], "qemu-system-x86_64 -hda disk.img").await;
    assert_refused(&refused, "`disk.img` has other hard links");
}

#[tokio::test]
async fn refuses_a_missing_image_and_a_directory() {
    let dir = temp_dir();
    std::fs::create_dir(dir.path().join("d")).expect("mkdir");
    let refused = confine(&dir, &[], "qemu-system-x86_64 -hda vm2.qcow2 -cdrom d").await;
    assert_eq!(
        refused,
        [
            "-hda vm2.qcow2: `vm2.qcow2` does not exist in your work dir (or is a link to nothing)",
            "-cdrom d: `d` is not a regular file",
        ]
    );
}

/// Judged by name, never opened: qemu-img would connect to it.
#[tokio::test]
async fn refuses_a_protocol_backing_file_without_opening_it() {
    let dir = temp_dir();
    qemu_img(
        dir.path(),
        "create -f qcow2 -F raw -b nbd:127.0.0.1:9 -u vm2.qcow2 1M",
    )
    .await;
    let refused = confine(&dir, &[], "qemu-system-x86_64 -hda vm2.qcow2").await;
    assert_refused(
        &refused,
        "backing file `nbd:127.0.0.1:9`, which names a protocol",
    );
}

#[tokio::test]
async fn refuses_a_backing_format_other_than_qcow2_or_raw() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("example.org"), b"").expect("writes");
    qemu_img(
        dir.path(),
        "create -f qcow2 -F http -b example.org -u vm2.qcow2 1M",
    )
    .await;
    let refused = confine(&dir, &[], "qemu-system-x86_64 -hda vm2.qcow2").await;
    assert_refused(
        &refused,
        "declares its backing file `example.org` a http image",
    );
}

#[tokio::test]
async fn refuses_a_backing_loop() {
    let dir = temp_dir();
    qemu_img(
        dir.path(),
        "create -f qcow2 -F qcow2 -b b.qcow2 -u a.qcow2 1M",
    )
    .await;
    qemu_img(
        dir.path(),
        "create -f qcow2 -F qcow2 -b a.qcow2 -u b.qcow2 1M",
    )
    .await;
    let refused = confine(&dir, &[], "qemu-system-x86_64 -hda a.qcow2").await;
    assert_refused(&refused, "the backing chain of `a.qcow2` loops");
}

#[tokio::test]
async fn refuses_other_formats_and_external_data_files() {
    let dir = temp_dir();
    qemu_img(dir.path(), "create -f vmdk x.vmdk 1M").await;
    qemu_img(
        dir.path(),
        "create -f qcow2 -o data_file=data.raw d.qcow2 1M",
    )
    .await;
    let refused = confine(&dir, &[], "qemu-system-x86_64 -hda x.vmdk -hdb d.qcow2").await;
    assert_eq!(
        refused,
        [
            "-hda x.vmdk: `x.vmdk` is a vmdk image: only qcow2 and raw images are allowed",
            "-hdb d.qcow2: `d.qcow2` keeps its data in the external file `data.raw`: keep the data inside the qcow2 image",
        ]
    );
}

/// With the format declared raw, QEMU never reads the qcow2 header,
/// so the backing file it names does not matter.
#[tokio::test]
async fn a_declared_raw_format_opens_no_backing_file() {
    let dir = temp_dir();
    qemu_img(
        dir.path(),
        "create -f qcow2 -F raw -b /etc/passwd -u vm2.qcow2 1M",
    )
    .await;
    let raw = "qemu-system-x86_64 -drive file=vm2.qcow2,format=raw";
    assert_eq!(confine(&dir, &[], raw).await, Vec::<String>::new());
    let probed = "qemu-system-x86_64 -drive file=vm2.qcow2";
    assert_refused(&confine(&dir, &[], probed).await, "outside your work dir");
}

#[tokio::test]
async fn accepts_a_file_the_grader_provided() {
    let dir = temp_dir();
    let cache = temp_dir();
    let iso = cache.path().join("guest.iso");
    std::fs::write(&iso, b"iso").expect("writes");
    let name = "alpine-standard-3.20.0-x86_64.iso";
    std::os::unix::fs::symlink(&iso, dir.path().join(name)).expect("ln -s");
    let line = format!("qemu-system-x86_64 -cdrom {name}");
    assert_refused(&confine(&dir, &[], &line).await, "outside your work dir");
    let provided = [iso.canonicalize().expect("canonical")];
    assert_eq!(confine(&dir, &provided, &line).await, Vec::<String>::new());
}

/// Running out of time is the harness's failure, not the student's.
#[tokio::test]
async fn fails_at_the_deadline() {
    let dir = temp_dir();
    qemu_img(dir.path(), "create -f qcow2 vm1.qcow2 1M").await;
    let line = parse("qemu-system-x86_64 -hda vm1.qcow2");
    let expired = Deadline::after(Duration::ZERO);
    let error = confine_images(dir.path(), &[], &line, expired)
        .await
        .expect_err("no time to run qemu-img");
    assert!(matches!(error, ConfineError::Timeout { .. }), "{error}");
}

#[tokio::test]
async fn refuses_unreadable_images_and_fails_on_a_missing_work_dir() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("bad.qcow2"), b"QFI\xfb garbage").expect("writes");
    let refused = confine(
        &dir,
        &[],
        "qemu-system-x86_64 -drive file=bad.qcow2,format=qcow2",
    )
    .await;
    assert_refused(&refused, "qemu-img cannot read `bad.qcow2` as an image");
    let gone = dir.path().join("gone");
    let error = confine_images(&gone, &[], &parse("qemu-system-x86_64"), deadline())
        .await
        .expect_err("no work dir");
    assert!(matches!(error, ConfineError::WorkDir { .. }), "{error}");
}
