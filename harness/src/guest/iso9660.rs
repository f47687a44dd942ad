//! A small ISO 9660 writer with an El Torito no-emulation boot entry, enough for isolinux.
//!
//! It writes the system area, a primary volume descriptor, an El Torito boot record, the
//! terminator, L and M path tables, directory records, the boot catalog and the files, all with
//! one fixed date. Layout is computed from the content alone, so the same files always give the
//! same bytes. Names are ISO 9660 level 1 (upper case 8.3); isolinux matches them without regard
//! to case. The tree is the root plus one level of directories, which is all the guest needs.

use std::collections::BTreeMap;

use super::GuestError;

pub const SECTOR: usize = 2048;
const PVD_LBA: u32 = 16;
const BOOT_RECORD_LBA: u32 = 17;
const TERMINATOR_LBA: u32 = 18;
const PATH_TABLES_LBA: u32 = 19;
/// isolinux.bin is loaded as 4 virtual 512-byte sectors, as `mkisofs -boot-load-size 4` does.
const BOOT_LOAD_SECTORS: u16 = 4;

/// What goes on the disc. Paths are `NAME.EXT` or `DIR/NAME.EXT`.
#[derive(Debug, Clone)]
pub struct IsoSpec {
    pub volume_id: String,
    pub files: Vec<(String, Vec<u8>)>,
    /// The file the BIOS loads (isolinux.bin); it gets a boot info table patched in.
    pub boot_file: String,
    /// Every date on the disc, in seconds since the Unix epoch.
    pub timestamp: u64,
}

struct Layout {
    /// Directory name ("" for the root) to its files, in identifier order.
    dirs: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    dir_lba: BTreeMap<String, u32>,
    dir_size: BTreeMap<String, u32>,
    file_lba: BTreeMap<(String, String), u32>,
    catalog_lba: u32,
    path_table_size: u32,
    total_sectors: u32,
}

pub fn write(spec: &IsoSpec) -> Result<Vec<u8>, GuestError> {
    let mut dirs = tree(spec)?;
    let boot = split_path(&spec.boot_file)?;
    let boot_bytes = dirs
        .get_mut(&boot.0)
        .and_then(|files| files.get_mut(&boot.1))
        .ok_or_else(|| {
            GuestError::Iso(format!("boot file {} is not on the disc", spec.boot_file))
        })?;
    if boot_bytes.len() < 64 {
        return Err(GuestError::Iso(format!(
            "boot file {} is too small for a boot info table",
            spec.boot_file
        )));
    }
    let layout = plan(dirs);
    let mut image = vec![0u8; layout.total_sectors as usize * SECTOR];
    let date = DateTime::from_epoch(spec.timestamp);

    let boot_lba = layout.file_lba[&boot];
    for (dir, files) in &layout.dirs {
        for (name, bytes) in files {
            let lba = layout.file_lba[&(dir.clone(), name.clone())];
            let mut bytes = bytes.clone();
            if (dir, name) == (&boot.0, &boot.1) {
                patch_boot_info_table(&mut bytes, boot_lba);
            }
            put(&mut image, lba, &bytes);
        }
    }
    put(
        &mut image,
        PVD_LBA,
        &primary_volume_descriptor(spec, &layout, &date),
    );
    put(
        &mut image,
        BOOT_RECORD_LBA,
        &boot_record(layout.catalog_lba),
    );
    put(&mut image, TERMINATOR_LBA, &terminator());
    let (table_l, table_m) = path_tables(&layout);
    put(&mut image, PATH_TABLES_LBA, &table_l);
    put(
        &mut image,
        PATH_TABLES_LBA + path_table_sectors(&layout),
        &table_m,
    );
    for dir in layout.dirs.keys() {
        put(
            &mut image,
            layout.dir_lba[dir],
            &directory_extent(&layout, dir, &date),
        );
    }
    put(&mut image, layout.catalog_lba, &boot_catalog(boot_lba));
    Ok(image)
}

fn tree(spec: &IsoSpec) -> Result<BTreeMap<String, BTreeMap<String, Vec<u8>>>, GuestError> {
    let mut dirs: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    dirs.insert(String::new(), BTreeMap::new());
    for (path, bytes) in &spec.files {
        let (dir, name) = split_path(path)?;
        if !dir.is_empty() {
            check_d_chars(&dir, path)?;
        }
        dirs.entry(dir).or_default().insert(name, bytes.clone());
    }
    Ok(dirs)
}

/// `DIR/NAME.EXT` to ("DIR", "NAME.EXT;1"), checking level 1 names.
fn split_path(path: &str) -> Result<(String, String), GuestError> {
    let (dir, name) = match path.split_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    };
    let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
    let valid = !stem.is_empty() && stem.len() <= 8 && ext.len() <= 3 && !name.contains('/');
    if !valid {
        return Err(GuestError::Iso(format!(
            "{path}: not an 8.3 name in at most one directory"
        )));
    }
    check_d_chars(stem, path)?;
    check_d_chars(ext, path)?;
    Ok((dir.to_string(), format!("{stem}.{ext};1")))
}

fn check_d_chars(text: &str, path: &str) -> Result<(), GuestError> {
    if text
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(GuestError::Iso(format!(
            "{path}: ISO 9660 names use A-Z, 0-9 and _ only"
        )))
    }
}

fn sectors(bytes: usize) -> u32 {
    bytes.div_ceil(SECTOR).max(1) as u32
}

fn path_table_sectors(layout: &Layout) -> u32 {
    sectors(layout.path_table_size as usize)
}

fn plan(dirs: BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> Layout {
    let mut layout = Layout {
        dir_lba: BTreeMap::new(),
        dir_size: BTreeMap::new(),
        file_lba: BTreeMap::new(),
        catalog_lba: 0,
        path_table_size: dirs.keys().map(|d| path_record_len(d) as u32).sum(),
        total_sectors: 0,
        dirs,
    };
    let mut next = PATH_TABLES_LBA + 2 * path_table_sectors(&layout);
    for dir in layout.dirs.keys() {
        let size = extent_len(&record_lens(&layout.dirs, dir));
        layout.dir_lba.insert(dir.clone(), next);
        layout.dir_size.insert(dir.clone(), size as u32);
        next += sectors(size);
    }
    layout.catalog_lba = next;
    next += 1;
    for (dir, files) in &layout.dirs {
        for (name, bytes) in files {
            layout.file_lba.insert((dir.clone(), name.clone()), next);
            next += sectors(bytes.len());
        }
    }
    layout.total_sectors = next;
    layout
}

/// Lengths of a directory's records: ".", "..", subdirectories (root only), files.
fn record_lens(dirs: &BTreeMap<String, BTreeMap<String, Vec<u8>>>, dir: &str) -> Vec<usize> {
    let mut lens = vec![record_len(1), record_len(1)];
    if dir.is_empty() {
        lens.extend(
            dirs.keys()
                .filter(|d| !d.is_empty())
                .map(|d| record_len(d.len())),
        );
    }
    lens.extend(dirs[dir].keys().map(|name| record_len(name.len())));
    lens
}

fn record_len(name_len: usize) -> usize {
    33 + name_len + (name_len + 1) % 2
}

/// Records never cross a sector boundary: a record that does not fit starts the next sector.
fn extent_len(record_lens: &[usize]) -> usize {
    let mut offset = 0;
    for &len in record_lens {
        if offset % SECTOR + len > SECTOR {
            offset = offset.div_ceil(SECTOR) * SECTOR;
        }
        offset += len;
    }
    offset.div_ceil(SECTOR) * SECTOR
}

fn put(image: &mut [u8], lba: u32, bytes: &[u8]) {
    let start = lba as usize * SECTOR;
    image[start..start + bytes.len()].copy_from_slice(bytes);
}

fn both16(value: u16) -> [u8; 4] {
    let (le, be) = (value.to_le_bytes(), value.to_be_bytes());
    [le[0], le[1], be[0], be[1]]
}

fn both32(value: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&value.to_le_bytes());
    out[4..].copy_from_slice(&value.to_be_bytes());
    out
}

fn padded(text: &str, len: usize) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.resize(len, b' ');
    out
}

fn directory_record(
    identifier: &[u8],
    lba: u32,
    size: u32,
    is_dir: bool,
    date: &DateTime,
) -> Vec<u8> {
    let mut record = vec![0u8; record_len(identifier.len())];
    record[0] = record.len() as u8;
    record[2..10].copy_from_slice(&both32(lba));
    record[10..18].copy_from_slice(&both32(size));
    record[18..25].copy_from_slice(&date.record_form());
    record[25] = if is_dir { 2 } else { 0 };
    record[28..32].copy_from_slice(&both16(1));
    record[32] = identifier.len() as u8;
    record[33..33 + identifier.len()].copy_from_slice(identifier);
    record
}

fn directory_extent(layout: &Layout, dir: &str, date: &DateTime) -> Vec<u8> {
    let own = (layout.dir_lba[dir], layout.dir_size[dir]);
    let root = (layout.dir_lba[""], layout.dir_size[""]);
    let mut records = vec![
        directory_record(&[0], own.0, own.1, true, date),
        directory_record(&[1], root.0, root.1, true, date),
    ];
    if dir.is_empty() {
        for sub in layout.dirs.keys().filter(|d| !d.is_empty()) {
            records.push(directory_record(
                sub.as_bytes(),
                layout.dir_lba[sub],
                layout.dir_size[sub],
                true,
                date,
            ));
        }
    }
    for (name, bytes) in &layout.dirs[dir] {
        let lba = layout.file_lba[&(dir.to_string(), name.clone())];
        records.push(directory_record(
            name.as_bytes(),
            lba,
            bytes.len() as u32,
            false,
            date,
        ));
    }
    let mut extent = Vec::new();
    for record in records {
        if extent.len() % SECTOR + record.len() > SECTOR {
            extent.resize(extent.len().div_ceil(SECTOR) * SECTOR, 0);
        }
        extent.extend_from_slice(&record);
    }
    extent.resize(layout.dir_size[dir] as usize, 0);
    extent
}

fn path_record_len(dir: &str) -> usize {
    let name_len = dir.len().max(1);
    8 + name_len + name_len % 2
}

/// The L (little-endian) and M (big-endian) path tables: root first, then its directories.
fn path_tables(layout: &Layout) -> (Vec<u8>, Vec<u8>) {
    let mut little = Vec::new();
    let mut big = Vec::new();
    for dir in layout.dirs.keys() {
        let name: &[u8] = if dir.is_empty() { &[0] } else { dir.as_bytes() };
        let lba = layout.dir_lba[dir];
        for (table, lba_bytes, parent) in [
            (&mut little, lba.to_le_bytes(), 1u16.to_le_bytes()),
            (&mut big, lba.to_be_bytes(), 1u16.to_be_bytes()),
        ] {
            table.push(name.len() as u8);
            table.push(0);
            table.extend_from_slice(&lba_bytes);
            table.extend_from_slice(&parent);
            table.extend_from_slice(name);
            if name.len() % 2 == 1 {
                table.push(0);
            }
        }
    }
    (little, big)
}

fn descriptor_header(kind: u8) -> Vec<u8> {
    let mut sector = vec![0u8; SECTOR];
    sector[0] = kind;
    sector[1..6].copy_from_slice(b"CD001");
    sector[6] = 1;
    sector
}

fn primary_volume_descriptor(spec: &IsoSpec, layout: &Layout, date: &DateTime) -> Vec<u8> {
    let mut pvd = descriptor_header(1);
    pvd[8..40].copy_from_slice(&padded("LINUX", 32));
    pvd[40..72].copy_from_slice(&padded(&spec.volume_id, 32));
    pvd[80..88].copy_from_slice(&both32(layout.total_sectors));
    pvd[120..124].copy_from_slice(&both16(1));
    pvd[124..128].copy_from_slice(&both16(1));
    pvd[128..132].copy_from_slice(&both16(SECTOR as u16));
    pvd[132..140].copy_from_slice(&both32(layout.path_table_size));
    let l_table = PATH_TABLES_LBA;
    let m_table = PATH_TABLES_LBA + path_table_sectors(layout);
    pvd[140..144].copy_from_slice(&l_table.to_le_bytes());
    pvd[148..152].copy_from_slice(&m_table.to_be_bytes());
    let root = directory_record(&[0], layout.dir_lba[""], layout.dir_size[""], true, date);
    pvd[156..190].copy_from_slice(&root);
    for (start, len) in [
        (190, 128),
        (318, 128),
        (446, 128),
        (574, 128),
        (702, 37),
        (739, 37),
        (776, 37),
    ] {
        pvd[start..start + len].copy_from_slice(&padded("", len));
    }
    pvd[574..582].copy_from_slice(b"LABCHECK");
    let stamp = date.descriptor_form();
    pvd[813..830].copy_from_slice(&stamp);
    pvd[830..847].copy_from_slice(&stamp);
    pvd[847..864].copy_from_slice(&DateTime::unset_descriptor_form());
    pvd[864..881].copy_from_slice(&stamp);
    pvd[881] = 1;
    pvd
}

fn boot_record(catalog_lba: u32) -> Vec<u8> {
    let mut record = descriptor_header(0);
    let system = b"EL TORITO SPECIFICATION";
    record[7..7 + system.len()].copy_from_slice(system);
    record[0x47..0x4b].copy_from_slice(&catalog_lba.to_le_bytes());
    record
}

fn terminator() -> Vec<u8> {
    descriptor_header(255)
}

/// Validation entry (x86, checksummed so its 16-bit words sum to zero) and the default entry:
/// bootable, no emulation, 4 virtual sectors loaded at the default segment.
fn boot_catalog(boot_lba: u32) -> Vec<u8> {
    let mut catalog = vec![0u8; SECTOR];
    catalog[0] = 1;
    catalog[4..12].copy_from_slice(b"LABCHECK");
    catalog[30] = 0x55;
    catalog[31] = 0xaa;
    let sum = catalog[..32].chunks(2).fold(0u16, |sum, w| {
        sum.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    catalog[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    catalog[32] = 0x88;
    catalog[38..40].copy_from_slice(&BOOT_LOAD_SECTORS.to_le_bytes());
    catalog[40..44].copy_from_slice(&boot_lba.to_le_bytes());
    catalog
}

/// The table `mkisofs -boot-info-table` writes at offset 8: where the volume descriptor and the
/// boot file are, its length, and a checksum of its 32-bit words from offset 64 on.
fn patch_boot_info_table(boot: &mut [u8], boot_lba: u32) {
    let checksum = boot[64..].chunks(4).fold(0u32, |sum, word| {
        let mut le = [0u8; 4];
        le[..word.len()].copy_from_slice(word);
        sum.wrapping_add(u32::from_le_bytes(le))
    });
    boot[8..12].copy_from_slice(&PVD_LBA.to_le_bytes());
    boot[12..16].copy_from_slice(&boot_lba.to_le_bytes());
    let length = boot.len() as u32;
    boot[16..20].copy_from_slice(&length.to_le_bytes());
    boot[20..24].copy_from_slice(&checksum.to_le_bytes());
    boot[24..64].fill(0);
}

/// A UTC date and time, from seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateTime {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl DateTime {
    fn from_epoch(seconds: u64) -> Self {
        let days = (seconds / 86_400) as i64;
        let rest = seconds % 86_400;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
        DateTime {
            year,
            month,
            day,
            hour: (rest / 3600) as u32,
            minute: (rest % 3600 / 60) as u32,
            second: (rest % 60) as u32,
        }
    }

    /// The 7-byte form of directory records (years since 1900, GMT offset 0).
    fn record_form(&self) -> [u8; 7] {
        [
            (self.year - 1900) as u8,
            self.month as u8,
            self.day as u8,
            self.hour as u8,
            self.minute as u8,
            self.second as u8,
            0,
        ]
    }

    /// The 17-byte form of volume descriptors: "YYYYMMDDHHMMSScc" and a GMT offset.
    fn descriptor_form(&self) -> [u8; 17] {
        let text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(text.as_bytes());
        out
    }

    fn unset_descriptor_form() -> [u8; 17] {
        let mut out = [b'0'; 17];
        out[16] = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IsoSpec {
        let mut isolinux = vec![0u8; 4096];
        isolinux[64..68].copy_from_slice(&7u32.to_le_bytes());
        IsoSpec {
            volume_id: "LABCHECK".into(),
            files: vec![
                ("ISOLINUX/ISOLINUX.BIN".into(), isolinux),
                ("ISOLINUX/ISOLINUX.CFG".into(), b"DEFAULT linux\n".to_vec()),
                ("README.TXT".into(), b"hello".to_vec()),
            ],
            boot_file: "ISOLINUX/ISOLINUX.BIN".into(),
            timestamp: 1_686_355_200,
        }
    }

    fn sector(image: &[u8], lba: u32) -> &[u8] {
        &image[lba as usize * SECTOR..(lba as usize + 1) * SECTOR]
    }

    fn u32_le(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
    }

    /// Finds `name` in the directory extent at `lba`: (extent lba, size).
    fn lookup(image: &[u8], lba: u32, name: &str) -> Option<(u32, u32)> {
        let dir = sector(image, lba);
        let mut at = 0;
        while at < SECTOR && dir[at] != 0 {
            let len = dir[at] as usize;
            let id = &dir[at + 33..at + 33 + dir[at + 32] as usize];
            if id == name.as_bytes() {
                return Some((u32_le(dir, at + 2), u32_le(dir, at + 10)));
            }
            at += len;
        }
        None
    }

    #[test]
    fn volume_descriptors_are_in_place() {
        let image = write(&sample()).expect("written");
        assert_eq!(image.len() % SECTOR, 0);
        let pvd = sector(&image, 16);
        assert_eq!(&pvd[..7], b"\x01CD001\x01");
        assert_eq!(
            u32_le(pvd, 80) as usize * SECTOR,
            image.len(),
            "volume space size"
        );
        assert_eq!(
            &pvd[813..829],
            b"2023061000000000",
            "creation date from the timestamp"
        );
        assert_eq!(
            &sector(&image, 17)[..30],
            b"\x00CD001\x01EL TORITO SPECIFICATION"
        );
        assert_eq!(&sector(&image, 18)[..7], b"\xffCD001\x01");
    }

    #[test]
    fn files_are_found_through_the_root_directory() {
        let image = write(&sample()).expect("written");
        let pvd = sector(&image, 16);
        let root_lba = u32_le(pvd, 156 + 2);
        let (readme, size) = lookup(&image, root_lba, "README.TXT;1").expect("README in root");
        assert_eq!(
            &image[readme as usize * SECTOR..][..size as usize],
            b"hello"
        );
        let (dir, _) = lookup(&image, root_lba, "ISOLINUX").expect("ISOLINUX dir in root");
        let (cfg, size) = lookup(&image, dir, "ISOLINUX.CFG;1").expect("cfg in ISOLINUX");
        assert_eq!(
            &image[cfg as usize * SECTOR..][..size as usize],
            b"DEFAULT linux\n"
        );
        let (parent, _) = lookup(&image, dir, "\u{1}").expect("parent record");
        assert_eq!(parent, root_lba);
    }

    #[test]
    fn path_tables_list_root_then_directories() {
        let image = write(&sample()).expect("written");
        let pvd = sector(&image, 16);
        let size = u32_le(pvd, 132) as usize;
        assert_eq!(size, 10 + 16, "root record (10) + ISOLINUX record (16)");
        let l_table = &sector(&image, u32_le(pvd, 140))[..size];
        let m_lba = u32::from_be_bytes(pvd[148..152].try_into().expect("4 bytes"));
        let m_table = &sector(&image, m_lba)[..size];
        assert_eq!(&l_table[..2], &[1, 0]);
        assert_eq!(&l_table[18..26], b"ISOLINUX");
        assert_eq!(
            u32_le(l_table, 12),
            u32::from_be_bytes(m_table[12..16].try_into().expect("4"))
        );
    }

    #[test]
    fn el_torito_catalog_points_at_the_patched_boot_file() {
        let image = write(&sample()).expect("written");
        let catalog_lba = u32_le(sector(&image, 17), 0x47);
        let catalog = sector(&image, catalog_lba);
        let word_sum = catalog[..32].chunks(2).fold(0u16, |s, w| {
            s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
        assert_eq!(word_sum, 0, "validation entry checksum");
        assert_eq!(&catalog[30..32], &[0x55, 0xaa]);
        assert_eq!(catalog[32], 0x88, "bootable");
        assert_eq!(catalog[33], 0, "no emulation");
        assert_eq!(u16::from_le_bytes([catalog[38], catalog[39]]), 4);
        let boot_lba = u32_le(catalog, 40);
        let boot = sector(&image, boot_lba);
        assert_eq!(u32_le(boot, 8), 16, "boot info table: PVD");
        assert_eq!(u32_le(boot, 12), boot_lba, "boot info table: own LBA");
        assert_eq!(u32_le(boot, 16), 4096, "boot info table: length");
        assert_eq!(
            u32_le(boot, 20),
            7,
            "boot info table: checksum from offset 64"
        );
    }

    #[test]
    fn same_spec_same_bytes() {
        assert_eq!(
            write(&sample()).expect("one"),
            write(&sample()).expect("two")
        );
    }

    #[rstest::rstest]
    #[case::lower_case("isolinux/isolinux.bin")]
    #[case::long_name("ISOLINUX/TOOLONGNAME.BIN")]
    #[case::deep("A/B/C.BIN")]
    fn rejects_names_isolinux_could_not_read(#[case] path: &str) {
        let mut spec = sample();
        spec.files.push((path.to_string(), vec![1]));
        assert!(write(&spec).is_err(), "{path} must be refused");
    }

    #[rstest::rstest]
    #[case(0, (1970, 1, 1, 0, 0, 0))]
    #[case(1_686_355_200, (2023, 6, 10, 0, 0, 0))]
    #[case(951_782_400 + 3661, (2000, 2, 29, 1, 1, 1))]
    fn dates_from_epoch(#[case] seconds: u64, #[case] expected: (u32, u32, u32, u32, u32, u32)) {
        let d = DateTime::from_epoch(seconds);
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.second),
            expected
        );
    }
}
