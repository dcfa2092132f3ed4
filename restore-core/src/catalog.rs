//! The backup directory: what backups it holds, and the only way a backup name reaches the
//! filesystem.
//!
//! Every restore starts here. A request names a backup; the catalog checks the name cannot
//! leave the backup directory, finds the file, and reads the checksum recorded when it was
//! sealed (a `NAME.sha256` sidecar in `sha256sum` format, or a line of a `SHA256SUMS`
//! manifest), which the restore later compares with the sha256 of the bytes it loads. Listing
//! describes each backup for people: its size, when it was taken, its recorded checksum and
//! whether it can be restored at all.

use std::cmp::Ordering;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};
use tempfile::NamedTempFile;

use crate::checksum::Checksum;
use crate::codec;
use crate::error::{ErrorCode, RestoreError, Result};

/// The manifest that records the checksums of several backups at once.
const MANIFEST: &str = "SHA256SUMS";
/// The suffix of a per-backup checksum sidecar.
const SIDECAR_SUFFIX: &str = ".sha256";
/// Suffixes of files still being written, by us or by the tools that copy backups in.
const TEMP_SUFFIXES: &[&str] = &[".tmp", ".part", ".partial", "~"];
/// Most backups one page may hold.
const MAX_LIMIT: usize = 1000;

/// A backup directory.
#[derive(Debug, Clone)]
pub struct Catalog {
    dir: PathBuf,
}

/// One backup as the API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backup {
    /// The file name inside the backup directory.
    pub name: String,
    /// Size of the stored file in bytes.
    pub size: u64,
    /// When the backup was taken: the `_YYYYMMDD_HHMMSS` stamp in its name (UTC), else the
    /// file's modification time.
    #[serde(serialize_with = "rfc3339_z")]
    pub created_at: DateTime<Utc>,
    /// The recorded checksum, `sha256:<hex>`, or `None` when the backup was never sealed.
    pub checksum: Option<String>,
    /// `available`, or why the backup cannot be restored: `unreadable`, `empty`,
    /// `unsupported_format: <what it is>`, `invalid_checksum_file`.
    pub status: String,
}

fn rfc3339_z<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// What a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// When the backup was taken.
    #[default]
    CreatedAt,
    /// The stored size.
    Size,
}

impl FromStr for SortKey {
    type Err = RestoreError;

    /// Parses `created_at` or `size`.
    fn from_str(text: &str) -> Result<SortKey> {
        match text {
            "created_at" => Ok(SortKey::CreatedAt),
            "size" => Ok(SortKey::Size),
            _ => Err(RestoreError::invalid(format!(
                "cannot sort backups by {text:?}: use created_at or size"
            ))
            .with_detail("sort", text)),
        }
    }
}

/// The direction of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Smallest or oldest first.
    Asc,
    /// Largest or newest first.
    #[default]
    Desc,
}

impl FromStr for SortOrder {
    type Err = RestoreError;

    /// Parses `asc` or `desc`.
    fn from_str(text: &str) -> Result<SortOrder> {
        match text {
            "asc" => Ok(SortOrder::Asc),
            "desc" => Ok(SortOrder::Desc),
            _ => Err(RestoreError::invalid(format!(
                "unknown sort order {text:?}: use asc or desc"
            ))
            .with_detail("order", text)),
        }
    }
}

/// Which page of which ordering a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOptions {
    /// Backups per page, 1 to 1000.
    pub limit: usize,
    /// Backups skipped before the page.
    pub offset: usize,
    /// What to sort by.
    pub sort: SortKey,
    /// In which direction.
    pub order: SortOrder,
}

impl Default for ListOptions {
    /// The first 20 backups, newest first.
    fn default() -> Self {
        ListOptions {
            limit: 20,
            offset: 0,
            sort: SortKey::CreatedAt,
            order: SortOrder::Desc,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupPage {
    /// The backups of this page.
    pub backups: Vec<Backup>,
    /// How many backups the directory holds in all.
    pub total: usize,
    /// The page size asked for.
    pub limit: usize,
    /// The offset asked for.
    pub offset: usize,
}

/// What the directory records about checksums, read once per listing.
#[derive(Default)]
struct Manifest {
    lines: Vec<(String, Checksum)>,
}

/// A recorded checksum, or the reason it cannot be read.
enum Recorded {
    None,
    Found(Checksum),
    Malformed(PathBuf),
}

impl Catalog {
    /// Opens the backup directory `dir`, which must exist and be a directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<Catalog> {
        let dir = dir.as_ref();
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(Catalog {
                dir: dir.to_path_buf(),
            }),
            Ok(_) => Err(RestoreError::invalid(format!(
                "backup directory {} is not a directory",
                dir.display()
            ))
            .with_detail("dir", dir.display().to_string())),
            Err(err) => Err(RestoreError::invalid(format!(
                "backup directory {} cannot be opened: {err}",
                dir.display()
            ))
            .with_detail("dir", dir.display().to_string())),
        }
    }

    /// The backup directory as given to [`Catalog::open`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One page of the directory's backups, sorted as asked; ties are broken by name so that
    /// paging is stable.
    pub fn list(&self, options: &ListOptions) -> Result<BackupPage> {
        if !(1..=MAX_LIMIT).contains(&options.limit) {
            return Err(RestoreError::invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}, not {}",
                options.limit
            ))
            .with_detail("limit", options.limit));
        }

        let root = self.canonical_dir()?;
        let manifest = self.read_manifest();
        let entries = fs::read_dir(&self.dir).map_err(|err| self.dir_error(err))?;
        let mut backups = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|err| self.dir_error(err))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !is_backup_name(&name) {
                continue;
            }
            let path = entry.path();
            if let Some(target) = contained_file(&path, &root) {
                backups.push(self.describe(&name, &target, &manifest));
            }
        }

        backups.sort_by(|a, b| compare(a, b, options.sort, options.order));
        let total = backups.len();
        let page = backups
            .into_iter()
            .skip(options.offset)
            .take(options.limit)
            .collect();
        Ok(BackupPage {
            backups: page,
            total,
            limit: options.limit,
            offset: options.offset,
        })
    }

    /// The path of the backup `name`, after checking the name cannot leave the directory.
    ///
    /// A malformed name, or one that leads outside the directory through a link, is
    /// `invalid_request`; a well-formed name that is not a backup here is `backup_not_found`.
    /// The path a new backup called `name` gets: a valid backup name that is not taken (by a
    /// file or a link), and one a seal can record, since new backups are sealed.
    pub fn path_for_new(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        check_sealable(name)?;
        if !is_backup_name(name) {
            return Err(RestoreError::invalid(format!(
                "{name:?} is not a backup name (hidden, temporary, sidecar or manifest)"
            ))
            .with_detail("name", name));
        }
        let path = self.dir.join(name);
        if fs::symlink_metadata(&path).is_ok() {
            return Err(
                RestoreError::invalid(format!("backup {name:?} exists already"))
                    .with_detail("name", name),
            );
        }
        Ok(path)
    }

    /// The validated path of the existing backup `name`.
    pub fn resolve(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        if !is_backup_name(name) {
            return Err(not_found(name));
        }

        let root = self.canonical_dir()?;
        let path = self.dir.join(name);
        let target = match fs::canonicalize(&path) {
            Ok(target) => target,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(not_found(name)),
            Err(err) => {
                return Err(
                    RestoreError::failed(format!("cannot resolve backup {name}: {err}"))
                        .with_detail("name", name),
                )
            }
        };
        if !target.starts_with(&root) {
            return Err(RestoreError::invalid(format!(
                "backup name {name:?} leads outside the backup directory"
            ))
            .with_detail("name", name));
        }
        match fs::metadata(&target) {
            Ok(meta) if meta.is_file() => Ok(target),
            _ => Err(not_found(name)),
        }
    }

    /// The description of the backup `name`.
    pub fn backup(&self, name: &str) -> Result<Backup> {
        let path = self.resolve(name)?;
        Ok(self.describe(name, &path, &self.read_manifest()))
    }

    /// The checksum recorded for `name` when it was sealed, or `None` if it never was.
    pub fn recorded_checksum(&self, name: &str) -> Result<Option<Checksum>> {
        self.resolve(name)?;
        match self.recorded(name, &self.read_manifest()) {
            Recorded::None => Ok(None),
            Recorded::Found(checksum) => Ok(Some(checksum)),
            Recorded::Malformed(file) => Err(RestoreError::failed(format!(
                "the checksum file {} recorded for backup {name} is malformed",
                file.display()
            ))
            .with_detail("name", name)
            .with_detail("checksum_file", file.display().to_string())),
        }
    }

    /// Computes the sha256 of `name` and records it in `NAME.sha256`, in `sha256sum` format.
    ///
    /// The sidecar is written to a hidden temporary file and renamed into place, so readers
    /// see the old sidecar or the new one, never a partial one.
    pub fn seal(&self, name: &str) -> Result<Backup> {
        let path = self.resolve(name)?;
        check_sealable(name)?;
        let checksum = Checksum::of_file(&path)?;

        let sidecar = self.dir.join(format!("{name}{SIDECAR_SUFFIX}"));
        let line = format!("{}  {name}\n", checksum.to_hex());
        let written = write_synced(
            &self.dir,
            &format!(".{name}{SIDECAR_SUFFIX}."),
            line.as_bytes(),
        )
        .and_then(|temp| temp.persist(&sidecar).map_err(|err| err.error));
        if let Err(err) = written {
            return Err(
                RestoreError::failed(format!("cannot write {}: {err}", sidecar.display()))
                    .with_detail("name", name),
            );
        }

        self.backup(name)
    }

    fn canonical_dir(&self) -> Result<PathBuf> {
        fs::canonicalize(&self.dir).map_err(|err| self.dir_error(err))
    }

    fn dir_error(&self, err: io::Error) -> RestoreError {
        RestoreError::failed(format!(
            "cannot read backup directory {}: {err}",
            self.dir.display()
        ))
        .with_detail("dir", self.dir.display().to_string())
    }

    fn describe(&self, name: &str, path: &Path, manifest: &Manifest) -> Backup {
        let meta = fs::metadata(path).ok();
        let size = meta.as_ref().map_or(0, fs::Metadata::len);
        let created_at = stamp_in_name(name).unwrap_or_else(|| {
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let at = modified.map_or(DateTime::UNIX_EPOCH, DateTime::<Utc>::from);
            at.with_nanosecond(0).unwrap_or(at)
        });

        let recorded = self.recorded(name, manifest);
        let checksum = match &recorded {
            Recorded::Found(checksum) => Some(checksum.to_string()),
            _ => None,
        };
        let status = match (format_status(path), recorded) {
            (Some(reason), _) => reason,
            (None, Recorded::Malformed(_)) => "invalid_checksum_file".to_owned(),
            (None, _) => "available".to_owned(),
        };

        Backup {
            name: name.to_owned(),
            size,
            created_at,
            checksum,
            status,
        }
    }

    /// The checksum recorded for `name`: its sidecar first, else its manifest line.
    fn recorded(&self, name: &str, manifest: &Manifest) -> Recorded {
        let sidecar = self.dir.join(format!("{name}{SIDECAR_SUFFIX}"));
        match fs::read_to_string(&sidecar) {
            Ok(text) => match parse_sidecar(&text, name) {
                Some(checksum) => return Recorded::Found(checksum),
                None => return Recorded::Malformed(sidecar),
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(_) => return Recorded::Malformed(sidecar),
        }

        match manifest.lines.iter().find(|(listed, _)| listed == name) {
            Some((_, checksum)) => Recorded::Found(*checksum),
            None => Recorded::None,
        }
    }

    fn read_manifest(&self) -> Manifest {
        let Ok(text) = fs::read_to_string(self.dir.join(MANIFEST)) else {
            return Manifest::default();
        };
        let lines = text.lines().filter_map(parse_sum_line).collect();
        Manifest { lines }
    }
}

fn not_found(name: &str) -> RestoreError {
    RestoreError::new(
        ErrorCode::BackupNotFound,
        format!("no backup named {name:?}"),
    )
    .with_detail("name", name)
}

/// Refuses names that could reach outside the directory or that no file can have.
/// A name `sha256sum` would write escaped cannot go into a plain sidecar line.
fn check_sealable(name: &str) -> Result<()> {
    if name.contains(['\n', '\r', '\\']) {
        return Err(RestoreError::invalid(format!(
            "backup name {name:?} cannot be written to a sha256sum line"
        ))
        .with_detail("name", name));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if Path::new(name).is_absolute() {
        Some("is an absolute path: name the file inside the backup directory")
    } else if name.contains('/') {
        Some("contains '/': name the file inside the backup directory")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else if name.contains("..") {
        Some("contains '..'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(
            RestoreError::invalid(format!("backup name {name:?} {reason}"))
                .with_detail("name", name),
        ),
        None => Ok(()),
    }
}

/// Whether a directory entry of this name is a backup rather than a sidecar, a manifest, a
/// hidden file or a file still being written.
fn is_backup_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.ends_with(SIDECAR_SUFFIX)
        && name != MANIFEST
        && !TEMP_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

/// The canonical path of `path` if it is a regular file inside `root`, following links.
fn contained_file(path: &Path, root: &Path) -> Option<PathBuf> {
    let target = fs::canonicalize(path).ok()?;
    let meta = fs::metadata(&target).ok()?;
    (target.starts_with(root) && meta.is_file()).then_some(target)
}

/// Why the backup cannot be restored, judged from its first bytes; `None` when it can.
fn format_status(path: &Path) -> Option<String> {
    let Ok(head) = File::open(path).and_then(|mut file| codec::read_head(&mut file)) else {
        return Some("unreadable".to_owned());
    };
    let err = codec::sniff(&head).err()?;
    let what = err
        .details()
        .get("format")
        .and_then(|f| f.as_str())
        .unwrap_or("unknown");
    Some(if what == "empty" {
        "empty".to_owned()
    } else {
        format!("unsupported_format: {what}")
    })
}

/// The `_YYYYMMDD_HHMMSS` stamp in a backup's name, read as UTC; the last valid one wins.
fn stamp_in_name(name: &str) -> Option<DateTime<Utc>> {
    let bytes = name.as_bytes();
    const LEN: usize = 16;
    (0..bytes.len().saturating_sub(LEN - 1))
        .rev()
        .find_map(|at| {
            let window = &bytes[at..at + LEN];
            let shaped = window[0] == b'_'
                && window[9] == b'_'
                && window[1..9]
                    .iter()
                    .chain(&window[10..])
                    .all(u8::is_ascii_digit)
                && !bytes.get(at + LEN).is_some_and(u8::is_ascii_digit);
            if !shaped {
                return None;
            }
            let text = std::str::from_utf8(&window[1..]).ok()?;
            let naive = NaiveDateTime::parse_from_str(text, "%Y%m%d_%H%M%S").ok()?;
            Some(naive.and_utc())
        })
}

/// Parses a `NAME.sha256` sidecar: `<hex>  NAME`, `<hex> *NAME`, or the bare digest.
fn parse_sidecar(text: &str, name: &str) -> Option<Checksum> {
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let line = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    if let Ok(bare) = Checksum::parse(line) {
        return Some(bare);
    }
    let (listed, checksum) = parse_sum_line(line)?;
    let listed_file = listed.rsplit('/').next().unwrap_or(&listed);
    (listed_file == name).then_some(checksum)
}

/// Parses one `sha256sum` line: the digest, then two spaces (text mode) or ` *` (binary mode),
/// then the file name.
fn parse_sum_line(line: &str) -> Option<(String, Checksum)> {
    let (digest, rest) = line.split_at_checked(64)?;
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))?;
    let checksum = Checksum::parse(digest).ok()?;
    (!name.is_empty()).then(|| (name.to_owned(), checksum))
}

fn compare(a: &Backup, b: &Backup, key: SortKey, order: SortOrder) -> Ordering {
    let by_key = match key {
        SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
        SortKey::Size => a.size.cmp(&b.size),
    };
    let directed = match order {
        SortOrder::Asc => by_key,
        SortOrder::Desc => by_key.reverse(),
    };
    directed.then_with(|| a.name.cmp(&b.name))
}

/// Writes `contents` to a new hidden file in `dir` whose name starts with `prefix`. The file
/// is created exclusively under a random name, so a link planted in the directory cannot
/// redirect the write; it is removed again unless persisted.
fn write_synced(dir: &Path, prefix: &str, contents: &[u8]) -> io::Result<NamedTempFile> {
    let mut temp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    Ok(temp)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    const SQL: &[u8] = b"--\n-- PostgreSQL database dump\n--\nSET x = 1;\n";
    const HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn put(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    fn put_aged(dir: &Path, name: &str, len: usize, seconds_after_epoch: u64) {
        let mut contents = SQL.to_vec();
        contents.resize(len.max(SQL.len()), b'\n');
        let path = put(dir, name, &contents);
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds_after_epoch);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn names(page: &BackupPage) -> Vec<&str> {
        page.backups.iter().map(|b| b.name.as_str()).collect()
    }

    fn listing(catalog: &Catalog, sort: SortKey, order: SortOrder) -> Vec<String> {
        let options = ListOptions {
            sort,
            order,
            ..ListOptions::default()
        };
        names(&catalog.list(&options).unwrap())
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn open_refuses_a_missing_directory_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = put(dir.path(), "f.sql", SQL);
        for bad in [dir.path().join("missing"), file] {
            let err = Catalog::open(&bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
            assert!(err.message().contains(&bad.display().to_string()));
        }
        assert_eq!(Catalog::open(dir.path()).unwrap().dir(), dir.path());
    }

    #[test]
    fn list_is_newest_first_by_default_and_ties_break_by_name() {
        let dir = tempfile::tempdir().unwrap();
        put_aged(dir.path(), "b.sql", 10, 2000);
        put_aged(dir.path(), "a.sql", 10, 2000);
        put_aged(dir.path(), "old.sql", 10, 1000);
        put_aged(dir.path(), "new.sql", 10, 3000);
        let catalog = Catalog::open(dir.path()).unwrap();

        let page = catalog.list(&ListOptions::default()).unwrap();
        assert_eq!(names(&page), ["new.sql", "a.sql", "b.sql", "old.sql"]);
        assert_eq!(
            listing(&catalog, SortKey::CreatedAt, SortOrder::Asc),
            ["old.sql", "a.sql", "b.sql", "new.sql"]
        );
    }

    #[test]
    fn list_sorts_by_size_in_either_order() {
        let dir = tempfile::tempdir().unwrap();
        put_aged(dir.path(), "mid.sql", 500, 1);
        put_aged(dir.path(), "big.sql", 900, 2);
        put_aged(dir.path(), "small.sql", 100, 3);
        let catalog = Catalog::open(dir.path()).unwrap();
        assert_eq!(
            listing(&catalog, SortKey::Size, SortOrder::Asc),
            ["small.sql", "mid.sql", "big.sql"]
        );
        assert_eq!(
            listing(&catalog, SortKey::Size, SortOrder::Desc),
            ["big.sql", "mid.sql", "small.sql"]
        );
    }

    #[test]
    fn pages_cover_the_listing_and_report_the_total() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..7 {
            put_aged(dir.path(), &format!("b{i}.sql"), 10, 100 + i);
        }
        let catalog = Catalog::open(dir.path()).unwrap();
        let mut seen = Vec::new();
        for offset in [0, 3, 6] {
            let options = ListOptions {
                limit: 3,
                offset,
                ..ListOptions::default()
            };
            let page = catalog.list(&options).unwrap();
            assert_eq!((page.total, page.limit, page.offset), (7, 3, offset));
            seen.extend(names(&page).into_iter().map(str::to_owned));
        }
        assert_eq!(
            seen,
            ["b6.sql", "b5.sql", "b4.sql", "b3.sql", "b2.sql", "b1.sql", "b0.sql"]
        );

        let beyond = ListOptions {
            offset: 50,
            ..ListOptions::default()
        };
        let page = catalog.list(&beyond).unwrap();
        assert!(page.backups.is_empty());
        assert_eq!(page.total, 7);
    }

    #[test]
    fn limit_outside_one_to_a_thousand_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path()).unwrap();
        for limit in [0, 1001] {
            let err = catalog
                .list(&ListOptions {
                    limit,
                    ..ListOptions::default()
                })
                .unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
        }
        assert!(catalog
            .list(&ListOptions {
                limit: 1000,
                ..ListOptions::default()
            })
            .is_ok());
    }

    #[test]
    fn sort_key_and_order_parse_their_names_only() {
        assert_eq!("created_at".parse::<SortKey>().unwrap(), SortKey::CreatedAt);
        assert_eq!("size".parse::<SortKey>().unwrap(), SortKey::Size);
        assert_eq!("asc".parse::<SortOrder>().unwrap(), SortOrder::Asc);
        assert_eq!("desc".parse::<SortOrder>().unwrap(), SortOrder::Desc);
        assert_eq!(
            "name".parse::<SortKey>().unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            "up".parse::<SortOrder>().unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn stamp_in_the_name_wins_over_mtime_and_serialises_with_z() {
        let dir = tempfile::tempdir().unwrap();
        put_aged(dir.path(), "backup_20240101_120000.sql.gz", 10, 5);
        put_aged(dir.path(), "backup_20241399_120000.sql", 10, 86_400);
        let catalog = Catalog::open(dir.path()).unwrap();

        let stamped = catalog.backup("backup_20240101_120000.sql.gz").unwrap();
        let json = serde_json::to_value(&stamped).unwrap();
        assert_eq!(json["created_at"], "2024-01-01T12:00:00Z");

        let invalid_stamp = catalog.backup("backup_20241399_120000.sql").unwrap();
        assert_eq!(
            invalid_stamp.created_at.to_rfc3339(),
            "1970-01-02T00:00:00+00:00"
        );
    }

    #[test]
    fn sidecars_manifests_hidden_and_temporary_files_are_not_backups() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "real.sql", SQL);
        for other in [
            "real.sql.sha256",
            "SHA256SUMS",
            ".hidden.sql",
            "copying.sql.part",
            "x.tmp",
        ] {
            put(dir.path(), other, SQL);
        }
        fs::create_dir(dir.path().join("subdir.sql")).unwrap();
        let catalog = Catalog::open(dir.path()).unwrap();

        assert_eq!(
            names(&catalog.list(&ListOptions::default()).unwrap()),
            ["real.sql"]
        );
        for other in [
            "real.sql.sha256",
            "SHA256SUMS",
            ".hidden.sql",
            "x.tmp",
            "subdir.sql",
        ] {
            assert_eq!(
                catalog.backup(other).unwrap_err().code(),
                ErrorCode::BackupNotFound
            );
        }
    }

    #[test]
    fn sidecar_in_every_sha256sum_form_gives_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let forms = [
            ("text.sql", format!("{HEX}  text.sql\n")),
            ("binary.sql", format!("{HEX} *binary.sql\n")),
            ("bare.sql", format!("{}\n", HEX.to_uppercase())),
            ("prefixed.sql", format!("sha256:{HEX}")),
        ];
        for (name, sidecar) in &forms {
            put(dir.path(), name, SQL);
            put(dir.path(), &format!("{name}.sha256"), sidecar.as_bytes());
        }
        let catalog = Catalog::open(dir.path()).unwrap();
        for (name, _) in &forms {
            let backup = catalog.backup(name).unwrap();
            assert_eq!(
                backup.checksum.as_deref(),
                Some(format!("sha256:{HEX}").as_str())
            );
            assert_eq!(backup.status, "available");
            assert_eq!(
                catalog.recorded_checksum(name).unwrap().unwrap().to_hex(),
                HEX
            );
        }
    }

    #[test]
    fn manifest_line_gives_the_checksum_when_there_is_no_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "one.sql", SQL);
        put(dir.path(), "two.sql", SQL);
        put(dir.path(), "unsealed.sql", SQL);
        let other = "0".repeat(64);
        let manifest = format!("{other}  one.sql\n{HEX} *two.sql\nnot a line\n");
        put(dir.path(), MANIFEST, manifest.as_bytes());
        let catalog = Catalog::open(dir.path()).unwrap();

        assert_eq!(
            catalog
                .recorded_checksum("one.sql")
                .unwrap()
                .unwrap()
                .to_hex(),
            other
        );
        assert_eq!(
            catalog.backup("two.sql").unwrap().checksum.unwrap(),
            format!("sha256:{HEX}")
        );
        assert_eq!(catalog.backup("unsealed.sql").unwrap().checksum, None);
        assert_eq!(catalog.recorded_checksum("unsealed.sql").unwrap(), None);
    }

    #[test]
    fn malformed_sidecar_shows_in_status_and_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "bad.sql", SQL);
        put(dir.path(), "bad.sql.sha256", b"d41d8cd98f00b204  bad.sql\n");
        put(dir.path(), "other.sql", SQL);
        put(
            dir.path(),
            "other.sql.sha256",
            format!("{HEX}  someone-else.sql\n").as_bytes(),
        );
        let catalog = Catalog::open(dir.path()).unwrap();

        let page = catalog.list(&ListOptions::default()).unwrap();
        for backup in &page.backups {
            assert_eq!(backup.status, "invalid_checksum_file", "{}", backup.name);
            assert_eq!(backup.checksum, None);
        }
        let err = catalog.recorded_checksum("bad.sql").unwrap_err();
        assert_eq!(err.code(), ErrorCode::RestoreFailed);
    }

    #[test]
    fn status_says_why_a_backup_cannot_be_restored() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "empty.sql", b"");
        put(dir.path(), "custom.dump", b"PGDMP\x01\x0e\x00");
        put(dir.path(), "gz.sql.gz", b"\x1f\x8b\x08\x00");
        put(dir.path(), "blob.bin", b"\x00\x01\x02");
        let catalog = Catalog::open(dir.path()).unwrap();

        let status = |name: &str| catalog.backup(name).unwrap().status;
        assert_eq!(status("empty.sql"), "empty");
        assert_eq!(
            status("custom.dump"),
            "unsupported_format: pg_dump custom archive"
        );
        assert_eq!(status("gz.sql.gz"), "available");
        assert_eq!(status("blob.bin"), "unsupported_format: unknown binary");
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_backup_is_listed_as_unreadable() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = put(dir.path(), "locked.sql", SQL);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        if File::open(&path).is_ok() {
            return; // Running with privileges that read any file: nothing to observe.
        }
        let catalog = Catalog::open(dir.path()).unwrap();
        assert_eq!(catalog.backup("locked.sql").unwrap().status, "unreadable");
    }

    #[test]
    fn malformed_names_are_invalid_requests_naming_the_name() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "real.sql", SQL);
        let catalog = Catalog::open(dir.path()).unwrap();
        let absolute = dir.path().join("real.sql").display().to_string();
        for bad in [
            "",
            "../real.sql",
            "..",
            "sub/real.sql",
            "real\0.sql",
            absolute.as_str(),
        ] {
            let err = catalog.resolve(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest, "{bad:?}");
            assert_eq!(err.details()["name"], bad);
        }
    }

    #[test]
    fn well_formed_name_that_is_not_there_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path()).unwrap();
        let err = catalog.backup("missing.sql").unwrap_err();
        assert_eq!(err.code(), ErrorCode::BackupNotFound);
        assert_eq!(err.details()["name"], "missing.sql");
    }

    #[cfg(unix)]
    #[test]
    fn link_leading_outside_the_directory_is_refused_and_not_listed() {
        use std::os::unix::fs::symlink;

        let outside = tempfile::tempdir().unwrap();
        let secret = put(outside.path(), "secret.sql", SQL);
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "inside.sql", SQL);
        symlink(&secret, dir.path().join("escape.sql")).unwrap();
        symlink(dir.path().join("inside.sql"), dir.path().join("alias.sql")).unwrap();
        let catalog = Catalog::open(dir.path()).unwrap();

        let err = catalog.resolve("escape.sql").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert_eq!(err.details()["name"], "escape.sql");
        assert!(catalog.resolve("alias.sql").is_ok());
        let page = catalog.list(&ListOptions::default()).unwrap();
        let mut listed = names(&page);
        listed.sort_unstable();
        assert_eq!(listed, ["alias.sql", "inside.sql"]);
    }

    #[test]
    fn seal_writes_a_sidecar_that_sha256sum_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let name = "backup_20240101_120000.sql";
        let path = put(dir.path(), name, SQL);
        let catalog = Catalog::open(dir.path()).unwrap();

        let sealed = catalog.seal(name).unwrap();
        let expected = Checksum::of_file(&path).unwrap();
        assert_eq!(sealed.checksum, Some(expected.to_string()));
        assert_eq!(catalog.recorded_checksum(name).unwrap(), Some(expected));
        let sidecar = fs::read_to_string(dir.path().join(format!("{name}.sha256"))).unwrap();
        assert_eq!(sidecar, format!("{}  {name}\n", expected.to_hex()));
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        let check = std::process::Command::new("sha256sum")
            .arg("-c")
            .arg(format!("{name}.sha256"))
            .current_dir(dir.path())
            .output();
        if let Ok(output) = check {
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    #[test]
    fn seal_writes_no_file_through_links_planted_in_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        fs::write(dir.path().join("b.sql"), b"SELECT 1;\n").unwrap();
        for pid in [std::process::id(), 0, 1] {
            let planted = dir.path().join(format!(".b.sql.sha256.{pid}.tmp"));
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        std::os::unix::fs::symlink(&victim, dir.path().join("b.sql.sha256")).unwrap();

        let catalog = Catalog::open(dir.path()).unwrap();
        let sealed = catalog.seal("b.sql").unwrap();

        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        let sidecar = fs::symlink_metadata(dir.path().join("b.sql.sha256")).unwrap();
        assert!(
            sidecar.file_type().is_file(),
            "the link was replaced by the sidecar"
        );
        assert!(sealed.checksum.is_some());
    }
}
