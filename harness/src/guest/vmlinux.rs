//! The uncompressed kernel for direct boot, taken out of the bzImage.
//!
//! QEMU boots an ELF `vmlinux` with a PVH entry note through `-kernel` and skips the bzImage's
//! own decompressor, which under TCG costs seconds. The bzImage's protected-mode part carries the
//! compressed kernel; the setup header says where (`payload_offset`, `payload_length`, relative
//! to the start of the protected-mode code, which follows `setup_sects + 1` sectors of setup).

use super::GuestError;

const SETUP_SECTS: usize = 0x1f1;
const HEADER_MAGIC: usize = 0x202;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;
const XZ_MAGIC: &[u8] = b"\xfd7zXZ\0";
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Where the compressed kernel lies inside a bzImage: a byte range.
pub fn payload_range(bzimage: &[u8]) -> Result<std::ops::Range<usize>, GuestError> {
    let bad = |reason: &str| GuestError::Kernel(reason.to_string());
    let read_u32 = |at: usize| {
        bzimage
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if bzimage.get(HEADER_MAGIC..HEADER_MAGIC + 4) != Some(b"HdrS".as_slice()) {
        return Err(bad("not a bzImage: no HdrS setup header"));
    }
    let setup_sects = match bzimage[SETUP_SECTS] {
        0 => 4, // the boot protocol's historical default
        n => usize::from(n),
    };
    let protected_mode_start = (setup_sects + 1) * 512;
    let (offset, length) = read_u32(PAYLOAD_OFFSET)
        .zip(read_u32(PAYLOAD_LENGTH))
        .ok_or_else(|| bad("setup header too short for payload fields"))?;
    let start = protected_mode_start + offset;
    let range = start..start + length;
    if range.end > bzimage.len() {
        return Err(bad("payload runs past the end of the bzImage"));
    }
    Ok(range)
}

/// Decompresses the xz stream at the start of `input` and ignores what follows it: the kernel
/// build appends the uncompressed size, which xz2's reader would take for a corrupt stream.
fn decompress_one_xz_stream(mut input: &[u8]) -> Result<Vec<u8>, GuestError> {
    let failed =
        |reason: String| GuestError::Kernel(format!("decompressing the kernel payload: {reason}"));
    let mut stream =
        xz2::stream::Stream::new_stream_decoder(u64::MAX, 0).map_err(|e| failed(e.to_string()))?;
    let mut out = Vec::with_capacity(input.len() * 8);
    loop {
        if out.len() == out.capacity() {
            out.reserve(16 << 20);
        }
        let consumed_before = stream.total_in();
        let produced_before = out.len();
        let status = stream
            .process_vec(input, &mut out, xz2::stream::Action::Run)
            .map_err(|e| failed(e.to_string()))?;
        input = &input[(stream.total_in() - consumed_before) as usize..];
        if status == xz2::stream::Status::StreamEnd {
            return Ok(out);
        }
        let stuck = out.len() == produced_before && stream.total_in() == consumed_before;
        if input.is_empty() && stuck {
            return Err(failed("the xz stream is truncated".into()));
        }
    }
}

/// The ELF kernel inside a bzImage whose payload is xz-compressed (Debian's CONFIG_KERNEL_XZ).
pub fn extract(bzimage: &[u8]) -> Result<Vec<u8>, GuestError> {
    let payload = &bzimage[payload_range(bzimage)?];
    if !payload.starts_with(XZ_MAGIC) {
        return Err(GuestError::Kernel(
            "the bzImage payload is not xz-compressed; only xz kernels are supported".into(),
        ));
    }
    let elf = decompress_one_xz_stream(payload)?;
    if !elf.starts_with(ELF_MAGIC) {
        return Err(GuestError::Kernel(
            "the decompressed payload is not an ELF file".into(),
        ));
    }
    Ok(elf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A fake bzImage: setup sectors with a header, then `payload` at `offset` in protected mode.
    fn bzimage(setup_sects: u8, offset: usize, payload: &[u8]) -> Vec<u8> {
        let start = (usize::from(setup_sects) + 1) * 512 + offset;
        let mut image = vec![0u8; start];
        image[SETUP_SECTS] = setup_sects;
        image[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        image[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&(offset as u32).to_le_bytes());
        image[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4]
            .copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image.extend_from_slice(payload);
        image.extend_from_slice(b"trailing decompressor code");
        image
    }

    fn xz(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 1);
        encoder.write_all(bytes).expect("xz");
        let mut out = encoder.finish().expect("xz done");
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes()); // as the kernel build does
        out
    }

    #[test]
    fn locates_the_payload_after_the_setup_sectors() {
        let image = bzimage(27, 0x3b4, b"PAYLOAD");
        let range = payload_range(&image).expect("located");
        assert_eq!(range.start, 28 * 512 + 0x3b4);
        assert_eq!(&image[range], b"PAYLOAD");
    }

    #[test]
    fn extracts_the_elf_from_an_xz_payload() {
        let elf = b"\x7fELF\x02\x01\x01 rest of vmlinux".to_vec();
        let image = bzimage(30, 0x100, &xz(&elf));
        assert_eq!(extract(&image).expect("extracted"), elf);
    }

    #[rstest::rstest]
    #[case::no_header(vec![0u8; 4096], "HdrS")]
    #[case::not_xz(bzimage(4, 0, b"\x1f\x8bgzip"), "xz")]
    fn refuses_what_it_cannot_read(#[case] image: Vec<u8>, #[case] complaint: &str) {
        let err = extract(&image).expect_err("refused");
        assert!(err.to_string().contains(complaint), "{err}");
    }

    #[test]
    fn payload_past_the_end_is_an_error() {
        let mut image = bzimage(4, 0, b"abc");
        image[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
        assert!(payload_range(&image).is_err());
    }
}
