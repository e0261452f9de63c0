//! How the fuzz targets cut one byte string into the several files an entry point takes.
//!
//! The byte `0xFF` never occurs in UTF-8, so it never occurs in a JSON document: it separates a
//! JSON part from the binary part that follows it, and a seed can be written by hand as
//! `cat config.json <(printf '\xff') model.safetensors`.

/// Separates the JSON parts of an input from each other and from the binary tail.
pub const SEPARATOR: u8 = 0xFF;

/// Splits `data` at the first [`SEPARATOR`]: (before, after). Without one, all of `data` is
/// the first part and the second is empty.
pub fn split_once(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == SEPARATOR) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// The files of a checkpoint, as cut from one input.
pub struct CheckpointParts<'a> {
    pub config_json: &'a [u8],
    pub preprocessor_config_json: Option<&'a [u8]>,
    pub safetensors: &'a [u8],
}

/// `config.json`, `0xFF`, optionally `preprocessor_config.json` and `0xFF`, then
/// `model.safetensors`. The preprocessor part is present when the bytes after the first
/// separator start with `{` (a safetensors file starts with its 8-byte header length).
pub fn checkpoint_parts(data: &[u8]) -> CheckpointParts<'_> {
    let (config_json, rest) = split_once(data);
    if rest.first() == Some(&b'{') {
        let (preprocessor, safetensors) = split_once(rest);
        CheckpointParts {
            config_json,
            preprocessor_config_json: Some(preprocessor),
            safetensors,
        }
    } else {
        CheckpointParts {
            config_json,
            preprocessor_config_json: None,
            safetensors: rest,
        }
    }
}

/// Reads a little-endian u64 from up to 8 bytes at `at` (missing bytes count as zero).
pub fn read_u64(data: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_cut_at_the_separators() {
        let parts = checkpoint_parts(b"{\"a\":1}\xff{\"b\":2}\xff\x08\x00\xff");
        assert_eq!(parts.config_json, b"{\"a\":1}");
        assert_eq!(parts.preprocessor_config_json, Some(&b"{\"b\":2}"[..]));
        assert_eq!(parts.safetensors, b"\x08\x00\xff");

        let parts = checkpoint_parts(b"{}\xff\x08\x00{\xff");
        assert_eq!(parts.preprocessor_config_json, None);
        assert_eq!(parts.safetensors, b"\x08\x00{\xff");

        assert_eq!(split_once(b"abc"), (&b"abc"[..], &b""[..]));
        assert_eq!(read_u64(b"\x01\x02", 0), 0x0201);
    }
}
