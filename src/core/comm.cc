#include "core/comm.h"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "core/error.h"

namespace ls {

namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "one process"; }
  void start_exchange(int to, const void*, std::size_t, int from, void*, std::size_t) override {
    LS_CHECK(to < 0 && from < 0, "one process has no rank to exchange with");
  }
  void wait_exchange() override {}
  void post_send(int to, const void*, std::size_t) override {
    LS_CHECK(to < 0, "one process has no rank to send to");
  }
  void complete_sends(std::size_t) override {}
  void allgather(const void* send, std::size_t bytes, void* recv) override {
    if (bytes) std::memcpy(recv, send, bytes);
  }
  void broadcast(void*, std::size_t, int root) override { LS_CHECK(root == 0, "broadcast from rank {} of 1", root); }
  double max(double value) override { return value; }
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

}  // namespace

void Communicator::agree(const std::string& error) {
  // A fixed-size slot per rank: the first 1 KiB of each message.
  constexpr std::size_t kSlot = 1024;
  std::vector<char> mine(kSlot, '\0'), all(kSlot * std::size_t(size()));
  error.copy(mine.data(), kSlot - 1);
  allgather(mine.data(), kSlot, all.data());
  for (int r = 0; r < size(); ++r) {
    const char* message = all.data() + std::size_t(r) * kSlot;
    if (message[0]) throw CollectiveError(size() == 1 ? std::string(message) : fmt::format("rank {}: {}", r, message));
  }
}

void Communicator::check_same(const std::string& value, const std::string& what) {
  const std::uint64_t hash = std::hash<std::string>{}(value);
  std::vector<std::uint64_t> all(size());
  allgather(&hash, sizeof hash, all.data());
  for (int r = 1; r < size(); ++r)
    if (all[r] != all[0])
      throw CollectiveError(fmt::format("the ranks disagree on {}: rank {} differs from rank 0 (every rank must run "
                                        "the same command on the same files)", what, r));
}

double Communicator::timeout_seconds() {
  const char* value = std::getenv("LONGSPARSE_CP_TIMEOUT");
  if (!value || !*value) return 300.0;
  char* end = nullptr;
  const double seconds = std::strtod(value, &end);
  LS_CHECK(end && *end == '\0' && seconds > 0, "LONGSPARSE_CP_TIMEOUT={} is not a positive number of seconds", value);
  return seconds;
}

std::unique_ptr<Communicator> single_process_communicator() { return std::make_unique<SingleProcess>(); }

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_NTASKS"})
    if (std::getenv(name)) return true;
  return false;
}

#ifndef LONGSPARSE_HAVE_MPI
bool have_mpi() { return false; }
std::unique_ptr<Communicator> mpi_communicator() {
  fail("--context-parallel needs MPI, and this build has none: install Open MPI (scripts/setup-deps installs "
       "libopenmpi-dev) and rebuild with -DLONGSPARSE_MPI=ON");
}
#endif

}  // namespace ls
