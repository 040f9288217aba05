// The MPI communicator (built when CMake finds MPI: LONGSPARSE_HAVE_MPI). Only the main
// thread calls MPI (MPI_THREAD_FUNNELED); OpenMP threads compute between the calls. Every
// operation is non-blocking underneath and polled against a deadline, so a rank whose peer
// died or went elsewhere fails with a message instead of waiting forever.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "core/comm.h"
#include "core/error.h"

namespace ls {

namespace {

// MPI's counts are int: large messages go in pieces of at most 1 GiB.
constexpr std::size_t kPiece = std::size_t(1) << 30;

void mpi_check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail("MPI {} failed: {}", what, std::string(text, length));
}

// Finalizes MPI at exit when this process initialised it.
struct MpiSession {
  MpiSession() {
    int provided = 0;
    mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
};

class Mpi final : public Communicator {
 public:
  Mpi() {
    static MpiSession session;  // once per process
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(version, &length);
    std::string v(version, length);
    if (const auto comma = v.find(','); comma != std::string::npos) v.resize(comma);
    return fmt::format("MPI ({}), {} rank{}", v, size_, size_ == 1 ? "" : "s");
  }

  void start_exchange(int to, const void* send, std::size_t send_bytes, int from, void* recv,
                      std::size_t recv_bytes) override {
    LS_CHECK(requests_.empty(), "an exchange is already in flight");
    LS_CHECK(to < size_ && from < size_, "exchange with rank {} / {} of {}", to, from, size_);
    peer_to_ = to, peer_from_ = from;
    for (std::size_t at = 0; from >= 0 && at < recv_bytes; at += kPiece)
      post(MPI_Irecv(static_cast<char*>(recv) + at, int(std::min(kPiece, recv_bytes - at)), MPI_BYTE, from, kTag,
                     MPI_COMM_WORLD, &requests_.emplace_back()),
           "receive");
    if (to >= 0) send_pieces(to, send, send_bytes, requests_);
  }

  void wait_exchange() override {
    wait(requests_, fmt::format("the exchange with rank{} {}", peer_to_ >= 0 && peer_from_ >= 0 ? "s" : "",
                                peers(peer_to_, peer_from_)));
  }

  void post_send(int to, const void* data, std::size_t bytes) override {
    LS_CHECK(to >= 0 && to < size_, "send to rank {} of {}", to, size_);
    Posted& posted = posted_.emplace_back();
    posted.to = to;
    send_pieces(to, data, bytes, posted.requests);
  }

  void complete_sends(std::size_t in_flight) override {
    while (posted_.size() > in_flight) {
      wait(posted_.front().requests, fmt::format("a send to rank {}", posted_.front().to));
      posted_.pop_front();
    }
  }

  void allgather(const void* send, std::size_t bytes, void* recv) override {
    LS_CHECK(bytes <= kPiece, "allgather of {} bytes per rank (at most {})", bytes, kPiece);
    post(MPI_Iallgather(send, int(bytes), MPI_BYTE, recv, int(bytes), MPI_BYTE, MPI_COMM_WORLD,
                        &requests_.emplace_back()),
         "allgather");
    bytes_sent_ += std::int64_t(bytes) * (size_ - 1);
    wait(requests_, "a gather from every rank");
  }

  void broadcast(void* data, std::size_t bytes, int root) override {
    for (std::size_t at = 0; at < bytes; at += kPiece)
      post(MPI_Ibcast(static_cast<char*>(data) + at, int(std::min(kPiece, bytes - at)), MPI_BYTE, root,
                      MPI_COMM_WORLD, &requests_.emplace_back()),
           "broadcast");
    if (root == rank_) bytes_sent_ += std::int64_t(bytes) * (size_ - 1);
    wait(requests_, fmt::format("a broadcast from rank {}", root));
  }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);
  }

  double max(double value) override {
    double result = 0.0;
    post(MPI_Iallreduce(&value, &result, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD, &requests_.emplace_back()),
         "allreduce");
    wait(requests_, "a reduction over every rank");
    return result;
  }

 private:
  static constexpr int kTag = 7;

  static std::string peers(int to, int from) {
    if (to >= 0 && from >= 0 && to != from) return fmt::format("{} and {}", from, to);
    return std::to_string(to >= 0 ? to : from);
  }

  // After a call that added a request to `requests` (default: the exchange's): drops it again
  // when the call failed, and throws.
  void post(int code, const char* what) { post(code, what, requests_); }
  static void post(int code, const char* what, std::vector<MPI_Request>& requests) {
    if (code != MPI_SUCCESS) {
      requests.pop_back();
      mpi_check(code, what);
    }
  }

  // Starts sending `bytes` to rank `to` in pieces of at most kPiece, their requests into
  // `requests`.
  void send_pieces(int to, const void* data, std::size_t bytes, std::vector<MPI_Request>& requests) {
    for (std::size_t at = 0; at < bytes; at += kPiece)
      post(MPI_Isend(static_cast<const char*>(data) + at, int(std::min(kPiece, bytes - at)), MPI_BYTE, to, kTag,
                     MPI_COMM_WORLD, &requests.emplace_back()),
           "send", requests);
    bytes_sent_ += std::int64_t(bytes);
  }

  // Polls `requests` until all complete or the deadline passes. Spins briefly (transfers
  // between ranks of one machine take microseconds), then sleeps between polls.
  void wait(std::vector<MPI_Request>& requests, const std::string& what) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration<double>(timeout_);
    for (long polls = 0;; ++polls) {
      int done = 0;
      const int code = MPI_Testall(int(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
      if (code != MPI_SUCCESS) {
        requests.clear();
        mpi_check(code, what.c_str());
      }
      if (done) break;
      if (Clock::now() > deadline) {
        // Withdrawn, so that a late message cannot land in a buffer that is gone.
        for (MPI_Request& request : requests) {
          if (request == MPI_REQUEST_NULL) continue;
          MPI_Cancel(&request);
          MPI_Request_free(&request);
        }
        requests.clear();
        fail("rank {}: {} did not complete within {:.0f} s (a rank failed, stopped or took another path; "
             "LONGSPARSE_CP_TIMEOUT sets the limit)",
             rank_, what, timeout_);
      }
      if (polls > 2000) std::this_thread::sleep_for(std::chrono::microseconds(polls > 20000 ? 1000 : 50));
    }
    requests.clear();
  }

  // A posted send: its pieces' requests.
  struct Posted {
    int to = -1;
    std::vector<MPI_Request> requests;
  };

  int rank_ = 0, size_ = 1;
  int peer_to_ = -1, peer_from_ = -1;
  std::vector<MPI_Request> requests_;
  std::deque<Posted> posted_;
};

}  // namespace

bool have_mpi() { return true; }

std::unique_ptr<Communicator> mpi_communicator() { return std::make_unique<Mpi>(); }

}  // namespace ls
