// A minimal test framework for the engine's C++ tests: TEST(name) { CHECK(...); }
// Each test binary prints one line per test and exits non-zero if any failed.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace check {
struct Case { const char* name; std::function<void()> fn; };
inline std::vector<Case>& cases() { static std::vector<Case> v; return v; }
inline int& failures() { static int f = 0; return f; }
struct Reg { Reg(const char* n, std::function<void()> f) { cases().push_back({n, std::move(f)}); } };
inline int run_all(int argc, char** argv) {
  int failed_cases = 0, passed = 0;
  for (auto& c : cases()) {
    if (argc > 1 && std::string(c.name).find(argv[1]) == std::string::npos) continue;
    int before = failures();
    c.fn();
    if (failures() != before) { failed_cases++; std::printf("not ok - %s\n", c.name); }
    else { passed++; std::printf("ok - %s\n", c.name); }
    std::fflush(stdout);
  }
  std::printf("# %d passed, %d failed\n", passed, failed_cases);
  return failed_cases ? 1 : 0;
}
}  // namespace check

#define CHECK_CAT2(a, b) a##b
#define CHECK_CAT(a, b) CHECK_CAT2(a, b)
#define TEST(name) \
  static void CHECK_CAT(test_fn_, __LINE__)(); \
  static check::Reg CHECK_CAT(test_reg_, __LINE__)(name, CHECK_CAT(test_fn_, __LINE__)); \
  static void CHECK_CAT(test_fn_, __LINE__)()
#define CHECK(cond) do { if (!(cond)) { check::failures()++; std::printf("  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_EQ(a, b) do { auto _va = (a); auto _vb = (b); if (!(_va == _vb)) { check::failures()++; std::printf("  %s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a, #b, (long long)_va, (long long)_vb); } } while (0)
#define TEST_MAIN() int main(int argc, char** argv) { return check::run_all(argc, argv); }
