//! The NAR hash of a store item as its database row holds it
//! (`ValidPaths.hash`): `sha256:` and 64 base16 digits as Guix writes it,
//! or `sha256:` and 52 nix-base32 characters as Nix writes it.

use super::nix_base32;

/// The SHA-256 `text` holds, or why it holds none.
pub fn parse(text: &str) -> Result<[u8; 32], String> {
    let Some(digits) = text.strip_prefix("sha256:") else {
        return Err("it does not start with 'sha256:'".into());
    };
    match digits.len() {
        64 => {
            let mut out = [0u8; 32];
            // Guix writes lowercase; uppercase is base16 all the same.
            hex::decode_to_slice(digits, &mut out).map_err(|e| format!("not base16 ({e})"))?;
            Ok(out)
        }
        52 => nix_base32::decode::<32>(digits).map_err(|e| format!("not nix-base32 ({e})")),
        n => Err(format!(
            "{n} characters after 'sha256:', neither the 64 of base16 (as Guix writes it) nor the 52 of nix-base32 \
             (as Nix writes it)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    const ABC_HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn guix_and_nix_forms_give_the_same_hash() {
        let from_guix = parse(&format!("sha256:{ABC_HEX}")).unwrap();
        let from_nix = parse("sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s").unwrap();
        assert_eq!(hex::encode(from_guix), ABC_HEX);
        assert_eq!(from_guix, from_nix);
        assert_eq!(parse(&format!("sha256:{}", ABC_HEX.to_uppercase())).unwrap(), from_guix);
    }

    #[test]
    fn malformed_hashes_say_what_is_wrong() {
        assert!(parse(ABC_HEX).unwrap_err().contains("sha256:"));
        assert!(parse("md5:0123").unwrap_err().contains("sha256:"));
        assert!(parse("sha256:abc").unwrap_err().contains("3 characters"));
        assert!(parse(&format!("sha256:{}", "g".repeat(64))).unwrap_err().contains("base16"));
        assert!(parse(&format!("sha256:{}", "e".repeat(52))).unwrap_err().contains("nix-base32"));
        assert!(parse("").is_err());
    }
}
