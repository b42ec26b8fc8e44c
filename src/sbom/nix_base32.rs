//! Nix's base-32, in which Nix writes store hashes (and its database's
//! `ValidPaths.hash`): the alphabet `0-9a-z` without `e`, `o`, `u` and
//! `t`, and the bits taken from the end of the hash: the first character
//! written holds the last (most significant) bits of the last byte, and
//! character `k` from the end holds bits `5k..5k+4` of the hash read as
//! one little-endian number.  A SHA-256 takes 52 characters.

const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// The number of characters that encode `bytes` bytes.
pub fn encoded_len(bytes: usize) -> usize {
    (bytes * 8).div_ceil(5)
}

/// `bytes` in Nix's base-32 (the tests compare it with Nix's own output;
/// the builder only decodes).
#[cfg(test)]
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for k in (0..len).rev() {
        let bit = k * 5;
        let (i, shift) = (bit / 8, bit % 8);
        let mut v = u16::from(bytes[i]) >> shift;
        if let Some(&next) = bytes.get(i + 1) {
            v |= u16::from(next) << (8 - shift);
        }
        out.push(ALPHABET[usize::from(v & 0x1f)] as char);
    }
    out
}

/// The `N` bytes `text` encodes, or why it does not encode `N` bytes: the
/// wrong length, a character outside the alphabet, or bits set beyond the
/// `8 × N` (which no encoder writes).
pub fn decode<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let len = encoded_len(N);
    if text.len() != len {
        return Err(format!("{} characters, not the {len} of nix-base32 for {N} bytes", text.len()));
    }
    let mut out = [0u8; N];
    for (position, c) in text.bytes().enumerate() {
        let Some(digit) = ALPHABET.iter().position(|&a| a == c) else {
            return Err(format!("'{}' is not a nix-base32 character", c as char));
        };
        let bit = (len - 1 - position) * 5;
        let (i, shift) = (bit / 8, bit % 8);
        let v = (digit as u16) << shift;
        out[i] |= v as u8;
        let high = (v >> 8) as u8;
        if high != 0 {
            if i + 1 >= N {
                return Err("bits beyond the hash's length are set".into());
            }
            out[i + 1] |= high;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs printed by Nix's `nix-hash --type sha256 --to-base32 HEX`.
    const KNOWN: &[(&str, &str)] = &[
        // SHA-256 of the empty string.
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"),
        // SHA-256 of "abc".
        ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"),
        // The bytes 0, 1, ..., 31: shows the bit order.
        ("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "07qy3lf1n6hr30bic58l2c91240g1q6hq2qa1440f1h50h1h4080"),
    ];

    #[test]
    fn encodes_and_decodes_as_nix() {
        for (hex16, nix32) in KNOWN {
            let bytes: [u8; 32] = hex::decode(hex16).unwrap().try_into().unwrap();
            assert_eq!(encode(&bytes), *nix32);
            assert_eq!(decode::<32>(nix32).unwrap(), bytes);
        }
    }

    #[test]
    fn store_hash_parts_have_32_characters() {
        // A store path's hash part: 20 bytes in 32 characters.
        assert_eq!(encoded_len(20), 32);
        assert_eq!(encoded_len(32), 52);
        let bytes: [u8; 20] = std::array::from_fn(|i| (i * 37 + 11) as u8);
        assert_eq!(decode::<20>(&encode(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn refuses_what_is_not_nix_base32() {
        let good = KNOWN[0].1;
        assert!(decode::<32>(&good[1..]).unwrap_err().contains("51 characters"));
        let with_e = format!("e{}", &good[1..]);
        assert!(decode::<32>(&with_e).unwrap_err().contains("'e'"));
        // The first character holds 4 bits of 256 (52 × 5 = 260): a digit
        // of 16 or more sets a bit beyond them.
        let overflow = format!("z{}", &good[1..]);
        assert!(decode::<32>(&overflow).unwrap_err().contains("beyond"));
    }
}
