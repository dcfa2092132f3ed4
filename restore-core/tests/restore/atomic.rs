//! A restore either becomes the whole target or leaves it as it was.

use std::time::Duration;

use restore_core::{ErrorCode, RestoreOptions, RestoreState, VerificationStatus};

use crate::harness::{query, request, staging_left, unique, Fixture};
use crate::support;

const GOOD: &str = "CREATE TABLE t (id int PRIMARY KEY, v text);\n\
                    COPY t (id, v) FROM stdin;\n1\tone\n2\ttwo\n\\.\n";

fn populated_target() -> String {
    let target = unique("target");
    support::create_database(&target);
    query(
        &target,
        "CREATE TABLE keep (x int); INSERT INTO keep VALUES (42);",
    );
    target
}

/// Writes `name`: the good dump, then a statement that sleeps `seconds`.
fn write_sleeping(fixture: &Fixture, name: &str, seconds: u32) {
    let sql = format!("{GOOD}SELECT pg_sleep({seconds});\n");
    fixture.write(name, sql.as_bytes());
}

/// Databases a swap left behind: a target's previous copy, which a swap drops.
fn old_copies_left() -> Vec<String> {
    support::list_databases()
        .into_iter()
        .filter(|db| db.starts_with("_srst_old_"))
        .collect()
}

fn force() -> RestoreOptions {
    RestoreOptions {
        force: true,
        ..Default::default()
    }
}

#[test]
fn a_restore_failing_midway_leaves_the_target_untouched() {
    let fixture = Fixture::new();
    let sql = format!("{GOOD}SELECT 1/0;\nCREATE TABLE never (x int);\n");
    fixture.write("bad.sql", sql.as_bytes());
    let target = populated_target();

    let status = fixture.restore("bad.sql", &target, force());

    assert_eq!(status.status, RestoreState::Failed);
    let error = status.error.clone().expect("error");
    assert_eq!(error.code(), ErrorCode::RestoreFailed);
    assert!(
        error.message().contains("bad.sql, line 6"),
        "{}",
        error.message()
    );
    assert!(
        error.message().contains("division by zero"),
        "{}",
        error.message()
    );
    assert_eq!(error.details()["line"], 6);
    assert_eq!(query(&target, "SELECT x FROM keep"), "42");
    assert!(staging_left(&status).is_empty());
}

#[test]
fn a_cancelled_restore_stops_its_long_statement_and_drops_staging() {
    let fixture = Fixture::new();
    write_sleeping(&fixture, "slow.sql", 60);
    let target = populated_target();
    let request = request("slow.sql", &target, force());
    let started = fixture.engine.create_restore(request).expect("accepted");
    let id = started.restore_id.clone();
    while fixture.engine.restore_status(&id).unwrap().summary.rows < 2 {
        std::thread::sleep(Duration::from_millis(20));
    }

    fixture.engine.cancel_restore(&id).expect("cancel");
    let clock = std::time::Instant::now();
    let status = fixture
        .engine
        .wait_restore(&id, Some(Duration::from_secs(30)))
        .unwrap();
    eprintln!("cancel took {:.2} s", clock.elapsed().as_secs_f64());

    assert_eq!(status.status, RestoreState::Cancelled);
    assert!(status.cancelled_at.is_some());
    assert!(status.progress < 100);
    assert_eq!(query(&target, "SELECT x FROM keep"), "42");
    assert!(staging_left(&status).is_empty());
    let again = fixture.engine.cancel_restore(&id).unwrap();
    assert_eq!(again.status, RestoreState::Cancelled);
}

#[test]
fn a_timed_out_restore_fails_with_its_reason() {
    let fixture = Fixture::new();
    write_sleeping(&fixture, "slow.sql", 60);
    let target = unique("timeout");
    let options = RestoreOptions {
        timeout_seconds: Some(1),
        ..Default::default()
    };

    let status = fixture.restore("slow.sql", &target, options);

    assert_eq!(status.status, RestoreState::Failed);
    let error = status.error.clone().expect("error");
    assert_eq!(error.details()["reason"], "timeout");
    assert_eq!(error.details()["timeout_seconds"], 1);
    assert!(!support::database_exists(&target));
    assert!(staging_left(&status).is_empty());
}

#[test]
fn a_checksum_mismatch_fails_before_the_swap() {
    let fixture = Fixture::new();
    fixture.write("b.sql", GOOD.as_bytes());
    fixture.seal("b.sql");
    fixture.write(
        "b.sql",
        format!("{GOOD}-- changed after sealing\n").as_bytes(),
    );
    let target = unique("mismatch");

    let status = fixture.restore(
        "b.sql",
        &target,
        RestoreOptions {
            verify: true,
            ..Default::default()
        },
    );

    assert_eq!(status.status, RestoreState::Failed);
    assert_eq!(status.verification_status, VerificationStatus::Failed);
    assert!(status
        .error
        .clone()
        .unwrap()
        .message()
        .contains("checksum mismatch"));
    assert!(!support::database_exists(&target));
    assert!(staging_left(&status).is_empty());
}

#[test]
fn verify_passes_for_an_intact_sealed_backup() {
    let fixture = Fixture::new();
    fixture.write("b.sql", GOOD.as_bytes());
    fixture.seal("b.sql");
    let target = unique("verified");

    let status = fixture.restore(
        "b.sql",
        &target,
        RestoreOptions {
            verify: true,
            ..Default::default()
        },
    );

    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(status.verification_status, VerificationStatus::Verified);
    assert_eq!(query(&target, "SELECT count(*) FROM t"), "2");
    support::drop_database(&target);
}

#[test]
fn verify_without_a_recorded_checksum_is_an_invalid_request() {
    let fixture = Fixture::new();
    fixture.write("b.sql", GOOD.as_bytes());
    let request = request(
        "b.sql",
        &unique("noverify"),
        RestoreOptions {
            verify: true,
            ..Default::default()
        },
    );
    let err = fixture.engine.create_restore(request).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert!(err.request_id().starts_with("req_"));
}

#[test]
fn an_existing_target_without_force_is_database_exists() {
    let fixture = Fixture::new();
    fixture.write("b.sql", GOOD.as_bytes());
    let target = populated_target();
    let request = request("b.sql", &target, RestoreOptions::default());
    let err = fixture.engine.create_restore(request).unwrap_err();
    assert_eq!(err.code(), ErrorCode::DatabaseExists);
    assert_eq!(err.http_status(), 409);
    assert_eq!(query(&target, "SELECT x FROM keep"), "42");
}

#[test]
fn force_swaps_a_populated_target() {
    let fixture = Fixture::new();
    fixture.write("b.sql", GOOD.as_bytes());
    let target = populated_target();

    let status = fixture.restore("b.sql", &target, force());

    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(
        query(&target, "SELECT string_agg(v, ',' ORDER BY id) FROM t"),
        "one,two"
    );
    assert_eq!(query(&target, "SELECT to_regclass('keep') IS NULL"), "t");
    let leftovers = old_copies_left();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    support::drop_database(&target);
}

#[test]
fn two_restores_run_at_once() {
    let fixture = Fixture::new();
    write_sleeping(&fixture, "b.sql", 1);
    let targets = [unique("twin"), unique("twin")];
    let ids: Vec<String> = targets
        .iter()
        .map(|target| {
            let request = request("b.sql", target, RestoreOptions::default());
            fixture
                .engine
                .create_restore(request)
                .expect("accepted")
                .restore_id
        })
        .collect();
    let running = ids
        .iter()
        .filter(|id| !fixture.engine.restore_status(id).unwrap().status.is_final())
        .count();
    assert_eq!(running, 2, "both restores run at the same time");
    for (id, target) in ids.iter().zip(&targets) {
        let status = fixture
            .engine
            .wait_restore(id, Some(Duration::from_secs(60)))
            .unwrap();
        assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
        assert_eq!(query(target, "SELECT count(*) FROM t"), "2");
        support::drop_database(target);
    }
}

#[test]
fn a_second_restore_into_the_same_target_is_refused_while_the_first_runs() {
    let fixture = Fixture::new();
    write_sleeping(&fixture, "b.sql", 2);
    let target = unique("same");
    let request = request("b.sql", &target, RestoreOptions::default());
    let first = fixture
        .engine
        .create_restore(request.clone())
        .expect("accepted");
    let err = fixture.engine.create_restore(request).unwrap_err();
    assert_eq!(err.code(), ErrorCode::DatabaseExists);
    let status = fixture
        .engine
        .wait_restore(&first.restore_id, None)
        .unwrap();
    assert_eq!(status.status, RestoreState::Completed);
    support::drop_database(&target);
}

#[test]
fn events_end_with_the_final_status() {
    let fixture = Fixture::new();
    fixture.write("b.sql", GOOD.as_bytes());
    let target = unique("events");
    let request = request("b.sql", &target, RestoreOptions::default());
    let started = fixture.engine.create_restore(request).expect("accepted");
    assert!(started.restore_id.starts_with("rst_"));
    assert!(started.estimated_completion.is_some());
    let mut events = fixture.engine.subscribe(&started.restore_id).unwrap();
    let mut seen = Vec::new();
    while let Ok(Some(status)) = events.next_status_blocking(Duration::from_secs(30)) {
        seen.push(status.progress);
    }
    assert_eq!(seen.last(), Some(&100));
    assert!(seen.windows(2).all(|pair| pair[0] <= pair[1]), "{seen:?}");
    support::drop_database(&target);
}

#[test]
fn staging_databases_of_dead_processes_are_dropped_at_start_and_no_others() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let ghost = unique("_srst_ghost");
    let foreign = unique("_srst_foreign");
    let alive = unique("_srst_alive");
    support::create_database(&ghost);
    support::create_database(&foreign);
    support::create_database(&alive);
    let mark = |pid: u32| {
        format!(
            "securerestore staging database for rst_x; pid {pid}; host {}",
            host.trim()
        )
    };
    let comment = |db: &str, text: &str| {
        query("postgres", &format!("COMMENT ON DATABASE {db} IS '{text}'"));
    };
    comment(&ghost, &mark(u32::MAX - 1));
    comment(&alive, &mark(std::process::id()));

    Fixture::new().engine.server().expect("server");

    assert!(
        !support::database_exists(&ghost),
        "a dead process's staging database is dropped"
    );
    assert!(
        support::database_exists(&foreign),
        "a database without the mark is kept"
    );
    assert!(
        support::database_exists(&alive),
        "a live process's staging database is kept"
    );
    support::drop_database(&foreign);
    support::drop_database(&alive);
}

#[test]
fn a_restore_that_cannot_fit_fails_with_insufficient_space_before_writing() {
    let fixture = Fixture::new();
    let file = std::fs::File::create(fixture.path("huge.sql.gz")).unwrap();
    std::io::Write::write_all(&mut &file, &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
    file.set_len(8 << 40).unwrap();
    let target = unique("huge");

    let status = fixture.restore("huge.sql.gz", &target, RestoreOptions::default());

    assert_eq!(status.status, RestoreState::Failed);
    let error = status.error.clone().expect("error");
    assert_eq!(
        error.code(),
        ErrorCode::InsufficientSpace,
        "{}",
        error.message()
    );
    assert_eq!(error.http_status(), 507);
    let required = error.details()["required_bytes"].as_u64().unwrap();
    let available = error.details()["available_bytes"].as_u64().unwrap();
    assert!(required > available);
    assert_eq!(
        status.bytes_read, 0,
        "nothing was read, so nothing was written"
    );
    assert!(!support::database_exists(&target));
    assert!(staging_left(&status).is_empty());
}

#[test]
fn restores_beyond_the_concurrency_limit_are_rate_limited() {
    let fixture = Fixture::with(|config| config.max_concurrent_restores = 1);
    write_sleeping(&fixture, "slow.sql", 2);
    let engine = &fixture.engine;
    let slow = |target: &str| request("slow.sql", target, RestoreOptions::default());
    let (first, second) = (unique("limit"), unique("limit"));
    let started = engine.create_restore(slow(&first)).expect("accepted");
    let err = engine.create_restore(slow(&second)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimitExceeded);
    assert_eq!(err.http_status(), 429);
    assert_eq!(err.details()["limit"], 1);
    let done = engine.wait_restore(&started.restore_id, None).unwrap();
    assert_eq!(done.status, RestoreState::Completed);
    let status = engine
        .create_restore(slow(&second))
        .expect("a place is free again");
    engine.wait_restore(&status.restore_id, None).unwrap();
    support::drop_database(&first);
    support::drop_database(&second);
}

#[test]
fn a_restore_whose_own_connection_was_killed_still_drops_its_staging() {
    let fixture = Fixture::new();
    let target = unique("killed");
    let sql = format!(
        "{GOOD}SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' \
         AND ((classid::bigint << 32) | objid::bigint) = \
         hashtextextended('securerestore target {target}', 0);\n"
    );
    fixture.write("kill.sql", sql.as_bytes());

    let status = fixture.restore("kill.sql", &target, RestoreOptions::default());

    assert_eq!(status.status, RestoreState::Failed, "{:?}", status.error);
    assert!(!support::database_exists(&target));
    assert!(staging_left(&status).is_empty());
}

#[test]
fn restores_of_two_engines_into_one_target_do_not_collide() {
    let fixture = Fixture::new();
    write_sleeping(&fixture, "slow.sql", 2);
    let (first, second) = (&fixture.engine, fixture.another_engine());
    let target = unique("contended");
    let request = request("slow.sql", &target, force());
    let running = first.create_restore(request.clone()).unwrap();
    while first
        .restore_status(&running.restore_id)
        .unwrap()
        .summary
        .rows
        < 2
    {
        std::thread::sleep(Duration::from_millis(20));
    }

    let other = second.create_restore(request).unwrap();
    let other = second.wait_restore(&other.restore_id, None).unwrap();
    let done = first.wait_restore(&running.restore_id, None).unwrap();

    assert_eq!(other.status, RestoreState::Failed);
    assert_eq!(other.error_code(), Some(ErrorCode::DatabaseExists));
    assert_eq!(done.status, RestoreState::Completed, "{:?}", done.error);
    assert!(staging_left(&other).is_empty());
    let leftovers = old_copies_left();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    support::drop_database(&target);
}
