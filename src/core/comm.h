// Communication between the processes of a context-parallel run (model/context_parallel.h):
// a small interface over MPI with what the ring and Star Attention need, and a one-process
// implementation, so the engine runs the same code with or without MPI.
//
// Every wait has a deadline: a rank that died, stopped or took another path makes the others
// fail with a message naming it, never hang. Errors found before any exchange (bad input,
// ranks that disagree on the model or the prompt) go through agree(), so every rank reports
// the same error and exits non-zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"

namespace ls {

// An error every rank raises at once (agree(), check_same()): each rank can exit normally.
class CollectiveError : public Error {
 public:
  using Error::Error;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // A description for reports: "MPI (Open MPI 4.1.4), 2 ranks" or "one process".
  virtual std::string describe() const = 0;

  // Sends `send_bytes` to rank `to` and receives `recv_bytes` from rank `from` at once (either
  // may be −1: nothing). Asynchronous: start, compute, then wait.
  virtual void start_exchange(int to, const void* send, std::size_t send_bytes, int from, void* recv,
                              std::size_t recv_bytes) = 0;
  virtual void wait_exchange() = 0;
  // Sends `bytes` to rank `to` without waiting for them to arrive; `data` must stay untouched
  // until complete_sends() has seen this send done. Sends and exchanges to one rank arrive in
  // the order they were started.
  virtual void post_send(int to, const void* data, std::size_t bytes) = 0;
  // Waits until at most `in_flight` posted sends are still on their way (the oldest finish
  // first).
  virtual void complete_sends(std::size_t in_flight) = 0;
  // Every rank's `bytes` into recv [size()][bytes], in rank order.
  virtual void allgather(const void* send, std::size_t bytes, void* recv) = 0;
  // data [bytes] of rank `root` to every rank.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  // The largest of every rank's value.
  virtual double max(double value) = 0;
  // Ends every rank of the job at once (MPI_Abort): for an error one rank meets alone, after
  // it has printed it, so the others do not wait for it until their timeout.
  [[noreturn]] virtual void abort(int code) = 0;
  // Throws CollectiveError on every rank when any rank passes a non-empty `error` (the
  // message of the lowest such rank, prefixed with its number), so all ranks stop together.
  void agree(const std::string& error);
  // The same string on every rank? Throws CollectiveError on every rank, naming `what`, when not.
  void check_same(const std::string& value, const std::string& what);

  // Bytes this rank sent so far (exchanges, gathers and broadcasts it was the source of).
  std::int64_t bytes_sent() const { return bytes_sent_; }

  // Seconds any wait may take before it fails (LONGSPARSE_CP_TIMEOUT, default 300).
  static double timeout_seconds();
  void set_timeout(double seconds) { timeout_ = seconds; }

 protected:
  double timeout_ = timeout_seconds();
  std::int64_t bytes_sent_ = 0;
};

// One process: size 1; exchanges with anyone are errors.
std::unique_ptr<Communicator> single_process_communicator();

// The MPI world (MPI_Init_thread on first use, MPI_Finalize at exit). Throws ls::Error when
// the build has no MPI (LONGSPARSE_MPI) or MPI cannot start.
std::unique_ptr<Communicator> mpi_communicator();
// Whether the build has MPI.
bool have_mpi();
// Whether this process was started by mpirun / mpiexec (Open MPI, MPICH or Slurm variables).
bool launched_by_mpi();

}  // namespace ls
