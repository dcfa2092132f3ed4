//! A managed local PostgreSQL cluster for development, the SDK and tests.
//!
//! When no database URL is configured, the CLI (`securerestore local start|stop|status|url`), the
//! Python SDK and the test suites restore into a cluster this module creates and controls.
//! Everything it owns lives in one state directory:
//!
//! - `data/`: the cluster, created by `initdb` on the first start;
//! - `socket/`: the cluster's own Unix socket directory, so it never meets a system server;
//! - `port`: the TCP port chosen on the first start, reused on later starts while it is free;
//! - `server.log`: the server's log.
//!
//! PostgreSQL refuses to run as root. When this process is root, the state directory is handed to
//! the `postgres` system user and the server programs run as that user through `runuser` (or
//! `su` where `runuser` is missing).
//!
//! The cluster trusts every connection on 127.0.0.1 and has no password: any local user can
//! connect as its superuser. It is meant for development machines and tests, not shared hosts.
//!
//! Two processes starting the same state directory at once are not serialised by a lock: one of
//! them may fail in `initdb`; a lost race in `pg_ctl start` alone is harmless. `server.log`
//! grows across starts and is never rotated, which matters only for long-lived clusters.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Serialize;
use tracing::{debug, info};

use crate::{RestoreError, Result};

/// The system user that runs the server when this process is root.
const SERVER_USER: &str = "postgres";

/// The cluster's superuser, named like the packaged clusters so URLs look familiar.
const SUPERUSER: &str = "postgres";

/// The longest Unix socket path the kernel accepts (`sun_path` holds 108 bytes with the NUL).
const SOCKET_PATH_MAX: usize = 107;

/// How long `pg_ctl` may wait for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "120";

/// The included settings file this module rewrites on every start.
const SETTINGS_FILE: &str = "securerestore.conf";

/// A PostgreSQL cluster kept in a state directory of its own.
#[derive(Debug, Clone)]
pub struct LocalServer {
    state_dir: PathBuf,
    fast: bool,
}

/// What [`LocalServer::status`] reports; serialised as is by the CLI's `local status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalStatus {
    /// Whether the server process is alive.
    pub running: bool,
    /// The port it listens on when running, else the port the next start will try first.
    pub port: Option<u16>,
    /// The postmaster's process id when running.
    pub pid: Option<u32>,
    /// The cluster's data directory.
    pub data_dir: PathBuf,
    /// The connection URL when running.
    pub url: Option<String>,
    /// The version of the server binaries (e.g. `15.14`), or the cluster's major version when
    /// the binaries cannot be found; `None` before the cluster exists.
    pub version: Option<String>,
}

/// The unprivileged account the server programs run as when this process is root.
#[derive(Debug, Clone)]
struct ServerUser {
    uid: u32,
    gid: u32,
}

impl LocalServer {
    /// A server kept in `state_dir`. Nothing is created until [`LocalServer::start`].
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        let state_dir = state_dir.into();
        // Server programs run with the state directory as working directory and possibly as
        // another user, so a relative path would change meaning; anchor it now.
        let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);
        LocalServer {
            state_dir,
            fast: false,
        }
    }

    /// Where the CLI keeps its cluster: `$SECURERESTORE_STATE_DIR`; else `/var/lib/securerestore`
    /// for root; else `$XDG_STATE_HOME/securerestore` or `~/.local/state/securerestore`.
    pub fn default_state_dir() -> PathBuf {
        default_state_dir_from(
            std::env::var_os("SECURERESTORE_STATE_DIR"),
            is_root(),
            std::env::var_os("XDG_STATE_HOME"),
            std::env::var_os("HOME"),
        )
    }

    /// The directory holding `initdb`, `pg_ctl`, `postgres` and `psql`:
    /// `$SECURERESTORE_PG_BINDIR`; else `pg_config --bindir` when it holds `initdb`; else the
    /// highest `/usr/lib/postgresql/<major>/bin`.
    pub fn bin_dir() -> Result<PathBuf> {
        if let Some(dir) = std::env::var_os("SECURERESTORE_PG_BINDIR") {
            let dir = PathBuf::from(dir);
            if !dir.join("initdb").is_file() {
                return Err(RestoreError::invalid(format!(
                    "SECURERESTORE_PG_BINDIR is {} but it holds no initdb",
                    dir.display()
                ))
                .with_detail("bin_dir", dir.display().to_string()));
            }
            return Ok(dir);
        }

        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && dir.join("initdb").is_file() {
                return Ok(dir);
            }
        }

        highest_packaged_bin_dir(Path::new("/usr/lib/postgresql")).ok_or_else(|| {
            RestoreError::failed(
                "no PostgreSQL server binaries found: install the server package or set \
                 SECURERESTORE_PG_BINDIR to the directory holding initdb and pg_ctl",
            )
        })
    }

    /// Tunes the cluster for throwaway use: no fsync, asynchronous commits, no full-page
    /// writes, small shared buffers. A crash can corrupt such a cluster; never keep data in it.
    #[must_use]
    pub fn fast_for_tests(mut self) -> Self {
        self.fast = true;
        self
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The cluster's data directory inside the state directory.
    pub fn data_dir(&self) -> PathBuf {
        self.state_dir.join("data")
    }

    /// Starts the server, creating the cluster first if there is none, and returns its status.
    /// Starting a running server changes nothing.
    pub fn start(&self) -> Result<LocalStatus> {
        let current = self.status()?;
        if current.running {
            debug!(data_dir = %current.data_dir.display(), "local PostgreSQL already running");
            return Ok(current);
        }

        let bin = Self::bin_dir()?;
        let user = server_user()?;
        self.prepare_state_dir(user.as_ref())?;
        if !self.data_dir().join("PG_VERSION").is_file() {
            self.initdb(&bin, user.as_ref())?;
        }

        let port = self.choose_port()?;
        self.write_settings(port, user.as_ref())?;
        let pg_ctl = bin.join("pg_ctl");
        let data_dir = self.data_dir();
        let log = self.log_file();
        let args: Vec<&OsStr> = vec![
            "start".as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            PG_CTL_TIMEOUT_SECS.as_ref(),
            "-D".as_ref(),
            data_dir.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
        ];
        let started = self.run_as_server(user.as_ref(), &pg_ctl, &args);

        // A concurrent start of the same cluster makes this pg_ctl fail while a server runs:
        // the caller gets what it asked for.
        match (started, self.status()) {
            (_, Ok(status)) if status.running => {
                info!(port = status.port, data_dir = %status.data_dir.display(),
                      "local PostgreSQL started");
                Ok(status)
            }
            (Err(err), _) => Err(err.with_detail("log_tail", log_tail(&log))),
            (Ok(_), Err(err)) => Err(err),
            (Ok(_), Ok(_)) => Err(RestoreError::failed(
                "pg_ctl reported a start but no server is running",
            )
            .with_detail("log_tail", log_tail(&log))),
        }
    }

    /// Stops the server (fast shutdown: sessions are ended). Stopping a stopped server is fine.
    pub fn stop(&self) -> Result<()> {
        if !self.status()?.running {
            debug!(data_dir = %self.data_dir().display(), "local PostgreSQL not running");
            return Ok(());
        }

        let bin = Self::bin_dir()?;
        let user = server_user()?;
        let data_dir = self.data_dir();
        let args: [&OsStr; 8] = [
            "stop".as_ref(),
            "-m".as_ref(),
            "fast".as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            PG_CTL_TIMEOUT_SECS.as_ref(),
            "-D".as_ref(),
            data_dir.as_os_str(),
        ];
        let stopped = self.run_as_server(user.as_ref(), &bin.join("pg_ctl"), &args);

        // The server may have gone away on its own between the check and pg_ctl.
        if stopped.is_err() && !self.status()?.running {
            return Ok(());
        }
        stopped?;
        info!(data_dir = %data_dir.display(), "local PostgreSQL stopped");
        Ok(())
    }

    /// The server's state, read from the data directory without running any server program.
    pub fn status(&self) -> Result<LocalStatus> {
        let data_dir = self.data_dir();
        let (pid, live_port) = match fs::read_to_string(data_dir.join("postmaster.pid")) {
            Ok(text) => parse_postmaster_pid(&text),
            Err(err) if err.kind() == io::ErrorKind::NotFound => (None, None),
            Err(err) => return Err(io_error("cannot read postmaster.pid", &data_dir, err)),
        };
        let running = pid.is_some_and(postmaster_alive);

        let port = if running {
            live_port
        } else {
            self.remembered_port()
        };
        let url = match (running, port) {
            (true, Some(port)) => Some(url_for(port)),
            _ => None,
        };
        Ok(LocalStatus {
            running,
            port,
            pid: pid.filter(|_| running),
            version: self.version(),
            data_dir,
            url,
        })
    }

    /// The superuser URL of the running server: `postgresql://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> Result<String> {
        self.status()?.url.ok_or_else(|| {
            RestoreError::invalid(
                "the local PostgreSQL server is not running; start it with \
                 `securerestore local start`",
            )
            .with_detail("state_dir", self.state_dir.display().to_string())
        })
    }

    /// Stops the server immediately once this process exits, however it exits: a detached
    /// watchdog outlives a panic or a kill and shuts the cluster down.
    pub fn stop_when_process_exits(&self) -> Result<()> {
        self.stop_when_exits(std::process::id())
    }

    /// Stops the server immediately once process `pid` exits. The watchdog polls once a second
    /// and cannot tell a reused pid from the original, so it waits too long rather than too
    /// little. A zombie counts as alive: the watched process must be reaped by its parent.
    pub fn stop_when_exits(&self, pid: u32) -> Result<()> {
        self.spawn_watchdog(pid, false)
    }

    /// Like [`LocalServer::stop_when_process_exits`], and then deletes the whole state
    /// directory: for throwaway clusters that should leave nothing behind.
    pub fn discard_when_process_exits(&self) -> Result<()> {
        self.spawn_watchdog(std::process::id(), true)
    }

    fn spawn_watchdog(&self, pid: u32, discard: bool) -> Result<()> {
        let bin = Self::bin_dir()?;
        let user = server_user()?;
        let data_dir = self.data_dir();
        let stop: Vec<OsString> = server_argv(
            user.as_ref(),
            &bin.join("pg_ctl"),
            &[
                "stop".as_ref(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-D".as_ref(),
                data_dir.as_ref(),
            ],
        )?;
        let stop = stop
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Result<Vec<_>>>()?
            .join(" ");
        let mut after = stop;
        if discard {
            // Never hand `rm -rf` a path that could be a system directory.
            if self.state_dir.components().count() < 3 {
                return Err(RestoreError::invalid(format!(
                    "refusing to delete {} when the process exits: the path is too short to \
                     be a throwaway state directory",
                    self.state_dir.display()
                )));
            }
            after = format!(
                "{after}; rm -rf -- {}",
                shell_quote(self.state_dir.as_os_str())?
            );
        }

        // The loop runs as this process's user so `kill -0` may probe the watched pid; the
        // subshell is put in the background so that it is adopted by init and never left as a
        // zombie of this process, and in a process group of its own so Ctrl-C spares it.
        let script = format!(
            "( while kill -0 {pid} 2>/dev/null; do sleep 1; done; {after} ) >/dev/null 2>&1 &"
        );
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .status()
            .map_err(|err| RestoreError::failed(format!("cannot start the watchdog: {err}")))?;
        if !status.success() {
            return Err(RestoreError::failed(format!(
                "the watchdog shell failed: {status}"
            )));
        }
        debug!(pid, discard, data_dir = %data_dir.display(), "local PostgreSQL watchdog started");
        Ok(())
    }

    fn log_file(&self) -> PathBuf {
        self.state_dir.join("server.log")
    }

    fn socket_dir(&self) -> PathBuf {
        self.state_dir.join("socket")
    }

    fn port_file(&self) -> PathBuf {
        self.state_dir.join("port")
    }

    fn remembered_port(&self) -> Option<u16> {
        fs::read_to_string(self.port_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn version(&self) -> Option<String> {
        let major = fs::read_to_string(self.data_dir().join("PG_VERSION")).ok()?;
        let binaries = Self::bin_dir()
            .ok()
            .and_then(|bin| {
                Command::new(bin.join("postgres"))
                    .arg("--version")
                    .output()
                    .ok()
            })
            .filter(|out| out.status.success())
            .and_then(|out| version_of(&String::from_utf8_lossy(&out.stdout)));
        Some(binaries.unwrap_or_else(|| major.trim().to_owned()))
    }

    /// Creates the state directory and, for root, hands it to the server user.
    fn prepare_state_dir(&self, user: Option<&ServerUser>) -> Result<()> {
        let dir = &self.state_dir;
        if dir.exists() {
            refuse_foreign_dir(dir, user)?;
        }
        fs::create_dir_all(dir).map_err(|e| io_error("cannot create state directory", dir, e))?;
        if let Some(user) = user {
            let dir = fs::canonicalize(dir).map_err(|e| io_error("cannot resolve", dir, e))?;
            check_traversable(&dir, user)?;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error("cannot restrict state directory", dir, e))?;

        if let Some(user) = user {
            for path in [dir.clone(), self.port_file(), self.log_file()] {
                if path.exists() {
                    chown(&path, user)?;
                }
            }
            chown_tree(&self.data_dir(), user)?;
        }

        let socket = self.socket_dir();
        fs::create_dir_all(&socket).map_err(|e| io_error("cannot create", &socket, e))?;
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error("cannot restrict", &socket, e))?;
        if let Some(user) = user {
            chown(&socket, user)?;
        }
        Ok(())
    }

    fn initdb(&self, bin: &Path, user: Option<&ServerUser>) -> Result<()> {
        let data_dir = self.data_dir();
        let mut args: Vec<&OsStr> = vec![
            "-D".as_ref(),
            data_dir.as_os_str(),
            "-U".as_ref(),
            SUPERUSER.as_ref(),
            "--auth=trust".as_ref(),
            "--encoding=UTF8".as_ref(),
            "--locale=C".as_ref(),
        ];
        if self.fast {
            args.push("--no-sync".as_ref());
        }
        self.run_as_server(user, &bin.join("initdb"), &args)?;
        info!(data_dir = %data_dir.display(), "local PostgreSQL cluster created");
        Ok(())
    }

    /// Picks the remembered port while it is free, else a fresh one, and remembers it.
    fn choose_port(&self) -> Result<u16> {
        let port = match self.remembered_port() {
            Some(port) if port_is_free(port) => port,
            _ => TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|listener| listener.local_addr())
                .map(|addr| addr.port())
                .map_err(|err| RestoreError::failed(format!("cannot find a free port: {err}")))?,
        };

        let socket = self.socket_dir().join(format!(".s.PGSQL.{port}"));
        if socket.as_os_str().len() > SOCKET_PATH_MAX {
            return Err(RestoreError::invalid(format!(
                "the socket path {} is longer than the {SOCKET_PATH_MAX} bytes the system \
                 allows; set SECURERESTORE_STATE_DIR to a shorter directory",
                socket.display()
            )));
        }

        let file = self.port_file();
        fs::write(&file, format!("{port}\n")).map_err(|e| io_error("cannot write", &file, e))?;
        Ok(port)
    }

    /// Writes the settings this module owns and makes `postgresql.conf` include them.
    fn write_settings(&self, port: u16, user: Option<&ServerUser>) -> Result<()> {
        let socket = self.socket_dir();
        let socket = socket.to_str().ok_or_else(|| {
            RestoreError::invalid("the state directory's path is not valid UTF-8")
                .with_detail("state_dir", self.state_dir.display().to_string())
        })?;
        let mut settings = format!(
            "# Written by securerestore on every start; edits are lost.\n\
             port = {port}\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n",
            socket.replace('\'', "''")
        );
        if self.fast {
            settings.push_str(
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
                 shared_buffers = 32MB\n",
            );
        }
        let file = self.data_dir().join(SETTINGS_FILE);
        fs::write(&file, settings).map_err(|e| io_error("cannot write", &file, e))?;
        if let Some(user) = user {
            chown(&file, user)?;
            chown(&self.port_file(), user)?;
        }

        let conf = self.data_dir().join("postgresql.conf");
        let text = fs::read_to_string(&conf).map_err(|e| io_error("cannot read", &conf, e))?;
        let include = format!("include_if_exists = '{SETTINGS_FILE}'");
        if !text.lines().any(|line| line.trim() == include) {
            fs::OpenOptions::new()
                .append(true)
                .open(&conf)
                .and_then(|mut f| writeln!(f, "\n{include}"))
                .map_err(|e| io_error("cannot append to", &conf, e))?;
        }
        Ok(())
    }

    /// Runs a server program, as the server user when this process is root.
    fn run_as_server(
        &self,
        user: Option<&ServerUser>,
        program: &Path,
        args: &[&OsStr],
    ) -> Result<Output> {
        let argv = server_argv(user, program, args)?;
        let name = program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy();
        debug!(program = %name, "running server program");

        let output = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&self.state_dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|err| {
                RestoreError::failed(format!("cannot run {}: {err}", argv[0].to_string_lossy()))
            })?;
        if !output.status.success() {
            return Err(
                RestoreError::failed(format!("{name} failed: {}", output.status))
                    .with_detail("stderr", String::from_utf8_lossy(&output.stderr).trim())
                    .with_detail("stdout", String::from_utf8_lossy(&output.stdout).trim()),
            );
        }
        Ok(output)
    }
}

fn default_state_dir_from(
    configured: Option<OsString>,
    root: bool,
    xdg_state_home: Option<OsString>,
    home: Option<OsString>,
) -> PathBuf {
    let non_empty = |value: Option<OsString>| value.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = non_empty(configured) {
        return dir;
    }
    if root {
        return PathBuf::from("/var/lib/securerestore");
    }
    // The XDG specification ignores relative values.
    if let Some(dir) = non_empty(xdg_state_home).filter(|d| d.is_absolute()) {
        return dir.join("securerestore");
    }
    match non_empty(home) {
        Some(home) => home.join(".local/state/securerestore"),
        None => std::env::temp_dir().join("securerestore"),
    }
}

/// The version in what `postgres --version` prints: `postgres (PostgreSQL) 15.18 (Debian
/// 15.18-0+deb12u1)` gives `15.18`.
fn version_of(banner: &str) -> Option<String> {
    banner
        .split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_owned)
}

/// The `bin` directory of the highest major version under `root` that holds `initdb`.
fn highest_packaged_bin_dir(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Vec<u32> = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The server user when this process is root, `None` when the programs can run as it is.
fn server_user() -> Result<Option<ServerUser>> {
    if !is_root() {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id")
            .arg(flag)
            .arg(SERVER_USER)
            .output()
            .map_err(|err| {
                RestoreError::failed(format!("cannot run `id` to look up {SERVER_USER}: {err}"))
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.trim().parse() {
            Ok(id) if out.status.success() => Ok(id),
            _ => Err(RestoreError::failed(format!(
                "PostgreSQL refuses to run as root and there is no `{SERVER_USER}` user to run \
                 it as; create that user or run as an unprivileged user"
            ))),
        }
    };
    Ok(Some(ServerUser {
        uid: id("-u")?,
        gid: id("-g")?,
    }))
}

/// The full command line that runs `program` as the server user (or as is, without one).
fn server_argv(
    user: Option<&ServerUser>,
    program: &Path,
    args: &[&OsStr],
) -> Result<Vec<OsString>> {
    let mut argv: Vec<OsString> = Vec::with_capacity(args.len() + 6);
    if user.is_none() {
        argv.push(program.into());
        argv.extend(args.iter().map(|a| a.to_os_string()));
        return Ok(argv);
    }

    if let Some(runuser) = find_program("runuser") {
        argv.extend([
            runuser.into_os_string(),
            "-u".into(),
            SERVER_USER.into(),
            "--".into(),
        ]);
        argv.push(program.into());
        argv.extend(args.iter().map(|a| a.to_os_string()));
        return Ok(argv);
    }

    let mut inner = format!("exec {}", shell_quote(program.as_os_str())?);
    for arg in args {
        inner.push(' ');
        inner.push_str(&shell_quote(arg)?);
    }
    argv.extend(["su", SERVER_USER, "-s", "/bin/sh", "-c"].map(OsString::from));
    argv.push(inner.into());
    Ok(argv)
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Quotes one word for `/bin/sh`.
fn shell_quote(word: &OsStr) -> Result<String> {
    let word = word.to_str().ok_or_else(|| {
        RestoreError::invalid(format!(
            "path is not valid UTF-8: {}",
            word.to_string_lossy()
        ))
    })?;
    Ok(format!("'{}'", word.replace('\'', r"'\''")))
}

/// Refuses to take over an existing directory unless it looks like ours, so that a mistaken
/// `SECURERESTORE_STATE_DIR=/home/someone` neither restricts nor gives away someone's files.
fn refuse_foreign_dir(dir: &Path, user: Option<&ServerUser>) -> Result<()> {
    let meta = fs::metadata(dir).map_err(|e| io_error("cannot inspect", dir, e))?;
    if !meta.is_dir() {
        return Err(RestoreError::invalid(format!(
            "the state directory {} is not a directory",
            dir.display()
        )));
    }
    if user.is_some_and(|user| meta.uid() == user.uid) {
        return Ok(());
    }
    let ours = ["data", "socket", "port", "server.log"];
    let entries = fs::read_dir(dir).map_err(|e| io_error("cannot list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot list", dir, e))?;
        if !ours.iter().any(|name| entry.file_name() == *name) {
            return Err(RestoreError::invalid(format!(
                "{} already holds files that are not a securerestore cluster; choose another \
                 directory with SECURERESTORE_STATE_DIR",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Fails when the server user cannot reach the state directory through its parents.
fn check_traversable(dir: &Path, user: &ServerUser) -> Result<()> {
    for parent in dir.ancestors().skip(1) {
        let meta = fs::metadata(parent).map_err(|e| io_error("cannot inspect", parent, e))?;
        let mode = meta.mode();
        let searchable = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Err(RestoreError::invalid(format!(
                "the `{SERVER_USER}` user cannot enter {}, a parent of the state directory {}; \
                 set SECURERESTORE_STATE_DIR to a directory it can reach (e.g. under /var/lib)",
                parent.display(),
                dir.display()
            ))
            .with_detail("directory", parent.display().to_string()));
        }
    }
    Ok(())
}

fn chown(path: &Path, user: &ServerUser) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))
        .map_err(|e| io_error("cannot change the owner of", path, e))
}

/// Gives a whole tree to the server user, skipping what it already owns.
fn chown_tree(path: &Path, user: &ServerUser) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_error("cannot inspect", path, err)),
    };
    if meta.uid() != user.uid || meta.gid() != user.gid {
        chown(path, user)?;
    }
    if meta.is_dir() {
        let entries = fs::read_dir(path).map_err(|e| io_error("cannot list", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("cannot list", path, e))?;
            chown_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}

/// The pid (line 1) and port (line 4) of a `postmaster.pid` file.
fn parse_postmaster_pid(text: &str) -> (Option<u32>, Option<u16>) {
    let mut lines = text.lines();
    let pid = lines.next().and_then(|line| line.trim().parse().ok());
    let port = lines.nth(2).and_then(|line| line.trim().parse().ok());
    (pid, port)
}

/// Whether `pid` is a live postmaster. A `postmaster.pid` left by a crash or a reboot may name a
/// pid since given to another program, common in containers where pids restart low; where
/// `/proc` tells the program's name, that case reads as not running.
fn postmaster_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(name) => name.trim() == "postgres" && process_alive(pid),
        Err(_) => process_alive(pid),
    }
}

fn process_alive(pid: u32) -> bool {
    // Zero and negative values address process groups; never probe those.
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled; nothing is sent.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    // A process of another user answers EPERM: it exists.
    alive || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn url_for(port: u16) -> String {
    format!("postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres")
}

/// The last few lines of the server log, to explain a failed start.
fn log_tail(log: &Path) -> String {
    const TAIL_BYTES: u64 = 2048;
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(log) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

fn io_error(what: &str, path: &Path, err: io::Error) -> RestoreError {
    RestoreError::failed(format!("{what} {}: {err}", path.display()))
        .with_detail("path", path.display().to_string())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A server built for one test; stopped when the test ends, even by a panic.
    struct TestServer {
        server: LocalServer,
        _dir: tempfile::TempDir,
    }

    impl TestServer {
        /// `None`, after saying why, when this machine cannot run a cluster.
        fn new() -> Option<TestServer> {
            if let Err(err) = LocalServer::bin_dir() {
                eprintln!("skipped: {err}");
                return None;
            }
            if let Err(err) = server_user() {
                eprintln!("skipped: {err}");
                return None;
            }
            // Private to root, as temporary directories often are: root must hand it over.
            let dir = tempfile::tempdir().expect("temporary directory");
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("mode 700");
            let server = LocalServer::new(dir.path()).fast_for_tests();
            Some(TestServer { server, _dir: dir })
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            let _ = self.server.stop();
        }
    }

    fn psql(url: &str, sql: &str) -> String {
        let bin = LocalServer::bin_dir().expect("server binaries");
        let out = Command::new(bin.join("psql"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn wait_until_stopped(server: &LocalServer, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if !server.status().expect("status").running {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    #[test]
    fn started_cluster_answers_queries_and_restarts_on_its_port() {
        let Some(test) = TestServer::new() else {
            return;
        };
        let server = &test.server;
        server.stop_when_process_exits().expect("watchdog");

        let status = server.start().expect("start");
        assert!(status.running);
        let port = status.port.expect("port");
        assert!(status.pid.is_some());
        assert!(status.version.is_some());
        let url = server.url().expect("url");
        assert_eq!(
            url,
            format!("postgresql://postgres@127.0.0.1:{port}/postgres")
        );
        assert_eq!(status.url.as_deref(), Some(url.as_str()));
        assert_eq!(psql(&url, "select 1"), "1");
        assert_eq!(psql(&url, "show fsync"), "off");

        let again = server.start().expect("second start");
        assert_eq!(
            again.pid, status.pid,
            "starting a running server restarts nothing"
        );

        server.stop().expect("stop");
        let stopped = server.status().expect("status");
        assert!(!stopped.running);
        assert_eq!(stopped.url, None);
        assert!(server.url().is_err());
        server.stop().expect("stopping a stopped server is fine");

        let restarted = server.start().expect("restart");
        assert_eq!(restarted.port, Some(port));
        assert_eq!(psql(&server.url().expect("url"), "select 2"), "2");
        server.stop().expect("stop");
    }

    #[test]
    fn watchdog_stops_the_server_after_the_watched_process_exits() {
        let Some(test) = TestServer::new() else {
            return;
        };
        let server = &test.server;
        server.start().expect("start");

        let mut watched = Command::new("sleep").arg("1").spawn().expect("sleep");
        server.stop_when_exits(watched.id()).expect("watchdog");
        assert!(server.status().expect("status").running);
        watched.wait().expect("reap the watched process");

        assert!(
            wait_until_stopped(server, Duration::from_secs(30)),
            "server still running"
        );
    }

    #[test]
    fn discarding_watchdog_stops_the_server_and_deletes_its_directory() {
        let Some(test) = TestServer::new() else {
            return;
        };
        let server = &test.server;
        server.start().expect("start");

        let mut watched = Command::new("sleep").arg("1").spawn().expect("sleep");
        server.spawn_watchdog(watched.id(), true).expect("watchdog");
        watched.wait().expect("reap the watched process");

        let deadline = Instant::now() + Duration::from_secs(30);
        while server.state_dir().exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            !server.state_dir().exists(),
            "state directory still present"
        );
        assert!(!server.status().expect("status").running);
    }

    #[test]
    fn root_refuses_a_state_dir_the_server_user_cannot_reach() {
        let Some(test) = TestServer::new() else {
            return;
        };
        if !is_root() {
            eprintln!("skipped: only root hands the state directory to another user");
            return;
        }
        let locked = test.server.state_dir().join("locked");
        fs::create_dir(&locked).expect("locked directory");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).expect("mode 700");
        let server = LocalServer::new(locked.join("cluster"));

        let started = server.start();
        let _ = server.stop();

        let err = started.expect_err("unreachable state directory");
        assert_eq!(err.code(), crate::ErrorCode::InvalidRequest);
        assert!(
            err.message().contains(&locked.display().to_string()),
            "{}",
            err.message()
        );
        assert!(err.message().contains("SECURERESTORE_STATE_DIR"));
    }

    #[test]
    fn a_directory_holding_other_files_is_not_taken_over() {
        let dir = tempfile::tempdir().expect("temporary directory");
        fs::write(dir.path().join("thesis.tex"), "").expect("someone's file");
        let mode_before = fs::metadata(dir.path()).expect("metadata").mode();

        let refused = refuse_foreign_dir(dir.path(), None);

        assert!(refused.is_err());
        assert_eq!(
            fs::metadata(dir.path()).expect("metadata").mode(),
            mode_before
        );
        fs::remove_file(dir.path().join("thesis.tex")).expect("remove");
        fs::create_dir(dir.path().join("data")).expect("data");
        assert!(refuse_foreign_dir(dir.path(), None).is_ok());
    }

    #[test]
    fn status_of_an_empty_state_dir_is_not_running() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let server = LocalServer::new(dir.path().join("none"));

        let status = server.status().expect("status");

        assert!(!status.running);
        assert_eq!(
            (status.port, status.pid, status.url, status.version),
            (None, None, None, None)
        );
        assert_eq!(status.data_dir, dir.path().join("none").join("data"));
        assert!(server.url().is_err());
        server.stop().expect("stopping a missing cluster is fine");
    }

    #[test]
    fn state_dir_prefers_the_variable_then_root_then_xdg_then_home() {
        let some = |s: &str| Some(OsString::from(s));
        let pick = default_state_dir_from;
        assert_eq!(
            pick(some("/s"), true, some("/x"), some("/h")),
            PathBuf::from("/s")
        );
        assert_eq!(
            pick(None, true, some("/x"), some("/h")),
            Path::new("/var/lib/securerestore")
        );
        assert_eq!(
            pick(some(""), false, some("/x"), None),
            Path::new("/x/securerestore")
        );
        assert_eq!(
            pick(None, false, some("relative"), some("/h")),
            Path::new("/h/.local/state/securerestore")
        );
    }

    #[test]
    fn postmaster_pid_gives_pid_and_port() {
        let text = "4242\n/var/lib/x/data\n1700000000\n54321\n/tmp\n127.0.0.1\n";
        assert_eq!(parse_postmaster_pid(text), (Some(4242), Some(54321)));
        assert_eq!(parse_postmaster_pid(""), (None, None));
    }

    #[test]
    fn shell_quote_survives_single_quotes() {
        assert_eq!(
            shell_quote(OsStr::new("it's")).expect("utf-8"),
            r"'it'\''s'"
        );
    }

    #[test]
    fn version_is_the_first_number_of_the_banner() {
        let debian = "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n";
        assert_eq!(version_of(debian).as_deref(), Some("15.18"));
        assert_eq!(
            version_of("postgres (PostgreSQL) 17.2").as_deref(),
            Some("17.2")
        );
        assert_eq!(version_of("postgres (PostgreSQL)"), None);
    }

    #[test]
    fn highest_major_version_wins() {
        let root = tempfile::tempdir().expect("temporary directory");
        for major in ["9.6", "13", "15", "not-a-version"] {
            let bin = root.path().join(major).join("bin");
            fs::create_dir_all(&bin).expect("bin");
            fs::write(bin.join("initdb"), "").expect("initdb");
        }
        fs::create_dir_all(root.path().join("16")).expect("16 without binaries");

        let found = highest_packaged_bin_dir(root.path());

        assert_eq!(found, Some(root.path().join("15").join("bin")));
    }
}
