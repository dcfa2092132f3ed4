//! Writing backups in a form the decoder can spread over threads.
//!
//! A gzip file of one member (what `gzip` and `pg_dump -Z` write) can only be decoded on one
//! thread. [`pack`] cuts the dump into pieces, compresses them in parallel and writes them as
//! consecutive gzip members or zstd frames: any gzip or zstd tool reads the result as one
//! stream, and the restore decodes the pieces in parallel. Each gzip member also records its own
//! length in an extra header field, so the decoder finds the member boundaries without guessing.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use super::{gzip, Format};
use crate::error::{RestoreError, Result};

/// Largest piece accepted: a packed gzip member records its length in 32 bits.
const MAX_PIECE: usize = 1 << 30;

/// The level [`pack`] is given when the caller names none: gzip's and zstd's own defaults.
pub fn default_level(format: Format) -> i32 {
    match format {
        Format::Zstd => 3,
        Format::Gzip | Format::Plain => 6,
    }
}

/// Decoded bytes per piece when the caller names no size: small enough that a 100 MB dump
/// makes dozens of pieces to share out, large enough that each compresses as well as the whole.
pub const DEFAULT_PIECE_BYTES: usize = 4 << 20;

/// The name a packed copy of `input` takes when the caller names none: its file name, with
/// `.gz` or `.zst` for the packed format in place of the compression suffix it had.
pub fn packed_name(input: &Path, format: Format) -> String {
    let file = input
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("backup.sql");
    let stem = [".gz", ".zst", ".zstd"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
        .unwrap_or(file);
    let extension = match format {
        Format::Zstd => "zst",
        Format::Gzip | Format::Plain => "gz",
    };
    format!("{stem}.{extension}")
}

/// Compresses `input` into `output` as `format`, in pieces of `piece_bytes` uncompressed bytes
/// compressed in parallel on `pool`. gzip levels are 0–9, zstd levels 1–22. The input may be
/// plain, gzip or zstd: it is decoded first, so any backup can be repacked.
///
/// The output is written to a temporary file beside it and renamed into place at the end, so
/// `output` is either the complete result or untouched.
pub fn pack(
    input: &Path,
    output: &Path,
    format: Format,
    piece_bytes: usize,
    level: i32,
    pool: Arc<rayon::ThreadPool>,
) -> Result<()> {
    let levels = match format {
        Format::Gzip => 0..=9,
        Format::Zstd => 1..=22,
        Format::Plain => return Err(RestoreError::invalid("pack compresses to gzip or zstd")),
    };
    if !levels.contains(&level) {
        return Err(RestoreError::invalid(format!(
            "{format} level must be between {} and {}, not {level}",
            levels.start(),
            levels.end()
        ))
        .with_detail("level", level));
    }
    if !(1..=MAX_PIECE).contains(&piece_bytes) {
        return Err(RestoreError::invalid(format!(
            "piece size must be between 1 byte and {MAX_PIECE} bytes, not {piece_bytes}"
        ))
        .with_detail("piece_bytes", piece_bytes));
    }
    // A file that is not there is a mistake in the request, not a failure of the work.
    match std::fs::metadata(input) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(
                RestoreError::invalid(format!("no file {} to pack", input.display()))
                    .with_detail("path", input.display().to_string()),
            );
        }
        Ok(meta) if meta.is_dir() => {
            return Err(RestoreError::invalid(format!(
                "{} is a directory, not a dump to pack",
                input.display()
            ))
            .with_detail("path", input.display().to_string()));
        }
        _ => {}
    }

    let file_name = output.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        RestoreError::invalid(format!("{} does not name a file", output.display()))
    })?;
    let dir = output
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Created exclusively under a random name: a link planted beside the output cannot
    // redirect the write. Removed again unless persisted.
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|err| write_error(output, err))?;
    write_pieces(
        input,
        temp.as_file(),
        temp.path(),
        format,
        piece_bytes,
        level,
        pool,
    )?;
    // Never over a backup that appeared while the pieces were written.
    temp.persist_noclobber(output)
        .map_err(|err| write_error(output, err.error))?;
    Ok(())
}

fn write_pieces(
    input: &Path,
    mut sink: &File,
    temp: &Path,
    format: Format,
    piece_bytes: usize,
    level: i32,
    pool: Arc<rayon::ThreadPool>,
) -> Result<()> {
    let mut source = super::decode_file(input, pool.clone())?;
    let max_inflight = (pool.current_num_threads() + 1).clamp(2, 8);
    let mut inflight: VecDeque<Receiver<io::Result<Vec<u8>>>> = VecDeque::new();

    let mut first = true;
    loop {
        let mut piece = Vec::with_capacity(piece_bytes);
        (&mut source)
            .take(piece_bytes as u64)
            .read_to_end(&mut piece)
            .map_err(|err| read_error(input, err))?;
        // An empty input still becomes one valid, empty member or frame.
        let last = piece.len() < piece_bytes;
        if piece.is_empty() && !first {
            break;
        }
        first = false;

        let (sender, result) = sync_channel(1);
        pool.spawn(move || {
            let compressed = match format {
                Format::Zstd => zstd::bulk::compress(&piece, level),
                _ => gzip::packed_member(&piece, level as u32),
            };
            let _ = sender.send(compressed);
        });
        inflight.push_back(result);

        while inflight.len() >= max_inflight || (last && !inflight.is_empty()) {
            if let Some(next) = inflight.pop_front() {
                write_next(next, &mut sink, temp)?;
            }
        }
        if last {
            break;
        }
    }

    sink.sync_all().map_err(|err| write_error(temp, err))
}

fn write_next(next: Receiver<io::Result<Vec<u8>>>, sink: &mut &File, temp: &Path) -> Result<()> {
    let compressed = next
        .recv()
        .map_err(|_| RestoreError::failed("a compression worker stopped without a result"))?
        .map_err(|err| RestoreError::failed(format!("compression failed: {err}")))?;
    sink.write_all(&compressed)
        .map_err(|err| write_error(temp, err))
}

fn read_error(path: &Path, err: io::Error) -> RestoreError {
    RestoreError::failed(format!("cannot read {}: {err}", path.display()))
        .with_detail("path", path.display().to_string())
}

fn write_error(path: &Path, err: io::Error) -> RestoreError {
    RestoreError::failed(format!("cannot write {}: {err}", path.display()))
        .with_detail("path", path.display().to_string())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::Command;

    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn a_packed_copy_is_named_after_its_source() {
        let name = |path: &str, format| packed_name(Path::new(path), format);
        assert_eq!(name("/tmp/dump.sql", Format::Gzip), "dump.sql.gz");
        assert_eq!(name("dump.sql.gz", Format::Zstd), "dump.sql.zst");
        assert_eq!(name("dump.sql.zst", Format::Gzip), "dump.sql.gz");
        assert_eq!(name("/", Format::Gzip), "backup.sql.gz");
        assert_eq!(default_level(Format::Gzip), 6);
        assert_eq!(default_level(Format::Zstd), 3);
    }

    fn pool() -> Arc<rayon::ThreadPool> {
        Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap(),
        )
    }

    fn dump(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"0123456789\tabcdefghij\n"[(i * 7 + i / 13) % 22])
            .collect()
    }

    fn decoded(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        super::super::decode_file(path, pool())
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Decodes with the system's tool when it is installed.
    fn decoded_by_tool(tool: &str, path: &Path) -> Option<Vec<u8>> {
        let output = Command::new(tool).arg("-dc").arg(path).output().ok()?;
        assert!(
            output.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(output.stdout)
    }

    #[test]
    fn packed_gzip_and_zstd_decode_to_the_input_here_and_with_the_usual_tools() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("dump.sql");
        let plain = dump(300_001);
        fs::write(&input, &plain).unwrap();

        for (format, level, tool) in [(Format::Gzip, 6, "gzip"), (Format::Zstd, 3, "zstd")] {
            let output = dir.path().join(format!("dump.sql.{format}"));
            pack(&input, &output, format, 40_000, level, pool()).unwrap();
            assert!(decoded(&output) == plain, "{format}");
            if let Some(by_tool) = decoded_by_tool(tool, &output) {
                assert!(by_tool == plain, "{tool}");
            }
        }
    }

    #[test]
    fn an_empty_input_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("empty.sql");
        fs::write(&input, b"").unwrap();
        for format in [Format::Gzip, Format::Zstd] {
            let output = dir.path().join(format!("empty.{format}"));
            let err = pack(&input, &output, format, 1024, 3, pool()).unwrap_err();
            assert!(err.message().contains("empty"), "{}", err.message());
            assert!(!output.exists());
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }

    #[test]
    fn a_compressed_input_is_decoded_before_it_is_packed() {
        let dir = tempfile::tempdir().unwrap();
        let plain: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let single = dir.path().join("single.gz");
        pack_plain(&dir, &plain, &single);
        let output = dir.path().join("repacked.zst");
        pack(&single, &output, Format::Zstd, 4096, 3, pool()).unwrap();
        assert_eq!(decoded(&output), plain);
    }

    #[test]
    fn a_link_planted_where_the_temporary_file_goes_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let input = dir.path().join("in.sql");
        fs::write(&input, b"SELECT 1;\n").unwrap();
        let output = dir.path().join("out.gz");
        for pid in [std::process::id(), 0, 1] {
            let planted = dir.path().join(format!(".out.gz.{pid}.tmp"));
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        pack(&input, &output, Format::Gzip, 1024, 6, pool()).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(decoded(&output), b"SELECT 1;\n");
    }

    fn pack_plain(dir: &tempfile::TempDir, plain: &[u8], output: &Path) {
        let input = dir.path().join("plain.sql");
        fs::write(&input, plain).unwrap();
        pack(&input, output, Format::Gzip, 1 << 20, 6, pool()).unwrap();
    }

    #[test]
    fn bad_level_piece_size_or_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("dump.sql");
        fs::write(&input, b"SELECT 1;\n").unwrap();
        let output = dir.path().join("out");
        for (format, piece, level) in [
            (Format::Gzip, 1024, 10),
            (Format::Zstd, 1024, 0),
            (Format::Gzip, 0, 6),
            (Format::Plain, 1024, 6),
        ] {
            let err = pack(&input, &output, format, piece, level, pool()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
        }
        assert!(!output.exists());
    }

    #[test]
    fn a_missing_input_is_a_bad_request() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.gz");
        for input in [dir.path().join("missing.sql"), dir.path().to_path_buf()] {
            let err = pack(&input, &output, Format::Gzip, 1024, 6, pool()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest, "{err}");
            assert!(
                err.message().contains(&input.display().to_string()),
                "{err}"
            );
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn failed_pack_leaves_no_output_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.gz");
        pack_plain(&dir, &b"SELECT 1;\n".repeat(50_000), &whole);
        let bytes = fs::read(&whole).unwrap();
        let input = dir.path().join("cut.gz");
        fs::write(&input, &bytes[..bytes.len() / 2]).unwrap();
        let before: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();

        let output = dir.path().join("out.gz");
        let err = pack(&input, &output, Format::Gzip, 1024, 6, pool()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::RestoreFailed, "{err}");
        let after: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(after.len(), before.len(), "{after:?}");
    }
}
