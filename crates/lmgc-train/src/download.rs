//! Fetching CIFAR-10 from its canonical address when no copy is found.
//!
//! The archive is streamed to a temporary file while its MD5 (the one the dataset's page
//! publishes) and SHA-256 are computed; only the six batch files are taken out of it, by
//! name, into a temporary folder that is renamed into place at the end. A failed or
//! interrupted download leaves nothing behind that [`crate::cifar::locate`] would accept.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::cifar::{TEST_FILE, TRAIN_FILES};
use crate::{Error, Result};

/// The dataset authors' address of the binary version.
pub const URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// MD5 of the archive, as published on <https://www.cs.toronto.edu/~kriz/cifar.html>.
pub const MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// SHA-256 of the same archive.
pub const SHA256: &str = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd";
/// Its size in bytes.
pub const SIZE: u64 = 170_052_171;

/// Where an archive comes from and what it must hash to (tests point this at a local copy).
#[derive(Debug, Clone)]
pub struct Source {
    /// `http(s)://` address.
    pub url: String,
    /// Expected MD5 (hex).
    pub md5: String,
    /// Expected SHA-256 (hex), if known.
    pub sha256: Option<String>,
    /// Largest archive accepted.
    pub max_bytes: u64,
}

impl Default for Source {
    fn default() -> Self {
        Source {
            url: URL.into(),
            md5: MD5.into(),
            sha256: Some(SHA256.into()),
            max_bytes: SIZE + (1 << 20),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn failed(url: &str, reason: impl std::fmt::Display) -> Error {
    Error::Download {
        url: url.to_owned(),
        reason: reason.to_string(),
    }
}

/// Downloads and unpacks CIFAR-10 into `dest/cifar-10-batches-bin/` and returns that
/// folder. `progress(done, total)` is called as bytes arrive.
pub fn download(
    dest: &Path,
    source: &Source,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<PathBuf> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(std::time::Duration::from_secs(20))
        .timeout_read(std::time::Duration::from_secs(60))
        .build();
    let response = agent
        .get(&source.url)
        .call()
        .map_err(|e| failed(&source.url, e))?;
    let total = response
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(t) = total.filter(|&t| t > source.max_bytes) {
        return Err(failed(
            &source.url,
            format!(
                "{t} bytes announced, more than the {} expected",
                source.max_bytes
            ),
        ));
    }
    let mut archive = tempfile::Builder::new()
        .prefix(".cifar-download-")
        .tempfile_in(dest)
        .map_err(io(dest))?;
    let (mut md5, mut sha) = (Md5::new(), Sha256::new());
    let mut reader = response.into_reader().take(source.max_bytes + 1);
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| failed(&source.url, e))?;
        if n == 0 {
            break;
        }
        done += n as u64;
        if done > source.max_bytes {
            return Err(failed(
                &source.url,
                format!("more than the {} bytes expected", source.max_bytes),
            ));
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        archive.write_all(&buf[..n]).map_err(io(archive.path()))?;
        progress(done, total);
    }
    let got_md5 = hex(&md5.finalize());
    if got_md5 != source.md5 {
        return Err(failed(
            &source.url,
            format!(
                "MD5 {got_md5}, expected {} (a corrupted or different file)",
                source.md5
            ),
        ));
    }
    if let Some(want) = &source.sha256 {
        let got = hex(&sha.finalize());
        if &got != want {
            return Err(failed(
                &source.url,
                format!("SHA-256 {got}, expected {want}"),
            ));
        }
    }
    unpack(archive.path(), dest)
}

/// Takes the six batch files out of the archive at `archive` into
/// `dest/cifar-10-batches-bin/`; nothing else in the archive is written anywhere.
pub fn unpack(archive: &Path, dest: &Path) -> Result<PathBuf> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let bad = |reason: String| Error::BadDataset {
        path: archive.to_path_buf(),
        reason,
    };
    let wanted: Vec<&str> = TRAIN_FILES.iter().copied().chain([TEST_FILE]).collect();
    let staging = tempfile::Builder::new()
        .prefix(".cifar-unpack-")
        .tempdir_in(dest)
        .map_err(io(dest))?;
    let file = std::fs::File::open(archive).map_err(io(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = Vec::new();
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let in_folder = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            == Some("cifar-10-batches-bin");
        if !in_folder || !wanted.contains(&name.as_str()) || !entry.header().entry_type().is_file()
        {
            continue;
        }
        // 10,000 records of 3,073 bytes; refuse anything far larger before reading it.
        if entry.size() > 40_000_000 {
            return Err(bad(format!("{name} is {} bytes", entry.size())));
        }
        let out = staging.path().join(&name);
        let mut f = std::fs::File::create(&out).map_err(io(&out))?;
        std::io::copy(&mut entry, &mut f).map_err(io(&out))?;
        found.push(name);
    }
    if !found.iter().any(|n| n == TEST_FILE) || found.len() < 2 {
        return Err(bad(format!(
            "the archive holds {found:?}, not the CIFAR-10 batches"
        )));
    }
    let target = dest.join("cifar-10-batches-bin");
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(io(&target))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &target).map_err(io(&target))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(dir: &Path, files: &[(&str, Vec<u8>)]) -> PathBuf {
        let p = dir.join("a.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&p).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        p
    }

    #[test]
    fn unpacks_only_the_batches() {
        let dir = tempfile::tempdir().unwrap();
        let rec = vec![1u8; crate::cifar::RECORD_BYTES];
        let a = archive(
            dir.path(),
            &[
                ("cifar-10-batches-bin/data_batch_1.bin", rec.clone()),
                ("cifar-10-batches-bin/test_batch.bin", rec.clone()),
                ("cifar-10-batches-bin/readme.html", b"hi".to_vec()),
                ("elsewhere/data_batch_2.bin", rec.clone()),
            ],
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let got = unpack(&a, &out).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&got)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["data_batch_1.bin", "test_batch.bin"]);
        assert_eq!(crate::cifar::locate(Some(&out)).unwrap(), got);
        let junk = archive(dir.path(), &[("x/y.bin", rec)]);
        assert!(unpack(&junk, &out).is_err());
        std::fs::write(dir.path().join("not.tar.gz"), b"garbage").unwrap();
        assert!(unpack(&dir.path().join("not.tar.gz"), &out).is_err());
    }

    #[test]
    fn an_unreachable_address_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let source = Source {
            url: "http://127.0.0.1:9/cifar.tar.gz".into(),
            ..Source::default()
        };
        let e = download(dir.path(), &source, &|_, _| {}).unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:9"), "{e}");
        assert!(!dir.path().join("cifar-10-batches-bin").exists());
    }
}
