// The module's debugging interfaces, as the kernel suite, the stress tests
// and the benchmarks read and set them: the counters in debugfs and the
// writable module parameters.  Both are root-only.
#pragma once

#include <fstream>
#include <map>
#include <optional>
#include <string>

namespace xpmem_debug {

using Counters = std::map<std::string, long>;

// A "name value" file of the module's debugfs directory, or nullopt where
// this user cannot read it (debugfs is root-only).
inline std::optional<Counters> read_debugfs(const char *file) {
  std::ifstream in(std::string("/sys/kernel/debug/xpmem/") + file);
  if (!in)
    return std::nullopt;
  Counters values;
  std::string name;
  long value;
  while (in >> name >> value)
    values[name] = value;
  if (values.empty())
    return std::nullopt;
  return values;
}

// The module's counters (stats).
inline std::optional<Counters> read_counters() {
  return read_debugfs("stats");
}

// Which mappings this kernel lets the module make (features):
// huge_mappings, huge_mappings_anonymous, batch_ptes.
inline std::optional<Counters> read_features() {
  return read_debugfs("features");
}

// How much a counter grew from `before` to `after` (a missing one is 0).
inline long counter_delta(const Counters &after, const Counters &before, const std::string &name) {
  auto a = after.find(name), b = before.find(name);
  return (a == after.end() ? 0 : a->second) - (b == before.end() ? 0 : b->second);
}

inline std::string param_path(const char *name) {
  return std::string("/sys/module/xpmem/parameters/") + name;
}

// Sets a module parameter for the scope and restores it after; ok() is
// false where the parameter does not exist (an older kernel) or this user
// cannot write it.
class ScopedParam {
public:
  ScopedParam(const char *name, const std::string &value) : path_(param_path(name)) {
    std::ifstream in(path_);
    ok_ = static_cast<bool>(in >> old_);
    if (ok_)
      ok_ = static_cast<bool>(std::ofstream(path_) << value << std::flush);
  }
  ScopedParam(const char *name, long value) : ScopedParam(name, std::to_string(value)) {}
  ~ScopedParam() {
    if (ok_)
      std::ofstream(path_) << old_;
  }
  ScopedParam(const ScopedParam &) = delete;
  ScopedParam &operator=(const ScopedParam &) = delete;
  bool ok() const { return ok_; }

private:
  std::string path_;
  std::string old_;
  bool ok_ = false;
};

} // namespace xpmem_debug
