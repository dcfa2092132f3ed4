// The header from C++17: it compiles with every warning as an error,
// and the calls that need no server work through RAII owners.

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unistd.h>

#include "securerestore.h"

namespace {

struct EngineFree {
    void operator()(sr_engine *engine) const { sr_engine_free(engine); }
};
struct PageFree {
    void operator()(sr_backup_page *page) const { sr_backup_page_free(page); }
};

int failures = 0;
int passes = 0;

void check(bool ok, const std::string &what)
{
    (ok ? passes : failures)++;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
}

std::string last_message()
{
    size_t needed = 0;
    sr_last_error_message(nullptr, 0, &needed);
    std::string text(needed, '\0');
    sr_last_error_message(&text[0], text.size(), nullptr);
    text.resize(needed > 0 ? needed - 1 : 0);
    return text;
}

} // namespace

int main()
{
    char dir[] = "/tmp/sr-cpp-test-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
        return 2;
    }

    sr_config config = {};
    config.backup_dir = dir;
    config.database_url = "postgresql://nobody@localhost:1/none";
    sr_engine *raw = nullptr;
    check(sr_engine_new(&config, &raw) == SR_OK, "an engine opens");
    std::unique_ptr<sr_engine, EngineFree> engine(raw);

    sr_backup_page *page_raw = nullptr;
    check(sr_backup_list(engine.get(), 20, 0, SR_SORT_CREATED_AT,
                         SR_ORDER_DESC, &page_raw) == SR_OK,
          "an empty directory lists");
    std::unique_ptr<sr_backup_page, PageFree> page(page_raw);
    check(sr_backup_page_len(page.get()) == 0, "with no backups");

    sr_restore_options options = sr_restore_options_default();
    check(options.parallel_workers == 2 && !options.verify,
          "default options");
    sr_restore *restore = nullptr;
    sr_result result = sr_restore_start(engine.get(), "nothing.sql.gz",
                                        "target", &options, &restore);
    check(result == SR_BACKUP_NOT_FOUND && restore == nullptr,
          "a missing backup is SR_BACKUP_NOT_FOUND");
    check(last_message().find("nothing.sql.gz") != std::string::npos,
          "its message names it: " + last_message());

    rmdir(dir);
    std::printf("%d passed, %d failed\n", passes, failures);
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
