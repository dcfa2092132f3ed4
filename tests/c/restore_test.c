/*
 * The C interface against a real PostgreSQL: list backups, restore one
 * with progress updates, cancel another mid-flight, and see every public
 * error code reach C with its number, message and request id.
 *
 * Needs SECURERESTORE_TEST_DATABASE_URL (scripts/with-test-server.sh
 * sets it). Writes its backups into a fresh temporary directory. Exits
 * non-zero when a check fails; the last line is "N passed, M failed".
 */

#define _POSIX_C_SOURCE 200809L

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "securerestore.h"

static int passed;
static int failed;

static void check(int ok, const char *what)
{
    if (ok) {
        passed++;
        printf("ok   %s\n", what);
    } else {
        failed++;
        printf("FAIL %s\n", what);
    }
}

/* The last error's message and request id, into fixed buffers. */
struct last_error {
    char message[1024];
    char request_id[64];
    char details[1024];
};

static void read_last_error(struct last_error *err)
{
    memset(err, 0, sizeof *err);
    sr_last_error_message(err->message, sizeof err->message, NULL);
    sr_last_error_request_id(err->request_id, sizeof err->request_id,
                             NULL);
    sr_last_error_details(err->details, sizeof err->details, NULL);
}

/* Checks that a refused call reported `expected` with a full error. */
static void check_refusal(sr_result got, sr_result expected,
                          const char *what)
{
    struct last_error err;
    char line[256];

    read_last_error(&err);
    printf("     %s -> %u %s: %s [%s] %s\n", what, (unsigned)got,
           sr_result_name(got), err.message, err.request_id, err.details);
    snprintf(line, sizeof line, "%s is %s (%u)", what,
             sr_result_name(expected), (unsigned)expected);
    check(got == expected, line);
    check(sr_last_error_code() == expected, "  last error code matches");
    check(err.message[0] != '\0', "  last error has a message");
    check(strncmp(err.request_id, "req_", 4) == 0,
          "  last error has a request id");
    check(err.details[0] == '{', "  last error details are JSON");
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    FILE *file;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    file = fopen(path, "w");
    if (file == NULL) {
        return -1;
    }
    fputs(text, file);
    return fclose(file);
}

/*
 * A gzip header followed by a sparse hole: a file of many terabytes that
 * takes no disk, larger than any disk could hold restored.
 */
static int write_huge_gzip(const char *dir, const char *name)
{
    static const unsigned char header[10] = {
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
    };
    const off_t tebibyte = (off_t)1 << 40;
    char path[4096];
    FILE *file;
    int ok;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    file = fopen(path, "wb");
    if (file == NULL) {
        return -1;
    }
    ok = fwrite(header, 1, sizeof header, file) == sizeof header;
    ok = fflush(file) == 0 && ok;
    /* ext4 stops at 16 TiB: fall back to 15 TiB there. */
    ok = ok && (ftruncate(fileno(file), 100 * tebibyte) == 0
                || ftruncate(fileno(file), 15 * tebibyte) == 0);
    return fclose(file) == 0 && ok ? 0 : -1;
}

static void remove_file(const char *dir, const char *name)
{
    char path[4096];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* What the update callback saw. */
struct progress {
    atomic_int updates;
    atomic_int last_state;
    atomic_int last_progress;
};

static void on_update(const sr_update *update, void *user_data)
{
    struct progress *progress = user_data;

    printf("     update %s: state %u, %u%%, operation %u at %s\n",
           update->restore_id, (unsigned)update->status,
           (unsigned)update->progress,
           (unsigned)update->current_operation, update->timestamp);
    atomic_store(&progress->last_progress, update->progress);
    atomic_store(&progress->last_state, (int)update->status);
    atomic_fetch_add(&progress->updates, 1);
}

/* Waits (a bounded time) for the callback to report the final state. */
static int wait_for_final_update(struct progress *progress, int state)
{
    const struct timespec pause = {0, 20 * 1000 * 1000};
    int round;

    for (round = 0; round < 500; round++) {
        if (atomic_load(&progress->last_state) == state) {
            return 1;
        }
        nanosleep(&pause, NULL);
    }
    return 0;
}

/* Restores `backup` into `target` and waits for it to end. */
static sr_status *restore_and_wait(const sr_engine *engine,
                                   const char *backup, const char *target)
{
    sr_restore *restore = NULL;
    sr_status *status = NULL;
    sr_result result;

    result = sr_restore_start(engine, backup, target, NULL, &restore);
    check(result == SR_OK, "restore starts");
    if (result != SR_OK) {
        return NULL;
    }
    result = sr_restore_wait(restore, -1, &status);
    check(result == SR_OK && status != NULL, "restore ends");
    sr_restore_free(restore);
    return status;
}

static void check_list(const sr_engine *engine)
{
    sr_backup_page *page = NULL;
    const sr_backup *backup;
    size_t i;

    check(sr_backup_list(engine, 10, 0, SR_SORT_SIZE, SR_ORDER_ASC, &page)
              == SR_OK,
          "backups are listed");
    check(sr_backup_page_len(page) == 4, "the page holds four backups");
    check(sr_backup_page_total(page) == 4, "the directory holds four");
    for (i = 0; i < sr_backup_page_len(page); i++) {
        backup = sr_backup_page_get(page, i);
        printf("     %-34s %16llu %s %lld %s %s\n", backup->name,
               (unsigned long long)backup->size, backup->created_at,
               (long long)backup->created_at_unix,
               backup->checksum ? backup->checksum : "(unsealed)",
               backup->status);
    }
    backup = sr_backup_page_get(page, 3);
    check(backup != NULL
              && strcmp(backup->name, "huge_20240104_120000.sql.gz") == 0,
          "sorted by size, the largest comes last");
    backup = sr_backup_page_get(page, 2);
    check(backup != NULL
              && strcmp(backup->created_at, "2024-01-01T12:00:00Z") == 0
              && backup->created_at_unix == 1704110400,
          "created_at comes from the name, as text and seconds");
    check(sr_backup_page_get(page, 4) == NULL, "past the end is NULL");
    sr_backup_page_free(page);

    page = NULL;
    check(sr_backup_list(engine, 10, 0, 7, SR_ORDER_ASC, &page)
              == SR_INVALID_ARGUMENT && page == NULL,
          "an unknown sort is an invalid argument, *out untouched");
}

static void check_restore_with_progress(const sr_engine *engine,
                                        const char *target)
{
    struct progress progress;
    sr_restore_options options = sr_restore_options_default();
    sr_restore *restore = NULL;
    sr_status *status = NULL;
    char checksum[SR_CHECKSUM_SIZE];

    check(sr_seal(engine, "small_20240101_120000.sql", checksum,
                  sizeof checksum, NULL) == SR_OK
              && strncmp(checksum, "sha256:", 7) == 0,
          "a backup is sealed");
    atomic_init(&progress.updates, 0);
    atomic_init(&progress.last_state, -1);
    atomic_init(&progress.last_progress, 0);

    options.verify = true;
    options.parallel_workers = 2;
    check(sr_restore_start(engine, "small_20240101_120000.sql", target,
                           &options, &restore) == SR_OK,
          "a verified restore starts");
    if (restore == NULL) {
        return;
    }
    printf("     restore id %s\n", sr_restore_id(restore));
    check(sr_restore_set_callback(restore, on_update, &progress) == SR_OK,
          "a progress callback is set");
    check(sr_restore_wait(restore, -1, &status) == SR_OK,
          "the restore is waited for");
    check(wait_for_final_update(&progress, SR_STATE_COMPLETED),
          "the callback reports completion");
    check(atomic_load(&progress.last_progress) == 100,
          "the callback's last progress is 100");
    sr_restore_free(restore);
    if (status == NULL) {
        return;
    }
    printf("     %s: %llu rows in %llu tables, %.2f s, started %s\n",
           status->restore_id, (unsigned long long)status->rows,
           (unsigned long long)status->tables, status->duration_seconds,
           status->started_at);
    check(status->status == SR_STATE_COMPLETED, "the restore completed");
    check(status->rows == 3 && status->tables == 1, "three rows loaded");
    check(status->verification_status == SR_VERIFICATION_VERIFIED,
          "the checksum was verified");
    check(status->completed_at != NULL && status->cancelled_at == NULL,
          "completed_at is set, cancelled_at is not");
    check(status->error_code == SR_OK && status->error_message == NULL,
          "a completed restore carries no error");
    check(strcmp(status->target_database, target) == 0,
          "the status names the target");
    sr_status_free(status);
}

/* Packs the small backup into many zstd frames and restores the result. */
static void check_pack(const sr_engine *engine, const char *dir,
                       const char *target)
{
    const char *packed = "packed_20240105_120000.sql.zst";
    char input[4096];
    sr_status *status;

    snprintf(input, sizeof input, "%s/small_20240101_120000.sql", dir);
    check(sr_pack(engine, input, packed, SR_PACK_ZSTD, 16, -1) == SR_OK,
          "a backup is packed in 16-byte zstd frames");
    status = restore_and_wait(engine, packed, target);
    check(status != NULL && status->status == SR_STATE_COMPLETED
              && status->rows == 3,
          "  the packed backup restores its three rows");
    sr_status_free(status);

    check_refusal(sr_pack(engine, input, packed, SR_PACK_ZSTD, 0, -1),
                  SR_INVALID_REQUEST, "packing over an existing backup");
    check(sr_pack(engine, input, "other.sql.gz", 7, 0, -1)
              == SR_INVALID_ARGUMENT,
          "an unknown pack format is an invalid argument");
    check_refusal(sr_pack(engine, input, "other.sql.gz", SR_PACK_GZIP, 0, 10),
                  SR_INVALID_REQUEST, "gzip level 10");
    check_refusal(sr_pack(engine, input, "../escape.sql.gz", SR_PACK_GZIP,
                          0, -1),
                  SR_INVALID_REQUEST, "a packed name leaving the directory");
    check_refusal(sr_pack(engine, input, "new\nline.sql.gz", SR_PACK_GZIP,
                          0, -1),
                  SR_INVALID_REQUEST, "a packed name no seal can record");
    check(sr_pack(engine, NULL, packed, SR_PACK_GZIP, 0, -1)
              == SR_NULL_ARGUMENT,
          "a NULL input path is SR_NULL_ARGUMENT");
    remove_file(dir, packed);
    remove_file(dir, "packed_20240105_120000.sql.zst.sha256");
}

static void check_cancel_and_rate_limit(const sr_engine *engine,
                                        const char *sleepy_target,
                                        const char *other_target)
{
    sr_restore *sleepy = NULL;
    sr_restore *other = (sr_restore *)&other;
    sr_status *status = NULL;
    int rounds;

    check(sr_restore_start(engine, "sleepy_20240102_120000.sql",
                           sleepy_target, NULL, &sleepy) == SR_OK,
          "a long restore starts");
    if (sleepy == NULL) {
        return;
    }
    check_refusal(sr_restore_start(engine, "small_20240101_120000.sql",
                                   other_target, NULL, &other),
                  SR_RATE_LIMIT_EXCEEDED, "a second restore at limit 1");
    check(other == (sr_restore *)&other, "  *out is left as it was");

    for (rounds = 0; rounds < 300; rounds++) {
        if (sr_restore_wait(sleepy, 100, &status) != SR_OK) {
            break;
        }
        if (status->status == SR_STATE_IN_PROGRESS
            && status->current_operation
                   == SR_OPERATION_RESTORING_SCHEMA) {
            break;
        }
        sr_status_free(status);
        status = NULL;
    }
    check(status != NULL && status->status == SR_STATE_IN_PROGRESS,
          "the long restore runs its statement");
    sr_status_free(status);
    status = NULL;

    check(sr_restore_cancel(sleepy) == SR_OK, "it is cancelled");
    check(sr_restore_wait(sleepy, 60000, &status) == SR_OK, "and ends");
    if (status != NULL) {
        printf("     %s ended %u after %.2f s\n", status->restore_id,
               (unsigned)status->status, status->duration_seconds);
        check(status->status == SR_STATE_CANCELLED
                  && status->cancelled_at != NULL,
              "the cancelled restore ends cancelled");
        sr_status_free(status);
    }
    sr_restore_free(sleepy);
}

static void check_failed_status(const sr_engine *engine,
                                const char *backup, const char *target,
                                sr_result expected, const char *what)
{
    sr_status *status = restore_and_wait(engine, backup, target);
    char line[256];

    if (status == NULL) {
        return;
    }
    printf("     %s -> state %u, %u %s: %s [%s] %s\n", backup,
           (unsigned)status->status, (unsigned)status->error_code,
           sr_result_name(status->error_code),
           status->error_message ? status->error_message : "(none)",
           status->error_request_id ? status->error_request_id : "",
           status->error_details ? status->error_details : "");
    snprintf(line, sizeof line, "%s fails with %s (%u)", what,
             sr_result_name(expected), (unsigned)expected);
    check(status->status == SR_STATE_FAILED
              && status->error_code == expected,
          line);
    check(status->error_message != NULL && status->failed_at != NULL,
          "  with a message and a time");
    check(status->error_request_id != NULL
              && strncmp(status->error_request_id, "req_", 4) == 0,
          "  with a request id");
    sr_status_free(status);
}

static void check_interface_errors(void)
{
    sr_engine *engine = (sr_engine *)&engine;
    char small[4] = "xyz";
    size_t needed = 0;

    check(sr_engine_new(NULL, &engine) == SR_NULL_ARGUMENT
              && engine == (sr_engine *)&engine,
          "a NULL config is SR_NULL_ARGUMENT, *out untouched");
    check(sr_last_error_message(small, sizeof small, &needed)
              == SR_BUFFER_TOO_SMALL,
          "a small buffer is SR_BUFFER_TOO_SMALL");
    check(needed > sizeof small && strcmp(small, "xyz") == 0,
          "  it reports the size needed and is left as it was");
    check(sr_last_error_code() == SR_NULL_ARGUMENT,
          "  reading the last error does not change it");
    check(strcmp(sr_result_name(SR_INSUFFICIENT_SPACE),
                 "insufficient_space") == 0
              && strcmp(sr_result_name(4242), "unknown") == 0,
          "results have stable names");
    check(SR_INVALID_REQUEST == 1 && SR_BACKUP_NOT_FOUND == 2
              && SR_DATABASE_EXISTS == 3 && SR_RATE_LIMIT_EXCEEDED == 4
              && SR_RESTORE_FAILED == 5 && SR_INSUFFICIENT_SPACE == 6,
          "engine codes keep their numbers");
}

int main(void)
{
    const char *url = getenv("SECURERESTORE_TEST_DATABASE_URL");
    /* mkdtemp's template: six placeholder letters after the prefix. */
    char dir[] = "/tmp/sr-c-test-......";
    char small[64], sleepy[64], other[64], broken[64], huge[64];
    char packed[64];
    sr_config config;
    sr_engine *engine = NULL;
    sr_restore *restore = NULL;
    long pid = (long)getpid();

    memset(strchr(dir, '.'), 'X', 6);
    if (url == NULL || mkdtemp(dir) == NULL) {
        fprintf(stderr, "set SECURERESTORE_TEST_DATABASE_URL (see "
                        "scripts/with-test-server.sh)\n");
        return 2;
    }
    snprintf(small, sizeof small, "c_small_%ld", pid);
    snprintf(sleepy, sizeof sleepy, "c_sleepy_%ld", pid);
    snprintf(other, sizeof other, "c_other_%ld", pid);
    snprintf(broken, sizeof broken, "c_broken_%ld", pid);
    snprintf(huge, sizeof huge, "c_huge_%ld", pid);
    snprintf(packed, sizeof packed, "c_packed_%ld", pid);

    check(write_file(dir, "small_20240101_120000.sql",
                     "CREATE TABLE film (id integer PRIMARY KEY, "
                     "title text);\n"
                     "COPY film (id, title) FROM stdin;\n"
                     "1\tAlpha\n2\tBeta\n3\tGamma\n\\.\n") == 0
              && write_file(dir, "sleepy_20240102_120000.sql",
                            "SELECT pg_sleep(30);\n") == 0
              && write_file(dir, "broken_20240103_120000.sql",
                            "SELECT no_such_function();\n") == 0
              && write_huge_gzip(dir, "huge_20240104_120000.sql.gz") == 0,
          "backups are written");

    printf("     libsecurerestore %s\n", sr_version());
    check_interface_errors();

    memset(&config, 0, sizeof config);
    config.backup_dir = dir;
    config.database_url = url;
    config.max_concurrent_restores = 1;
    check(sr_engine_new(&config, &engine) == SR_OK, "an engine opens");
    if (engine == NULL) {
        printf("%d passed, %d failed\n", passed, failed + 1);
        return 1;
    }

    check_list(engine);
    check_restore_with_progress(engine, small);
    check_pack(engine, dir, packed);

    check_refusal(sr_restore_start(engine, "../etc/passwd", other, NULL,
                                   &restore),
                  SR_INVALID_REQUEST, "a name leaving the directory");
    check_refusal(sr_restore_start(engine, "missing_20240101_000000.sql",
                                   other, NULL, &restore),
                  SR_BACKUP_NOT_FOUND, "a missing backup");
    check_refusal(sr_restore_start(engine, "small_20240101_120000.sql",
                                   small, NULL, &restore),
                  SR_DATABASE_EXISTS, "an existing target");
    check(restore == NULL, "refused restores give no handle");

    check_cancel_and_rate_limit(engine, sleepy, other);
    check_failed_status(engine, "broken_20240103_120000.sql", broken,
                        SR_RESTORE_FAILED, "a failing statement");
    check_failed_status(engine, "huge_20240104_120000.sql.gz", huge,
                        SR_INSUFFICIENT_SPACE, "a backup too large");

    sr_engine_free(engine);
    remove_file(dir, "small_20240101_120000.sql");
    remove_file(dir, "small_20240101_120000.sql.sha256");
    remove_file(dir, "sleepy_20240102_120000.sql");
    remove_file(dir, "broken_20240103_120000.sql");
    remove_file(dir, "huge_20240104_120000.sql.gz");
    rmdir(dir);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
