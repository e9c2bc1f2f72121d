//! Reading the PEM files that settings name (`inbound.cert_file`, `inbound.key_file`,
//! `smtp.ca_file`, `replies.ca_file`) and the system's roots: regular files only (a FIFO or
//! `/dev/zero` would block or never end), at most [`PEM_FILE_MAX`] bytes (a path can be set by
//! anyone holding the console password, and the file is read on every validation). Errors name
//! the path and the reason, never the content.

use std::io::Read;

/// The largest PEM file herald reads. Debian's whole `ca-certificates.crt` (about 150 roots) is
/// about 220 KB; a certificate chain with its key is a few KB.
pub const PEM_FILE_MAX: u64 = 4 << 20;

/// The bytes of the PEM file at `path`.
pub fn read(path: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    if meta.len() > PEM_FILE_MAX {
        return Err(format!(
            "{path} is {} bytes, more than a PEM file may be ({PEM_FILE_MAX} bytes)",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow after the check: never read past the cap.
    file.take(PEM_FILE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.len() as u64 > PEM_FILE_MAX {
        return Err(format!(
            "{path} is more than a PEM file may be ({PEM_FILE_MAX} bytes)"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = std::env::temp_dir().join(format!("herald-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.pem");
        std::fs::write(&ok, "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert_eq!(read(ok.to_str().unwrap()).unwrap().len(), 28);
        let big = dir.join("big.pem");
        std::fs::write(&big, vec![b'a'; PEM_FILE_MAX as usize + 1]).unwrap();
        let e = read(big.to_str().unwrap()).unwrap_err();
        assert!(e.contains("more than a PEM file may be"), "{e}");
        // Regression: /dev/zero was read until memory ran out.
        let e = read("/dev/zero").unwrap_err();
        assert_eq!(e, "/dev/zero is not a regular file");
        let e = read(dir.to_str().unwrap()).unwrap_err();
        assert!(e.ends_with("is not a regular file"), "{e}");
        let e = read("/nonexistent/x.pem").unwrap_err();
        assert!(e.starts_with("cannot read /nonexistent/x.pem: "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
