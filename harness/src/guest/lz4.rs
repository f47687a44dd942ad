//! A small, deterministic LZ4 compressor writing the legacy frame (`lz4 -l`), the format the
//! kernel unpacks an initramfs from (`CONFIG_RD_LZ4`).
//!
//! Why the ISO carries a compressed initramfs: isolinux reads it through the BIOS (SeaBIOS PIO
//! under TCG, about 10 MB/s from the CD), and LZ4 is the kernel's cheapest decompressor, costing
//! about what copying the uncompressed archive costs. gzip packs tighter but unpacks no faster
//! (and would need a new dependency); zstd and xz take the guest longer to unpack than the read
//! they save.
//!
//! The compressor is greedy with one hash table: not the tightest LZ4, but the output depends
//! only on the input.

/// Magic number opening a legacy LZ4 frame.
const LEGACY_MAGIC: u32 = 0x184C_2102;
/// The largest block of a legacy frame, uncompressed: the kernel's `unlz4` decodes each block
/// into a buffer of this size.
const BLOCK_SIZE: usize = 8 << 20;
/// Shortest match LZ4 encodes.
const MIN_MATCH: usize = 4;
/// A block's last 5 bytes are literals, and its last match starts at least 12 bytes before its
/// end (LZ4 block format, "end of block conditions").
const LAST_LITERALS: usize = 5;
const MATCH_SEARCH_LIMIT: usize = 12;
const MAX_OFFSET: usize = 65_535;
const HASH_BITS: u32 = 16;

/// `data` as a legacy LZ4 frame: the magic, then each block of up to 8 MiB as its compressed
/// length (little-endian u32) and its bytes.
pub fn compress_legacy_frame(data: &[u8]) -> Vec<u8> {
    let mut out = LEGACY_MAGIC.to_le_bytes().to_vec();
    for block in data.chunks(BLOCK_SIZE) {
        let compressed = compress_block(block);
        // A block of at most 8 MiB compresses to less than 4 GiB.
        let length = u32::try_from(compressed.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&compressed);
    }
    out
}

fn hash(word: u32) -> usize {
    (word.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

fn word_at(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// One LZ4 block: sequences of literals and matches, ending in literals.
fn compress_block(block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() / 2);
    let mut table = vec![usize::MAX; 1 << HASH_BITS];
    let search_end = block.len().saturating_sub(MATCH_SEARCH_LIMIT);
    let match_end = block.len().saturating_sub(LAST_LITERALS);
    let mut literals_from = 0;
    let mut at = 0;
    while at < search_end {
        let word = word_at(block, at);
        let slot = &mut table[hash(word)];
        let candidate = std::mem::replace(slot, at);
        let usable = candidate != usize::MAX
            && at - candidate <= MAX_OFFSET
            && word_at(block, candidate) == word;
        if !usable {
            at += 1;
            continue;
        }
        let mut length = MIN_MATCH;
        while at + length < match_end && block[candidate + length] == block[at + length] {
            length += 1;
        }
        write_sequence(
            &mut out,
            &block[literals_from..at],
            Some((at - candidate, length)),
        );
        at += length;
        literals_from = at;
    }
    write_sequence(&mut out, &block[literals_from..], None);
    out
}

/// A sequence: token, literal length, literals, then (unless it is the last) the match's offset
/// and length.
fn write_sequence(out: &mut Vec<u8>, literals: &[u8], found: Option<(usize, usize)>) {
    let match_extra = found.map_or(0, |(_, length)| length - MIN_MATCH);
    let token = (literals.len().min(15) << 4) | match_extra.min(15);
    out.push(token as u8);
    if literals.len() >= 15 {
        write_length_extension(out, literals.len() - 15);
    }
    out.extend_from_slice(literals);
    if let Some((offset, _)) = found {
        out.extend_from_slice(&(offset as u16).to_le_bytes());
        if match_extra >= 15 {
            write_length_extension(out, match_extra - 15);
        }
    }
}

/// The bytes that follow a nibble of 15: 255 while more follows, then the rest.
fn write_length_extension(out: &mut Vec<u8>, mut rest: usize) {
    while rest >= 255 {
        out.push(255);
        rest -= 255;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// A reference LZ4 block decoder, strict about bounds, to check the compressor against.
    fn decompress_block(block: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        let read_length = |at: &mut usize, nibble: usize| {
            let mut length = nibble;
            if nibble == 15 {
                loop {
                    let byte = block[*at] as usize;
                    *at += 1;
                    length += byte;
                    if byte != 255 {
                        break;
                    }
                }
            }
            length
        };
        loop {
            let token = block[at] as usize;
            at += 1;
            let literals = read_length(&mut at, token >> 4);
            out.extend_from_slice(&block[at..at + literals]);
            at += literals;
            if at == block.len() {
                return out;
            }
            let offset = u16::from_le_bytes([block[at], block[at + 1]]) as usize;
            at += 2;
            let length = read_length(&mut at, token & 15) + MIN_MATCH;
            assert!(
                offset >= 1 && offset <= out.len(),
                "offset {offset} out of range"
            );
            let from = out.len() - offset;
            for i in 0..length {
                out.push(out[from + i]);
            }
        }
    }

    fn decompress_legacy_frame(frame: &[u8]) -> Vec<u8> {
        assert_eq!(frame[..4], LEGACY_MAGIC.to_le_bytes());
        let mut out = Vec::new();
        let mut at = 4;
        while at < frame.len() {
            let length = u32::from_le_bytes(frame[at..at + 4].try_into().expect("4 bytes"));
            at += 4;
            let block = decompress_block(&frame[at..at + length as usize]);
            assert!(block.len() <= BLOCK_SIZE);
            out.extend_from_slice(&block);
            at += length as usize;
        }
        out
    }

    /// Bytes from a fixed linear congruential sequence: incompressible, and the same each run.
    fn noise(len: usize) -> Vec<u8> {
        let mut state: u32 = 1;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 16) as u8
            })
            .collect()
    }

    #[rstest]
    #[case::empty(Vec::new())]
    #[case::shorter_than_a_match(b"abc".to_vec())]
    #[case::short_text(b"hello hello hello hello hello hello".to_vec())]
    #[case::long_run(vec![7u8; 100_000])]
    #[case::noise(noise(70_000))]
    #[case::text_and_noise([b"PATH=/bin:/sbin ".repeat(5000), noise(3000), b"PATH=/bin ".repeat(300)].concat())]
    fn round_trips(#[case] data: Vec<u8>) {
        let frame = compress_legacy_frame(&data);
        assert_eq!(decompress_legacy_frame(&frame), data);
    }

    #[test]
    fn repetitive_data_shrinks() {
        let data = b"lib/modules/e1000.ko ".repeat(10_000);
        let frame = compress_legacy_frame(&data);
        assert!(frame.len() * 20 < data.len(), "{} bytes", frame.len());
    }

    #[test]
    fn data_over_8_mib_is_split_into_blocks() {
        let data = [noise(BLOCK_SIZE), noise(1000)].concat();
        let frame = compress_legacy_frame(&data);
        let first_length = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes")) as usize;
        assert!(frame.len() > 8 + first_length, "a second block follows");
        assert_eq!(decompress_legacy_frame(&frame), data);
    }

    #[test]
    fn blocks_end_in_at_least_five_literals() {
        let data = vec![0u8; 1000];
        let block = compress_block(&data);
        // The last sequence: token with literals only, then exactly those literals.
        let tail = &block[block.len() - LAST_LITERALS - 1..];
        assert_eq!(tail[0], (LAST_LITERALS as u8) << 4, "{block:?}");
    }
}
