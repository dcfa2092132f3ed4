//! Identifiers handed to callers: `rst_…` for restores and `req_…` for requests.

/// A fresh restore id, `rst_` followed by 24 lowercase hex digits.
pub(crate) fn restore_id() -> String {
    format!("rst_{}", random_hex())
}

/// A fresh request id, `req_` followed by 24 lowercase hex digits.
pub(crate) fn request_id() -> String {
    format!("req_{}", random_hex())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 12];
    // The operating system's generator only fails when it is unavailable at all; the clock is
    // then a usable, if weaker, source of uniqueness for ids that carry no secrecy.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&nanos.to_le_bytes()[..12]);
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_their_prefix_and_differ() {
        let a = super::restore_id();
        let b = super::restore_id();
        assert!(a.starts_with("rst_") && a.len() == 28);
        assert_ne!(a, b);
        assert!(super::request_id().starts_with("req_"));
    }
}
