//! PNG chunk checksums as PIL treats them: `Image.open` checks the CRC of every chunk before the
//! first `IDAT` (a bad one is "broken PNG file") and never reads those of the image data and what
//! follows it, so a file whose `IDAT` or `IEND` CRC is wrong opens in PIL. The `image` crate
//! refuses any bad CRC; here the CRCs PIL skips are recomputed, in a copy, before it decodes.

use std::borrow::Cow;

const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// `bytes` with the CRCs PIL does not check made right, or why PIL would refuse them. Bytes that
/// are not a PNG, or whose chunk layout ends early, are handed on unchanged for the decoder to
/// judge.
pub(crate) fn as_pil_reads(bytes: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    if !bytes.starts_with(SIGNATURE) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut fixed: Option<Vec<u8>> = None;
    let mut seen_idat = false;
    let mut at = SIGNATURE.len();
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        let Some(end) = at.checked_add(8 + len).filter(|&e| e + 4 <= bytes.len()) else {
            break; // a short chunk: the decoder says what is wrong
        };
        let stored =
            u32::from_be_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
        let actual = crc32fast::hash(&bytes[at + 4..end]);
        seen_idat |= kind == b"IDAT";
        if stored != actual {
            if !seen_idat {
                return Err(format!(
                    "broken PNG file (bad header checksum in {})",
                    String::from_utf8_lossy(kind)
                ));
            }
            let copy = fixed.get_or_insert_with(|| bytes.to_vec());
            copy[end..end + 4].copy_from_slice(&actual.to_be_bytes());
        }
        at = end + 4;
    }
    Ok(fixed.map_or(Cow::Borrowed(bytes), Cow::Owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(16, 8, |x, y| image::Rgb([x as u8 * 15, y as u8 * 30, 7]));
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
        bytes
    }

    /// Flip the CRC of the first chunk of `kind`.
    fn corrupt(bytes: &[u8], kind: &[u8]) -> Vec<u8> {
        let mut b = bytes.to_vec();
        let mut at = SIGNATURE.len();
        loop {
            let len = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
            if &b[at + 4..at + 8] == kind {
                b[at + 8 + len] ^= 0xFF;
                return b;
            }
            at += 12 + len;
        }
    }

    /// What PIL 13 does with each (checked with the pinned oracle): a bad IDAT or IEND CRC opens
    /// with the same pixels, a bad IHDR CRC does not open.
    #[test]
    fn crcs_are_checked_where_pil_checks_them() {
        let good = png();
        let want = crate::decode(&good).unwrap();
        let bad_idat = corrupt(&good, b"IDAT");
        assert!(
            image::load_from_memory(&bad_idat).is_err(),
            "the image crate alone refuses a bad IDAT CRC"
        );
        for kind in [&b"IDAT"[..], b"IEND"] {
            let bad = corrupt(&good, kind);
            assert_eq!(crate::decode(&bad).unwrap(), want);
        }
        let e = crate::decode(&corrupt(&good, b"IHDR"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad header checksum in IHDR"), "{e}");
        assert!(matches!(as_pil_reads(&good), Ok(Cow::Borrowed(_))));
    }
}
