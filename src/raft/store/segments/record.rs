//! One record of a segment file:
//!
//! ```text
//! crc32 (u32 LE) | length (u32 LE) | format (u8) | index (u64 LE) | payload (length bytes)
//! ```
//!
//! The checksum (CRC-32, `crc32fast`) covers everything after it, the length included, so a
//! torn or garbled header is caught like a torn payload. The index is the segment's first
//! index plus the record's position: stored anyway, as a check that records are where
//! they belong.

/// The checksum and length, then the format byte and the index.
pub(super) const HEADER: usize = 4 + 4 + 1 + 8;

/// The record layout above. A reader refuses a format it does not know.
const FORMAT: u8 = 1;

/// No entry is this big: a length past it is garbage, not a record.
const MAX_PAYLOAD: usize = 1 << 30;

/// Append the record of entry `index` holding `payload` to `out`.
pub(super) fn encode(index: u64, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.push(FORMAT);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The size of the record holding `payload`.
pub(super) fn size(payload: &[u8]) -> usize {
    HEADER + payload.len()
}

/// What the bytes at the start of a buffer hold.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// A whole record whose checksum matches: its index, and its payload at
    /// `HEADER..size` of the buffer.
    Record { index: u64, size: usize },
    /// The buffer ends before the record does.
    Short,
    /// Not a record: the reason.
    Bad(&'static str),
    /// A record whose checksum matches in a format this build does not know.
    UnknownFormat(u8),
}

pub(super) fn parse(buf: &[u8]) -> Parsed {
    if buf.len() < HEADER {
        return Parsed::Short;
    }
    let (index, len) = header(buf);
    if len > MAX_PAYLOAD {
        return Parsed::Bad("a length no record has");
    }
    let size = HEADER + len;
    if buf.len() < size {
        return Parsed::Short;
    }
    let stored = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    if crc32fast::hash(&buf[4..size]) != stored {
        return Parsed::Bad("checksum mismatch");
    }
    match buf[8] {
        FORMAT => Parsed::Record { index, size },
        other => Parsed::UnknownFormat(other),
    }
}

/// The index and payload length a header claims, unchecked.
pub(super) fn header(buf: &[u8]) -> (u64, usize) {
    let len = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
    let index = u64::from_le_bytes(buf[9..17].try_into().expect("8 bytes"));
    (index, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_any_damage_is_seen() {
        let mut buf = Vec::new();
        encode(42, b"hello", &mut buf);
        assert_eq!(buf.len(), size(b"hello"));
        assert_eq!(
            parse(&buf),
            Parsed::Record {
                index: 42,
                size: buf.len()
            }
        );
        assert_eq!(&buf[HEADER..], b"hello");
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut]), Parsed::Short, "cut at {cut}");
        }
        for bit in 0..buf.len() * 8 {
            let mut damaged = buf.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(parse(&damaged), Parsed::Record { .. }),
                "bit {bit} flipped still reads as a record"
            );
        }
    }
}
